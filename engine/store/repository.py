"""Small typed functions over the store, used by activities and the API.

Transactions: every function works inside the caller's session and never commits, so a
caller composes several calls into one unit of work:

    with session_factory(url).begin() as session:
        if record_event(session, event_id=..., customer_id=..., name=..., at=...):
            ...

Idempotency: Temporal runs activities at least once and senders retry webhooks, so every
"create" here is keyed (event id, task key, outbox key, ...). It is enforced by the database
with `INSERT ... ON CONFLICT DO NOTHING` / `DO UPDATE` (the SQLite and PostgreSQL dialect
inserts), never by a read-then-insert check in Python: under concurrency on PostgreSQL the
second of two racing inserts waits for the first to commit and then does nothing, so no
IntegrityError surfaces and the surrounding transaction stays usable (no savepoint needed).
`RETURNING` tells the caller whether its insert was the one that happened.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from datetime import date, datetime
from typing import Any, NamedTuple

from pydantic import BaseModel, ConfigDict, Field, field_validator
from pydantic_core import PydanticSerializationError, to_json
from sqlalchemy import CursorResult, Executable, Table, bindparam, exists, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session, selectinload

from engine.addresses import check_email, check_line
from engine.errors import ConflictError, NotFoundError
from engine.statuses import EnrollmentStatus, EventStatus, OutboxStatus, TaskStatus
from engine.store.models import (
    Base,
    Contact,
    ContactBudget,
    Customer,
    Enrollment,
    Event,
    HealthChange,
    MilestoneState,
    OutboxMessage,
    PlaybookVersion,
    Suppression,
    Task,
    TaskPriority,
    WebhookEvent,
    check_timezone,
    normalize_email,
    utcnow,
)

# --- helpers -------------------------------------------------------------------------------


def _table(model: type[Base]) -> Table:
    table = model.__table__
    assert isinstance(table, Table)
    return table


def dialect_insert(session: Session, model: type[Base]) -> postgresql.Insert | sqlite.Insert:
    """The dialect INSERT of `model`'s table, which supports ON CONFLICT and RETURNING."""
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        return postgresql.insert(_table(model))
    if dialect == "sqlite":
        return sqlite.insert(_table(model))
    raise NotImplementedError(f"idempotent inserts need SQLite or PostgreSQL, not {dialect}")


def _aware(value: datetime | None, name: str) -> datetime | None:
    """Refuse naive datetimes up front, with the argument's name in the message."""
    if value is not None and (value.tzinfo is None or value.utcoffset() is None):
        raise ValueError(f"{name} must be timezone-aware, got naive {value!r}")
    return value


def _rowcount(
    session: Session, statement: Executable, params: Sequence[dict[str, Any]] | None = None
) -> int:
    """Execute an UPDATE (or an executemany INSERT) and return how many rows it matched."""
    result = session.execute(statement, params)
    assert isinstance(result, CursorResult)
    return result.rowcount


def _check_email(value: str) -> str:
    return check_email(value)


# --- customers -----------------------------------------------------------------------------


# An ISO 3166-1 alpha-2 country and a BCP 47 language tag such as 'ko' or 'de-AT'.
COUNTRY_PATTERN = r"^[A-Z]{2}$"
LOCALE_PATTERN = r"^[a-zA-Z]{2,3}([-_][a-zA-Z0-9]{2,8})*$"


class ContactData(BaseModel):
    """A contact as given to `upsert_customer`; fields left out are not changed."""

    model_config = ConfigDict(extra="forbid")

    email: str = Field(max_length=320)
    first_name: str | None = None
    last_name: str | None = None
    role: str | None = None
    # None: the customer's (docs/delivery.md).
    timezone: str | None = None
    locale: str | None = Field(default=None, pattern=LOCALE_PATTERN)
    country: str | None = Field(default=None, pattern=COUNTRY_PATTERN)

    @field_validator("email")
    @classmethod
    def _email(cls, value: str) -> str:
        return _check_email(value)

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str | None) -> str | None:
        return None if value is None else check_timezone(value)

    @field_validator("first_name", "last_name", "role")
    @classmethod
    def _one_line(cls, value: str | None) -> str | None:
        return None if value is None else check_line(value)  # they reach email headers


