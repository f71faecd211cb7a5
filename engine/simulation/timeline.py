"""A simulation's result: the interpreter's step records, the captured outbox and the
tasks in the throwaway store, turned into `TimelineEntry` rows of one `Timeline`."""

from __future__ import annotations

from datetime import datetime, tzinfo
from typing import Any

from pydantic import BaseModel, Field
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from engine.language.plan import CompiledPlan
from engine.language.sendwindow import zone
from engine.messages import EnrollmentResult, EnrollmentSnapshot, StepRecord
from engine.simulation.inputs import SimCustomer
from engine.statuses import EnrollmentStatus, OutboxStatus
from engine.store.health import Recorded
from engine.store.models import OutboxMessage, Task

KINDS = (
    "email",
    "task",
    "task_completed",
    "task_escalated",
    "task_timed_out",
    "event",
    "milestone",
    "branch",
    "wait",
    "timeout",
    "update",
    "enroll",
    "notify",
    "health",
    "skipped",
    "exit",
    "goal",
    "end",
)


class TimelineEntry(BaseModel):
    at: datetime
    day: int
    step: str
    kind: str
    detail: str = ""
    to: list[str] | None = None
    subject: str | None = None
    # An email to several contacts: each one's subject (templates may personalise it).
    subjects: dict[str, str] | None = None
    suppressed: list[str] | None = None
    title: str | None = None
    assignee: str | None = None
    due: datetime | None = None
    priority: str | None = None
    outcome: str | None = None
    name: str | None = None
    until: datetime | None = None
    goto: str | None = None
    because: str | None = None


def describe_health(
    old_score: int | None,
    score: int | None,
    old_band: str | None,
    band: str,
    signals: list[str],
    started: list[str],
) -> str:
    """A health move in one line: ``Weekly active users fell 45% (11 -> 6) over 14d; health
    62 -> 38 (red); risk started``."""
    parts = list(signals)
    if old_score != score or old_band != band:
        parts.append(f"health {'none' if old_score is None else old_score} -> {score} ({band})")
    parts += [f"{playbook} started" for playbook in started]
    return "; ".join(parts)


def health_move(recorded: Recorded, started: list[str]) -> str | None:
    """The line for a recomputed health (`describe_health`), None when nothing moved: no
    change of score or band, no signal turned on, nothing started."""
    result = recorded.result
    turned_on = recorded.signals_on
    if not (recorded.changed or turned_on or started):
        return None
    known = result.score is not None
    return describe_health(
        recorded.old_score,
        result.score if known else recorded.old_score,
        recorded.old_band,
        result.band if known else (recorded.old_band or "unknown"),
        [s.text for s in result.signals if s.name in turned_on],
        started,
    )


class SimEmail(BaseModel):
    step: str
    to: str
    status: str
    subject: str
    html: str | None = None
    text: str | None = None
    reason: str | None = None


class Waiting(BaseModel):
    """What a run still going at the end of the simulation waits for."""

    step: str | None
    # "task 'Kickoff call with Globex'", "milestone integration_connected", "event x",
    # "send window" or "time", as the interpreter's status query says.
    waiting_for: str | None = None
    until: datetime | None = None

    def describe(self) -> str:
        step = f"step '{self.step}'" if self.step else "the enrollment"
        until = f"until {self.until:%a %Y-%m-%d %H:%M %Z}" if self.until else "with no deadline"
        if not self.waiting_for or self.waiting_for == "time":
            return f"{step} waits {until}"
        return f"{step} waits for {self.waiting_for}, {until}"


class Timeline(BaseModel):
    """What happens to one customer in one playbook, in time order."""

    playbook: str
    version: str
    customer: str
    timezone: str
    start: datetime
    end: datetime
    outcome: str
    timeline: list[TimelineEntry] = Field(default_factory=list)
    emails: list[SimEmail] = Field(default_factory=list)
    warnings: list[str] = Field(default_factory=list)
    waiting: Waiting | None = None

    def public_json(self) -> dict[str, Any]:
        """The documented JSON shape (no rendered bodies)."""
        data = self.model_dump(mode="json", exclude={"emails", "timezone"}, exclude_none=True)
        return data


