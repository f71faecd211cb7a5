"""SQLAlchemy models of the store, the source of truth for business data.

Customers, contacts, events, tasks and the email outbox live here; Temporal only knows where
each enrollment stands (`enrollments` is a projection of that, for listing and the UI).

Conventions that hold for every table:
- timestamps are `UTCDateTime`: timezone-aware on the way in (naive values are refused, a
  naive datetime is a bug waiting for a customer in another time zone) and aware UTC on the
  way out, on SQLite as on PostgreSQL;
- JSON columns use SQLAlchemy's `JSON` type (JSONB on PostgreSQL, so values compare and
  index); assign a new dict/list to change one, in-place mutation is not tracked;
- emails are stored lower-cased and stripped, so suppression and lookups match however the
  sender capitalised them;
- statuses are plain strings (the `*Status` enums of `engine/statuses.py` list the known
  values) so that a new status is a code change, not a migration;
- history tables (events, tasks, outbox, enrollments) carry `customer_id` without a foreign
  key: they record what happened, including for customers that are unknown or deleted.

The initial migration (`migrations/versions/0001_initial.py`) must stay identical to these
models; `tests/store/test_migrations.py` checks that with Alembic's autogenerate comparison.
"""

from __future__ import annotations

import enum
import hashlib
from datetime import UTC, date, datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import (
    JSON,
    BigInteger,
    CheckConstraint,
    DateTime,
    Dialect,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship, validates

from engine.statuses import EnrollmentStatus, EventStatus, OutboxStatus, TaskStatus

# Deterministic constraint and index names: Alembic needs them to drop or alter constraints
# later, and they make the PostgreSQL and SQLite schemas line up name for name.
NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_N_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

# Column length limits. 320 is the longest valid email address.
ID_LEN = 255
EMAIL_LEN = 320
NAME_LEN = 255
STATUS_LEN = 32

JSONType = JSON().with_variant(JSONB(), "postgresql")
"""JSON document column: JSONB on PostgreSQL, JSON text elsewhere."""

NullableJSONType = JSON(none_as_null=True).with_variant(JSONB(none_as_null=True), "postgresql")
"""Like `JSONType`, but Python None is stored as SQL NULL rather than JSON `null`."""

BigIntPK = BigInteger().with_variant(Integer(), "sqlite")
"""64-bit autoincrement key; SQLite only autoincrements a column declared INTEGER."""


def utcnow() -> datetime:
    """The current time as an aware UTC datetime (the default for every timestamp)."""
    return datetime.now(UTC)


def normalize_email(email: str) -> str:
    """Canonical form of an email address for storage and comparison."""
    return email.strip().lower()


def check_timezone(name: str) -> str:
    """Return `name` if it is an IANA time zone ZoneInfo can load, else raise ValueError."""
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown IANA time zone {name!r}") from None
    return name


class UTCDateTime(TypeDecorator[datetime]):
    """A timestamp that is always timezone-aware UTC in Python, whatever the database.

    SQLite has no time zone support: SQLAlchemy stores the wall-clock digits and returns
    naive datetimes. Converting to UTC before binding and tagging UTC on the way out keeps
    values comparable and sortable as text on SQLite and exact on PostgreSQL.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError(f"naive datetime {value!r}: the store only takes aware datetimes")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


class Base(DeclarativeBase):
    """Declarative base: shared metadata (with naming convention) and Python→SQL types."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {
        datetime: UTCDateTime(),
        dict[str, Any]: JSONType,
        list[str]: JSONType,
        str: String(ID_LEN),
    }


class TaskPriority(enum.StrEnum):
    """Known values of `Task.priority`."""

    LOW = "low"
    NORMAL = "normal"
    HIGH = "high"
    URGENT = "urgent"