class CustomerData(BaseModel):
    """A customer as given to `upsert_customer`.

    On update only the fields that were explicitly set change (pydantic's
    `model_fields_set`), so a partial update such as a new health score leaves the rest
    alone, while an explicit `owner_email=None` clears the owner.
    """

    model_config = ConfigDict(extra="forbid")

    id: str = Field(min_length=1, max_length=255)
    name: str = Field(min_length=1, max_length=255)
    segment: str | None = None
    timezone: str = "UTC"
    country: str | None = Field(default=None, pattern=COUNTRY_PATTERN)
    locale: str | None = Field(default=None, pattern=LOCALE_PATTERN)
    owner_email: str | None = None
    renewal_date: date | None = None
    health_score: int | None = Field(default=None, ge=0, le=100)
    attributes: dict[str, Any] = Field(default_factory=dict)
    tags: list[str] = Field(default_factory=list)
    contacts: list[ContactData] | None = None

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        return check_timezone(value)

    @field_validator("name", "segment")
    @classmethod
    def _one_line(cls, value: str | None) -> str | None:
        return None if value is None else check_line(value)  # they reach email subjects

    @field_validator("owner_email")
    @classmethod
    def _owner(cls, value: str | None) -> str | None:
        return None if value is None else _check_email(value)


_CUSTOMER_FIELDS = (
    "name",
    "segment",
    "timezone",
    "country",
    "locale",
    "owner_email",
    "renewal_date",
    "health_score",
    "attributes",
    "tags",
)


def upsert_customer(session: Session, data: CustomerData) -> Customer:
    """Create the customer or update the fields set in `data`; upsert its contacts too.

    Contacts are matched by email within the customer and are never deleted here: a contact
    missing from `data.contacts` keeps its row and, above all, its unsubscribe state.
    """
    now = utcnow()
    before = session.scalar(select(Customer.health_score).where(Customer.id == data.id))
    values = {name: getattr(data, name) for name in _CUSTOMER_FIELDS}
    stmt = dialect_insert(session, Customer).values(
        id=data.id, created_at=now, updated_at=now, **values
    )
    changed = {
        name: stmt.excluded[name] for name in _CUSTOMER_FIELDS if name in data.model_fields_set
    }
    stmt = stmt.on_conflict_do_update(
        index_elements=["id"], set_={**changed, "updated_at": stmt.excluded.updated_at}
    )
    session.execute(stmt)
    for contact in data.contacts or ():
        _upsert_contact(session, data.id, contact)
    customer = get_customer(session, data.id)
    assert customer is not None
    if "health_score" in data.model_fields_set and data.health_score != before:
        # The customer timeline shows health moving; a first score is a change from None.
        session.add(HealthChange(customer_id=data.id, at=now, old=before, new=data.health_score))
    return customer


def _upsert_contact(session: Session, customer_id: str, data: ContactData) -> None:
    fields = ("first_name", "last_name", "role", "timezone", "locale", "country")
    stmt = dialect_insert(session, Contact).values(
        customer_id=customer_id,
        email=data.email,
        unsubscribed=False,
        **{name: getattr(data, name) for name in fields},
    )
    changed = {name: stmt.excluded[name] for name in fields if name in data.model_fields_set}
    target = ["customer_id", "email"]
    if changed:
        stmt = stmt.on_conflict_do_update(index_elements=target, set_=changed)
    else:
        stmt = stmt.on_conflict_do_nothing(index_elements=target)
    session.execute(stmt)


def get_customer(session: Session, customer_id: str) -> Customer | None:
    """The customer with its contacts loaded (fresh from the database), or None."""
    stmt = (
        select(Customer)
        .where(Customer.id == customer_id)
        .options(selectinload(Customer.contacts))
        .execution_options(populate_existing=True)
    )
    return session.scalars(stmt).one_or_none()


def customer_exists(session: Session, customer_id: str) -> bool:
    """Whether a customer with this id is stored."""
    return bool(session.scalar(select(exists().where(Customer.id == customer_id))))


# --- events and milestones -----------------------------------------------------------------


def record_event(
    session: Session,
    event_id: str,
    customer_id: str,
    name: str,
    at: datetime,
    properties: dict[str, Any] | None = None,
    *,
    status: EventStatus | None = None,
    note: str | None = None,
) -> bool:
    """Store an event once per `event_id`; True if this call stored it, False if a repeat.

    A repeat leaves the first copy untouched. With `status=None` the status is
    `unknown_customer` (with a note) when no such customer exists, else `received`; events
    for unknown customers are kept, so nothing a sender gave us is dropped.
    """
    if status is None:
        if customer_exists(session, customer_id):
            status = EventStatus.RECEIVED
        else:
            status = EventStatus.UNKNOWN_CUSTOMER
            note = note or f"no customer with id {customer_id!r}"
    stmt = (
        dialect_insert(session, Event)
        .values(
            id=event_id,
            customer_id=customer_id,
            name=name,
            at=_aware(at, "at"),
            properties=properties or {},
            received_at=utcnow(),
            status=str(status),
            note=note,
        )
        .on_conflict_do_nothing(index_elements=["id"])
        .returning(_table(Event).c.id)
    )
    return session.execute(stmt).first() is not None


