"""The outbox: every email with its status, filters, and the rendered body of one email."""

from __future__ import annotations

import uuid

import httpx
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select

from engine.store import repository
from engine.store.models import OutboxMessage
from tests.helpers.browser import CSM_B, Browser, Stack

HTML = """<!doctype html><html><body style="font-family: sans-serif">
<h1 id="greeting" style="color: #2f5bd3">Welcome aboard, Ida</h1>
<p>Your workspace is ready. <a href="https://example.com/start">Start here</a>.</p>
<script>document.body.insertAdjacentHTML("beforeend", "<p id=ran>script ran</p>")</script>
</body></html>"""


def seed_email(stack: Stack, status: str, subject: str, **fields: object) -> int:
    key = f"outbox-test:{uuid.uuid4().hex}"
    with stack.sessions.begin() as session:
        message, _ = repository.insert_outbox(
            session,
            key,
            f"ida-{uuid.uuid4().hex[:6]}@example.com",
            subject,
            status=status,
            **{"playbook_id": "onboarding", "step_id": "welcome", **fields},  # type: ignore[arg-type]
        )
        return message.id


def test_outbox_lists_emails_and_shows_the_rendered_body(stack: Stack, browser: Browser) -> None:
    captured = seed_email(
        stack,
        "captured",
        "Welcome to Acme, Ida",
        html=HTML,
        text="Welcome aboard, Ida\n\nYour workspace is ready.",
        headers={"List-Unsubscribe": "<https://example.com/u/1>"},
    )
    suppressed = seed_email(
        stack, "suppressed", "Checking in", reason="contact unsubscribed", playbook_id="adoption"
    )
    browser.login(CSM_B)  # any logged-in member may read the outbox
    browser.get("/outbox")
    row = browser.find(f'tr[data-message="{captured}"]')
    assert "captured" in row.text and "Welcome to Acme, Ida" in row.text
    assert browser.find_all(f'tr[data-message="{suppressed}"]')

    Select(browser.find("select[name=status]")).select_by_value("suppressed")
    browser.click_and_load(browser.find("form.filters button"))
    browser.wait_for(f'tr[data-message="{suppressed}"]')
    assert not browser.find_all(f'tr[data-message="{captured}"]')
    assert "contact unsubscribed" in browser.text("table.outbox")

    browser.get("/outbox?playbook=onboarding&q=welcome+to+acme")
    browser.click_and_load(browser.find(f'tr[data-message="{captured}"] a.subject'))
    frame = browser.wait_for("iframe.email")
    assert frame.get_attribute("sandbox") == ""  # no scripts, no same-origin access
    assert "Welcome aboard, Ida" in browser.text("pre.email-text")
    browser.driver.switch_to.frame(frame)
    try:
        heading = browser.driver.find_element(By.ID, "greeting")
        assert heading.text == "Welcome aboard, Ida"
        assert "47, 91, 211" in heading.value_of_css_property("color")  # inline CSS kept
        assert not browser.driver.find_elements(By.ID, "ran")  # the sandbox stopped the script
    finally:
        browser.driver.switch_to.default_content()
    assert "List-Unsubscribe" in browser.text("aside")
    browser.screenshot("outbox-message")


def test_a_page_number_past_any_offset_is_a_clean_400(stack: Stack, browser: Browser) -> None:
    browser.login(CSM_B)
    browser.get("/outbox?page=4611686018427387904")  # (page - 1) * 100 overflows 64 bits
    assert "There is no such page" in browser.text(".error-message")
    with httpx.Client(base_url=stack.url) as client:  # the status, which a browser hides
        cookies = {c["name"]: c["value"] for c in browser.driver.get_cookies()}
        response = client.get("/outbox?page=4611686018427387904", cookies=cookies)
    assert response.status_code == 400


def test_an_email_the_policy_held_back_shows_why(stack: Stack, browser: Browser) -> None:
    """Postponed and skipped emails (docs/delivery.md) show their reason in the list, and a
    postponed one that went out keeps it, with when it was released and its variant."""
    from datetime import UTC, datetime

    why = "deferred: cap of 1 email a day reached for ida@example.com"
    released = seed_email(stack, "captured", "Your week in Acme", reason=f"{why}; then sent")
    skipped = seed_email(
        stack, "skipped", "Try dashboards", reason="cap of 3 emails in 7 days reached"
    )
    with stack.sessions.begin() as session:
        row = session.get(OutboxMessage, released)
        assert row is not None
        row.not_before = datetime(2027, 3, 30, 7, 0, tzinfo=UTC)
        row.variant = "short"
    browser.login(CSM_B)
    browser.get("/outbox")
    assert why in browser.text(f'tr[data-message="{released}"]')
    assert "cap of 3 emails in 7 days" in browser.text(f'tr[data-message="{skipped}"]')
    browser.get(f"/outbox/{released}")
    page = browser.text("main")
    assert "Not before" in page and "Variant" in page and "short" in page
