"""Bulk customer import (`playbook customers import`): CSV or JSON into the store.

CSV columns: id, name, segment, timezone, owner (the CSM's email), renewal_date
(YYYY-MM-DD), health_score (0-100), and one contact per row: contact_email,
contact_first_name, contact_last_name, contact_role. Rows with the same ``id`` are one
customer and their contacts add up::

    id,name,timezone,health_score,contact_email,contact_first_name,contact_role
    acme,Acme Corp,Europe/Berlin,80,ada@acme.example,Ada,admin
    acme,,,,carl@acme.example,Carl,champion

Columns named ``attributes.<key>`` set that custom attribute. An empty cell means "not
given": an update leaves the stored value alone (contacts are upserted by email, never
removed, so their unsubscribe state survives any import).

JSON is a list of objects (or ``{"customers": [...]}``) with the same keys, or with the
API's shape: ``contacts: [{email, first_name, last_name, role}]``, ``attributes: {...}``,
``tags: [...]``.

Nothing is dropped silently: every problem is reported with its row (the line in a CSV
file, the 1-based position in a JSON list), the field and a message; good rows are
imported and bad ones are not. An unreadable file or an unknown CSV column stops the
import before anything is written (a typo in a header would otherwise lose a column).
"""

from __future__ import annotations

import csv
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import ValidationError
from pydantic_core import ErrorDetails
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from engine.client.changes import snapshot_before
from engine.errors import ImportFileError
from engine.services.customers import save_customer
from engine.store import repository
from engine.store.models import TeamMember

CUSTOMER_COLUMNS = (
    "id",
    "name",
    "segment",
    "timezone",
    "owner",
    "renewal_date",
    "health_score",
    "country",
    "locale",
)
CONTACT_COLUMNS = {
    "contact_email": "email",
    "contact_first_name": "first_name",
    "contact_last_name": "last_name",
    "contact_role": "role",
    "contact_timezone": "timezone",
    "contact_locale": "locale",
    "contact_country": "country",
}
JSON_ONLY = ("attributes", "tags", "contacts")
ATTRIBUTE_PREFIX = "attributes."
STORE_NAMES = {"owner": "owner_email"}  # our column -> CustomerData field
COLUMN_NAMES = {v: k for k, v in STORE_NAMES.items()}


@dataclass(frozen=True, order=True)
class RowError:
    row: int
    field: str
    message: str

    def __str__(self) -> str:
        return f"row {self.row}: {self.field}: {self.message}"


@dataclass
class Row:
    """One record of the file: customer fields and contacts that were given (non-empty)."""

    number: int
    fields: dict[str, Any] = field(default_factory=dict)
    contacts: list[tuple[str, dict[str, Any]]] = field(default_factory=list)  # (label, data)
    errors: list[RowError] = field(default_factory=list)


@dataclass
class CustomerImport:
    """One customer to upsert, from one or more rows."""

    data: repository.CustomerData
    rows: list[int]


@dataclass
class ImportPlan:
    rows: int
    customers: list[CustomerImport] = field(default_factory=list)
    errors: list[RowError] = field(default_factory=list)


@dataclass
class ImportResult:
    rows: int
    customers: int = 0
    contacts: int = 0
    errors: list[RowError] = field(default_factory=list)
    # Customer id -> the date fields the import changed (`engine.services.customers`): their
    # running enrollments are to be told (`notify_all_changed`).
    date_changes: dict[str, list[str]] = field(default_factory=dict)
    # Customer id -> its data before the import (`engine.client.changes.snapshot_before`;
    # None: a new customer), for the ``on_change`` triggers the import makes true
    # (`engine.services.customers.react_to_import`).
    befores: dict[str, dict[str, Any] | None] = field(default_factory=dict)

    @property
    def failed_rows(self) -> list[int]:
        return sorted({e.row for e in self.errors})


# -- reading ------------------------------------------------------------------------------
def _given(value: Any) -> bool:
    return value is not None and not (isinstance(value, str) and not value.strip())


def _clean(value: Any) -> Any:
    return value.strip() if isinstance(value, str) else value