def get_event(session: Session, event_id: str) -> Event | None:
    """The stored event with this sender-given id, or None."""
    return session.get(Event, event_id, populate_existing=True)


def insert_new_events(session: Session, rows: Sequence[dict[str, Any]]) -> set[str]:
    """Insert event rows (every `Event` column, one ``received_at`` for all) in one
    executemany, skipping ids already stored (earlier, or by a concurrent writer); returns
    the ids this call stored. The insert is the duplicate check: callers need not look first."""
    if not rows:
        return set()
    if session.get_bind().dialect.name == "postgresql":
        # One statement over arrays (unnest), whose text never changes: SQLAlchemy's
        # multi-row VALUES made a statement with thousands of placeholders, which psycopg
        # parsed anew for every batch (more than half the cost of storing it).
        columns = {
            "ids": [row["id"] for row in rows],
            "customers": [row["customer_id"] for row in rows],
            "names": [row["name"] for row in rows],
            "ats": [_aware(row["at"], "at") for row in rows],
            "properties": [_json_text(row["properties"]) for row in rows],
            "statuses": [row["status"] for row in rows],
            "notes": [row["note"] for row in rows],
            "received": rows[0]["received_at"],
        }
        result = session.connection().exec_driver_sql(_POSTGRES_INSERT_EVENTS, columns)
        return {event_id for (event_id,) in result}
    # SQLite: the rows go to the driver as tuples, converted here as `UTCDateTime` and
    # `JSONType` would (naive UTC text, JSON text): SQLAlchemy's per-row, per-column bind
    # processing cost more than SQLite's own insert. RETURNING is not used either (twice the
    # cost); when a row was skipped, ours are the ones carrying this call's received_at.
    received = rows[0]["received_at"]
    received_text = _sqlite_time(received)
    params = [
        (
            row["id"],
            row["customer_id"],
            row["name"],
            _sqlite_time(row["at"]),
            _json_text(row["properties"]),
            received_text,
            row["status"],
            row["note"],
        )
        for row in rows
    ]
    result = session.connection().exec_driver_sql(_SQLITE_INSERT_EVENTS, params)
    ids = [row["id"] for row in rows]
    if result.rowcount == len(rows):
        return set(ids)
    found: set[str] = set()
    for start in range(0, len(ids), _IN_CHUNK):
        found.update(
            event_id
            for event_id, at in session.execute(
                select(Event.id, Event.received_at).where(
                    Event.id.in_(ids[start : start + _IN_CHUNK])
                )
            )
            if at == received
        )
    return found


_POSTGRES_INSERT_EVENTS = (
    "INSERT INTO events (id, customer_id, name, at, properties, received_at, status, note) "
    "SELECT id, customer_id, name, at, properties::jsonb, %(received)s, status, note "
    "FROM unnest(%(ids)s::text[], %(customers)s::text[], %(names)s::text[], "
    "%(ats)s::timestamptz[], %(properties)s::text[], %(statuses)s::text[], %(notes)s::text[]) "
    "AS t(id, customer_id, name, at, properties, status, note) "
    "ON CONFLICT (id) DO NOTHING RETURNING id"
)
_SQLITE_INSERT_EVENTS = (
    "INSERT INTO events (id, customer_id, name, at, properties, received_at, status, note) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO NOTHING"
)
_IN_CHUNK = 500


def _sqlite_time(value: datetime) -> str:
    """An aware datetime as `UTCDateTime` stores it in SQLite: naive UTC, microseconds."""
    offset = value.utcoffset()
    if offset is None:
        raise ValueError(f"at must be timezone-aware, got naive {value!r}")
    if offset:  # at UTC (the usual case) nothing is converted
        value = value - offset
    return value.replace(tzinfo=None).isoformat(" ", "microseconds")


def _json_text(value: Any) -> str:
    """A JSON column's text, as read back by `json.loads`; pydantic-core's encoder is
    several times faster than the standard library's, which remains for what it refuses
    (lone surrogates in strings)."""
    try:
        return to_json(value, inf_nan_mode="constants").decode()
    except PydanticSerializationError:
        return json.dumps(value)


