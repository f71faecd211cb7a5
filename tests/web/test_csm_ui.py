"""The UI in the CSM's words, in Chromium against the real stack: the inbox's filters, sort,
search and saved views; times in the viewer's zone beside the customer's; the customer
timeline; admins steering an enrollment; a phone-sized screen; the accessibility check."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select
from sqlalchemy import select

from engine.store import repository
from engine.store.models import Enrollment, SavedView, Task, utcnow
from tests.helpers.accessibility import serious_violations
from tests.helpers.browser import ADMIN, CSM_A, CSM_B, Browser, Stack
from tests.helpers.polling import wait_until

PHONE = (390, 844)


def _customer(stack: Stack, name: str, segment: str, zone: str = "UTC") -> str:
    customer_id = f"ui-{uuid.uuid4().hex[:8]}"
    with stack.sessions.begin() as session:
        repository.upsert_customer(
            session,
            repository.CustomerData(
                id=customer_id, name=name, segment=segment, timezone=zone, owner_email=CSM_B
            ),
        )
    return customer_id


def _task(stack: Stack, customer_id: str, title: str, **fields: object) -> str:
    with stack.sessions.begin() as session:
        task, _ = repository.create_task(
            session,
            f"ui:{uuid.uuid4().hex}",
            title,
            customer_id=customer_id,
            assignee_email=CSM_B,
            outcomes=["done"],
            **fields,  # type: ignore[arg-type]
        )
        return task.id


def _titles(browser: Browser) -> list[str]:
    return [a.text for a in browser.find_all("table.tasks a.task-title")]


@pytest.fixture
def inbox_tasks(stack: Stack) -> Iterator[tuple[str, dict[str, str]]]:
    """Four tasks of Ben's with a shared word in their titles, so a search isolates them."""
    word = uuid.uuid4().hex[:6]
    enterprise = _customer(stack, f"Globex {word}", "enterprise", "America/New_York")
    smb = _customer(stack, f"Initech {word}", "smb")
    now = utcnow()
    ids = {
        "overdue": _task(stack, enterprise, f"{word} overdue call", playbook_id="onboarding",
                         step_id="kickoff", priority="normal", due_at=now - timedelta(hours=5)),
        "soon": _task(stack, smb, f"{word} soon review", playbook_id="qbr", step_id="prepare",
                      priority="urgent", due_at=now + timedelta(minutes=20)),
        "later": _task(stack, enterprise, f"{word} later check", playbook_id="onboarding",
                       step_id="integration_help", priority="high",
                       due_at=now + timedelta(days=20)),
        "undated": _task(stack, smb, f"{word} undated note", playbook_id="renewal",
                         step_id="save_plan", priority="low"),
    }  # fmt: skip
    yield word, ids
    with stack.sessions.begin() as session:
        for view in session.scalars(select(SavedView).where(SavedView.owner_email == CSM_B)):
            session.delete(view)


def test_inbox_sorts_filters_and_searches(
    stack: Stack, browser: Browser, inbox_tasks: tuple[str, dict[str, str]]
) -> None:
    word, ids = inbox_tasks
    with stack.sessions() as session:
        dues = {
            session.get(Task, i).title.removeprefix(f"{word} "): session.get(Task, i).due_at  # type: ignore[union-attr]
            for i in ids.values()
        }
    browser.login(CSM_B)
    browser.get(f"/inbox?q={word}")
    assert _titles(browser) == [
        f"{word} overdue call",
        f"{word} soon review",
        f"{word} later check",
        f"{word} undated note",
    ]  # by due date, soonest first, undated last
    browser.get(f"/inbox?q={word}&sort=-due")
    assert _titles(browser)[0] == f"{word} later check"
    browser.get(f"/inbox?q={word}&sort=priority")
    assert _titles(browser) == [
        f"{word} soon review",
        f"{word} later check",
        f"{word} overdue call",
        f"{word} undated note",
    ]
    # The filter form: each control narrows the list. Due windows are the viewer's calendar
    # (here UTC): today ends at midnight, this week at the end of Sunday.
    for control, value, expected in [
        ("playbook", "onboarding", {"overdue call", "later check"}),
        ("priority", "urgent", {"soon review"}),
        ("segment", "smb", {"soon review", "undated note"}),
        ("due", "overdue", {"overdue call"}),
        ("due", "today", _due_between(dues, 1)),
        ("due", "week", _due_between(dues, 7 - datetime.now(UTC).weekday())),
    ]:
        browser.get(f"/inbox?q={word}")
        Select(browser.find(f"select[name={control}]")).select_by_value(value)
        browser.click_and_load(browser.find("form.filters button[type=submit]"))
        shown = {t.removeprefix(f"{word} ") for t in _titles(browser)}
        assert shown == expected, (control, value)
    # Playbooks, steps and segments in words, not ids.
    browser.get(f"/inbox?q={word}")
    row = browser.text("table.tasks tbody")
    for words in ("New customer onboarding", "Kickoff", "Integration help", "SMB", "Enterprise"):
        assert words in row
    lines = row.splitlines()
    assert "integration_help" not in row
    assert "onboarding" not in lines and "smb" not in lines