def read_rows(path: Path, fmt: str | None = None) -> list[Row]:
    """The records of a CSV or JSON file (``fmt`` defaults to the file's extension)."""
    fmt = fmt or path.suffix.lower().lstrip(".")
    if fmt not in ("csv", "json"):
        raise ImportFileError(f"cannot tell the format of {path.name}: use .csv or .json")
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise ImportFileError(f"cannot read {path}: {exc}") from None
    return list(_csv_rows(text) if fmt == "csv" else _json_rows(text))


def _csv_rows(text: str) -> Iterator[Row]:
    reader = csv.DictReader(text.splitlines(keepends=True))
    header = [h.strip() for h in reader.fieldnames or []]
    if "id" not in header:
        raise ImportFileError("the first line must name the columns, including 'id'")
    known = set(CUSTOMER_COLUMNS) | set(CONTACT_COLUMNS)
    unknown = [h for h in header if h not in known and not h.startswith(ATTRIBUTE_PREFIX)]
    if unknown:
        raise ImportFileError(
            f"unknown column(s) {', '.join(map(repr, unknown))}; known: "
            f"{', '.join((*CUSTOMER_COLUMNS, *CONTACT_COLUMNS))} and attributes.<key>"
        )
    reader.fieldnames = header
    while True:
        line = reader.line_num + 1
        try:
            record = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            raise ImportFileError(f"line {line}: {exc}") from None
        row = Row(number=line)
        if record.get(None):
            row.errors.append(RowError(line, "-", "more cells than the header has columns"))
        for column, value in record.items():
            if column is None or not _given(value):
                continue
            value = _clean(value)
            if column.startswith(ATTRIBUTE_PREFIX):
                row.fields.setdefault("attributes", {})[column[len(ATTRIBUTE_PREFIX) :]] = value
            elif column in CUSTOMER_COLUMNS:
                row.fields[column] = value
        contact = {
            key: _clean(record[column])
            for column, key in CONTACT_COLUMNS.items()
            if _given(record.get(column))
        }
        if contact:
            row.contacts.append(("contact_email", contact))
        yield row


def _json_rows(text: str) -> Iterator[Row]:
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise ImportFileError(f"not valid JSON: {exc}") from None
    if isinstance(data, dict) and isinstance(data.get("customers"), list):
        data = data["customers"]
    if not isinstance(data, list):
        raise ImportFileError('expected a JSON list of customers (or {"customers": [...]})')
    for number, item in enumerate(data, start=1):
        row = Row(number=number)
        if not isinstance(item, dict):
            row.errors.append(RowError(number, "-", "not an object"))
            yield row
            continue
        flat_contact = {}
        for key, value in item.items():
            if not _given(value):
                continue
            if key in CUSTOMER_COLUMNS or key in ("attributes", "tags"):
                row.fields[key] = _clean(value)
            elif key in CONTACT_COLUMNS:
                flat_contact[CONTACT_COLUMNS[key]] = _clean(value)
            elif key == "contacts":
                if not isinstance(value, list):
                    row.errors.append(RowError(number, "contacts", "must be a list"))
                    continue
                for i, contact in enumerate(value):
                    if not isinstance(contact, dict):
                        row.errors.append(RowError(number, f"contacts.{i}", "not an object"))
                        continue
                    given = {k: _clean(v) for k, v in contact.items() if _given(v)}
                    row.contacts.append((f"contacts.{i}", given))
            else:
                row.errors.append(RowError(number, str(key), "unknown field"))
        if flat_contact:
            row.contacts.append(("contact_email", flat_contact))
        yield row


# -- checking and merging -----------------------------------------------------------------
def _message(error: ErrorDetails) -> str:
    return str(error.get("msg", "invalid")).removeprefix("Value error, ")


def _contacts(row: Row) -> list[repository.ContactData]:
    """The row's valid contacts; the problems of the others go to ``row.errors``."""
    valid = []
    for label, data in row.contacts:
        try:
            valid.append(repository.ContactData(**data))
        except ValidationError as exc:
            for error in exc.errors():
                name = str(error["loc"][0]) if error["loc"] else "email"
                where = (
                    f"contact_{name}"
                    if label == "contact_email" and name in ("email", *CONTACT_COLUMNS.values())
                    else f"{label}.{name}"
                )
                row.errors.append(RowError(row.number, where, _message(error)))
    return valid