def set_event_status(
    session: Session, event_id: str, status: EventStatus, note: str | None = None
) -> None:
    """Record what became of an event (e.g. `routed`), with an optional explanation."""
    statement = update(_table(Event)).where(Event.id == event_id)
    if _rowcount(session, statement.values(status=str(status), note=note)) == 0:
        raise NotFoundError(f"no event {event_id!r}")


def record_milestone(
    session: Session, *, customer_id: str, milestone: str, at: datetime, value: Any = None
) -> MilestoneState:
    """Note that a customer reached a milestone: first `reached_at` kept, `count` +1.

    Call it once per stored event (after `record_event` returned True) so that retries do
    not inflate the count.
    """
    record_milestones(
        session,
        [{"customer_id": customer_id, "milestone": milestone, "at": at, "value": value}],
    )
    state = session.get(MilestoneState, (customer_id, milestone), populate_existing=True)
    assert state is not None
    return state


def record_milestones(session: Session, reached: Sequence[dict[str, Any]]) -> None:
    """`record_milestone` for several (``customer_id``, ``milestone``, ``at``, ``value``)
    in one executemany, without reading the states back (event ingestion needs none)."""
    if not reached:
        return
    dialect = session.get_bind().dialect.name
    stmt = _MILESTONE_UPSERTS.get(dialect)
    if stmt is None:  # built once per dialect: building it cost more than running it
        insert = dialect_insert(session, MilestoneState).values(
            customer_id=bindparam("customer_id"),
            milestone=bindparam("milestone"),
            reached_at=bindparam("at"),
            count=1,
            value=bindparam("value"),
        )
        stmt = _MILESTONE_UPSERTS[dialect] = insert.on_conflict_do_update(
            index_elements=["customer_id", "milestone"],
            set_={"count": MilestoneState.count + 1, "value": insert.excluded.value},
        )
    # On the session's connection, past the ORM's bulk-insert handling: an event batch runs
    # it inside SQLite's writer lock, and nothing here needs the identity map (the states
    # are not read back; `record_milestone` reloads its one).
    session.connection().execute(stmt, [{**row, "at": _aware(row["at"], "at")} for row in reached])


_MILESTONE_UPSERTS: dict[str, Executable] = {}


def get_milestones(session: Session, customer_id: str) -> dict[str, MilestoneState]:
    """The milestones a customer has reached, by name."""
    rows = session.scalars(
        select(MilestoneState)
        .where(MilestoneState.customer_id == customer_id)
        .execution_options(populate_existing=True)
    )
    return {row.milestone: row for row in rows}


# --- tasks ---------------------------------------------------------------------------------


def create_task(
    session: Session,
    idempotency_key: str,
    title: str,
    *,
    enrollment_id: str | None = None,
    playbook_id: str | None = None,
    step_id: str | None = None,
    customer_id: str | None = None,
    assignee_email: str | None = None,
    description: str | None = None,
    due_at: datetime | None = None,
    priority: str = TaskPriority.NORMAL,
    outcomes: Sequence[str] = (),
    escalation_of: str | None = None,
    task_id: str | None = None,
    run_key: str | None = None,
) -> tuple[Task, bool]:
    """Create a task once per `idempotency_key`; returns (task, created).

    A repeat returns the task created first, unchanged, with created=False. ``run_key`` is
    the `enrollment_key` of the run that created it (the reports' key to its version).
    """
    stmt = (
        dialect_insert(session, Task)
        .values(
            id=task_id or uuid.uuid4().hex,
            idempotency_key=idempotency_key,
            enrollment_id=enrollment_id,
            playbook_id=playbook_id,
            step_id=step_id,
            customer_id=customer_id,
            assignee_email=None if assignee_email is None else _check_email(assignee_email),
            title=title,
            description=description,
            due_at=_aware(due_at, "due_at"),
            priority=str(priority),
            outcomes=list(outcomes),
            status=TaskStatus.OPEN.value,
            escalation_of=escalation_of,
            run_key=run_key,
            created_at=utcnow(),
        )
        .on_conflict_do_nothing(index_elements=["idempotency_key"])
        .returning(_table(Task).c.id)
    )
    created = session.execute(stmt).first() is not None
    task = session.scalars(
        select(Task)
        .where(Task.idempotency_key == idempotency_key)
        .execution_options(populate_existing=True)
    ).one()
    return task, created


def get_task(session: Session, task_id: str) -> Task | None:
    """The task with this id, fresh from the database, or None."""
    return session.get(Task, task_id, populate_existing=True)