class Customer(Base):
    """An account: the unit playbooks enroll. `id` is the CRM's id, not ours."""

    __tablename__ = "customers"
    __table_args__ = (
        CheckConstraint(
            "health_score IS NULL OR (health_score >= 0 AND health_score <= 100)",
            name="health_score_range",
        ),
    )

    id: Mapped[str] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(NAME_LEN))
    segment: Mapped[str | None] = mapped_column(String(64))
    timezone: Mapped[str] = mapped_column(String(64), default="UTC")
    # ISO 3166 country (public holidays) and BCP 47 locale (templates, dates), for every
    # contact that has none of its own.
    country: Mapped[str | None] = mapped_column(String(2))
    locale: Mapped[str | None] = mapped_column(String(35))
    owner_email: Mapped[str | None] = mapped_column(String(EMAIL_LEN), index=True)
    renewal_date: Mapped[date | None] = mapped_column(index=True)
    health_score: Mapped[int | None]
    # The scorecard's band for `health_score` (engine/language/health.py), None unscored.
    health_band: Mapped[str | None] = mapped_column(String(32))
    attributes: Mapped[dict[str, Any]] = mapped_column(default=dict)
    tags: Mapped[list[str]] = mapped_column(default=list)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    contacts: Mapped[list[Contact]] = relationship(
        back_populates="customer",
        cascade="all, delete-orphan",
        passive_deletes=True,
        order_by="Contact.id",
    )

    @validates("timezone")
    def _check_timezone(self, _key: str, value: str) -> str:
        """Refuse a zone name ZoneInfo cannot load: waits and send windows depend on it."""
        return check_timezone(value)

    @validates("owner_email")
    def _normalize_owner(self, _key: str, value: str | None) -> str | None:
        return None if value is None else normalize_email(value)


