"""Request and response bodies of the HTTP API; the OpenAPI document is generated from them.

The `...Out` models read store rows directly (``CustomerOut.model_validate(row)``): a field
named differently from its column takes the column as its validation alias, which leaves
the JSON (serialized by field name) unchanged; the field name still validates too.
"""

from __future__ import annotations

import dataclasses
import json
from datetime import date, datetime
from typing import Annotated, Any

from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict, Field

from engine.scopes import Scope
from engine.services.tokens import DEFAULT_EXPIRY, TokenInfo

EMAIL = r"^[^@\s]+@[^@\s]+\.[^@\s]+$"
ID = r"^[^\x00-\x1f\x7f]+$"
"""Ids are any text without control characters (PostgreSQL refuses NUL in text)."""


def _strict_json(value: dict[str, Any]) -> dict[str, Any]:
    """Refuse what parses but cannot be stored as JSON: NaN, Infinity, lone surrogates."""
    try:
        json.dumps(value, allow_nan=False, ensure_ascii=False).encode("utf-8")
    except ValueError as exc:  # UnicodeEncodeError is a ValueError
        raise ValueError(f"not storable as JSON: {exc}") from None
    return value


JSONObject = Annotated[dict[str, Any], AfterValidator(_strict_json)]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class FromRow(BaseModel):
    """A response body read from a store row's attributes."""

    model_config = ConfigDict(from_attributes=True, populate_by_name=True)


class EventIn(Strict):
    """A lifecycle or usage event from the product or a CRM."""

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
    properties: JSONObject = Field(default_factory=dict)


class EventBatch(Strict):
    events: list[EventIn] = Field(min_length=1, max_length=1000)


class EventResult(BaseModel):
    id: str
    status: str = Field(description="accepted | duplicate | unknown_customer")
    signalled: list[str] = Field(default_factory=list)
    enrolled: list[str] = Field(default_factory=list)
    notes: list[str] = Field(default_factory=list)


class EventsResponse(BaseModel):
    results: list[EventResult]


class ContactIn(Strict):
    email: str = Field(pattern=EMAIL, max_length=320)
    first_name: str | None = Field(default=None, max_length=255)
    last_name: str | None = Field(default=None, max_length=255)
    role: str | None = Field(default=None, max_length=64)


class CustomerIn(Strict):
    """A customer as a CRM sends it; contacts are upserted by email, never deleted."""

    name: str = Field(min_length=1, max_length=255)
    segment: str | None = Field(default=None, max_length=64)
    timezone: str = Field(default="UTC", max_length=64, examples=["Europe/Berlin"])
    owner: str | None = Field(default=None, pattern=EMAIL, description="The CSM's email.")
    renewal_date: date | None = None
    health_score: int | None = Field(default=None, ge=0, le=100)
    attributes: JSONObject = Field(default_factory=dict)
    tags: list[str] = Field(default_factory=list)
    contacts: list[ContactIn] | None = None


class ContactOut(FromRow):
    email: str
    first_name: str | None
    last_name: str | None
    role: str | None
    unsubscribed: bool


class CustomerOut(FromRow):
    id: str
    name: str
    segment: str | None
    timezone: str
    owner: str | None = Field(validation_alias="owner_email")
    renewal_date: date | None
    health_score: int | None
    attributes: dict[str, Any]
    tags: list[str]
    contacts: list[ContactOut]


class TeamMemberIn(Strict):
    name: str = Field(min_length=1, max_length=255)
    manager: str | None = Field(default=None, pattern=EMAIL)
    roles: list[str] = Field(default_factory=list)
    is_admin: bool = False
    password: str | None = Field(
        default=None, min_length=8, max_length=200, description="Sets the UI login password."
    )


class TaskOut(FromRow):
    id: str
    enrollment_id: str | None
    playbook_id: str | None
    step_id: str | None
    customer_id: str | None
    assignee: str | None = Field(validation_alias="assignee_email")
    title: str
    description: str | None
    due_at: datetime | None
    priority: str
    outcomes: list[str]
    status: str
    outcome: str | None
    escalation_of: str | None


class TaskComplete(Strict):
    """The task is recorded as completed by the caller (``api:<token name>``); there is no
    ``completed_by`` to fill in, and one sent is refused (422) rather than ignored."""

    outcome: str = Field(min_length=1, max_length=64)
    note: str | None = Field(default=None, max_length=5000)


class TaskReassign(Strict):
    assignee: str = Field(pattern=EMAIL)


class EnrollIn(Strict):
    playbook: str = Field(min_length=1, max_length=128)
    customer_id: str = Field(min_length=1, max_length=255, pattern=ID)


class EnrollmentOut(FromRow):
    id: str = Field(validation_alias="workflow_id")
    playbook: str = Field(validation_alias="playbook_id")
    version: str
    customer_id: str
    status: str
    current_step: str | None
    outcome: str | None
    started_at: datetime
    ended_at: datetime | None


class SkipIn(Strict):
    step: str = Field(min_length=1, max_length=128)
    reason: str | None = None


class CancelIn(Strict):
    reason: str = "cancelled by an operator"


class TokenIn(Strict):
    """A new API token (`POST /api/tokens`, admin only)."""

    name: str = Field(min_length=1, max_length=255, pattern=ID, examples=["crm-sync"])
    scopes: list[Scope] = Field(min_length=1, max_length=len(Scope), examples=[["ingest"]])
    expires: str = Field(
        default=DEFAULT_EXPIRY,
        max_length=32,
        description="Lifetime from now: a duration such as '90d' or '12h', or 'never'.",
    )


class TokenOut(BaseModel):
    """An API token as listed: everything but its secret."""

    id: int
    name: str
    scopes: list[str]
    state: str = Field(description="active, expired or revoked")
    created_at: datetime
    created_by: str | None
    expires_at: datetime | None
    last_used_at: datetime | None
    revoked_at: datetime | None

    @classmethod
    def of(cls, info: TokenInfo) -> TokenOut:
        return cls(state=info.state, **dataclasses.asdict(info))


class TokenCreated(TokenOut):
    """A token just created, with its secret: shown this once, never again."""

    token: str
