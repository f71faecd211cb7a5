"""The team's task notifications on their own: `TeamNotifyWorkflow` runs the real
`notify_team` (Slack and webhook stand-ins, the SendGrid stand-in), once per task event
however often it runs, and the digest waits for the member's working day; the worker's
`team-notify` Schedule starts it on the dev server."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from pydantic import SecretStr
from sqlalchemy.orm import Session, sessionmaker
from temporalio.client import Client
from temporalio.worker import Worker

from activities.mailer import SendGridMailer
from activities.notifier import HttpNotifier
from activities.team_notify import TeamNotifyActivities
from engine.client.registration import (
    TEAM_NOTIFY_EVERY,
    TEAM_NOTIFY_SCHEDULE,
    ensure_team_notify_schedule,
)
from engine.messages import TeamNotifyInput, TeamNotifyResult
from engine.services.notifications import team_notifier
from engine.settings import Settings
from engine.store import repository
from engine.store.models import TeamMember
from tests.helpers.polling import eventually
from tests.helpers.sendgrid_standin import SendGridStandIn
from tests.helpers.temporal import start_dev_server
from tests.helpers.webhook_standin import WebhookStandIn
from workflows.team_notify import TeamNotifyWorkflow

CSM = "casey@vendor.example"
# Wednesday 07:00 UTC: 08:00 in Berlin, before Casey's 09:00 start.
BEFORE_WORK = datetime(2027, 3, 3, 7, 0, tzinfo=UTC)


@pytest.fixture
def hooks() -> Iterator[WebhookStandIn]:
    with WebhookStandIn() as standin:
        yield standin


def _seed(
    sessions: sessionmaker[Session], now: datetime, due_in: timedelta = timedelta(hours=5)
) -> None:
    with sessions.begin() as session:
        session.add(TeamMember(email=CSM, name="Casey", timezone="Europe/Berlin"))
        task, _ = repository.create_task(
            session, "k1", "Kickoff call", assignee_email=CSM, due_at=now + due_in
        )
        task.created_at = now - timedelta(hours=1)


def _worker(
    client: Client,
    task_queue: str,
    sessions: sessionmaker[Session],
    settings: Settings,
    sendgrid: SendGridStandIn,
    pool: ThreadPoolExecutor,
    clock: list[datetime] | None = None,
) -> Worker:
    notify = team_notifier(
        sessions, settings, HttpNotifier(None), SendGridMailer(sendgrid.api_key, sendgrid.url)
    )
    activities = (
        TeamNotifyActivities(notify, clock=lambda: clock[0])
        if clock
        else TeamNotifyActivities(notify)
    )
    return Worker(
        client,
        task_queue=task_queue,
        workflows=[TeamNotifyWorkflow],
        activities=[activities.notify_team],
        activity_executor=pool,
    )


async def test_each_run_delivers_new_events_once_and_the_digest_from_the_working_day(
    temporal_env, sessions, task_queue, hooks: WebhookStandIn, sendgrid: SendGridStandIn
) -> None:
    _seed(sessions, BEFORE_WORK)
    settings = Settings(
        slack_webhook_url=SecretStr(f"{hooks.url}/slack"), notify_webhook_url=f"{hooks.url}/hook"
    )
    clock = [BEFORE_WORK]

    async def run() -> TeamNotifyResult:
        result: TeamNotifyResult = await temporal_env.client.execute_workflow(
            TeamNotifyWorkflow.run,
            TeamNotifyInput(),
            id=f"team-notify-{uuid.uuid4().hex[:8]}",
            task_queue=task_queue,
        )
        return result

    with ThreadPoolExecutor(max_workers=2) as pool:
        async with _worker(
            temporal_env.client, task_queue, sessions, settings, sendgrid, pool, clock
        ):
            early = await run()
            mailed_early = len(sendgrid.requests)
            clock[0] = BEFORE_WORK + timedelta(hours=1, minutes=5)  # 09:05 in Berlin
            started = await run()
            clock[0] += TEAM_NOTIFY_EVERY
            later = await run()

    # 'new' and 'due_today' on Slack and the webhook, once each; Casey's digest only once
    # her working day has begun, and only one that day.
    assert early.deliveries == {"sent": 4} and early.digests == 0 and mailed_early == 0
    assert started.digests == 1 and later.digests == 0
    assert len(hooks.at("/slack")) == 2 and len(hooks.at("/hook")) == 2
    [digest] = sendgrid.requests
    assert digest.body["personalizations"][0]["to"][0]["email"] == CSM
    assert "1 due today, 1 new" in digest.body["subject"]


async def test_the_team_notify_schedule_starts_the_workflow(
    sessions, hooks: WebhookStandIn, sendgrid: SendGridStandIn
) -> None:
    # Due later today in Casey's zone whatever the hour the suite runs at (5 hours from now
    # is tomorrow in Berlin after 19:00 there, and then the task is not "due today").
    now = datetime.now(UTC)
    local = now.astimezone(ZoneInfo("Europe/Berlin"))
    midnight = datetime.combine(local.date() + timedelta(days=1), time(), local.tzinfo)
    _seed(sessions, now, due_in=(midnight - local) / 2)
    settings = Settings(notify_webhook_url=f"{hooks.url}/hook")
    env = await start_dev_server(ui=False)
    task_queue = f"notify-{uuid.uuid4().hex[:8]}"
    try:
        with ThreadPoolExecutor(max_workers=2) as pool:
            async with _worker(env.client, task_queue, sessions, settings, sendgrid, pool):
                await ensure_team_notify_schedule(env.client, task_queue)
                # Registering again (every worker start) updates it in place.
                assert (
                    await ensure_team_notify_schedule(env.client, task_queue, trigger_now=True)
                    == TEAM_NOTIFY_SCHEDULE
                )
                await eventually(
                    lambda: len(hooks.at("/hook")) == 2,
                    what="the scheduled run's webhook deliveries",
                )
                events = sorted(r.json["event"] for r in hooks.at("/hook"))
                description = await env.client.get_schedule_handle(TEAM_NOTIFY_SCHEDULE).describe()
                interval = description.schedule.spec.intervals[0].every
                assert interval == TEAM_NOTIFY_EVERY
        assert events == ["task.due_today", "task.new"]
    finally:
        await env.shutdown()
