"""A file of events for ``playbook events send --file``: read, judged one by one with the
API's rules (`engine.services.event_input`), and sent through the router's batch path.

Formats, by extension:

- JSON Lines (``.jsonl``, ``.ndjson``; also what stdin holds): one event object per line,
  blank lines skipped; a problem is located by its line.
- JSON (``.json``): a list of events, or the API's batch body ``{"events": [...]}``; a
  problem is located by the item's number (1 for the first).
- CSV (``.csv``): a header row naming ``id, customer_id, name, at`` and any other column,
  each a property; empty cells are absent, and a property cell that reads as JSON
  (``12``, ``true``, ``{...}``) is that value, as ``events send``'s ``key=value`` pairs.
  A problem is located by the row's line.

Events are sent in batches (`send_in_batches`): each batch is one store transaction and
one routing decision per customer (`engine.client.routing.EventRouter.handle_batch`).
"""

from __future__ import annotations

import csv
import json
import uuid
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from engine.errors import ImportFileError
from engine.services.event_input import MAX_BATCH, EventIn, judge_items
from engine.store.events import IncomingEvent

if TYPE_CHECKING:
    from engine.client.routing import EventRouter, RoutedEvent

FORMATS = {".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "json", ".csv": "csv"}
"""The formats, by the file's extension."""
COLUMNS = ("id", "customer_id", "name", "at")
"""A CSV file's event columns; every other column is a property."""
NEEDS_ID = (
    "required: events are deduplicated by id; give each one, or pass --generate-ids "
    "to give each event a new id (sending the file again then stores it again)"
)


@dataclass(frozen=True)
class FileItem:
    """One event as read: where it is and its data, or why it could not be read."""

    line: int
    data: Any
    problem: str | None = None


@dataclass
class Judged:
    """One item judged: the event to send, or its errors as (field, message)."""

    item: FileItem
    event: EventIn | None = None
    errors: list[tuple[str, str]] = field(default_factory=list)


def file_format(name: str) -> str:
    """The format of a file named ``name``; ImportFileError if its extension says none."""
    suffix = name[name.rfind(".") :].lower() if "." in name else ""
    if suffix not in FORMATS:
        raise ImportFileError(
            f"cannot tell the format of {name}: use .jsonl, .ndjson, .json or .csv"
        )
    return FORMATS[suffix]


def json_or_text(raw: str) -> Any:
    """A value that reads as JSON (numbers, true, null, {...}) is JSON; the rest is text."""
    try:
        return json.loads(raw)
    except ValueError:
        return raw


def read_items(text: str, fmt: str) -> list[FileItem]:
    """The events of a file's text in format ``fmt`` (``jsonl``, ``json`` or ``csv``);
    ImportFileError when the file as a whole cannot be read."""
    if fmt == "csv":
        return list(_csv_items(text))
    if fmt == "json":
        return _json_items(text)
    return list(_jsonl_items(text))


def _jsonl_items(text: str) -> Iterator[FileItem]:
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            yield FileItem(number, json.loads(line))
        except ValueError as exc:
            yield FileItem(number, None, f"not JSON: {exc}")


def _json_items(text: str) -> list[FileItem]:
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise ImportFileError(f"not valid JSON: {exc}") from None
    if isinstance(data, dict) and isinstance(data.get("events"), list):
        data = data["events"]
    if not isinstance(data, list):
        raise ImportFileError('expected a JSON list of events (or {"events": [...]})')
    return [FileItem(number, item) for number, item in enumerate(data, start=1)]


def _csv_items(text: str) -> Iterator[FileItem]:
    reader = csv.DictReader(text.splitlines(keepends=True))
    header = [h.strip() for h in reader.fieldnames or []]
    if "customer_id" not in header or "name" not in header:
        raise ImportFileError(
            "the first line must name the columns, including customer_id and name "
            "(and id, unless --generate-ids)"
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
        if record.get(None):
            yield FileItem(line, None, "more cells than the header has columns")
            continue
        event: dict[str, Any] = {}
        properties: dict[str, Any] = {}
        for column, value in record.items():
            if column is None or value is None or not value.strip():
                continue
            if column in COLUMNS:
                event[column] = value.strip()
            else:
                properties[column] = json_or_text(value.strip())
        if properties:
            event["properties"] = properties
        yield FileItem(line, event)


def judge(items: Sequence[FileItem], generate_ids: bool = False) -> list[Judged]:
    """Each item checked with the API's rules (`EventIn`), in order. An item without an
    ``id`` gets a new one with ``generate_ids``, else is refused: dedupe relies on ids."""
    readable = [item for item in items if item.problem is None]
    data = [_with_id(item.data) if generate_ids else item.data for item in readable]
    verdicts = iter(judge_items(data))
    judged = []
    for item in items:
        if item.problem is not None:
            judged.append(Judged(item, errors=[("-", item.problem)]))
            continue
        verdict = next(verdicts)
        if isinstance(verdict, EventIn):
            judged.append(Judged(item, verdict))
            continue
        errors = []
        for error in verdict:
            where = ".".join(str(part) for part in error["loc"]) or "-"
            missing_id = where == "id" and error["type"] == "missing"
            errors.append((where, NEEDS_ID if missing_id else error["msg"]))
        judged.append(Judged(item, errors=errors))
    return judged


def _with_id(data: Any) -> Any:
    if isinstance(data, dict) and data.get("id") in (None, ""):
        return {**data, "id": f"cli-{uuid.uuid4().hex}"}
    return data


async def send_in_batches(
    router: EventRouter,
    events: Sequence[EventIn],
    batch_size: int = MAX_BATCH,
    on_batch: Callable[[list[RoutedEvent]], None] | None = None,
) -> list[RoutedEvent]:
    """Send the events through `EventRouter.handle_batch`, ``batch_size`` at a time (one
    store transaction each); one answer per event, in order. ``on_batch`` hears of each
    batch's answers as it is done. An event without ``at`` happened when its batch is sent."""
    answers: list[RoutedEvent] = []
    for start in range(0, len(events), batch_size):
        now = datetime.now(UTC)
        batch = [
            IncomingEvent(e.id, e.customer_id, e.name, e.at or now, e.properties)
            for e in events[start : start + batch_size]
        ]
        routed = await router.handle_batch(batch, now)
        answers.extend(routed)
        if on_batch is not None:
            on_batch(routed)
    return answers


def summary(judged: Sequence[Judged], answers: Sequence[RoutedEvent]) -> dict[str, int]:
    """Counts: events read, per status (accepted, duplicate, unknown_customer, invalid), and
    the enrollments signalled and started."""
    statuses = Counter(answer.status for answer in answers)
    return {
        "events": len(judged),
        "accepted": statuses["accepted"],
        "duplicate": statuses["duplicate"],
        "unknown_customer": statuses["unknown_customer"],
        "invalid": sum(1 for j in judged if j.event is None),
        "signalled": sum(len(answer.signalled) for answer in answers),
        "started": sum(len(answer.enrolled) for answer in answers),
    }
