"""The statuses of enrollments, emails, tasks and events, each defined once.

The store keeps them in string columns, the workflow and the activities write them, the
API, the web UI and the CLI show and filter by them: all of them use these enums, so a
status one layer writes is one the others know. Each is a `StrEnum`, so a member equals
its string, and pydantic and SQLAlchemy store and serialise it as that string: recorded
workflow payloads and existing rows read the same. Adding a member needs no migration (the
columns are plain strings), but never change a value.

Standard library only, safe to import from workflow code.
"""

from __future__ import annotations

from enum import StrEnum


class EnrollmentStatus(StrEnum):
    """Where an enrollment stands (`Enrollment.status`, `EnrollmentResult.status`)."""

    RUNNING = "running"
    COMPLETED = "completed"
    EXITED = "exited"
    GOAL_REACHED = "goal_reached"
    FAILED = "failed"
    CANCELLED = "cancelled"
    TERMINATED = "terminated"


class OutboxStatus(StrEnum):
    """Known values of `OutboxMessage.status`: our own steps, then SendGrid's events.

    A send moves `pending` -> `sending` -> `sent` (or `failed`, or back to `pending` for a
    retry); `captured` when no provider is configured; `suppressed` before any send;
    `unconfirmed` when a send was interrupted and may or may not have gone out.
    """

    PENDING = "pending"
    SENDING = "sending"
    CAPTURED = "captured"
    SENT = "sent"
    FAILED = "failed"
    SUPPRESSED = "suppressed"
    UNCONFIRMED = "unconfirmed"
    # The delivery policy (docs/delivery.md): held back by a cap, a send window or a day off
    # and tried again at `not_before`; or skipped because a cap was reached.
    POSTPONED = "postponed"
    SKIPPED = "skipped"
    DEFERRED = "deferred"
    DELIVERED = "delivered"
    DROPPED = "dropped"
    BOUNCED = "bounced"
    OPENED = "opened"
    CLICKED = "clicked"
    SPAM_REPORTED = "spam_reported"
    UNSUBSCRIBED = "unsubscribed"


class TaskStatus(StrEnum):
    """Values of `Task.status`."""

    OPEN = "open"
    COMPLETED = "completed"
    CANCELLED = "cancelled"


class EventStatus(StrEnum):
    """Known values of `Event.status`.

    `received` on arrival, then `routed` (signalled to running enrollments) or `stored`
    (none was running); `unknown_customer` when no such customer exists; `applied` marks
    the record of a customer update a playbook step made.
    """

    RECEIVED = "received"
    ROUTED = "routed"
    STORED = "stored"
    UNKNOWN_CUSTOMER = "unknown_customer"
    APPLIED = "applied"
    FAILED = "failed"
