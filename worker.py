"""Run a Temporal worker for playbook enrollments: ``python worker.py`` or ``playbook worker``.

Connects to `TEMPORAL_ADDRESS` / `TEMPORAL_NAMESPACE` (default: the local dev server),
registers the interpreter workflow and every activity, and shuts down gracefully on
SIGINT/SIGTERM: activities in flight get time to finish before the process exits.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from typing import TypedDict

from temporalio.client import Client
from temporalio.worker import PollerBehavior, PollerBehaviorSimpleMaximum, Worker

from activities.health import HealthActivities
from activities.mailer import mailer_from_settings
from activities.notifier import HttpNotifier
from activities.registry import PlaybookActivities
from activities.sweep import SweepActivities
from activities.team_notify import TeamNotifyActivities
from engine.client.sandbox import workflow_runner
from engine.gc_freeze import freeze_startup_objects
from engine.language.health import Scorecard
from engine.language.jinja_env import RenderLimits, set_render_limits
from engine.settings import Settings, get_settings
from engine.store.db import migrate, session_factory
from workflows.health import HealthRecomputeWorkflow
from workflows.playbook import PlaybookWorkflow
from workflows.sweep import TriggerSweepWorkflow
from workflows.team_notify import TeamNotifyWorkflow


def build_activities(
    settings: Settings, client: Client | None = None, scorecard: Scorecard | None = None
) -> PlaybookActivities:
    """The activities wired to the configured store and mail provider; ``update`` steps
    recompute health with ``scorecard`` (the project's ``health.yaml``)."""
    from engine.client.enrollment import enroll, reenroll_allowed
    from engine.errors import AlreadyEnrolled
    from engine.store import deployments

    sessions = session_factory(settings.database_url)
    api_key = settings.sendgrid_api_key.get_secret_value() if settings.sendgrid_api_key else None

    async def enroller(playbook: str, customer_id: str, parent: str) -> str:
        if client is None:
            return f"not enrolled in {playbook}: no Temporal client"
        with sessions() as session:  # the deployed version, read at every enroll step
            plan = deployments.deployed_plan(session, playbook)
        if plan is None:
            return f"not enrolled in {playbook}: no deployed version"
        with sessions() as session:
            if not reenroll_allowed(session, plan, customer_id):
                return f"not enrolled in {playbook}: enrolled before (reenroll: {plan.reenroll})"
        try:
            return await enroll(client, plan, customer_id, task_queue=settings.temporal_task_queue)
        except AlreadyEnrolled as exc:
            return str(exc)

    set_render_limits(RenderLimits(settings.render_cpu_seconds, settings.render_max_produced))
    secret = settings.notify_webhook_secret
    endpoints = dict(settings.webhook_endpoints)
    if settings.slack_webhook_url is not None:
        endpoints["slack"] = settings.slack_webhook_url.get_secret_value()
    if settings.notify_webhook_url:
        endpoints["webhook"] = settings.notify_webhook_url
    return PlaybookActivities(
        sessions,
        mailer_from_settings(api_key, settings.sendgrid_host),
        signing_secret=settings.signing_secret.get_secret_value(),
        public_base_url=settings.public_base_url,
        default_from_email=settings.mail_from_email,
        default_from_name=settings.mail_from_name,
        postal_address=settings.playbook_postal_address,
        enroller=enroller,
        client=client,
        task_queue=settings.temporal_task_queue,
        scorecard=scorecard,
        notifier=HttpNotifier(secret.get_secret_value().encode() if secret else None),
        endpoints=endpoints,
    )


class ActivityLimits(TypedDict):
    """How a worker runs activities: the same for every worker of the engine, and for the
    benchmark's hand-written baseline (`bench/worker.py`)."""

    max_concurrent_activities: int
    activity_task_poller_behavior: PollerBehavior
    graceful_shutdown_timeout: timedelta


def activity_limits(settings: Settings) -> ActivityLimits:
    """The slots and open polls of the settings; activities in flight get 30 s at shutdown."""
    return ActivityLimits(
        max_concurrent_activities=settings.activity_slots,
        activity_task_poller_behavior=PollerBehaviorSimpleMaximum(settings.activity_pollers),
        graceful_shutdown_timeout=timedelta(seconds=30),
    )


def build_worker(
    client: Client, settings: Settings, activities: PlaybookActivities, executor: ThreadPoolExecutor
) -> Worker:
    """The worker: the interpreter, sweep and team-notification workflows and every activity."""
    from engine.services.notifications import team_notifier

    sweeper = SweepActivities(activities.sessions, client, settings.temporal_task_queue)
    team = TeamNotifyActivities(
        team_notifier(
            activities.sessions, settings, activities.notify.notifier, activities.email.mailer
        )
    )
    scorer = HealthActivities(activities.sessions, client, settings.temporal_task_queue)
    return Worker(
        client,
        task_queue=settings.temporal_task_queue,
        workflows=[
            PlaybookWorkflow,
            TriggerSweepWorkflow,
            TeamNotifyWorkflow,
            HealthRecomputeWorkflow,
        ],
        activities=[
            *activities.all(),
            sweeper.sweep_triggers,
            team.notify_team,
            scorer.recompute_health,
        ],
        activity_executor=executor,
        workflow_runner=workflow_runner(),
        **activity_limits(settings),
    )


async def run_worker(settings: Settings | None = None, scorecard: Scorecard | None = None) -> None:
    """Run until SIGINT/SIGTERM, then drain and stop; ``scorecard`` as `build_activities`."""
    from engine.client.connection import connect
    from engine.client.registration import ensure_team_notify_schedule

    settings = settings or get_settings()
    migrate(settings.database_url)
    client = await connect(settings)
    await ensure_team_notify_schedule(client, settings.temporal_task_queue)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    with ThreadPoolExecutor(max_workers=settings.activity_slots) as pool:
        activities = build_activities(settings, client, scorecard)
        worker = build_worker(client, settings, activities, pool)
        async with worker:
            freeze_startup_objects()
            logging.getLogger(__name__).info(
                "worker polling %s on %s/%s",
                settings.temporal_task_queue,
                settings.temporal_address,
                settings.temporal_namespace,
            )
            await stop.wait()


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO)
    asyncio.run(run_worker())
