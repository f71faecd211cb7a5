"""Telling team members about their tasks: new, due today, escalated.

`notify_team` runs daily (or more often: it is idempotent) and, for each open task's
events, posts to Slack and the generic webhook when they are configured (once per task,
event and channel, retried on failure), then emails each member one digest a day. The
digest is rendered by the same sandboxed templates as customer mail and goes through the
same outbox and mail provider (SendGrid, or capture), only ever to team members.

The worker runs it on its own: the `team-notify` Schedule starts `TeamNotifyWorkflow`
every `TEAM_NOTIFY_EVERY` (`engine/client/registration.py`), whose activity calls
`team_notifier`'s function; there a member's digest waits for the start of their working
day (their calendar and zone), so it arrives in the morning and not at midnight.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from activities.mailer import Mailer, OutgoingEmail
from activities.notifications import deliver
from activities.notifier import Notifier
from activities.tasks import member_calendar
from engine.errors import ProviderError, ProviderRetryable
from engine.language.sendwindow import zone
from engine.language.templates import html_to_text, render
from engine.messages import TeamNotifyResult
from engine.settings import Settings
from engine.statuses import OutboxStatus, TaskStatus
from engine.store import repository
from engine.store.models import Task, TeamMember

EVENTS = ("new", "due_today", "escalated")
RETRIES = 3
DIGEST_TEMPLATE = """\
<p>Hi {{ name }},</p>
{% for title, items in sections %}{% if items %}
<h3>{{ title }}</h3>
<ul>{% for t in items %}
  <li>{{ t.title }}{% if t.due %} (due {{ t.due }}){% endif %}: {{ t.url }}</li>{% endfor %}
</ul>{% endif %}{% endfor %}
<p>All your tasks: {{ inbox_url }}</p>
"""


@dataclass
class NotifyReport:
    """What one run did: deliveries by status, digests emailed, events still failing."""

    deliveries: dict[str, int] = field(default_factory=dict)
    digests: int = 0
    failed: list[str] = field(default_factory=list)


def task_events(task: Task, member: TeamMember | None, now: datetime) -> list[str]:
    """The events of an open task worth telling its assignee about, as of ``now``."""
    events = ["new"]
    if task.due_at is not None:
        tz = zone(member.timezone if member else None)
        if task.due_at.astimezone(tz).date() == now.astimezone(tz).date():
            events.append("due_today")
    if task.escalation_of is not None or task.escalated_at is not None:
        events.append("escalated")
    return events


def notify_team(
    sessions: sessionmaker[Session],
    settings: Settings,
    notifier: Notifier,
    mailer: Mailer,
    now: datetime,
    *,
    retry_delay: float = 1.0,
    digest_from_work_start: bool = False,
) -> NotifyReport:
    """Post each open task's events once per channel and email each member's digest.

    With ``digest_from_work_start`` a member's digest waits until their working day has
    begun (a working day, at or after their start hour, in their zone): for a frequent
    scheduled run, so the day's one digest is a morning one.
    """
    report = NotifyReport()
    with sessions() as session:
        members = {m.email: m for m in session.scalars(select(TeamMember))}
        open_tasks = list(
            session.scalars(
                select(Task)
                .where(Task.status == TaskStatus.OPEN.value, Task.assignee_email.is_not(None))
                .order_by(Task.created_at)
            )
        )
        session.expunge_all()
    channels = _channels(settings)
    digests: dict[str, dict[str, list[Task]]] = {}
    for task in open_tasks:
        member = members.get(task.assignee_email or "")
        if member is None or member.disabled_at is not None:
            continue  # team members only; a stranger's task waits in the unassigned queue
        for event in task_events(task, member, now):
            digests.setdefault(member.email, {e: [] for e in EVENTS})[event].append(task)
            for channel, url in channels.items():
                status = _deliver_retrying(
                    sessions, notifier, channel, url, event, task, settings, retry_delay
                )
                report.deliveries[status] = report.deliveries.get(status, 0) + 1
                if status == "failed":
                    report.failed.append(f"task:{task.id}:{event}:{channel}")
    for email, sections in digests.items():
        if digest_from_work_start and not working_day_started(members[email], now):
            continue
        if _email_digest(sessions, settings, mailer, members[email], sections, now):
            report.digests += 1
    return report


def working_day_started(member: TeamMember, now: datetime) -> bool:
    """Whether ``now`` is on one of the member's working days, at or after their start hour."""
    calendar = member_calendar(member)
    local = now.astimezone(zone(calendar.timezone))
    return calendar.works_on(local.date()) and local.hour * 60 + local.minute >= (
        calendar.start_minute
    )