def complete_task(
    session: Session,
    task_id: str,
    outcome: str,
    completed_by: str,
    *,
    note: str | None = None,
    at: datetime | None = None,
) -> Task:
    """Close an open task with an outcome. Idempotent for a repeat with the same outcome.

    Completing a task cancels its open escalations. Raises NotFoundError for an unknown
    task, ValueError for an outcome the task does not
    offer, and ConflictError when the task is cancelled or was completed differently. The
    status change is a conditional UPDATE (`WHERE status = 'open'`), so of two concurrent
    completions exactly one wins.
    """
    task = get_task(session, task_id)
    if task is None:
        raise NotFoundError(f"no task {task_id!r}")
    if task.outcomes and outcome not in task.outcomes:
        raise ValueError(f"outcome {outcome!r} is not one of {task.outcomes} for task {task_id}")
    values: dict[str, Any] = {
        "status": TaskStatus.COMPLETED.value,
        "outcome": outcome,
        "completed_by": normalize_email(completed_by),
        "completed_at": _aware(at, "at") or utcnow(),
    }
    if note is not None:
        values["note"] = note
    won = _rowcount(
        session,
        update(_table(Task))
        .where(Task.id == task_id, Task.status == TaskStatus.OPEN.value)
        .values(**values),
    )
    task = get_task(session, task_id)
    assert task is not None
    if won:
        # Its escalations were about this task being open: they are moot now.
        _rowcount(
            session,
            update(_table(Task))
            .where(Task.escalation_of == task_id, Task.status == TaskStatus.OPEN.value)
            .values(
                status=TaskStatus.CANCELLED.value,
                note=f"the escalated task was completed ({outcome})",
            ),
        )
        return task
    if task.status == TaskStatus.COMPLETED and task.outcome == outcome:
        return task
    raise ConflictError(f"task {task_id} is {task.status} (outcome {task.outcome!r})")


def reopen_task(session: Session, task_id: str) -> Task:
    """Open a completed task again (its completion was undone); an open task stays open."""
    session.execute(
        update(_table(Task))
        .where(Task.id == task_id, Task.status == TaskStatus.COMPLETED.value)
        .values(
            status=TaskStatus.OPEN.value,
            outcome=None,
            completed_by=None,
            completed_at=None,
            undo_until=None,
        )
    )
    task = get_task(session, task_id)
    if task is None:
        raise NotFoundError(f"no task {task_id!r}")
    session.refresh(task)
    return task


def cancel_task(
    session: Session, task_id: str, *, note: str | None = None, reason: str | None = None
) -> Task:
    """Cancel an open task (e.g. its enrollment exited), saying why in ``reason``.

    Closed tasks are left as they are.
    """
    values: dict[str, Any] = {"status": TaskStatus.CANCELLED.value}
    if note is not None:
        values["note"] = note
    if reason is not None:
        values["cancel_reason"] = reason
    session.execute(
        update(_table(Task))
        .where(Task.id == task_id, Task.status == TaskStatus.OPEN.value)
        .values(**values)
    )
    task = get_task(session, task_id)
    if task is None:
        raise NotFoundError(f"no task {task_id!r}")
    return task


# --- outbox and suppressions ---------------------------------------------------------------


def insert_outbox(
    session: Session,
    idempotency_key: str,
    contact_email: str,
    subject: str,
    *,
    html: str | None = None,
    text: str | None = None,
    headers: dict[str, Any] | None = None,
    to_name: str | None = None,
    enrollment_id: str | None = None,
    playbook_id: str | None = None,
    step_id: str | None = None,
    customer_id: str | None = None,
    status: OutboxStatus = OutboxStatus.CAPTURED,
    reason: str | None = None,
    variant: str | None = None,
    budget_at: datetime | None = None,
    run_key: str | None = None,
) -> tuple[OutboxMessage, bool]:
    """Record an email once per `idempotency_key`; returns (message, created).

    Write it before calling the provider: a repeat (activity retry) finds the existing row
    and its status, and so never sends twice. ``run_key`` is the `enrollment_key` of the
    run that sent it (the reports' key to its version).
    """
    now = utcnow()
    stmt = (
        dialect_insert(session, OutboxMessage)
        .values(
            idempotency_key=idempotency_key,
            enrollment_id=enrollment_id,
            playbook_id=playbook_id,
            step_id=step_id,
            customer_id=customer_id,
            contact_email=_check_email(contact_email),
            to_name=to_name,
            subject=subject,
            html=html,
            text=text,
            headers=headers or {},
            status=str(status),
            reason=reason,
            variant=variant,
            budget_at=budget_at,
            run_key=run_key,
            attempts=0,
            created_at=now,
            updated_at=now,
        )
        .on_conflict_do_nothing(index_elements=["idempotency_key"])
        .returning(*_table(OutboxMessage).c)
    )
    # The new row comes back from the insert itself: under SQLite the writer lock is held
    # from the insert to the commit, so a second statement here would hold it longer.
    message = session.scalars(select(OutboxMessage).from_statement(stmt)).first()
    if message is not None:
        return message, True
    message = get_outbox(session, idempotency_key)
    assert message is not None
    return message, False


