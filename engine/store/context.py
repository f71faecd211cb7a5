"""The data expressions and templates see: a snapshot of one customer, and helpers.

Built from the store by activities (never in workflow code). Customer-supplied strings
only ever appear here as values, never as template source.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import ColumnElement, select
from sqlalchemy.orm import Session

from engine.language.expressions import helpers
from engine.store import repository
from engine.store.models import Contact, Customer, MilestoneState, TeamMember


def contact_dict(contact: Any) -> dict[str, Any]:
    first, last = contact.first_name or "", contact.last_name or ""
    return {
        "email": contact.email,
        "first_name": first or contact.email.split("@")[0],
        "last_name": last,
        "name": f"{first} {last}".strip() or contact.email,
        "role": contact.role or "",
        "unsubscribed": bool(contact.unsubscribed),
        # The contact's own zone, locale and country, or None for the customer's.
        "timezone": getattr(contact, "timezone", None),
        "locale": getattr(contact, "locale", None),
        "country": getattr(contact, "country", None),
    }


def member_dict(member: TeamMember | None, email: str | None) -> dict[str, Any]:
    if member is None:
        name = email or ""
        return {
            "email": email or "",
            "name": name,
            "first_name": name.split("@")[0],
            "manager": None,
        }
    return {
        "email": member.email,
        "name": member.name,
        "first_name": member.name.split(" ")[0],
        "manager": member.manager_email,
    }


def customer_snapshot(
    session: Session, customer: Customer, today: date | None = None
) -> dict[str, Any]:
    """Everything about a customer that expressions may read, as plain values (and the
    ``health.trend`` function, over the history up to ``today``, else the current day)."""
    from engine.store.health import health_value

    owner = session.get(TeamMember, customer.owner_email) if customer.owner_email else None
    snapshot = _snapshot(customer, owner, sorted(repository.get_milestones(session, customer.id)))
    snapshot["health"] = health_value(session, customer, today or datetime.now(UTC).date())
    return snapshot


def all_customer_snapshots(session: Session) -> list[tuple[str, str, dict[str, Any]]]:
    """(id, time zone, `customer_snapshot`) of every customer, by id, in three queries.

    A sweep reads every customer for every playbook: one query per customer and per
    contact list, milestone list and owner made a year of daily sweeps over a hundred
    customers take minutes.
    """
    # Plain rows, not ORM objects: building a hundred customers' objects costs more than
    # reading them. The snapshot reads the same attributes from either.
    customers = session.execute(select(*Customer.__table__.c).order_by(Customer.id)).all()
    contacts: dict[str, list[Any]] = {}
    for contact in session.execute(select(*Contact.__table__.c).order_by(Contact.id)):
        contacts.setdefault(contact.customer_id, []).append(contact)
    team = {m.email: m for m in session.scalars(select(TeamMember))}
    reached: dict[str, list[str]] = {}
    for customer_id, milestone in session.execute(
        select(MilestoneState.customer_id, MilestoneState.milestone)
    ):
        reached.setdefault(customer_id, []).append(milestone)
    return _snapshots(customers, contacts, team, reached)


def customer_snapshots_page(
    session: Session, after: str | None, limit: int, *where: ColumnElement[bool]
) -> list[tuple[str, str, dict[str, Any]]]:
    """The next page of `all_customer_snapshots`: up to ``limit`` customers whose id is
    after ``after`` (None: from the first) and that match ``where``, by id, in four queries.

    Keyset pagination, so a sweep of a large book holds one page in memory, and a page
    costs the same however far into the book it is; the next page starts after the last
    id returned (an empty page is the end).
    """
    stmt = select(*Customer.__table__.c).where(*where).order_by(Customer.id).limit(limit)
    if after is not None:
        stmt = stmt.where(Customer.id > after)
    customers = session.execute(stmt).all()
    ids = [c.id for c in customers]
    if not ids:
        return []
    contacts: dict[str, list[Any]] = {}
    for contact in session.execute(
        select(*Contact.__table__.c).where(Contact.customer_id.in_(ids)).order_by(Contact.id)
    ):
        contacts.setdefault(contact.customer_id, []).append(contact)
    owners = {c.owner_email for c in customers if c.owner_email}
    team = {
        m.email: m
        for m in (
            session.scalars(select(TeamMember).where(TeamMember.email.in_(owners)))
            if owners
            else []
        )
    }
    reached: dict[str, list[str]] = {}
    for customer_id, milestone in session.execute(
        select(MilestoneState.customer_id, MilestoneState.milestone).where(
            MilestoneState.customer_id.in_(ids)
        )
    ):
        reached.setdefault(customer_id, []).append(milestone)
    return _snapshots(customers, contacts, team, reached)


def _snapshots(
    customers: Sequence[Any],
    contacts: dict[str, list[Any]],
    team: dict[str, TeamMember],
    reached: dict[str, list[str]],
) -> list[tuple[str, str, dict[str, Any]]]:
    """(id, time zone, snapshot) of customer rows, from their contacts, owners and
    milestones read beforehand."""
    return [
        (
            c.id,
            c.timezone or "UTC",
            _snapshot(
                c,
                team.get(c.owner_email) if c.owner_email else None,
                sorted(reached.get(c.id, [])),
                contacts.get(c.id, []),
            ),
        )
        for c in customers
    ]


def _snapshot(
    customer: Any, owner: TeamMember | None, milestones: list[str], contacts: Any = None
) -> dict[str, Any]:
    """The snapshot of a customer row or object (``contacts``: its contacts, if not loaded
    on it)."""
    return {
        "customer": {
            "id": customer.id,
            "name": customer.name,
            "segment": customer.segment or "",
            "timezone": customer.timezone or "UTC",
            "owner": customer.owner_email or "",
            "renewal_date": customer.renewal_date,
            "health_score": customer.health_score,
            "attributes": dict(customer.attributes or {}),
            "tags": list(customer.tags or []),
            "contacts": [
                contact_dict(c) for c in (customer.contacts if contacts is None else contacts)
            ],
            "created_at": customer.created_at,
        },
        "owner": member_dict(owner, customer.owner_email),
        "milestones": milestones,
        "health": {
            "score": customer.health_score,
            "band": getattr(customer, "health_band", None) or "unknown",
            "known": 0.0,
            "measures": {},
            "raw": {},
            "signals": {},
            "details": {},
            "trend": lambda _days: None,
        },
    }


# What ``enrollment`` is to an expression of an enrollment that no date trigger started.
NO_ENROLLMENT_DATES: dict[str, Any] = {"late_days": 0, "trigger_date": None, "anchor_date": None}


def evaluation_context(
    snapshot: dict[str, Any], now: datetime, playbook: str, event: Any = None, **extra: Any
) -> dict[str, Any]:
    """Snapshot + helpers bound to ``now`` + optional event and extras (contact, step...)."""
    context = {**snapshot, **helpers(now), "playbook": playbook}
    if event is not None:
        context["event"] = (
            event.model_dump(mode="python") if hasattr(event, "model_dump") else event
        )
    context.update(extra)
    return context


def team_member(session: Session, email: str | None) -> TeamMember | None:
    return session.get(TeamMember, email) if email else None


def member_with_role(session: Session, role: str) -> TeamMember | None:
    members = session.scalars(select(TeamMember).order_by(TeamMember.email)).all()
    return next((m for m in members if role in (m.roles or [])), None)


def decide(
    session: Session,
    customer_id: str,
    playbook: str,
    expressions: list[str],
    now: datetime,
    event: Any = None,
    enrollment: dict[str, Any] | None = None,
) -> tuple[bool, str, list[Any], list[str | None]]:
    """Evaluate expressions over the customer's current data.

    Returns (customer found, its time zone, values, errors): dates come back as ISO text,
    everything else as its truthiness, so results serialise and compare simply. A failing
    expression gives None and its error, never an exception.
    """
    customer = repository.get_customer(session, customer_id)
    if customer is None:
        return False, "UTC", [], []
    snapshot = customer_snapshot(session, customer, now.date())
    values, errors = decide_snapshot(snapshot, playbook, expressions, now, event, enrollment)
    return True, customer.timezone or "UTC", values, errors


def decide_snapshot(
    snapshot: dict[str, Any],
    playbook: str,
    expressions: list[str],
    now: datetime,
    event: Any = None,
    enrollment: dict[str, Any] | None = None,
) -> tuple[list[Any], list[str | None]]:
    """`decide` over a snapshot already read: (values, errors)."""

    from engine.errors import ExpressionError
    from engine.language.expressions import evaluate

    context = evaluation_context(
        snapshot, now, playbook, event, enrollment=enrollment or NO_ENROLLMENT_DATES
    )
    values: list[Any] = []
    errors: list[str | None] = []
    for source in expressions:
        try:
            value = evaluate(source, context)
            values.append(value.isoformat() if isinstance(value, datetime | date) else bool(value))
            errors.append(None)
        except ExpressionError as exc:
            values.append(None)
            errors.append(str(exc))
    return values, errors


# Dotted names an expression reads (``customer.segment``, ``event.properties.score``), once
# its string literals are blanked out; for explaining a false condition, not for checking.
_DOTTED = re.compile(r"(?<![\w.])[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)+")
_STRING = re.compile(r"\"(?:[^\"\\]|\\.)*\"|'(?:[^'\\]|\\.)*'")
_MAX_SHOWN = 80


def condition_values(
    session: Session,
    customer_id: str,
    playbook: str,
    expression: str,
    now: datetime,
    event: Any = None,
) -> str:
    """The values the expression's dotted names have for the customer now, as
    ``customer.segment = "internal", event.properties.score = 72``: what a person needs
    to see why a trigger condition came out false."""
    import json

    from engine.errors import ExpressionError
    from engine.language.expressions import evaluate

    customer = repository.get_customer(session, customer_id)
    if customer is None:
        return ""
    context = evaluation_context(
        customer_snapshot(session, customer, now.date()), now, playbook, event
    )
    shown: list[str] = []
    names = dict.fromkeys(_DOTTED.findall(_STRING.sub('""', expression)))
    for name in list(names)[:6]:
        try:
            value = json.dumps(evaluate(name, context), default=str, ensure_ascii=False)
        except ExpressionError:
            value = "undefined"
        if len(value) > _MAX_SHOWN:
            value = value[: _MAX_SHOWN - 3] + "..."
        shown.append(f"{name} = {value}")
    return ", ".join(shown)