_FINISH_KIND: dict[str, str] = {
    EnrollmentStatus.EXITED: "exit",
    EnrollmentStatus.GOAL_REACHED: "goal",
    EnrollmentStatus.COMPLETED: "end",
    EnrollmentStatus.CANCELLED: "end",
}


def build_timeline(
    sessions: sessionmaker[Session],
    plan: CompiledPlan,
    customer: SimCustomer,
    start: datetime,
    *,
    result: EnrollmentResult | None,
    records: list[StepRecord],
    horizon: datetime,
    warnings: list[str],
    waiting: EnrollmentSnapshot | None = None,
) -> Timeline:
    """The timeline of a run that started at ``start``; ``result`` is None if it was still
    running at ``horizon``, with ``waiting`` its status there (which adds a warning, naming
    what it waits for, to ``warnings``)."""
    tz = zone(customer.timezone)
    with sessions() as session:
        outbox = list(session.scalars(select(OutboxMessage).order_by(OutboxMessage.id)))
        escalations = {
            t.escalation_of: t
            for t in session.scalars(select(Task).where(Task.escalation_of.is_not(None)))
        }
    emails = [
        SimEmail(
            step=o.step_id or "",
            to=o.contact_email,
            status=o.status,
            subject=o.subject,
            html=o.html,
            text=o.text,
            reason=o.reason,
        )
        for o in outbox
    ]
    entries: list[TimelineEntry] = []
    for record in records:
        entry = _entry(record, plan, start, tz, escalations)
        if entry is not None:
            entries.append(entry)
    blocked = None
    if result is None:
        outcome = "running"
        end = horizon
        if waiting is not None:
            blocked = Waiting(
                step=waiting.current_step,
                waiting_for=waiting.waiting_for,
                until=waiting.waiting_until.astimezone(tz) if waiting.waiting_until else None,
            )
        what = f": {blocked.describe()}" if blocked else ""
        warnings.append(f"the enrollment was still running at the end of the simulation{what}")
    else:
        outcome = result.outcome
        end = entries[-1].at if entries else start
    return Timeline(
        playbook=plan.playbook,
        version=plan.version,
        customer=customer.id,
        timezone=customer.timezone,
        start=start.astimezone(tz),
        end=end.astimezone(tz),
        outcome=outcome,
        timeline=entries,
        emails=emails,
        warnings=warnings,
        waiting=blocked,
    )