def lock_contact_budget(session: Session, email: str) -> None:
    """Take the contact's budget row for the rest of the transaction; call it first.

    It is a write (an upsert of the contact's row), so SQLite's single writer and
    PostgreSQL's row lock make a second enrollment wait here until the first commits: the
    counts it then reads include the email the first one charged.
    """
    dialect = session.get_bind().dialect.name
    stmt = _BUDGET_LOCKS.get(dialect)
    if stmt is None:  # built once per dialect: building it cost as much as running it
        insert = dialect_insert(session, ContactBudget).values(
            email=bindparam("email"), charged=1, updated_at=bindparam("now")
        )
        stmt = _BUDGET_LOCKS[dialect] = insert.on_conflict_do_update(
            index_elements=["email"],
            set_={"charged": ContactBudget.charged + 1, "updated_at": insert.excluded.updated_at},
        )
    session.execute(stmt, {"email": normalize_email(email), "now": utcnow()})


# The contact-budget statements, built once (per dialect for the upsert), run per email.
_BUDGET_LOCKS: dict[str, Executable] = {}
_BUDGET_QUERY = select(
    OutboxMessage.idempotency_key,
    OutboxMessage.status,
    OutboxMessage.budget_at,
    OutboxMessage.not_before,
    OutboxMessage.priority,
    OutboxMessage.playbook_id,
    OutboxMessage.step_id,
).where(
    OutboxMessage.contact_email == bindparam("email"),
    or_(
        OutboxMessage.budget_at >= bindparam("since"),
        OutboxMessage.status == OutboxStatus.POSTPONED.value,
    ),
)


class BudgetEntry(NamedTuple):
    """An outbox row that bears on a contact's budget: charged, or postponed and waiting."""

    idempotency_key: str
    status: str
    budget_at: datetime | None
    not_before: datetime | None
    priority: int | None
    playbook_id: str | None
    step_id: str | None


def contact_budget(session: Session, email: str, since: datetime) -> list[BudgetEntry]:
    """The contact's emails charged since ``since`` and those postponed, in one query.

    ``email`` is a stored contact address (already normalised): checked once, upstream.
    """
    rows = session.execute(_BUDGET_QUERY, {"email": normalize_email(email), "since": since})
    return [BudgetEntry(*row) for row in rows]


def get_outbox(session: Session, idempotency_key: str) -> OutboxMessage | None:
    """The outbox message with this idempotency key, fresh from the database, or None."""
    return session.scalars(
        select(OutboxMessage)
        .where(OutboxMessage.idempotency_key == idempotency_key)
        .execution_options(populate_existing=True)
    ).one_or_none()


def get_outbox_by_provider_message_id(
    session: Session, provider_message_id: str
) -> OutboxMessage | None:
    """The outbox message the provider knows by this id (webhooks report it), or None."""
    return session.scalars(
        select(OutboxMessage)
        .where(OutboxMessage.provider_message_id == provider_message_id)
        .execution_options(populate_existing=True)
    ).first()


def update_outbox_status(
    session: Session,
    idempotency_key: str,
    status: OutboxStatus,
    *,
    reason: str | None = None,
    provider_message_id: str | None = None,
    sent_at: datetime | None = None,
    count_attempt: bool = False,
) -> OutboxMessage:
    """Set an outbox message's status; other arguments change their column only if given.

    `count_attempt=True` adds one to `attempts` in SQL, so concurrent attempts all count.
    """
    table = _table(OutboxMessage)
    values: dict[str, Any] = {"status": str(status), "updated_at": utcnow()}
    if reason is not None:
        values["reason"] = reason
    if provider_message_id is not None:
        values["provider_message_id"] = provider_message_id
    if sent_at is not None:
        values["sent_at"] = _aware(sent_at, "sent_at")
    if count_attempt:
        values["attempts"] = table.c.attempts + 1
    statement = update(table).where(table.c.idempotency_key == idempotency_key)
    if _rowcount(session, statement.values(**values)) == 0:
        raise NotFoundError(f"no outbox message {idempotency_key!r}")
    message = get_outbox(session, idempotency_key)
    assert message is not None
    return message