def team_notifier(
    sessions: sessionmaker[Session], settings: Settings, notifier: Notifier, mailer: Mailer
) -> Callable[[datetime], TeamNotifyResult]:
    """The scheduled run (`activities.team_notify`): `notify_team` as of a time, digests from
    the start of each member's working day."""

    def run(now: datetime) -> TeamNotifyResult:
        report = notify_team(sessions, settings, notifier, mailer, now, digest_from_work_start=True)
        return TeamNotifyResult(
            deliveries=report.deliveries, digests=report.digests, failed=report.failed
        )

    return run


def _channels(settings: Settings) -> dict[str, str]:
    channels: dict[str, str] = {}
    if settings.slack_webhook_url is not None:
        channels["slack"] = settings.slack_webhook_url.get_secret_value()
    if settings.notify_webhook_url:
        channels["webhook"] = settings.notify_webhook_url
    return channels


def _payload(channel: str, event: str, task: Task, settings: Settings) -> dict[str, Any]:
    url = f"{settings.public_base_url}/tasks/{task.id}"
    words = {"new": "New task", "due_today": "Due today", "escalated": "Escalated"}[event]
    if channel == "slack":
        return {"text": f"{words} for {task.assignee_email}: <{url}|{task.title}>"}
    return {
        "event": f"task.{event}",
        "task": {
            "id": task.id,
            "title": task.title,
            "assignee": task.assignee_email,
            "customer_id": task.customer_id,
            "playbook": task.playbook_id,
            "priority": task.priority,
            "due_at": task.due_at.isoformat() if task.due_at else None,
            "escalation_of": task.escalation_of,
            "url": url,
        },
    }


def _deliver_retrying(
    sessions: sessionmaker[Session],
    notifier: Notifier,
    channel: str,
    url: str,
    event: str,
    task: Task,
    settings: Settings,
    retry_delay: float,
) -> str:
    """Deliver once per task, event and channel; a refusal the receiver may lift is retried
    a few times with backoff, then left 'failed' for the next run."""
    for attempt in range(RETRIES):
        try:
            return deliver(
                sessions,
                notifier,
                key=f"task:{task.id}:{event}:{channel}",
                channel=channel,
                event=event,
                url=url,
                payload=_payload(channel, event, task, settings),
                task_id=task.id,
                recipient=task.assignee_email,
            )
        except ProviderRetryable:
            if attempt + 1 < RETRIES:
                time.sleep(retry_delay * 2**attempt)
    return "failed"


def _email_digest(
    sessions: sessionmaker[Session],
    settings: Settings,
    mailer: Mailer,
    member: TeamMember,
    sections: dict[str, list[Task]],
    now: datetime,
) -> bool:
    """One digest per member and local day, through the outbox; True when one was sent now."""
    tz = zone(member.timezone)
    today: date = now.astimezone(tz).date()
    key = f"digest:{member.email}:{today.isoformat()}"
    base = settings.public_base_url

    def item(task: Task) -> dict[str, Any]:
        due = task.due_at.astimezone(tz).strftime("%a %d %b %H:%M") if task.due_at else None
        return {"title": task.title, "due": due, "url": f"{base}/tasks/{task.id}"}

    parts = [
        ("Escalated", [item(t) for t in sections["escalated"]]),
        ("Due today", [item(t) for t in sections["due_today"]]),
        ("New", [item(t) for t in sections["new"] if _is_new(t, now)]),
    ]
    if not any(items for _, items in parts):
        return False  # nothing new, due or escalated: no email
    context = {"name": member.name, "inbox_url": f"{base}/", "sections": parts}
    html = render({"digest.html": DIGEST_TEMPLATE}, "digest.html", context)
    counts = ", ".join(f"{len(items)} {title.lower()}" for title, items in parts)
    subject = f"Your tasks for {today:%a %d %b}: {counts}"
    with sessions.begin() as session:
        message, created = repository.insert_outbox(
            session, key, member.email, subject, html=html, text=html_to_text(html),
            to_name=member.name, status=OutboxStatus.PENDING,
        )  # fmt: skip
    if not created and message.status not in (OutboxStatus.PENDING, OutboxStatus.FAILED):
        return False  # today's digest went out already
    try:
        message_id = mailer.send(
            OutgoingEmail(
                to_email=member.email,
                to_name=member.name,
                from_email=settings.mail_from_email,
                from_name=settings.mail_from_name,
                subject=subject,
                html=html,
                text=html_to_text(html),
                categories=["task-digest"],
            )
        )
    except ProviderError as exc:
        with sessions.begin() as session:
            repository.update_outbox_status(
                session, key, OutboxStatus.FAILED, reason=str(exc), count_attempt=True
            )
        return False
    status = OutboxStatus.SENT if message_id else OutboxStatus.CAPTURED
    with sessions.begin() as session:
        repository.update_outbox_status(
            session, key, status, provider_message_id=message_id, sent_at=now, count_attempt=True
        )
    return True


def _is_new(task: Task, now: datetime) -> bool:
    """Created in the last day: the digest's 'new' section (channels tell 'new' once anyway)."""
    return task.created_at >= now - timedelta(days=1)