def _due_between(dues: dict[str, datetime | None], days: int) -> set[str]:
    """The tasks due from today's UTC midnight until ``days`` midnights later."""
    start = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    end = start + timedelta(days=days)
    return {title for title, due in dues.items() if due is not None and start <= due < end}


def test_saved_views_are_per_member(
    stack: Stack, browser: Browser, inbox_tasks: tuple[str, dict[str, str]]
) -> None:
    word, _ = inbox_tasks
    browser.login(CSM_B)
    browser.get(f"/inbox?q={word}&priority=urgent")
    browser.find("form.save-view input[name=name]").send_keys("Urgent ones")
    browser.click_and_load(browser.find("form.save-view button"))
    assert "Saved the view" in browser.wait_for(".flash").text
    browser.get("/inbox")
    browser.click_and_load(browser.driver.find_element(By.LINK_TEXT, "Urgent ones"))
    browser.wait_for("table.tasks")
    assert _titles(browser) == [f"{word} soon review"]
    with stack.sessions() as session:
        views = list(session.scalars(select(SavedView).where(SavedView.owner_email == CSM_B)))
    assert [(v.name, v.query) for v in views] == [
        ("Urgent ones", f"assignee=me&priority=urgent&q={word}")
    ]
    # Another member does not see it.
    browser.driver.delete_all_cookies()
    browser.login(CSM_A)
    assert not browser.driver.find_elements(By.LINK_TEXT, "Urgent ones")
    browser.driver.delete_all_cookies()
    browser.login(CSM_B)
    browser.click_and_load(browser.find("button.remove[aria-label='Remove the view Urgent ones']"))
    assert "Removed" in browser.wait_for(".flash").text
    assert not browser.driver.find_elements(By.LINK_TEXT, "Urgent ones")


def _browser_zone(browser: Browser, zone: str) -> None:
    browser.driver.execute_cdp_cmd("Emulation.setTimezoneOverride", {"timezoneId": zone})


def test_times_in_the_viewers_zone_with_the_customers_beside(
    stack: Stack, browser: Browser
) -> None:
    customer_id = _customer(stack, "Zone Co", "enterprise", "America/New_York")
    due = datetime(2031, 1, 7, 15, 30, tzinfo=UTC)  # 00:30 on the 8th in Tokyo, 10:30 in NY
    task_id = _task(stack, customer_id, "Zone check", due_at=due, playbook_id="onboarding")
    try:
        # The login page's script tells the server the browser's zone (a cookie).
        _browser_zone(browser, "Asia/Tokyo")
        browser.login(CSM_B)
        assert browser.driver.get_cookie("playbook_tz")["value"] == "Asia/Tokyo"
        browser.get(f"/tasks/{task_id}")
        due_text = browser.find("dl.facts .due").text
        assert "Wed 08 Jan 00:30" in due_text and "Tue 10:30 their time" in due_text
        assert browser.find("dl.facts .due").get_attribute("title") == "2031-01-08 00:30 JST"
        # The browser moves to Berlin: the next page tells the server, the one after shows it.
        _browser_zone(browser, "Europe/Berlin")
        browser.get("/inbox")
        wait_until(
            lambda: browser.driver.get_cookie("playbook_tz")["value"] == "Europe/Berlin",
            what="zone.js to report the new zone",
        )
        browser.get(f"/tasks/{task_id}")
        assert "Tue 07 Jan 16:30" in browser.find("dl.facts .due").text  # CET, UTC+1
    finally:
        _browser_zone(browser, "UTC")
        browser.driver.delete_cookie("playbook_tz")


