"""Reading a ``POST /api/events`` body: one event, or a batch whose items are judged one by one.

A single event that does not validate is a 422, as any other body. A batch is judged item
by item (`engine.services.event_input.judge_items`, which the CLI's files use too): a bad
item does not spoil the good ones, which are stored and routed, while the bad
one is answered ``invalid`` with its errors, located as FastAPI locates them
(``["body", "events", 3, "name"]``). Only a body that is not a batch at all (no
``events`` list of 1 to 1000 items, another key) is refused whole. The whole batch is
validated at once first, so a batch without a bad item costs one validation.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, TypeVar

from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, Field, TypeAdapter, ValidationError

from engine.api.schemas import MAX_BATCH, EventIn, Strict
from engine.services.event_input import judge_items, text


class _BatchShape(Strict):
    """A batch before its items are looked at."""

    events: list[Any] = Field(min_length=1, max_length=MAX_BATCH)


M = TypeVar("M", bound=BaseModel)
_ONE = TypeAdapter(EventIn)
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
    return [
        InvalidItem(_item_id(item), errors=[_located(n, e) for e in judged])
        if isinstance(judged, list)
        else judged
        for n, (item, judged) in enumerate(zip(raw, judge_items(raw), strict=True))
    ]


def _located(index: int, error: dict[str, Any]) -> dict[str, Any]:
    """An item's error located in the body, as FastAPI locates errors."""
    return {**error, "loc": ["body", "events", index, *error["loc"]]}


def _item_id(item: Any) -> str:
    """A bad item's ``id`` when it is text (to help find it), else empty."""
    value = item.get("id") if isinstance(item, dict) else None
    return text(value) if isinstance(value, str) else ""
