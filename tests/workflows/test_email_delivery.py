"""Email delivery through the real `sendgrid` client and the SendGrid stand-in.

Never twice (a crash after the provider accepted), retried on 429 after the reset, failed
for good on 400 with SendGrid's own message, never to an unsubscribed contact; and in every
case the enrollment goes on to its next step. Only customer contacts get unsubscribe headers
and links: the team (owner, manager, a role, a fixed address) gets neither.
"""

from __future__ import annotations

import shutil
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select
from temporalio.testing import ActivityEnvironment

from activities.email import EmailActivities
from activities.mailer import CaptureMailer, OutgoingEmail, SendGridMailer
from engine.language.plan import CompiledPlan
from engine.messages import SendEmailInput
from engine.store import repository
from engine.store.models import Contact, OutboxMessage
from tests.helpers.harness import (
    MANAGER,
    OWNER,
    records,
    running,
    seed_customer,
    write_project,
)
from tests.helpers.paths import PLAYBOOKS

ADA, CARL = "ada@acme.example", "carl@acme.example"

ONE_EMAIL = """\
playbook: one_email
name: One email, then a task
trigger: {manual: true}
steps:
  - id: hello
    email:
      to: contact.role in ["admin", "champion"]
      subject: "Hello {{ contact.first_name }}"
      body: >
        <p>Hi {{ contact.first_name }}, welcome to {{ customer.name }}.</p>
        <p><a href="{{ unsubscribe_url }}">Unsubscribe</a></p>
      send_window: anytime
  - id: after_email
    task:
      title: "Call {{ customer.name }}"
  - id: done
    end: {outcome: emailed}
"""


class CrashAfterAccept:
    """The real SendGrid mailer, except that the first `send` raises *after* SendGrid
    accepted the message: a worker dying between the provider's 202 and the outbox update.
    """

    name = "sendgrid"

    def __init__(self, inner: SendGridMailer) -> None:
        self.inner = inner
        self.calls = 0

    def send(self, email: OutgoingEmail) -> str | None:
        self.calls += 1
        message_id = self.inner.send(email)
        if self.calls == 1:
            raise RuntimeError("worker lost after SendGrid accepted the message")
        return message_id


@pytest.fixture
def plan(tmp_path) -> CompiledPlan:
    return write_project(tmp_path / "project", {"one_email": ONE_EMAIL}).plan("one_email")


def accepted(sendgrid, enrollment_id: str, step: str, contact: str) -> list:
    """Requests SendGrid accepted for one (enrollment, step, contact)."""
    return [
        m
        for m in sendgrid.messages_for("enrollment_id", enrollment_id)
        if m.has_custom_arg("step_id", step) and m.recipients == [contact]
    ]


def real_mailer(sendgrid) -> SendGridMailer:
    return SendGridMailer(api_key=sendgrid.api_key, host=sendgrid.url)


async def test_a_retry_after_the_provider_accepted_does_not_send_again(
    temporal_env, sessions, task_queue, plan, customer_id, sendgrid
):
    mailer = CrashAfterAccept(real_mailer(sendgrid))
    seed_customer(sessions, customer_id)
    async with running(temporal_env, sessions, task_queue, mailer, customer_id) as h:
        handle = await h.start(plan)
        result = await h.result(handle)

    for contact in (ADA, CARL):
        assert len(accepted(sendgrid, handle.id, "hello", contact)) == 1, contact
    assert len(sendgrid.requests) == 2
    rows = {m.contact_email: m for m in h.outbox("hello")}
    first = sendgrid.requests[0].recipients[0]
    other = CARL if first == ADA else ADA
    # The crashed attempt cannot know whether SendGrid took the message: recorded, not resent.
    assert rows[first].status == "unconfirmed"
    assert "not sent again" in (rows[first].reason or "")
    assert rows[other].status == "sent"
    assert (
        rows[other].provider_message_id
        == accepted(sendgrid, handle.id, "hello", other)[0].message_id
    )
    # ... and the enrollment went on.
    assert result.outcome == "emailed"
    assert h.tasks("after_email")
    [email] = records(result, "email", "hello")
    assert {d["contact"]: d["status"] for d in email.data["deliveries"]} == {
        first: "unconfirmed",
        other: "sent",
    }


