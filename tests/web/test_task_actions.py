"""What a CSM does with a task, in Chromium against the real stack: snooze it, comment on it,
complete several at once from the inbox, undo a completion from the flash (for a waiting
enrollment too), read why a task was cancelled, and see when it is due in their own zone and
working days; with the accessibility check."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as EC
from selenium.webdriver.support.ui import Select, WebDriverWait

from engine.store import repository
from engine.store.models import Task, TaskComment, TeamMember
from tests.helpers.accessibility import serious_violations
from tests.helpers.browser import CSM_A, CSM_B, Browser, Stack, seed_task
from tests.helpers.polling import wait_until
from tests.web.test_onboarding_e2e import business_hours_zone, post_event


def _task(stack: Stack, task_id: str) -> Task:
    with stack.sessions() as session:
        task = session.get(Task, task_id)
        assert task is not None
        return task


def test_snooze_hides_a_task_until_woken_and_comments_stay_with_it(
    stack: Stack, browser: Browser
) -> None:
    word = uuid.uuid4().hex[:6]
    task_id = seed_task(stack, CSM_B, f"{word} call the champion")
    browser.login(CSM_B)
    browser.get(f"/tasks/{task_id}")
    Select(browser.find("form.snooze select[name=until]")).select_by_value("tomorrow")
    browser.click_and_load(browser.find("form.snooze button[type=submit]"))
    assert "Snoozed" in browser.wait_for(".flash").text
    snoozed = _task(stack, task_id).snoozed_until
    assert snoozed is not None and snoozed > datetime.now(UTC)
    assert snoozed.hour == 9 and snoozed.minute == 0  # tomorrow 09:00 in the viewer's zone (UTC)
    browser.get(f"/inbox?q={word}")
    assert not browser.find_all(f'tr[data-task="{task_id}"]')  # out of sight...
    browser.get(f"/inbox?q={word}&show=snoozed")
    assert "snoozed until" in browser.find(f'tr[data-task="{task_id}"]').text  # ...not lost
    browser.get(f"/tasks/{task_id}")
    assert "until" in browser.text("dd.snoozed")
    browser.click_and_load(browser.find("form.snooze button.wake"))
    assert "back in the inbox" in browser.wait_for(".flash").text
    assert _task(stack, task_id).snoozed_until is None
    browser.get(f"/inbox?q={word}")
    assert browser.find_all(f'tr[data-task="{task_id}"]')

    # Comments: listed on the page, oldest first, with their author.
    browser.get(f"/tasks/{task_id}")
    assert "No comments yet" in browser.text("#comments")
    for body in ("Left a voicemail.", "They call back Thursday."):
        form = browser.find("form.comment")
        form.find_element(By.CSS_SELECTOR, "textarea[name=body]").send_keys(body)
        form.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
        # The page before the post may still show the previous comment's flash.
        WebDriverWait(browser.driver, 10).until(EC.staleness_of(form))
        assert "Comment added" in browser.wait_for(".flash").text
    comments = browser.text("ul.comments")
    assert comments.index("Left a voicemail.") < comments.index("They call back Thursday.")
    assert "Ben Okafor" in comments
    with stack.sessions() as session:
        authors = {c.author for c in session.query(TaskComment).filter_by(task_id=task_id)}
    assert authors == {CSM_B}


def test_complete_several_from_the_inbox_then_undo(stack: Stack, browser: Browser) -> None:
    word = uuid.uuid4().hex[:6]
    first = seed_task(stack, CSM_B, f"{word} first")
    second = seed_task(stack, CSM_B, f"{word} second")
    left = seed_task(stack, CSM_B, f"{word} left alone")
    browser.login(CSM_B)
    browser.get(f"/inbox?q={word}")
    for task_id in (first, second):
        browser.find(f'tr[data-task="{task_id}"] input[name=task_ids]').click()
    Select(browser.find("fieldset.bulk-actions select[name=outcome]")).select_by_value("held")
    browser.click_and_load(browser.find("button.complete-checked"))
    flash = browser.wait_for(".flash")
    assert "Completed 2 tasks: held." in flash.text
    assert [(t.status, t.outcome) for t in map(lambda i: _task(stack, i), (first, second))] == [
        ("completed", "held"),
        ("completed", "held"),
    ]
    assert _task(stack, left).status == "open"
    assert [r.get_attribute("data-task") for r in browser.find_all("table.tasks tbody tr")] == [
        left
    ]
    # The flash offers Undo while the completions can be taken back.
    browser.click_and_load(browser.find(".flash button.undo-button"))
    assert "Reopened 2 tasks." in browser.wait_for(".flash").text
    assert {_task(stack, i).status for i in (first, second)} == {"open"}

    # An outcome a task does not offer is refused for that task alone, and said so.
    browser.get(f"/inbox?q={word}")
    browser.find(f'tr[data-task="{first}"] input[name=task_ids]').click()
    browser.driver.execute_script(
        "document.querySelector('select[name=outcome]').innerHTML ="
        " '<option value=\"escalated\">escalated</option>'"
    )
    browser.click_and_load(browser.find("button.complete-checked"))
    flash = browser.wait_for(".flash").text
    assert "Completed" not in flash and f"Not “{word} first”" in flash
    assert _task(stack, first).status == "open"


def test_undo_from_the_flash_keeps_the_enrollment_waiting(stack: Stack, browser: Browser) -> None:
    zone = business_hours_zone(datetime.now(UTC))
    if zone is None:
        pytest.skip("no time zone has a weekday business hour right now (weekend everywhere)")
    customer_id = f"undo-{uuid.uuid4().hex[:8]}"
    with stack.api() as api:
        put = api.put(
            f"/api/customers/{customer_id}",
            json={
                "name": f"Numbat Labs {customer_id[-4:]}",
                "segment": "enterprise",
                "timezone": zone,
                "owner": CSM_A,
                "contacts": [{"email": f"it@{customer_id}.example", "role": "admin"}],
            },
        )
        assert put.status_code == 200, put.text
        post_event(api, customer_id, "customer.created")

    def open_kickoff() -> Task | None:
        with stack.sessions() as session:
            return session.query(Task).filter_by(customer_id=customer_id, status="open").first()

    task = wait_until(open_kickoff, what="the kickoff task")
    assert task.enrollment_id
    browser.login(CSM_A)
    browser.get(f"/tasks/{task.id}")
    browser.click_and_load(browser.find('button[name=outcome][value="held"]'))
    flash = browser.wait_for(".flash")
    assert "Completed" in flash.text
    browser.click_and_load(browser.find(".flash button.undo-button"))
    assert "Reopened" in browser.wait_for(".flash").text
    reopened = _task(stack, task.id)
    assert (reopened.status, reopened.outcome) == ("open", None)
    # The enrollment took the completion back: it still waits on the kickoff task.
    assert stack.status(task.enrollment_id).current_step == "kickoff"
    assert "completion undone" in browser.text("#comments")


def test_a_cancelled_task_says_why_on_its_page_and_the_timeline(
    stack: Stack, browser: Browser
) -> None:
    task_id = seed_task(stack, CSM_B, "Kickoff call nobody needs now")
    reason = "the customer reached the playbook's goal (goal_reached)"
    with stack.sessions.begin() as session:
        repository.cancel_task(session, task_id, reason=reason)
    customer_id = _task(stack, task_id).customer_id
    browser.login(CSM_B)
    browser.get(f"/tasks/{task_id}")
    assert browser.text("dd.cancel-reason") == reason
    assert not browser.find_all("form.complete")
    browser.get(f"/customers/{customer_id}")
    assert f"cancelled: {reason}" in browser.text("main")


def test_task_controls_have_no_serious_accessibility_violations(
    stack: Stack, browser: Browser
) -> None:
    word = uuid.uuid4().hex[:6]
    task_id = seed_task(stack, CSM_B, f"{word} accessible task")
    browser.login(CSM_B)
    found: dict[str, list[str]] = {}
    browser.get(f"/tasks/{task_id}")
    browser.find("form.comment textarea[name=body]").send_keys("A comment to list.")
    browser.find("form.comment button[type=submit]").click()
    browser.wait_for(".flash")
    found["task page"] = serious_violations(browser.driver)
    browser.get(f"/inbox?q={word}")
    found["inbox"] = serious_violations(browser.driver)
    browser.find(f'tr[data-task="{task_id}"] input[name=task_ids]').click()
    browser.find("button.complete-checked").click()
    browser.wait_for(".flash button.undo-button")
    found["inbox with the undo flash"] = serious_violations(browser.driver)
    browser.get(f"/tasks/{task_id}")
    found["completed task"] = serious_violations(browser.driver)
    assert not any(found.values()), found


def test_due_in_counts_the_viewers_working_days_in_their_zone(
    stack: Stack, browser: Browser
) -> None:
    word = uuid.uuid4().hex[:6]
    due = datetime.now(UTC) + timedelta(days=7)
    task_id = seed_task(stack, CSM_B, f"{word} weekly review", due_at=due)
    with stack.sessions.begin() as session:
        member = session.get(TeamMember, CSM_B)
        assert member is not None
        member.timezone = "Asia/Tokyo"
    try:
        browser.login(CSM_B)
        browser.get(f"/inbox?q={word}")
        cell = browser.find(f'tr[data-task="{task_id}"] span.due').text
        # A week always holds a weekend: 5 of Ben's working days (Monday to Friday), and the
        # date in his zone, Tokyo.
        assert "5 working days" in cell
        assert "JST" in browser.find(f'tr[data-task="{task_id}"] span.due').get_attribute("title")
        assert due.astimezone(ZoneInfo("Asia/Tokyo")).strftime("%a %d %b %H:%M") in cell
    finally:
        with stack.sessions.begin() as session:
            member = session.get(TeamMember, CSM_B)
            assert member is not None
            member.timezone = "UTC"