def plan_import(rows: list[Row]) -> ImportPlan:
    """Check every row and merge rows of the same customer; nothing is written."""
    plan = ImportPlan(rows=len(rows))
    groups: dict[str, list[tuple[Row, list[repository.ContactData]]]] = {}
    for row in rows:
        contacts = _contacts(row)
        customer_id = row.fields.get("id")
        if not row.errors and not isinstance(customer_id, str | int):
            row.errors.append(RowError(row.number, "id", "required"))
        if row.errors:
            plan.errors += row.errors
            continue
        groups.setdefault(str(customer_id), []).append((row, contacts))
    for customer_id, members in groups.items():
        plan.customers += _merge(customer_id, members, plan.errors)
    plan.errors.sort()
    return plan


def _merge(
    customer_id: str,
    members: list[tuple[Row, list[repository.ContactData]]],
    errors: list[RowError],
) -> list[CustomerImport]:
    merged: dict[str, Any] = {}
    source: dict[str, int] = {}
    contacts: list[repository.ContactData] = []
    used: list[int] = []
    for row, row_contacts in members:
        clash = [
            RowError(
                row.number,
                name,
                f"{value!r} differs from {merged[name]!r} given in row {source[name]}",
            )
            for name, value in row.fields.items()
            if name in merged and merged[name] != value
        ]
        if clash:
            errors += clash
            continue
        for name, value in row.fields.items():
            if name not in merged:
                merged[name], source[name] = value, row.number
        contacts += row_contacts
        used.append(row.number)
    if not used:
        return []
    values = {STORE_NAMES.get(k, k): v for k, v in merged.items() if k != "id"}
    try:
        data = repository.CustomerData(id=customer_id, contacts=contacts or None, **values)
    except ValidationError as exc:
        bad_rows: set[int] = set()
        for error in exc.errors():
            name = str(error["loc"][0]) if error["loc"] else "-"
            column = COLUMN_NAMES.get(name, name)
            number = source.get(column, used[0])
            bad_rows.add(number)
            errors.append(RowError(number, column, _message(error)))
        for number in used:
            if number not in bad_rows:
                first = min(bad_rows)
                errors.append(
                    RowError(
                        number, "id", f"customer {customer_id!r} not imported (see row {first})"
                    )
                )
        return []
    return [CustomerImport(data=data, rows=used)]


# -- writing ------------------------------------------------------------------------------
def run_import(
    sessions: sessionmaker[Session],
    plan: ImportPlan,
    advance: Callable[[CustomerImport], None] | None = None,
    now: datetime | None = None,
) -> ImportResult:
    """Upsert each customer of ``plan`` in its own transaction; a failure spoils no other.
    Each customer's data before is kept (``befores``) for the changes the import makes."""
    result = ImportResult(rows=plan.rows, errors=list(plan.errors))
    for customer in plan.customers:
        try:
            owner = customer.data.owner_email
            if owner:
                with sessions() as session:
                    if session.get(TeamMember, owner) is None:
                        raise _StrangerOwner(owner)
            before = snapshot_before(sessions, customer.data.id, now or datetime.now(UTC))
            changed = save_customer(sessions, customer.data)
            result.befores[customer.data.id] = before
            if changed:
                result.date_changes[customer.data.id] = changed
            result.customers += 1
            result.contacts += len(customer.data.contacts or ())
        except _StrangerOwner as exc:
            result.errors += [
                RowError(row, "owner", f"{exc.owner!r} is not a team member; add them first")
                for row in customer.rows
            ]
        except (SQLAlchemyError, ValueError) as exc:
            message = str(exc).splitlines()[0]
            result.errors += [RowError(row, "-", f"not stored: {message}") for row in customer.rows]
        if advance is not None:
            advance(customer)
    result.errors.sort()
    return result


class _StrangerOwner(Exception):
    """The customer's owner is not on the team: the row is refused, nothing is written."""

    def __init__(self, owner: str) -> None:
        super().__init__(owner)
        self.owner = owner