class Contact(Base):
    """A person at a customer who can receive emails; unique by email within a customer."""

    __tablename__ = "contacts"
    __table_args__ = (UniqueConstraint("customer_id", "email"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    customer_id: Mapped[str] = mapped_column(ForeignKey("customers.id", ondelete="CASCADE"))
    email: Mapped[str] = mapped_column(String(EMAIL_LEN), index=True)
    first_name: Mapped[str | None] = mapped_column(String(NAME_LEN))
    last_name: Mapped[str | None] = mapped_column(String(NAME_LEN))
    role: Mapped[str | None] = mapped_column(String(64))
    unsubscribed: Mapped[bool] = mapped_column(default=False)
    unsubscribed_at: Mapped[datetime | None]
    # The contact's own zone, locale and country; None falls back to the customer's.
    timezone: Mapped[str | None] = mapped_column(String(64))
    locale: Mapped[str | None] = mapped_column(String(35))
    country: Mapped[str | None] = mapped_column(String(2))

    customer: Mapped[Customer] = relationship(back_populates="contacts")

    @validates("timezone")
    def _check_timezone(self, _key: str, value: str | None) -> str | None:
        return None if value is None else check_timezone(value)

    @validates("email")
    def _normalize_email(self, _key: str, value: str) -> str:
        return normalize_email(value)


class TeamMember(Base):
    """A CS team member (CSM, manager, CS ops) who owns accounts and works tasks.

    `manager_email` is deliberately not a foreign key, like `Customer.owner_email`: team
    rosters are synced from other systems in no particular order.
    """

    __tablename__ = "team_members"

    email: Mapped[str] = mapped_column(String(EMAIL_LEN), primary_key=True)
    name: Mapped[str] = mapped_column(String(NAME_LEN))
    manager_email: Mapped[str | None] = mapped_column(String(EMAIL_LEN))
    roles: Mapped[list[str]] = mapped_column(default=list)
    is_admin: Mapped[bool] = mapped_column(default=False)
    password_hash: Mapped[str | None]
    # Set by `POST /api/team/{email}/disable`: a disabled member cannot log in, and their
    # sessions ended when it was set.
    disabled_at: Mapped[datetime | None]
    # The working calendar (docs/tasks.md): due dates and escalations fall on working days
    # in the member's zone, and time off (inclusive ISO date ranges) is not worked.
    timezone: Mapped[str] = mapped_column(String(64), default="UTC", server_default="UTC")
    working_days: Mapped[list[int]] = mapped_column(
        JSONType, default=lambda: [0, 1, 2, 3, 4], server_default="[0, 1, 2, 3, 4]"
    )
    work_start_minute: Mapped[int] = mapped_column(default=540, server_default="540")
    work_end_minute: Mapped[int] = mapped_column(default=1020, server_default="1020")
    time_off: Mapped[list[list[str]]] = mapped_column(JSONType, default=list, server_default="[]")

    @validates("email", "manager_email")
    def _normalize_emails(self, _key: str, value: str | None) -> str | None:
        return None if value is None else normalize_email(value)


class WebSession(Base):
    """A web UI login, server-side, so that it can be ended before its cookie expires.

    `id` is the SHA-256 of the secret the cookie carries: reading this table does not give
    anyone a usable session. A session is valid until `revoked_at` is set (logout, password
    change, demotion, disable or removal), until it has been idle too long (`last_seen_at`)
    or until its absolute lifetime from `created_at` has passed (`engine.store.logins`).
    """

    __tablename__ = "web_sessions"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    member_email: Mapped[str] = mapped_column(String(EMAIL_LEN), index=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_seen_at: Mapped[datetime] = mapped_column(default=utcnow)
    revoked_at: Mapped[datetime | None]


class LoginThrottle(Base):
    """Failed logins of one account or one client address, for backoff and lockout.

    `key` is ``account:<email>`` or ``client:<address>``. Kept in the database, not in the
    process, so that every API process and a restart see the same counts.
    """

    __tablename__ = "login_throttles"

    key: Mapped[str] = mapped_column(String(400), primary_key=True)
    failures: Mapped[int] = mapped_column(default=0)
    last_failure_at: Mapped[datetime] = mapped_column(default=utcnow)
    locked_until: Mapped[datetime | None]


class UsedLoginNonce(Base):
    """A login form's nonce that has been posted once: a second post of it is refused.

    `nonce_hash` is its SHA-256; rows are deleted once the form would have expired anyway.
    """

    __tablename__ = "used_login_nonces"

    nonce_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    expires_at: Mapped[datetime] = mapped_column(index=True)


class ApiToken(Base):
    """A credential for the HTTP API. Only the SHA-256 of the token is stored.

    `scopes` holds `engine.scopes.Scope` values; a token past `expires_at` or with a
    `revoked_at` is refused. Rows are kept after revocation, as a record of who could do what.
    """

    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(NAME_LEN))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_used_at: Mapped[datetime | None]
    scopes: Mapped[list[str]] = mapped_column(default=list)
    created_by: Mapped[str | None] = mapped_column(String(NAME_LEN))
    expires_at: Mapped[datetime | None]
    revoked_at: Mapped[datetime | None]

    @staticmethod
    def hash_token(token: str) -> str:
        """The hex SHA-256 stored in `token_hash` for a plaintext token."""
        return hashlib.sha256(token.encode("utf-8")).hexdigest()


class Event(Base):
    """A customer event as received; `id` is the sender's event id, which makes it idempotent.

    Events for unknown customers are kept (status `unknown_customer`), never dropped.
    """

    __tablename__ = "events"
    __table_args__ = (Index("ix_events_customer_id_at", "customer_id", "at"),)

    id: Mapped[str] = mapped_column(primary_key=True)
    customer_id: Mapped[str]
    name: Mapped[str]
    at: Mapped[datetime]
    properties: Mapped[dict[str, Any]] = mapped_column(default=dict)
    received_at: Mapped[datetime] = mapped_column(default=utcnow)
    status: Mapped[str] = mapped_column(String(STATUS_LEN), default=EventStatus.RECEIVED.value)
    note: Mapped[str | None] = mapped_column(Text)


class MilestoneState(Base):
    """Whether and when a customer reached a milestone, how often, and the latest value."""

    __tablename__ = "milestone_states"
    # Time to value reads every customer's first reach of one milestone.
    __table_args__ = (Index("ix_milestone_states_milestone_reached_at", "milestone", "reached_at"),)

    customer_id: Mapped[str] = mapped_column(
        ForeignKey("customers.id", ondelete="CASCADE"), primary_key=True
    )
    milestone: Mapped[str] = mapped_column(primary_key=True)
    reached_at: Mapped[datetime]
    count: Mapped[int] = mapped_column(default=1)
    value: Mapped[Any | None] = mapped_column(NullableJSONType)


# The task report's covering index (migration 0014): its groups, then what it counts.
TASKS_REPORT_COLUMNS = (
    "playbook_id", "assignee_email", "outcome", "status", "created_at",
    "completed_at", "due_at", "escalated_at", "customer_id", "run_key",
)  # fmt: skip


class Task(Base):
    """A unit of work for a CSM (a CTA), created by a playbook step, closed with an outcome."""

    __tablename__ = "tasks"
    __table_args__ = (
        Index("ix_tasks_assignee_email_status", "assignee_email", "status"),
        Index("ix_tasks_customer_id_status", "customer_id", "status"),
        Index("ix_tasks_playbook_id_created_at", "playbook_id", "created_at"),
        Index("ix_tasks_report", *TASKS_REPORT_COLUMNS),
    )

    id: Mapped[str] = mapped_column(primary_key=True)
    idempotency_key: Mapped[str] = mapped_column(String(512), unique=True)
    enrollment_id: Mapped[str | None] = mapped_column(String(512), index=True)
    playbook_id: Mapped[str | None]
    step_id: Mapped[str | None]
    customer_id: Mapped[str | None]
    assignee_email: Mapped[str | None] = mapped_column(String(EMAIL_LEN))
    title: Mapped[str] = mapped_column(Text)
    description: Mapped[str | None] = mapped_column(Text)
    due_at: Mapped[datetime | None]
    priority: Mapped[str] = mapped_column(String(16), default=TaskPriority.NORMAL.value)
    outcomes: Mapped[list[str]] = mapped_column(default=list)
    status: Mapped[str] = mapped_column(String(STATUS_LEN), default=TaskStatus.OPEN.value)
    outcome: Mapped[str | None]
    note: Mapped[str | None] = mapped_column(Text)
    completed_by: Mapped[str | None] = mapped_column(String(EMAIL_LEN))
    completed_at: Mapped[datetime | None]
    escalated_at: Mapped[datetime | None]
    escalation_of: Mapped[str | None] = mapped_column(ForeignKey("tasks.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    # Hidden from the assignee's inbox until then; the workflow's deadlines do not move.
    snoozed_until: Mapped[datetime | None]
    # Why a cancelled task was cancelled (the enrollment reached its goal, exited...).
    cancel_reason: Mapped[str | None] = mapped_column(Text)
    # How the assignee was chosen: owner, manager, round_robin, least_open, address, by:<who>.
    assigned_by: Mapped[str | None] = mapped_column(String(32))
    # A completion can be undone until then (the workflow holds it back as long).
    undo_until: Mapped[datetime | None]
    # The run that created it (its `enrollment_key`; the reports' key to its version), or
    # None for a task no enrollment created (migration 0014).
    run_key: Mapped[str | None] = mapped_column(String(600))

    @validates("assignee_email", "completed_by")
    def _normalize_emails(self, _key: str, value: str | None) -> str | None:
        return None if value is None else normalize_email(value)


class TaskComment(Base):
    """A note a team member left on a task."""

    __tablename__ = "task_comments"

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    task_id: Mapped[str] = mapped_column(ForeignKey("tasks.id", ondelete="CASCADE"), index=True)
    author: Mapped[str] = mapped_column(String(EMAIL_LEN))
    body: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class RoleCursor(Base):
    """The member of a role who was given its last round-robin task."""

    __tablename__ = "role_cursors"

    role: Mapped[str] = mapped_column(String(NAME_LEN), primary_key=True)
    last_email: Mapped[str | None] = mapped_column(String(EMAIL_LEN))


class Notification(Base):
    """One notice of a task event on one channel (digest, Slack, webhook), sent at most once.

    `idempotency_key` is task, event and channel (or a playbook step's enrollment, step and
    iteration), so a retried activity or a second digest run finds the row and does not send
    again.
    """

    __tablename__ = "notifications"

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    idempotency_key: Mapped[str] = mapped_column(String(512), unique=True)
    channel: Mapped[str] = mapped_column(String(STATUS_LEN))
    event: Mapped[str] = mapped_column(String(STATUS_LEN))
    task_id: Mapped[str | None] = mapped_column(index=True)
    recipient: Mapped[str | None] = mapped_column(String(EMAIL_LEN))
    payload: Mapped[dict[str, Any]] = mapped_column(default=dict)
    status: Mapped[str] = mapped_column(String(STATUS_LEN), default="pending")
    attempts: Mapped[int] = mapped_column(default=0)
    reason: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    delivered_at: Mapped[datetime | None]


class OutboxMessage(Base):
    """One email a playbook decided to send, and what became of it.

    A row exists before the provider is called (status `captured`), so a send is never lost
    and, keyed by `idempotency_key`, never repeated when an activity is retried.
    """

    __tablename__ = "outbox"
    __table_args__ = (Index("ix_outbox_playbook_id_created_at", "playbook_id", "created_at"),)

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    idempotency_key: Mapped[str] = mapped_column(String(512), unique=True)
    enrollment_id: Mapped[str | None] = mapped_column(String(512), index=True)
    playbook_id: Mapped[str | None]
    step_id: Mapped[str | None]
    customer_id: Mapped[str | None] = mapped_column(index=True)
    contact_email: Mapped[str] = mapped_column(String(EMAIL_LEN))
    to_name: Mapped[str | None] = mapped_column(String(NAME_LEN))
    subject: Mapped[str] = mapped_column(Text)
    html: Mapped[str | None] = mapped_column(Text)
    text: Mapped[str | None] = mapped_column(Text)
    headers: Mapped[dict[str, Any]] = mapped_column(default=dict)
    status: Mapped[str] = mapped_column(String(STATUS_LEN), default=OutboxStatus.CAPTURED.value)
    provider_message_id: Mapped[str | None] = mapped_column(index=True)
    reason: Mapped[str | None] = mapped_column(Text)
    attempts: Mapped[int] = mapped_column(default=0)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    sent_at: Mapped[datetime | None]
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    # The variant of the email step this contact was given (docs/delivery.md).
    variant: Mapped[str | None] = mapped_column(String(64))
    # The contact budget: when the email was charged to it (None: not counted, such as team
    # or exempt mail), its priority, and when a postponed email is tried again.
    budget_at: Mapped[datetime | None]
    priority: Mapped[int | None]
    not_before: Mapped[datetime | None]
    # The run that sent it (its `enrollment_key`; the reports' key to its version), or None
    # for an email no enrollment sent (migration 0014).
    run_key: Mapped[str | None] = mapped_column(String(600))

    @validates("contact_email")
    def _normalize_email(self, _key: str, value: str) -> str:
        return normalize_email(value)


Index("ix_outbox_contact_email_budget_at", OutboxMessage.contact_email, OutboxMessage.budget_at)
# The email report's groups and filters, read from the index alone (migration 0014).
Index(
    "ix_outbox_report",
    OutboxMessage.playbook_id, OutboxMessage.step_id, OutboxMessage.variant,
    OutboxMessage.status, OutboxMessage.created_at, OutboxMessage.run_key,
    OutboxMessage.customer_id,
)  # fmt: skip


class ContactBudget(Base):
    """One row per contact address: the lock that decides the race for a contact's last slot.

    `send_email` takes it (a write, so SQLite's single writer or PostgreSQL's row lock)
    before counting what the contact received, so two enrollments never both take the
    last slot of a cap.
    """

    __tablename__ = "contact_budgets"

    email: Mapped[str] = mapped_column(String(EMAIL_LEN), primary_key=True)
    charged: Mapped[int] = mapped_column(default=0)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class Suppression(Base):
    """An address that must never be emailed again (unsubscribe, bounce, spam report)."""

    __tablename__ = "suppressions"

    email: Mapped[str] = mapped_column(String(EMAIL_LEN), primary_key=True)
    reason: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    source: Mapped[str | None] = mapped_column(String(64))

    @validates("email")
    def _normalize_email(self, _key: str, value: str) -> str:
        return normalize_email(value)


class PlaybookVersion(Base):
    """A compiled playbook as shipped; `version` is the content hash of the plan."""

    __tablename__ = "playbook_versions"

    playbook_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    version: Mapped[str] = mapped_column(String(128), primary_key=True)
    name: Mapped[str] = mapped_column(String(NAME_LEN))
    source: Mapped[str] = mapped_column(Text)
    plan: Mapped[dict[str, Any]]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Enrollment(Base):
    """Projection of one playbook run (a Temporal workflow) for listing and the UI.

    Temporal stays the source of truth for where a run stands; this row is kept up to date
    by activities so that lists and filters do not need to query Temporal. One row per run:
    a re-enrollment reuses the workflow ID, so the key is the run's own `enrollment_key`
    (the workflow ID for runs started before keys existed).
    """

    __tablename__ = "enrollments"
    __table_args__ = (
        Index("ix_enrollments_playbook_id_status", "playbook_id", "status"),
        # The reports (migration 0011): runs by version and start; the run under a workflow
        # ID at a time (how migration 0014 found an older email's or task's run).
        Index(
            "ix_enrollments_playbook_id_version_started_at", "playbook_id", "version", "started_at"
        ),
        Index(
            "ix_enrollments_workflow_id_started_at",
            "workflow_id",
            "started_at",
            "ended_at",
            "version",
        ),
        # A run's version, status and start by its key, without reading the row (0014).
        Index("ix_enrollments_runs", "enrollment_key", "version", "status", "started_at"),
    )

    enrollment_key: Mapped[str] = mapped_column(String(600), primary_key=True)
    workflow_id: Mapped[str] = mapped_column(String(512), index=True)
    playbook_id: Mapped[str] = mapped_column(String(128))
    version: Mapped[str] = mapped_column(String(128))
    customer_id: Mapped[str] = mapped_column(index=True)
    cycle_key: Mapped[str | None] = mapped_column(String(128))
    status: Mapped[str] = mapped_column(String(STATUS_LEN), default=EnrollmentStatus.RUNNING.value)
    current_step: Mapped[str | None]
    outcome: Mapped[str | None] = mapped_column(String(64))
    started_at: Mapped[datetime] = mapped_column(default=utcnow)
    ended_at: Mapped[datetime | None]
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class WebhookEvent(Base):
    """A provider webhook event already processed (SendGrid `sg_event_id`), for dedup."""

    __tablename__ = "webhook_events"

    id: Mapped[str] = mapped_column(primary_key=True)
    received_at: Mapped[datetime] = mapped_column(default=utcnow)


class SavedView(Base):
    """A team member's named inbox filter (the inbox's query string), shown as a link."""

    __tablename__ = "saved_views"
    __table_args__ = (UniqueConstraint("owner_email", "name"),)

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    owner_email: Mapped[str] = mapped_column(String(EMAIL_LEN), index=True)
    name: Mapped[str] = mapped_column(String(80))
    query: Mapped[str] = mapped_column(String(1000))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class HealthChange(Base):
    """A customer's health score moving from `old` to `new`, for the customer timeline.

    History like events: no foreign key, it records what happened.
    """

    __tablename__ = "health_changes"
    __table_args__ = (Index("ix_health_changes_customer_id_at", "customer_id", "at"),)

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    customer_id: Mapped[str] = mapped_column(String(ID_LEN))
    at: Mapped[datetime] = mapped_column(default=utcnow)
    old: Mapped[int | None]
    new: Mapped[int | None]
    # The bands either side, when the scorecard computed the score (None when posted).
    old_band: Mapped[str | None] = mapped_column(String(32))
    new_band: Mapped[str | None] = mapped_column(String(32))


class HealthScore(Base):
    """One customer's health on one day (its latest computation that day): the history
    trends are read from. `measures` maps each measure to its value, points and weight,
    `signals` each risk signal to whether it is on."""

    __tablename__ = "health_scores"
    __table_args__ = (UniqueConstraint("customer_id", "day"),)

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    customer_id: Mapped[str] = mapped_column(String(ID_LEN))
    day: Mapped[date]
    at: Mapped[datetime] = mapped_column(default=utcnow)
    score: Mapped[int | None]
    band: Mapped[str] = mapped_column(String(32))
    known: Mapped[float] = mapped_column(Float)
    measures: Mapped[dict[str, Any]] = mapped_column(default=dict)
    # Each risk signal: kind, on (true/false/null), value and text (`SignalResult`).
    signals: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict, server_default="{}")


class Deployment(Base):
    """A playbook version made current: who deployed it, when, from which commit and why.

    The deployed version of a playbook is the one of its latest deployment (highest `id`);
    every path that starts enrollments (event routing, sweeps, `enroll` steps, the CLI)
    uses it. A rollback is a deployment of an older registered version. Rows are never
    changed or deleted: the table is the playbook's deploy history.
    """

    __tablename__ = "deployments"
    __table_args__ = (Index("ix_deployments_playbook_id_id", "playbook_id", "id"),)

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    playbook_id: Mapped[str] = mapped_column(String(128))
    version: Mapped[str] = mapped_column(String(128))
    deployed_at: Mapped[datetime] = mapped_column(default=utcnow)
    deployed_by: Mapped[str] = mapped_column(String(NAME_LEN))
    git_commit: Mapped[str | None] = mapped_column(String(64))
    message: Mapped[str | None] = mapped_column(Text)


class EngagementEvent(Base):
    """One SendGrid engagement event about an outbox row, as received.

    `id` is the webhook's dedupe id (``sendgrid:<sg_event_id>``), so a redelivered event is
    stored once. `kind` is one of `ENGAGEMENT_KINDS`. No foreign key to the outbox: this is
    a record of what SendGrid said.
    """

    __tablename__ = "engagement_events"
    __table_args__ = (Index("ix_engagement_events_outbox_id_kind", "outbox_id", "kind"),)

    id: Mapped[str] = mapped_column(primary_key=True)
    outbox_id: Mapped[int] = mapped_column(BigIntPK)
    kind: Mapped[str] = mapped_column(String(STATUS_LEN))
    at: Mapped[datetime]
    url: Mapped[str | None] = mapped_column(Text)
    received_at: Mapped[datetime] = mapped_column(default=utcnow)


ENGAGEMENT_KINDS = ("delivered", "open", "click", "bounce", "spamreport", "unsubscribe")
"""SendGrid event types kept per outbox row (``group_unsubscribe`` counts as unsubscribe)."""


class EmailEngagement(Base):
    """When each kind of engagement was first seen for one outbox row, and how often.

    The roll-up the email report reads (one row per email that had any engagement). Events
    arrive out of order and in separate batches, so each `*_at` keeps the earliest event
    time seen, whatever the order they came in.
    """

    __tablename__ = "email_engagement"

    outbox_id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=False)
    delivered_at: Mapped[datetime | None]
    opened_at: Mapped[datetime | None]
    clicked_at: Mapped[datetime | None]
    bounced_at: Mapped[datetime | None]
    spam_reported_at: Mapped[datetime | None]
    unsubscribed_at: Mapped[datetime | None]
    opens: Mapped[int] = mapped_column(default=0)
    clicks: Mapped[int] = mapped_column(default=0)


class StepVisit(Base):
    """An enrollment entered a step (its `visit`-th time there): the funnel's raw data.

    Written by the `record_enrollment` activity from the visits the interpreter reports.
    `run_key` is the enrollment's own key (its workflow ID for enrollments started before
    keys existed); `workflow_id` with `entered_at` finds the enrollment row of the run (a
    run's visits fall between its start and end), whatever that table's key.
    """

    __tablename__ = "step_visits"
    __table_args__ = (
        UniqueConstraint("run_key", "step_id", "visit"),
        Index("ix_step_visits_workflow_id_entered_at", "workflow_id", "entered_at"),
        Index("ix_step_visits_playbook_id_version", "playbook_id", "version"),
        Index("ix_step_visits_run_key_latest", "run_key", "latest"),
        # The funnel's counts (migration 0011): first and latest visits per step.
        Index(
            "ix_step_visits_first_visits", "visit", "playbook_id", "version", "step_id", "run_key"
        ),
        Index(
            "ix_step_visits_latest_visits",
            "latest",
            "playbook_id",
            "version",
            "step_id",
            "run_key",
            "entered_at",
        ),
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    run_key: Mapped[str] = mapped_column(String(512))
    workflow_id: Mapped[str] = mapped_column(String(512))
    playbook_id: Mapped[str] = mapped_column(String(128))
    version: Mapped[str] = mapped_column(String(128))
    customer_id: Mapped[str]
    step_id: Mapped[str]
    visit: Mapped[int]
    entered_at: Mapped[datetime]
    # The run's most recent visit (where it stands or where it ended), kept by
    # `record_step_visits`, so the funnel counts where runs left without a window query.
    latest: Mapped[bool] = mapped_column(default=False)