def test_customer_timeline_tells_what_happened_and_folds_usage(
    stack: Stack, browser: Browser
) -> None:
    customer_id = _customer(stack, "Timeline Co", "mid_market")
    with stack.sessions.begin() as session:
        repository.upsert_customer(
            session, repository.CustomerData(id=customer_id, name="Timeline Co", health_score=82)
        )
        repository.upsert_customer(
            session, repository.CustomerData(id=customer_id, name="Timeline Co", health_score=41)
        )
        at = utcnow() - timedelta(hours=1)
        for n, name in enumerate(["report.created", "report.created", "user.invited"]):
            repository.record_event(
                session, f"{customer_id}-{n}", customer_id, name, at + timedelta(minutes=n),
                {"report": {"kind": "weekly"}, "seats": n},
            )  # fmt: skip
    _task(stack, customer_id, "Call about the drop", playbook_id="renewal")
    browser.login(ADMIN)
    browser.get(f"/customers/{customer_id}")
    story = browser.text("ol.timeline")
    assert "Health 82 → 41" in story and "dropped" in story
    assert "Call about the drop" in story and "Key feature" not in story
    assert "report.created" not in story  # usage is folded away
    usage = browser.find("details.usage")
    assert (
        usage.get_attribute("open") is None
        and not usage.find_element(By.CSS_SELECTOR, "dl.props").is_displayed()
    )
    usage.find_element(By.TAG_NAME, "summary").click()
    assert "Report kind" in usage.text and "weekly" in usage.text  # properties as a list
    assert "{" not in browser.text("main")  # no JSON anywhere
    Select(usage.find_element(By.NAME, "usage")).select_by_value("user.invited")
    browser.click_and_load(usage.find_element(By.CSS_SELECTOR, "button"))
    usage = browser.wait_for("details.usage[open]")
    names = [e.text for e in usage.find_elements(By.CSS_SELECTOR, "li.t-event strong")]
    assert names == ["user.invited"]


def _running_onboarding(stack: Stack) -> tuple[str, str]:
    customer_id = f"steer-{uuid.uuid4().hex[:8]}"
    with stack.api() as api:
        put = api.put(
            f"/api/customers/{customer_id}",
            json={"name": "Steer Co", "segment": "enterprise", "owner": CSM_A},
        )
        assert put.status_code == 200, put.text
        posted = api.post(
            "/api/events",
            json={"id": f"{customer_id}-created", "customer_id": customer_id,
                  "name": "customer.created", "properties": {}},
        )  # fmt: skip
        assert posted.status_code == 202, posted.text

    def row() -> Enrollment | None:
        with stack.sessions() as session:
            return session.scalars(
                select(Enrollment).where(Enrollment.customer_id == customer_id)
            ).first()

    enrollment = wait_until(row, what="the onboarding enrollment")
    return customer_id, enrollment.workflow_id


def _steer(browser: Browser, enrollment_id: str, action: str, step: str | None = None) -> str:
    """Click an enrollment control, read the confirmation page, confirm; returns its text."""
    card = browser.find(f'[data-enrollment="{enrollment_id}"]')
    if step:
        Select(card.find_element(By.NAME, "step")).select_by_value(step)
    browser.click_and_load(
        card.find_element(By.CSS_SELECTOR, f'button[name=action][value="{action}"]')
    )
    confirm = browser.wait_for("section.confirm")
    question = confirm.text
    if action == "cancel":
        confirm.find_element(By.NAME, "reason").send_keys("customer asked to stop")
    browser.click_and_load(confirm.find_element(By.CSS_SELECTOR, "button[type=submit]"))
    browser.wait_for(".flash")
    return question


