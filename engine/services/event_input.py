"""What an incoming event must be, whichever door it comes in by: ``POST /api/events``
(`engine.api.schemas` re-exports these) and ``playbook events send --file``.

`EventIn` is the one set of rules; `judge_items` applies it to a list item by item, so a
bad item does not spoil the good ones. Here rather than in `engine.api` so the CLI checks
events exactly as the API does without importing the HTTP layer.
"""

from __future__ import annotations

import json
from collections import defaultdict
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    TypeAdapter,
    ValidationError,
)
from pydantic_core import PydanticSerializationError, to_json

ID = r"^[^\x00-\x1f\x7f]+$"
"""Ids are any text without control characters (PostgreSQL refuses NUL in text)."""
MAX_PROPERTIES_BYTES = 32 * 1024
"""An event's ``properties``, as JSON (UTF-8)."""
MAX_BATCH = 1000
"""Events in one ``POST /api/events`` batch (and one store transaction of the CLI's)."""


def storable_json(limit: int) -> AfterValidator:
    """Refuse what parses but cannot be stored as JSON (NaN, Infinity, lone surrogates),
    and objects larger than ``limit`` bytes as JSON (``json.dumps``, UTF-8)."""

    def check(value: dict[str, Any]) -> dict[str, Any]:
        # pydantic-core's compact encoding first (several times faster): the standard
        # library's adds at most one space per byte of it, so twice its size under the
        # limit settles most objects; the rest, and NaN or surrogates, are measured exactly.
        try:
            compact = to_json(value, inf_nan_mode="constants")
        except PydanticSerializationError:
            compact = None
        if (
            compact is not None
            and 2 * len(compact) <= limit
            and b"NaN" not in compact
            and b"Infinity" not in compact
        ):
            return value
        try:
            size = len(json.dumps(value, allow_nan=False, ensure_ascii=False).encode("utf-8"))
        except ValueError as exc:  # UnicodeEncodeError is a ValueError
            raise ValueError(f"not storable as JSON: {exc}") from None
        if size > limit:
            raise ValueError(f"{size} bytes as JSON; at most {limit} are accepted")
        return value

    return AfterValidator(check)


Properties = Annotated[dict[str, Any], storable_json(MAX_PROPERTIES_BYTES)]


class EventIn(BaseModel):
    """A lifecycle or usage event from the product or a CRM."""

    model_config = ConfigDict(extra="forbid")

    id: str = Field(
        min_length=1, max_length=255, pattern=ID, description="Sender's unique id (dedupe)."
    )
    customer_id: str = Field(min_length=1, max_length=255, pattern=ID)
    name: str = Field(
        min_length=1, max_length=255, pattern=r"^[\w.:-]+$", examples=["integration.connected"]
    )
    at: AwareDatetime | None = Field(
        default=None,
        description="When it happened, with a UTC offset (default: now).",
        examples=["2026-01-05T10:00:00+01:00"],
    )
    properties: Properties = Field(
        default_factory=dict, description=f"At most {MAX_PROPERTIES_BYTES} bytes as JSON."
    )


ItemErrors = list[dict[str, Any]]
"""A bad item's errors: ``loc`` (within the item), ``msg`` and ``type`` each."""

_ONE = TypeAdapter(EventIn)
_ITEMS = TypeAdapter(list[EventIn])


def judge_items(raw: list[Any]) -> list[EventIn | ItemErrors]:
    """Each item as an `EventIn`, or its errors; the whole list is validated at once
    first, so a list without a bad item costs one validation."""
    try:
        return list(_ITEMS.validate_python(raw))
    except ValidationError as exc:
        errors = exc.errors(include_url=False, include_input=False, include_context=False)
    bad: dict[int, ItemErrors] = defaultdict(list)
    for error in errors:
        index, *loc = error["loc"]
        assert isinstance(index, int)
        bad[index].append(
            {"loc": [text(p) for p in loc], "msg": text(error["msg"]), "type": error["type"]}
        )
    return [bad[n] if n in bad else _ONE.validate_python(item) for n, item in enumerate(raw)]


def text(value: Any) -> Any:
    """Text that can be written as JSON: lone surrogates shown escaped."""
    if isinstance(value, str):
        return value.encode("utf-8", "backslashreplace").decode()
    return value
