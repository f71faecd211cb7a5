"""Shared parts of the browser tests: the running stack, the browser, the team."""

from __future__ import annotations

import asyncio
import os
import threading
import uuid
from collections.abc import Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import httpx
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support import expected_conditions as EC
from selenium.webdriver.support.ui import WebDriverWait
from sqlalchemy.orm import Session, sessionmaker

from engine.messages import EnrollmentSnapshot
from engine.services import Services
from engine.settings import Settings
from engine.store import repository
from workflows.playbook import PlaybookWorkflow

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
PASSWORD = "correct horse battery staple"
ADMIN = "admin@vendor.example"
CSM_A = "ada.csm@vendor.example"
CSM_B = "ben.csm@vendor.example"
MANAGER = "mia.manager@vendor.example"
STARTUP_SECONDS = 60
T = TypeVar("T")


@dataclass
class Stack:
    """The running app and what tests need to reach around it."""

    url: str
    settings: Settings
    sessions: sessionmaker[Session]
    services: Services | None = None
    loop: asyncio.AbstractEventLoop | None = None
    api_token: str = ""
    ready: threading.Event = field(default_factory=threading.Event)
    error: BaseException | None = None

    def run(self, coro: Coroutine[Any, Any, T], timeout: float = 30) -> T:
        """Run a coroutine on the stack's event loop (where the Temporal client lives)."""
        assert self.loop is not None
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def status(self, enrollment_id: str) -> EnrollmentSnapshot:
        assert self.services is not None
        handle = self.services.client.get_workflow_handle(enrollment_id)
        return self.run(handle.query(PlaybookWorkflow.status))

    def api(self) -> httpx.Client:
        return httpx.Client(
            base_url=self.url,
            headers={"Authorization": f"Bearer {self.api_token}"},
            timeout=30,
        )


class Browser:
    """The session's Chromium, logged out at the start of each test."""

    def __init__(self, driver: WebDriver, base: str) -> None:
        self.driver, self.base = driver, base

    def get(self, path: str) -> None:
        self.driver.get(self.base + path)

    def login(self, email: str, password: str = PASSWORD) -> None:
        self.get("/login")
        self.driver.find_element(By.NAME, "email").send_keys(email)
        self.driver.find_element(By.NAME, "password").send_keys(password)
        self.driver.find_element(By.CSS_SELECTOR, "form button[type=submit]").click()
        WebDriverWait(self.driver, 10).until(EC.url_changes(self.base + "/login"))
        self.wait_for("header nav")  # the page behind the login has loaded

    def find(self, css: str) -> Any:
        return self.driver.find_element(By.CSS_SELECTOR, css)

    def find_all(self, css: str) -> list[Any]:
        return self.driver.find_elements(By.CSS_SELECTOR, css)

    def text(self, css: str = "body") -> str:
        return self.find(css).text

    def wait_for(self, css: str, timeout: float = 10) -> Any:
        return WebDriverWait(self.driver, timeout).until(
            EC.presence_of_element_located((By.CSS_SELECTOR, css))
        )

    def click_and_load(self, element: Any, timeout: float = 10) -> None:
        """Click a link or submit button and wait until the browser has left the page.

        Without the wait, a `wait_for` right after the click can find its element on the
        old page, which then goes stale as the new one loads.
        """
        old = self.driver.find_element(By.TAG_NAME, "html")
        element.click()
        WebDriverWait(self.driver, timeout).until(EC.staleness_of(old))

    def screenshot(self, name: str) -> None:
        folder = os.environ.get("UI_SCREENSHOTS")
        if not folder:
            return
        height = self.driver.execute_script("return document.body.scrollHeight")
        self.driver.set_window_size(1400, min(max(height + 40, 800), 2400))
        self.driver.save_screenshot(str(Path(folder) / f"{name}.png"))
        self.driver.set_window_size(1400, 1000)


def seed_task(stack: Stack, assignee: str | None, title: str, **fields: object) -> str:
    """An open task (with its customer) straight in the store; returns its id."""
    customer_id = f"acc-{uuid.uuid4().hex[:8]}"
    with stack.sessions.begin() as session:
        repository.upsert_customer(
            session,
            repository.CustomerData(
                id=customer_id, name=f"Customer {customer_id}", owner_email=assignee
            ),
        )
        task, _ = repository.create_task(
            session,
            f"test:{customer_id}",
            title,
            customer_id=customer_id,
            assignee_email=assignee,
            playbook_id="onboarding",
            step_id="kickoff",
            outcomes=["held", "rescheduled"],
            **fields,  # type: ignore[arg-type]
        )
        return task.id