def test_admins_steer_an_enrollment_after_confirming(stack: Stack, browser: Browser) -> None:
    customer_id, enrollment_id = _running_onboarding(stack)
    browser.login(CSM_A)
    browser.get(f"/customers/{customer_id}")
    browser.wait_for(f'[data-enrollment="{enrollment_id}"]')
    assert not browser.find_all(".controls")  # CSMs see where it stands, admins steer
    browser.driver.delete_all_cookies()
    browser.login(ADMIN)
    browser.get(f"/customers/{customer_id}")
    assert "Pause" in _steer(browser, enrollment_id, "pause")
    assert stack.status(enrollment_id).paused
    assert "paused" in browser.find(f'[data-enrollment="{enrollment_id}"]').text
    _steer(browser, enrollment_id, "resume")
    assert not stack.status(enrollment_id).paused
    question = _steer(browser, enrollment_id, "skip", "await_team")
    assert "Skip" in question
    wait_until(
        lambda: stack.status(enrollment_id).current_step == "await_team",
        what="the skip to await_team",
        context=lambda: stack.status(enrollment_id),
    )
    browser.get(f"/customers/{customer_id}")
    # A CSM who posts the form anyway (a crafted request) is refused and nothing changes.
    browser.driver.delete_all_cookies()
    browser.login(CSM_A)
    browser.get(f"/customers/{customer_id}")
    browser.driver.execute_script(
        """
        const form = document.createElement("form");
        form.method = "post"; form.action = "/enrollments/control";
        const fields = {csrf: document.querySelector("input[name=csrf]").value,
                        enrollment: arguments[0], action: "cancel", confirm: "yes"};
        for (const [name, value] of Object.entries(fields)) {
          const input = document.createElement("input");
          input.type = "hidden"; input.name = name; input.value = value; form.append(input);
        }
        document.body.append(form); form.submit();
        """,
        enrollment_id,
    )
    assert browser.wait_for("h1").text == "Not yours"
    assert _status(stack, enrollment_id) == "running"
    browser.driver.delete_all_cookies()
    browser.login(ADMIN)
    browser.get(f"/customers/{customer_id}")
    confirmation = _steer(browser, enrollment_id, "cancel")
    assert confirmation.startswith("Cancel “New customer onboarding” for Steer Co?")
    assert "cannot be undone" in confirmation
    wait_until(
        lambda: _status(stack, enrollment_id) == "cancelled",
        what="the enrollment to be cancelled",
    )


def _status(stack: Stack, enrollment_id: str) -> str:
    with stack.sessions() as session:
        row = repository.latest_enrollment(session, enrollment_id)
        return row.status if row else ""


def test_admins_get_links_to_the_api_docs(stack: Stack, browser: Browser) -> None:
    browser.login(CSM_A)
    assert not browser.find_all("nav a.api-docs")
    browser.driver.delete_all_cookies()
    browser.login(ADMIN)
    assert [a.get_attribute("href") for a in browser.find_all("nav a.api-docs")] == [
        f"{stack.url}/docs",
        f"{stack.url}/redoc",
    ]


def _page_width(browser: Browser) -> int:
    return int(browser.driver.execute_script("return document.documentElement.scrollWidth"))


def test_a_phone_sized_screen_folds_the_nav_and_never_scrolls_sideways(
    stack: Stack, browser: Browser, inbox_tasks: tuple[str, dict[str, str]]
) -> None:
    _, ids = inbox_tasks
    with stack.sessions() as session:
        task = session.get(Task, ids["overdue"])
        assert task is not None and task.customer_id
        customer_id = task.customer_id
    browser.login(CSM_B)
    browser.driver.set_window_size(*PHONE)
    try:
        inner = browser.driver.execute_script("return window.innerWidth")
        for path in ("/inbox", f"/tasks/{ids['overdue']}", "/customers",
                     f"/customers/{customer_id}", "/enrollments", "/outbox"):  # fmt: skip
            browser.get(path)
            assert _page_width(browser) <= inner, path
        nav = browser.find("header nav")
        assert not nav.is_displayed()
        browser.find("label.menu-button").click()
        assert nav.is_displayed()
        assert nav.find_element(By.LINK_TEXT, "Customers").is_displayed()
    finally:
        browser.driver.set_window_size(1400, 1000)


def test_pages_have_no_serious_accessibility_violations(
    stack: Stack, browser: Browser, inbox_tasks: tuple[str, dict[str, str]]
) -> None:
    word, ids = inbox_tasks
    customer_id, enrollment_id = _running_onboarding(stack)
    found: dict[str, list[str]] = {}
    browser.get("/login")
    found["/login"] = serious_violations(browser.driver)
    browser.login(ADMIN)
    pages = ["/inbox", f"/inbox?q={word}&show=all", f"/tasks/{ids['overdue']}", "/customers",
             f"/customers/{customer_id}", "/enrollments", "/outbox"]  # fmt: skip
    for path in pages:
        browser.get(path)
        found[path] = serious_violations(browser.driver)
    browser.get(f"/customers/{customer_id}")
    browser.click_and_load(
        browser.find(f'[data-enrollment="{enrollment_id}"] button[value="pause"]')
    )
    browser.wait_for("section.confirm")
    found["confirmation"] = serious_violations(browser.driver)
    browser.driver.set_window_size(*PHONE)
    try:
        browser.get("/inbox")
        browser.find("label.menu-button").click()
        found["/inbox on a phone"] = serious_violations(browser.driver)
    finally:
        browser.driver.set_window_size(1400, 1000)
    report = [f"{page}: {problem}" for page, problems in found.items() for problem in problems]
    assert not report, "\n".join(report)
