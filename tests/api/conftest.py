"""The HTTP API against real parts: Temporal's dev server, a worker, SQLite, the SendGrid
stand-in, and the app over ASGI.

One stack per test session (starting the dev server takes seconds); tests keep out of each
other's way by using fresh customer ids (`customer` fixture).
"""

from __future__ import annotations

import shutil
import uuid
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from fastapi import FastAPI
from temporalio.testing import WorkflowEnvironment

from engine.api.app import create_app
from engine.api.auth import create_api_token
from engine.client.deployment import deploy_working_copy
from engine.project import Project, load_project
from engine.services import Services
from engine.settings import Settings, load_settings
from engine.store.db import migrate, session_factory
from tests.helpers.api import PROBES, public_key_b64, seed
from tests.helpers.paths import PLAYBOOKS
from tests.helpers.sendgrid_standin import SendGridStandIn
from tests.helpers.temporal import start_dev_server, target_of


@pytest.fixture(scope="session")
def webhook_key() -> ec.EllipticCurvePrivateKey:
    """The key pair SendGrid would sign event webhooks with (P-256)."""
    return ec.generate_private_key(ec.SECP256R1())


@pytest.fixture(scope="session")
def sendgrid_api() -> Iterator[SendGridStandIn]:
    with SendGridStandIn() as standin:
        yield standin


@pytest.fixture(scope="session")
def api_project(tmp_path_factory: pytest.TempPathFactory) -> Project:
    """The shipped playbooks plus the probes, compiled."""
    root = tmp_path_factory.mktemp("project") / "playbooks"
    shutil.copytree(PLAYBOOKS, root)
    for name, source in PROBES.items():
        (root / f"{name}.yaml").write_text(source)
    project = load_project(root)
    assert not project.errors, [str(d) for d in project.errors]
    return project


@pytest.fixture(scope="session")
async def local_temporal() -> AsyncIterator[WorkflowEnvironment]:
    """Temporal's dev server (real time), with the engine's search attributes."""
    env = await start_dev_server(search_attributes=True)
    try:
        yield env
    finally:
        await env.shutdown()


@pytest.fixture(scope="session")
def api_settings(
    tmp_path_factory: pytest.TempPathFactory,
    webhook_key: ec.EllipticCurvePrivateKey,
    sendgrid_api: SendGridStandIn,
    local_temporal: WorkflowEnvironment,
) -> Settings:
    home = tmp_path_factory.mktemp("home")
    return load_settings(
        playbook_home=home,
        database_url=f"sqlite:///{home / 'api.db'}",
        temporal_address=target_of(local_temporal),
        temporal_namespace="default",
        temporal_task_queue=f"api-{uuid.uuid4().hex[:8]}",
        sendgrid_api_key=sendgrid_api.api_key,
        sendgrid_host=sendgrid_api.url,
        sendgrid_webhook_public_key=public_key_b64(webhook_key),
        signing_secret="api-test-signing-secret-of-32-bytes-or-more",
        public_base_url="http://testserver",
        worker_max_concurrent_activities=16,
    )


@pytest.fixture(scope="session")
async def services(
    local_temporal: WorkflowEnvironment, api_settings: Settings, api_project: Project
) -> AsyncIterator[Services]:
    """The app's services with a worker running the real workflow and activities."""
    from worker import build_activities, build_worker

    migrate(api_settings.database_url)
    sessions = session_factory(api_settings.database_url)
    deploy_working_copy(sessions, api_project, by="api-tests")
    client = local_temporal.client
    with ThreadPoolExecutor(max_workers=16) as pool:
        worker = build_worker(client, api_settings, build_activities(api_settings, client), pool)
        async with worker:
            yield Services(api_settings, sessions, client, api_project)


@pytest.fixture(scope="session")
def app(services: Services) -> FastAPI:
    return create_app(services)


@pytest.fixture(scope="session")
def api_token(services: Services) -> str:
    with services.sessions.begin() as session:
        return create_api_token(session, "tests", ["admin"])


@pytest.fixture
async def api(app: FastAPI, api_token: str) -> AsyncIterator[httpx.AsyncClient]:
    """An authenticated client."""
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app),
        base_url="http://testserver",
        headers={"Authorization": f"Bearer {api_token}"},
    ) as client:
        yield client


@pytest.fixture
async def anon(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """A client without credentials (webhooks, unsubscribe links, the 401 checks)."""
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app), base_url="http://testserver"
    ) as client:
        yield client


@pytest.fixture
def customer(services: Services) -> str:
    """A fresh customer per test (enrollment ids are playbook/customer)."""
    return seed(services, f"cust-{uuid.uuid4().hex[:10]}")
