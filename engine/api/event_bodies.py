"""Reading a ``POST /api/events`` body: one event, or a batch whose items are judged one by one.

A single event that does not validate is a 422, as any other body. A batch is judged item
by item: a bad item does not spoil the good ones, which are stored and routed, while the bad
one is answered ``invalid`` with its errors, located as FastAPI locates them
(``["body", "events", 3, "name"]``). Only a body that is not a batch at all (no
``events`` list of 1 to 1000 items, another key) is refused whole. The whole batch is
validated at once first, so a batch without a bad item costs one validation.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any, TypeVar

from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, Field, TypeAdapter, ValidationError

from engine.api.schemas import MAX_BATCH, EventIn, Strict


class _BatchShape(Strict):
    """A batch before its items are looked at."""

    events: list[Any] = Field(min_length=1, max_length=MAX_BATCH)


M = TypeVar("M", bound=BaseModel)
_ONE = TypeAdapter(EventIn)
_ITEMS = TypeAdapter(list[EventIn])
_SHAPE = TypeAdapter(_BatchShape)


@dataclass
class InvalidItem:
    """The answer to a batch item that does not validate (an `EventResult`)."""

    id: str
    status: str = "invalid"
    signalled: list[str] = field(default_factory=list)
    enrolled: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    errors: list[dict[str, Any]] = field(default_factory=list)


@dataclass(frozen=True)
class PostedEvents:
    """A body read: whether it was a batch, and per item the event or why it is refused."""

    batch: bool
    items: list[EventIn | InvalidItem]

    @property
    def valid(self) -> list[EventIn]:
        return [item for item in self.items if isinstance(item, EventIn)]

    def errors(self) -> list[dict[str, Any]]:
        """Every item's errors, in order (the 422 of a batch without a good item)."""
        return [e for item in self.items if isinstance(item, InvalidItem) for e in item.errors]


def read_events(body: Any) -> PostedEvents:
    """The events of a parsed JSON body; RequestValidationError (a 422) if it is neither
    a valid event nor a batch."""
    if isinstance(body, dict) and "events" in body:
        shape = _validate(_SHAPE, body)
        return PostedEvents(True, _items(shape.events))
    return PostedEvents(False, [_validate(_ONE, body)])


def _validate(adapter: TypeAdapter[M], body: Any) -> M:
    try:
        return adapter.validate_python(body)
    except ValidationError as exc:
        raise RequestValidationError(
            [{**e, "loc": ("body", *e["loc"])} for e in exc.errors(include_url=False)]
        ) from None


def _items(raw: list[Any]) -> list[EventIn | InvalidItem]:
    try:
        return list(_ITEMS.validate_python(raw))
    except ValidationError as exc:
        errors = exc.errors(include_url=False, include_input=False, include_context=False)
    bad: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for error in errors:
        index, *loc = error["loc"]
        assert isinstance(index, int)
        bad[index].append(
            {
                "loc": ["body", "events", index, *(_text(p) for p in loc)],
                "msg": _text(error["msg"]),
                "type": error["type"],
            }
        )
    return [
        InvalidItem(_item_id(item), errors=bad[n]) if n in bad else _ONE.validate_python(item)
        for n, item in enumerate(raw)
    ]


def _item_id(item: Any) -> str:
    """A bad item's ``id`` when it is text (to help find it), else empty."""
    value = item.get("id") if isinstance(item, dict) else None
    return _text(value) if isinstance(value, str) else ""


def _text(value: Any) -> Any:
    """Text that can be written as JSON: lone surrogates shown escaped."""
    if isinstance(value, str):
        return value.encode("utf-8", "backslashreplace").decode()
    return value