def _entry(
    record: StepRecord,
    plan: CompiledPlan,
    start: datetime,
    tz: tzinfo,
    escalations: dict[str | None, Task],
) -> TimelineEntry | None:
    at = record.at.astimezone(tz)
    day = int((record.at - start).total_seconds() // 86400)
    base: dict[str, Any] = {"at": at, "day": day, "step": record.step, "detail": record.detail}
    data = record.data
    kind = record.kind
    if kind == "email":
        sent = [d for d in data.get("deliveries", []) if d["status"] != OutboxStatus.SUPPRESSED]
        held = [
            d["contact"]
            for d in data.get("deliveries", [])
            if d["status"] == OutboxStatus.SUPPRESSED
        ]
        skipped = [d for d in sent if d["status"] == OutboxStatus.SKIPPED]
        if skipped:  # over a cap with `on_cap: skip` (docs/delivery.md)
            reasons = "; ".join(f"{d['contact']}: {d.get('reason')}" for d in skipped)
            base["detail"] = f"{record.detail}; {reasons}" if record.detail else reasons
            sent = [d for d in sent if d not in skipped]
        subjects = [d["subject"] for d in sent if d.get("subject")]
        failed = [d for d in sent if d["status"] == OutboxStatus.FAILED]
        if failed:  # a template that failed to render: say where, for the playbook author
            reasons = "; ".join(f"{d['contact']}: {d.get('reason')}" for d in failed)
            base["detail"] = (
                f"{record.detail}; failed: {reasons}" if record.detail else (f"failed: {reasons}")
            )
            sent = [d for d in sent if d not in failed]
        return TimelineEntry(
            kind="email",
            to=[d["contact"] for d in sent],
            subject=subjects[0] if subjects else None,
            subjects={d["contact"]: d.get("subject") or "" for d in sent}
            if len(sent) > 1
            else None,
            suppressed=held or None,
            **base,
        )
    if kind == "email_failed":
        return TimelineEntry(kind="email", **base)
    if kind == "task":
        due = data.get("due_at")
        return TimelineEntry(
            kind="task",
            title=data.get("title"),
            assignee=data.get("assignee"),
            due=datetime.fromisoformat(due).astimezone(tz) if due else None,
            priority=data.get("priority"),
            **base,
        )
    if kind == "task_escalated":
        # The record names only the overdue task; the escalation task (whom it went to)
        # is in the store.
        escalation = escalations.get(data.get("task_id"))
        if escalation is None:
            return TimelineEntry(kind=kind, **base)
        base["detail"] = f"{record.detail} ({escalation.assignee_email or 'unassigned'})"
        return TimelineEntry(
            kind=kind,
            title=escalation.title,
            assignee=escalation.assignee_email,
            due=escalation.due_at.astimezone(tz) if escalation.due_at else None,
            priority=escalation.priority,
            **base,
        )
    if kind == "task_completed":
        return TimelineEntry(kind=kind, outcome=data.get("outcome"), **base)
    if kind in ("event", "milestone"):
        return TimelineEntry(kind=kind, name=data.get("name"), **base)
    if kind == "event_matched":  # the awaited event had come before the wait began
        return TimelineEntry(kind="event", name=data.get("for"), **base)
    if kind == "wait":
        until = data.get("until")
        local_until = datetime.fromisoformat(until).astimezone(tz) if until else None
        if local_until is not None and record.detail.startswith("until "):
            # A duration wait's detail carries the deadline in UTC: say it in the customer's.
            base["detail"] = f"until {local_until.isoformat()}"
        return TimelineEntry(kind="wait", until=local_until, name=data.get("for"), **base)
    if kind == "timeout":
        return _timeout(plan, record, base)
    if kind == "branch":
        return TimelineEntry(
            kind="branch", goto=data.get("goto"), because=data.get("because"), **base
        )
    if kind in ("update", "enroll", "notify", "task_timed_out", "skipped"):
        return TimelineEntry(kind=kind, **base)
    if kind == "expression_error":
        return TimelineEntry(kind="skipped", **{**base, "detail": f"error: {record.detail}"})
    if kind in _FINISH_KIND:
        return TimelineEntry(kind=_FINISH_KIND[kind], outcome=data.get("outcome"), **base)
    return None


def _timeout(plan: CompiledPlan, record: StepRecord, base: dict[str, Any]) -> TimelineEntry:
    """A ``wait_for`` that ran out: what it waited for and the step it went on to."""
    try:
        step = plan.step(record.step)
    except KeyError:
        return TimelineEntry(kind="timeout", **base)
    wf = step.wait_for
    if wf is None:
        return TimelineEntry(kind="timeout", **base)
    goto = wf.on_timeout or step.next
    awaited = (
        f"milestone {wf.milestone}"
        if wf.milestone
        else f"event {wf.event}"
        if wf.event
        else f"{wf.when} to hold"
    )
    base["detail"] = f"no {awaited} before the timeout, going to {goto}"
    name = wf.milestone or wf.event or wf.when
    return TimelineEntry(kind="timeout", name=name, goto=goto, **base)