async def test_every_email_carries_unsubscribe_headers_and_its_enrollment(
    temporal_env, sessions, task_queue, plan, customer_id, sendgrid
):
    seed_customer(sessions, customer_id)
    async with running(temporal_env, sessions, task_queue, real_mailer(sendgrid), customer_id) as h:
        handle = await h.start(plan)
        await h.result(handle)

    [mail] = accepted(sendgrid, handle.id, "hello", ADA)
    headers = mail.body["headers"]
    assert headers["List-Unsubscribe"].startswith("<http")
    assert "/unsubscribe/" in headers["List-Unsubscribe"]
    assert headers["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert mail.has_custom_arg("step_id", "hello")
    assert mail.subject == "Hello Ada"


TEAM_AND_CONTACT = """\
playbook: team_and_contact
name: One template to a contact and to the team
trigger: {manual: true}
steps:
  - id: to_contact
    email: {template: notes/status, to: contact.role == "admin", send_window: anytime}
  - id: to_owner
    email: {template: notes/status, to: owner, send_window: anytime}
  - id: to_manager
    email: {template: notes/status, to: manager, send_window: anytime}
  - id: to_role
    email: {template: notes/status, to: "role:csm", send_window: anytime}
  - id: to_address
    email: {template: notes/status, to: ops@vendor.example, send_window: anytime}
  - id: to_contact_address
    email: {template: notes/status, to: carl@acme.example, send_window: anytime}
  - id: done
    end: {outcome: emailed}
"""
STATUS_HTML = """\
---
subject: "Status of {{ customer.name }}"
---
{% extends "_layout.html" %}
{% block content %}<p>Hello {{ contact.first_name }}, a note about {{ customer.name }}.</p>
{% endblock %}
"""
STATUS_TEXT = """\
{% extends "_layout.txt" %}
{% block content %}Hello {{ contact.first_name }}, a note about {{ customer.name }}.
{% endblock %}
"""


async def test_only_customer_contacts_get_unsubscribe_headers_and_links(
    temporal_env, sessions, task_queue, customer_id, sendgrid, tmp_path
):
    """The shipped customer layout, sent to a contact and to the team: the unsubscribe
    endpoint knows only contacts, so the team's copies carry no header and no link."""
    root = tmp_path / "project"
    shutil.copytree(PLAYBOOKS / "templates", root / "templates")
    (root / "templates" / "notes").mkdir()
    (root / "templates" / "notes" / "status.html").write_text(STATUS_HTML)
    (root / "templates" / "notes" / "status.txt").write_text(STATUS_TEXT)
    plan = write_project(root, {"team_and_contact": TEAM_AND_CONTACT}).plan("team_and_contact")
    seed_customer(sessions, customer_id)
    async with running(temporal_env, sessions, task_queue, real_mailer(sendgrid), customer_id) as h:
        handle = await h.start(plan)
        result = await h.result(handle)
        rows = {m.step_id: m for m in h.outbox()}
    assert result.outcome == "emailed"

    def received(step: str, address: str) -> tuple[dict[str, str], str]:
        [mail] = accepted(sendgrid, handle.id, step, address)
        bodies = {c["type"]: c["value"] for c in mail.body["content"]}
        assert set(bodies) == {"text/plain", "text/html"}
        return mail.body.get("headers", {}), bodies["text/plain"] + bodies["text/html"]

    # A fixed address that is one of the customer's contacts is that contact.
    for step, address in (("to_contact", ADA), ("to_contact_address", CARL)):
        headers, body = received(step, address)
        assert headers["List-Unsubscribe"].startswith("<http") and "/unsubscribe/" in body
        assert rows[step].headers["List-Unsubscribe"] == headers["List-Unsubscribe"]
        assert "Unsubscribe" in f"{rows[step].html}{rows[step].text}"
    for step, address in (
        ("to_owner", OWNER),
        ("to_manager", MANAGER),
        ("to_role", MANAGER),  # the first team member (by address) with the role csm
        ("to_address", "ops@vendor.example"),
    ):
        headers, body = received(step, address)
        assert not any(h.lower().startswith("list-unsubscribe") for h in headers), step
        assert "unsubscribe" not in body.lower(), step
        row = rows[step]
        assert (row.contact_email, row.status, row.headers) == (address, "sent", {}), step
        assert "unsubscribe" not in f"{row.html}{row.text}".lower(), step


async def test_rate_limited_send_waits_for_the_reset_and_is_sent_once(
    temporal_env, sessions, task_queue, plan, customer_id, sendgrid
):
    sendgrid.fail_next(status=429, reset_after_seconds=30)
    seed_customer(sessions, customer_id)
    async with running(temporal_env, sessions, task_queue, real_mailer(sendgrid), customer_id) as h:
        handle = await h.start(plan)
        result = await h.result(handle)

    [limited] = sendgrid.injected
    assert limited.status == 429
    throttled = limited.body["personalizations"][0]["to"][0]["email"]
    for contact in (ADA, CARL):
        assert len(accepted(sendgrid, handle.id, "hello", contact)) == 1, contact
    rows = {m.contact_email: m for m in h.outbox("hello")}
    assert {m.status for m in rows.values()} == {"sent"}
    assert rows[throttled].attempts == 2
    # The retry waited for X-RateLimit-Reset (30 s of workflow time), not the 2 s backoff.
    [started] = records(result, "start")
    [email] = records(result, "email", "hello")
    assert email.at - started.at >= timedelta(seconds=25)
    assert result.outcome == "emailed"


async def test_rejected_send_is_failed_with_sendgrids_message_and_the_playbook_goes_on(
    temporal_env, sessions, task_queue, plan, customer_id, sendgrid
):
    sendgrid.fail_next(status=400, message="The from address does not match a verified Sender")
    seed_customer(sessions, customer_id)
    async with running(temporal_env, sessions, task_queue, real_mailer(sendgrid), customer_id) as h:
        handle = await h.start(plan)
        result = await h.result(handle)

    [rejected] = sendgrid.injected
    refused = rejected.body["personalizations"][0]["to"][0]["email"]
    rows = {m.contact_email: m for m in h.outbox("hello")}
    assert rows[refused].status == "failed"
    assert "400" in (rows[refused].reason or "")
    assert "does not match a verified Sender" in (rows[refused].reason or "")
    # Not retried: one injected answer, nothing accepted for that contact.
    assert not accepted(sendgrid, handle.id, "hello", refused)
    [other] = [c for c in (ADA, CARL) if c != refused]
    assert rows[other].status == "sent"
    assert result.outcome == "emailed"
    assert h.tasks("after_email")


async def test_unsubscribed_contact_is_suppressed_and_never_sent_to(
    temporal_env, sessions, task_queue, plan, customer_id, sendgrid
):
    seed_customer(sessions, customer_id)
    with sessions.begin() as session:
        repository.suppress(session, CARL, "unsubscribed via link", source="unsubscribe")
    async with running(temporal_env, sessions, task_queue, real_mailer(sendgrid), customer_id) as h:
        handle = await h.start(plan)
        result = await h.result(handle)

    rows = {m.contact_email: m for m in h.outbox("hello")}
    assert rows[CARL].status == "suppressed"
    assert rows[CARL].reason
    assert [r for m in sendgrid.requests for r in m.recipients] == [ADA]
    assert rows[ADA].status == "sent"
    assert result.outcome == "emailed"


async def test_a_send_whose_answer_never_came_is_not_repeated(
    temporal_env, sessions, task_queue, plan, customer_id, sendgrid
):
    # SendGrid takes the message but answers after the client gave up: the worker cannot
    # tell whether it was accepted, so the retry records it and does not send again.
    sendgrid.hang_next(seconds=2)
    mailer = SendGridMailer(api_key=sendgrid.api_key, host=sendgrid.url, timeout_seconds=0.5)
    seed_customer(sessions, customer_id)
    async with running(temporal_env, sessions, task_queue, mailer, customer_id) as h:
        handle = await h.start(plan)
        result = await h.result(handle)
    sendgrid.wait_for_requests(2, timeout=10)

    for contact in (ADA, CARL):
        assert len(accepted(sendgrid, handle.id, "hello", contact)) == 1, contact
    statuses = {m.contact_email: m.status for m in h.outbox("hello")}
    assert sorted(statuses.values()) == ["sent", "unconfirmed"]
    assert result.outcome == "emailed"


def test_without_a_provider_a_row_left_pending_by_an_earlier_attempt_is_captured(
    sessions, plan, customer_id
) -> None:
    """A worker that died after writing the row but before capturing it: the retry captures
    that same row instead of leaving it pending or writing a second one."""
    seed_customer(sessions, customer_id)
    step = next(s for s in plan.steps if s.id == "hello")
    assert step.email is not None
    enrollment = f"one_email/{customer_id}"
    key = f"{enrollment}:hello:0:{ADA}"
    with sessions.begin() as session:
        repository.insert_outbox(session, key, ADA, "Hello Ada", status="pending")
    activities = EmailActivities(sessions, CaptureMailer())
    result = ActivityEnvironment().run(
        activities.send_email,
        SendEmailInput(
            enrollment_id=enrollment,
            playbook="one_email",
            version=plan.version,
            step_id="hello",
            iteration=0,
            customer_id=customer_id,
            email=step.email,
            templates=plan.templates,
            now=datetime.now(UTC),
        ),
    )
    assert sorted((d.contact, d.status) for d in result.deliveries) == [
        (ADA, "captured"),
        (CARL, "captured"),
    ]
    with sessions() as session:
        rows = session.scalars(
            select(OutboxMessage).where(OutboxMessage.customer_id == customer_id)
        ).all()
        left = repository.get_outbox(session, key)
    assert left is not None and left.status == "captured"
    assert left.reason == "no mail provider configured"
    assert sorted(m.contact_email for m in rows) == [CARL]  # Ada's row is the pre-existing one


class Recording:
    """A mailer that keeps what it was asked to send."""

    name = "recording"

    def __init__(self) -> None:
        self.sent: list[OutgoingEmail] = []

    def send(self, email: OutgoingEmail) -> str | None:
        self.sent.append(email)
        return f"msg-{len(self.sent)}"


def test_a_line_break_in_a_stored_name_never_reaches_a_header(sessions, plan, customer_id) -> None:
    """A name stored before names were checked (or written around the API) is flattened to
    one line in the subject and the To: name: no header can be injected."""
    seed_customer(sessions, customer_id)
    with sessions.begin() as session:
        contact = session.scalars(
            select(Contact).where(Contact.customer_id == customer_id, Contact.email == ADA)
        ).one()
        contact.first_name = "Ada\r\nBcc: all@evil.example"
    step = next(s for s in plan.steps if s.id == "hello")
    assert step.email is not None
    mailer = Recording()
    ActivityEnvironment().run(
        EmailActivities(sessions, mailer).send_email,
        SendEmailInput(
            enrollment_id=f"one_email/{customer_id}",
            playbook="one_email",
            version=plan.version,
            step_id="hello",
            iteration=0,
            customer_id=customer_id,
            email=step.email,
            templates=plan.templates,
            now=datetime.now(UTC),
        ),
    )
    [to_ada] = [m for m in mailer.sent if m.to_email == ADA]
    assert to_ada.subject == "Hello Ada Bcc: all@evil.example"
    assert "\n" not in (to_ada.to_name or "") and "\r" not in (to_ada.to_name or "")
    with sessions() as session:
        row = session.scalars(
            select(OutboxMessage).where(
                OutboxMessage.customer_id == customer_id, OutboxMessage.contact_email == ADA
            )
        ).one()
    assert row is not None and "\n" not in row.subject and "\r" not in row.subject
