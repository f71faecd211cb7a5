"""Fault 5: SendGrid answers 429 with a reset time, 500, or never answers; or cannot be reached.

On the dev server in real time, with the real `sendgrid` client against the stand-in, so the
retry timing is the one production gets. (A 400 recorded as failed with SendGrid's message
while the playbook goes on, and a 429 in workflow time, are in
tests/workflows/test_email_delivery.py; not repeated here.)

The policy these tests pin down (activities/mailer.py):
- 429: retried after X-RateLimit-Reset, not before; 5xx: retried with exponential backoff
  (2 s, 4 s, ...); a request that could not be delivered at all (refused, DNS, TLS, connect
  timeout) is retried: nothing was accepted.
- no answer within the client timeout: the request went out and SendGrid may have accepted
  it (the stand-in does accept it, after the client gave up), so it is recorded 'unconfirmed'
  with the cause and never sent again. No duplicate is the promise.
"""

from __future__ import annotations

import asyncio
import time

import pytest

from activities.mailer import OutgoingEmail, SendGridMailer
from tests.helpers.harness import write_project
from tests.helpers.reliability import (
    SHORT_PLAYBOOK,
    contacts_for,
    inprocess_worker,
    outbox_row,
    results,
    seed_customers,
    start_all,
)

CLIENT_TIMEOUT = 1.5


@pytest.fixture
def plan(tmp_path):
    return write_project(tmp_path / "project", {"short": SHORT_PLAYBOOK}).plan("short")


def mailer(sendgrid, timeout: float = CLIENT_TIMEOUT) -> SendGridMailer:
    return SendGridMailer(api_key=sendgrid.api_key, host=sendgrid.url, timeout_seconds=timeout)


async def run_one(dev_server, sessions, task_queue, plan, the_mailer):
    [customer] = seed_customers(sessions, 1, contacts=1)
    [contact] = [c["email"] for c in contacts_for(customer, 1)]
    async with inprocess_worker(dev_server, sessions, task_queue, the_mailer):
        [handle] = await start_all(dev_server.client, plan, [customer], task_queue)
        [result] = await results([handle], timeout=60)
    with sessions() as session:
        row = outbox_row(session, handle.id, "hello", contact)
    return handle, result, row


def hello_requests(sendgrid, enrollment_id: str) -> list:
    return [
        m
        for m in sendgrid.requests
        if m.has_custom_arg("enrollment_id", enrollment_id) and m.has_custom_arg("step_id", "hello")
    ]


async def test_429_is_retried_only_after_the_rate_limit_resets(
    dev_server, sessions, task_queue, plan, sendgrid, figures
):
    sendgrid.fail_next(status=429, reset_after_seconds=6)
    handle, result, row = await run_one(dev_server, sessions, task_queue, plan, mailer(sendgrid))

    [limited] = sendgrid.injected
    [accepted] = hello_requests(sendgrid, handle.id)
    reset_at = float(limited.response_headers["X-RateLimit-Reset"])
    waited = accepted.received_at - limited.received_at
    # The default backoff would have retried after 2 s; the retry waited for the reset.
    assert accepted.received_at >= reset_at - 0.5, (accepted.received_at, reset_at)
    assert waited >= 4.5, waited
    assert row.status == "sent" and row.attempts == 2
    assert result.outcome == "finished"
    figures.update(retry_after_seconds=round(waited, 1), duplicates=0)


async def test_500s_are_retried_with_exponential_backoff_and_sent_once(
    dev_server, sessions, task_queue, plan, sendgrid, figures
):
    sendgrid.fail_next(2, status=500)
    handle, result, row = await run_one(dev_server, sessions, task_queue, plan, mailer(sendgrid))

    first, second = sendgrid.injected
    [accepted] = hello_requests(sendgrid, handle.id)
    gaps = [
        second.received_at - first.received_at,
        accepted.received_at - second.received_at,
    ]
    assert gaps[0] >= 1.8, gaps  # initial interval 2 s
    assert gaps[1] >= 3.6, gaps  # then doubled
    assert row.status == "sent" and row.attempts == 3
    assert result.outcome == "finished"
    figures.update(backoff_seconds=[round(g, 1) for g in gaps], duplicates=0)


async def test_no_answer_within_the_timeout_is_unconfirmed_and_never_resent(
    dev_server, sessions, task_queue, plan, sendgrid, figures
):
    # The stand-in holds the request for 4 s, then accepts it: the client gave up after 1.5 s.
    sendgrid.hang_next(seconds=4)
    started = time.monotonic()
    handle, result, row = await run_one(dev_server, sessions, task_queue, plan, mailer(sendgrid))

    assert result.outcome == "finished"  # the playbook went on
    assert row.status == "unconfirmed"
    assert "no answer within 1.5 s" in (row.reason or "")
    assert "not sent again" in (row.reason or "")
    # The hung request was accepted after all; give a retry every chance to show up.
    await asyncio.sleep(max(0.0, 6 - (time.monotonic() - started)))
    assert len(hello_requests(sendgrid, handle.id)) == 1
    figures.update(requests_for_the_step=1, status=row.status)


class FirstAttemptUnreachable:
    """The real mailer, except that the first send goes to an address that fails while
    connecting (TLS spoken to a plain-HTTP server): nothing reached SendGrid."""

    name = "sendgrid"

    def __init__(self, sendgrid) -> None:
        self.real = mailer(sendgrid)
        self.broken = SendGridMailer(
            api_key=sendgrid.api_key, host=sendgrid.url.replace("http://", "https://")
        )
        self.calls = 0

    def send(self, email: OutgoingEmail) -> str | None:
        self.calls += 1
        return (self.broken if self.calls == 1 else self.real).send(email)


async def test_a_request_that_never_left_is_retried_and_sent_once(
    dev_server, sessions, task_queue, plan, sendgrid, figures
):
    handle, result, row = await run_one(
        dev_server, sessions, task_queue, plan, FirstAttemptUnreachable(sendgrid)
    )

    assert len(hello_requests(sendgrid, handle.id)) == 1
    assert row.status == "sent" and row.attempts == 2
    assert result.outcome == "finished"
    figures.update(requests_for_the_step=1, status=row.status)
