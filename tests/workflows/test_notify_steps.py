"""The `notify` and `webhook` steps on the time-skipping server: rendered, signed, delivered
once even when the receiver fails first (the activity is retried), captured when no
endpoint is configured."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import select

from activities.notifier import SIGNATURE_HEADER, HttpNotifier, signature
from activities.registry import PlaybookActivities
from engine.store.models import Notification
from tests.helpers.harness import Harness, playbook_worker, records, seed_customer, write_project
from tests.helpers.webhook_standin import WebhookStandIn

SECRET = b"step-secret"
CALLS_OUT = """\
playbook: calls_out
name: Tell the team and the CRM
trigger: {manual: true}
steps:
  - id: tell_slack
    notify: {channel: slack, text: "{{ customer.name }} started onboarding"}
  - id: tell_crm
    webhook:
      endpoint: crm
      body: {account: "{{ customer.id }}", stage: onboarding, seats: 40}
  - id: tell_tickets
    webhook: {endpoint: tickets, body: {account: "{{ customer.id }}"}}
  - id: done
    end: {}
"""


async def test_notify_and_webhook_steps_deliver_once_signed_and_retried(
    temporal_env, sessions, task_queue, customer_id, tmp_path: Path
):
    project = write_project(tmp_path / "p", {"calls_out": CALLS_OUT})
    seed_customer(sessions, customer_id)
    with WebhookStandIn() as hooks:
        endpoints = {"slack": f"{hooks.url}/slack", "crm": f"{hooks.url}/crm"}
        activities = PlaybookActivities(
            sessions, notifier=HttpNotifier(SECRET), endpoints=endpoints
        )
        hooks.fail_next(503)  # Slack is down for the first attempt
        async with playbook_worker(temporal_env, task_queue, activities):
            h = Harness(temporal_env, sessions, task_queue, customer_id)
            result = await h.result(await h.start(project.plan("calls_out")))

    assert [r.detail for r in records(result, "notify")] == [
        "slack: sent",
        "crm: sent",
        "tickets: captured",  # no 'tickets' endpoint configured: recorded, not sent
    ]
    assert hooks.attempts == 3
    [slack] = hooks.at("/slack")
    assert slack.json == {"text": "Acme Corp started onboarding"}
    [crm] = hooks.at("/crm")
    assert crm.json == {"account": customer_id, "stage": "onboarding", "seats": 40}
    assert crm.headers[SIGNATURE_HEADER] == signature(SECRET, crm.body)
    assert crm.headers["Idempotency-Key"].endswith(":tell_crm:1")  # enrollment, step, visit
    with sessions() as session:
        rows = {n.recipient: n for n in session.scalars(select(Notification))}
    assert (rows["slack"].status, rows["slack"].attempts) == ("sent", 2)
    assert rows["tickets"].status == "captured"