def is_suppressed(session: Session, email: str) -> bool:
    """Whether this address must not be emailed (any capitalisation)."""
    email = normalize_email(email)
    return bool(session.scalar(select(exists().where(Suppression.email == email))))


def suppress(session: Session, email: str, reason: str, *, source: str | None = None) -> bool:
    """Suppress an address for good; True if newly suppressed, False if it already was.

    Also marks every contact with this address unsubscribed, so the customer view agrees
    with what the mailer will do. The first reason recorded is kept.
    """
    email = _check_email(email)
    now = utcnow()
    stmt = (
        dialect_insert(session, Suppression)
        .values(email=email, reason=reason, source=source, created_at=now)
        .on_conflict_do_nothing(index_elements=["email"])
        .returning(_table(Suppression).c.email)
    )
    created = session.execute(stmt).first() is not None
    session.execute(
        update(_table(Contact))
        .where(Contact.email == email, Contact.unsubscribed.is_(False))
        .values(unsubscribed=True, unsubscribed_at=now)
    )
    return created


# --- playbook versions and enrollments -----------------------------------------------------


def _canonical_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)


def register_playbook_version(
    session: Session,
    *,
    playbook_id: str,
    version: str,
    name: str,
    source: str,
    plan: dict[str, Any],
) -> tuple[PlaybookVersion, bool]:
    """Store a compiled playbook version once; returns (row, created).

    `version` is the content hash of the plan, so a second registration must carry the
    same plan: a different plan under the same version is a ConflictError (a hashing bug,
    or tampering), never a silent overwrite. The source may differ (comments, formatting).
    """
    stmt = (
        dialect_insert(session, PlaybookVersion)
        .values(
            playbook_id=playbook_id,
            version=version,
            name=name,
            source=source,
            plan=plan,
            created_at=utcnow(),
        )
        .on_conflict_do_nothing(index_elements=["playbook_id", "version"])
        .returning(_table(PlaybookVersion).c.version)
    )
    created = session.execute(stmt).first() is not None
    row = get_playbook_version(session, playbook_id, version)
    assert row is not None
    if not created and _canonical_json(row.plan) != _canonical_json(plan):
        raise ConflictError(f"playbook {playbook_id} version {version} exists with another plan")
    return row, created


def get_playbook_version(
    session: Session, playbook_id: str, version: str
) -> PlaybookVersion | None:
    """A registered playbook version, or None."""
    return session.get(PlaybookVersion, (playbook_id, version), populate_existing=True)


def latest_playbook_version(session: Session, playbook_id: str) -> PlaybookVersion | None:
    """The most recently registered (first-registered-at) version of a playbook, or None.

    "Latest" is by `created_at`: registering an older version again does not make it the
    latest, since registration is idempotent.
    """
    return session.scalars(
        select(PlaybookVersion)
        .where(PlaybookVersion.playbook_id == playbook_id)
        .order_by(PlaybookVersion.created_at.desc(), PlaybookVersion.version.desc())
        .limit(1)
        .execution_options(populate_existing=True)
    ).first()


def latest_plan(session: Session, playbook_id: str) -> dict[str, Any] | None:
    """The compiled plan of `latest_playbook_version`, or None if none is registered."""
    row = latest_playbook_version(session, playbook_id)
    return None if row is None else row.plan


def save_enrollment(
    session: Session,
    *,
    workflow_id: str,
    playbook_id: str,
    version: str,
    customer_id: str,
    enrollment_key: str | None = None,
    status: EnrollmentStatus = EnrollmentStatus.RUNNING,
    cycle_key: str | None = None,
    current_step: str | None = None,
    outcome: str | None = None,
    started_at: datetime | None = None,
    ended_at: datetime | None = None,
    new: bool = False,
) -> str:
    """Create or update the projection of one enrollment run, keyed by ``enrollment_key``.

    Each run has its own key, so a re-enrollment under the same workflow id adds a row
    and leaves the ended run's row (and outcome) alone. Runs started before keys existed
    have none: their key is the workflow id, and ``new`` (an enrollment's start) then
    replaces an ended run's start, end and outcome instead of inheriting them.
    Status, playbook, version and customer are always written; the optional fields only
    when given (None leaves the stored value), so progress updates need not repeat them.
    Returns the run's key; `upsert_enrollment` also reads the row back.
    """
    now = utcnow()
    key = enrollment_key or workflow_id
    optional = {
        "cycle_key": cycle_key,
        "current_step": current_step,
        "outcome": outcome,
        "started_at": started_at,
        "ended_at": ended_at,
    }
    updated = frozenset(name for name, v in optional.items() if v is not None) | (
        _RESTARTED if new else frozenset()
    )
    session.connection().execute(  # past the ORM's execute, as `record_milestones`
        _enrollment_upsert(session, updated),
        {
            "enrollment_key": key,
            "workflow_id": workflow_id,
            "playbook_id": playbook_id,
            "version": version,
            "customer_id": customer_id,
            "cycle_key": cycle_key,
            "status": str(status),
            "current_step": current_step,
            "outcome": outcome,
            "started_at": _aware(started_at, "started_at") or now,
            "ended_at": _aware(ended_at, "ended_at"),
            "updated_at": now,
        },
    )
    return key


