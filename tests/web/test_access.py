"""Who sees what: logins, the inbox per role, 403 on someone else's task, CSRF on forms."""

from __future__ import annotations

import re
from datetime import timedelta

import httpx
import pytest
from selenium.webdriver.support.ui import Select

from engine.store.models import Task, utcnow
from tests.helpers.browser import ADMIN, CSM_A, CSM_B, MANAGER, PASSWORD, Browser, Stack, seed_task


@pytest.fixture(scope="module")
def tasks(stack: Stack) -> dict[str, str]:
    now = utcnow()
    return {
        "a_overdue": seed_task(
            stack, CSM_A, "Call Ada's overdue account", due_at=now - timedelta(days=2)
        ),
        "a_later": seed_task(stack, CSM_A, "Ada's later task", due_at=now + timedelta(days=5)),
        "b": seed_task(stack, CSM_B, "Ben's private task", due_at=now + timedelta(days=1)),
        "unassigned": seed_task(stack, None, "Nobody's task yet"),
    }


def test_login_failure_shows_a_message_and_sets_no_session(stack: Stack, browser: Browser) -> None:
    browser.get("/inbox")
    assert "/login" in browser.driver.current_url  # unauthenticated pages redirect to login
    browser.find("input[name=email]").send_keys(CSM_A)
    browser.find("input[name=password]").send_keys("not the password")
    browser.find("form button[type=submit]").click()
    error = browser.wait_for("#login-error")
    assert error.text == "Wrong email or password."
    assert browser.find("input[name=email]").get_attribute("value") == CSM_A
    assert browser.driver.get_cookie("playbook_session") is None
    browser.get("/inbox")
    assert "/login" in browser.driver.current_url


def test_login_then_back_to_the_page_asked_for(
    stack: Stack, browser: Browser, tasks: dict[str, str]
) -> None:
    browser.get(f"/tasks/{tasks['a_later']}")
    browser.find("input[name=email]").send_keys(CSM_A)
    browser.find("input[name=password]").send_keys(PASSWORD)
    browser.click_and_load(browser.find("form button[type=submit]"))
    browser.wait_for("form.complete")
    assert browser.driver.current_url.endswith(f"/tasks/{tasks['a_later']}")
    cookie = browser.driver.get_cookie("playbook_session")
    assert cookie is not None and cookie["httpOnly"] and cookie["sameSite"] == "Lax"
    browser.find("header form button").click()  # log out
    browser.wait_for("input[name=password]")
    browser.get("/inbox")
    assert "/login" in browser.driver.current_url


def test_a_csm_sees_only_their_tasks_and_gets_403_on_anothers(
    stack: Stack, browser: Browser, tasks: dict[str, str]
) -> None:
    browser.login(CSM_A)
    rows = [row.get_attribute("data-task") for row in browser.find_all("tr[data-task]")]
    assert tasks["a_overdue"] in rows and tasks["a_later"] in rows
    assert tasks["b"] not in rows and tasks["unassigned"] not in rows
    assert rows.index(tasks["a_overdue"]) < rows.index(tasks["a_later"])  # by due date
    overdue = browser.find(f'tr[data-task="{tasks["a_overdue"]}"]')
    assert "overdue-row" in overdue.get_attribute("class")
    assert "overdue" in overdue.text
    assert not browser.find_all("select[name=assignee]")  # no filter for a plain CSM
    browser.get(f"/inbox?assignee={CSM_B}")  # asking for someone else's inbox shows one's own
    assert tasks["b"] not in browser.driver.page_source

    browser.get(f"/tasks/{tasks['b']}")
    assert browser.text("h1") == "Not yours"
    assert "Ben's private task" not in browser.driver.page_source


def test_403_on_completing_anothers_task_and_csrf_is_required(
    stack: Stack, tasks: dict[str, str]
) -> None:
    with httpx.Client(base_url=stack.url, follow_redirects=False) as http:
        assert (
            http.post(f"/tasks/{tasks['b']}/complete", data={"outcome": "held"}).status_code == 303
        )
        page = http.get("/login")
        token = re.search(r'name="token" value="([^"]+)"', page.text)
        assert token is not None
        login = http.post(
            "/login", data={"email": CSM_A, "password": PASSWORD, "token": token.group(1)}
        )
        assert login.status_code == 303
        inbox = http.get("/inbox")
        csrf = re.search(r'name="csrf" value="([^"]+)"', inbox.text)
        assert csrf is not None
        forged = http.post(f"/tasks/{tasks['a_later']}/complete", data={"outcome": "held"})
        assert forged.status_code == 403
        theirs = http.post(
            f"/tasks/{tasks['b']}/complete", data={"outcome": "held", "csrf": csrf.group(1)}
        )
        assert theirs.status_code == 403
        reassign = http.post(
            f"/tasks/{tasks['b']}/reassign", data={"assignee": CSM_A, "csrf": csrf.group(1)}
        )
        assert reassign.status_code == 403
        no_login_token = http.post("/login", data={"email": CSM_A, "password": PASSWORD})
        assert no_login_token.status_code == 400
    with stack.sessions() as session:
        for key in ("a_later", "b"):
            task = session.get(Task, tasks[key])
            assert task is not None and task.status == "open"
            assert task.assignee_email == (CSM_A if key == "a_later" else CSM_B)


def test_admin_sees_everyone_and_filters_by_assignee(
    stack: Stack, browser: Browser, tasks: dict[str, str]
) -> None:
    browser.login(ADMIN)
    rows = {row.get_attribute("data-task") for row in browser.find_all("tr[data-task]")}
    assert set(tasks.values()) <= rows
    browser.get(f"/inbox?assignee={CSM_B}")
    rows = {row.get_attribute("data-task") for row in browser.find_all("tr[data-task]")}
    assert tasks["b"] in rows and tasks["a_later"] not in rows
    browser.get("/inbox?assignee=unassigned")
    rows = {row.get_attribute("data-task") for row in browser.find_all("tr[data-task]")}
    # Other tests share the stack and may leave unassigned tasks of their own.
    assert tasks["unassigned"] in rows and not rows & {tasks["b"], tasks["a_later"]}
    browser.get(f"/tasks/{tasks['b']}")
    assert "Ben's private task" in browser.text("h1")


def test_a_manager_sees_their_reports_tasks(
    stack: Stack, browser: Browser, tasks: dict[str, str]
) -> None:
    browser.login(MANAGER)
    browser.get("/inbox?assignee=team")
    rows = {row.get_attribute("data-task") for row in browser.find_all("tr[data-task]")}
    assert {tasks["a_overdue"], tasks["a_later"]} <= rows
    assert tasks["b"] not in rows  # Ben reports to nobody
    browser.get(f"/tasks/{tasks['a_later']}")
    assert "Ada's later task" in browser.text("h1")
    browser.get(f"/tasks/{tasks['b']}")
    assert browser.text("h1") == "Not yours"


def test_reassign_hands_the_task_over(stack: Stack, browser: Browser) -> None:
    task_id = seed_task(stack, CSM_A, "Hand me over")
    browser.login(CSM_A)
    browser.get(f"/tasks/{task_id}")
    Select(browser.find("form.reassign select")).select_by_value(CSM_B)
    browser.click_and_load(browser.find("form.reassign button"))
    assert "Reassigned" in browser.wait_for(".flash").text
    with stack.sessions() as session:
        task = session.get(Task, task_id)
        assert task is not None and task.assignee_email == CSM_B
    browser.get(f"/tasks/{task_id}")
    assert browser.text("h1") == "Not yours"