_ALWAYS_UPDATED = ("playbook_id", "version", "customer_id", "status", "updated_at")
_RESTARTED = frozenset(("started_at", "ended_at", "outcome"))
_ENROLLMENT_UPSERTS: dict[tuple[str, frozenset[str]], postgresql.Insert | sqlite.Insert] = {}


def _enrollment_upsert(
    session: Session, updated: frozenset[str]
) -> postgresql.Insert | sqlite.Insert:
    """`save_enrollment`'s statement, built once per dialect and set of updated columns,
    its values given when it runs.

    The worker records an enrollment's progress at every step, under SQLite inside the
    writer lock: building the statement (``excluded`` and its column collection) on each
    call took longer than running it, and kept the API's event writes waiting
    (bench/RESULTS.md, "The worker's longest hold of the writer lock")."""
    dialect = session.get_bind().dialect.name
    cached = _ENROLLMENT_UPSERTS.get((dialect, updated))
    if cached is None:
        stmt = dialect_insert(session, Enrollment)
        names = [*_ALWAYS_UPDATED, *sorted(updated)]
        cached = stmt.on_conflict_do_update(
            index_elements=["enrollment_key"], set_={n: stmt.excluded[n] for n in names}
        )
        _ENROLLMENT_UPSERTS[(dialect, updated)] = cached
    return cached


def upsert_enrollment(
    session: Session,
    *,
    workflow_id: str,
    playbook_id: str,
    version: str,
    customer_id: str,
    enrollment_key: str | None = None,
    status: EnrollmentStatus = EnrollmentStatus.RUNNING,
    cycle_key: str | None = None,
    current_step: str | None = None,
    outcome: str | None = None,
    started_at: datetime | None = None,
    ended_at: datetime | None = None,
    new: bool = False,
) -> Enrollment:
    """`save_enrollment`, then the row as stored."""
    key = save_enrollment(
        session,
        workflow_id=workflow_id,
        playbook_id=playbook_id,
        version=version,
        customer_id=customer_id,
        enrollment_key=enrollment_key,
        status=status,
        cycle_key=cycle_key,
        current_step=current_step,
        outcome=outcome,
        started_at=started_at,
        ended_at=ended_at,
        new=new,
    )
    enrollment = session.get(Enrollment, key, populate_existing=True)
    assert enrollment is not None
    return enrollment


def latest_enrollment(session: Session, workflow_id: str) -> Enrollment | None:
    """The newest run under ``workflow_id`` (a re-enrolled customer has several)."""
    return session.scalars(
        select(Enrollment)
        .where(Enrollment.workflow_id == workflow_id)
        .order_by(Enrollment.started_at.desc(), Enrollment.updated_at.desc())
        .limit(1)
    ).first()


def list_enrollments(
    session: Session,
    *,
    playbook_id: str | None = None,
    customer_id: str | None = None,
    status: str | None = None,
    limit: int,
) -> list[Enrollment]:
    """Enrollment runs, newest first, of the playbook, customer and status given (any if
    None); a re-enrolled customer has one row per run."""
    query = (
        select(Enrollment)
        .order_by(Enrollment.started_at.desc(), Enrollment.updated_at.desc())
        .limit(limit)
    )
    if playbook_id:
        query = query.where(Enrollment.playbook_id == playbook_id)
    if customer_id:
        query = query.where(Enrollment.customer_id == customer_id)
    if status:
        query = query.where(Enrollment.status == status)
    return list(session.scalars(query))


# --- webhooks ------------------------------------------------------------------------------


def record_webhook_event(session: Session, event_id: str) -> bool:
    """Remember a provider webhook event id; True the first time, False for a redelivery."""
    stmt = (
        dialect_insert(session, WebhookEvent)
        .values(id=event_id, received_at=utcnow())
        .on_conflict_do_nothing(index_elements=["id"])
        .returning(_table(WebhookEvent).c.id)
    )
    return session.execute(stmt).first() is not None
