"""Request and response bodies of the HTTP API; the OpenAPI document is generated from them.

The `...Out` models read store rows directly (``CustomerOut.model_validate(row)``): a field
named differently from its column takes the column as its validation alias, which leaves
the JSON (serialized by field name) unchanged; the field name still validates too.

Every field is bounded: text by length (names and other values that can reach an email
header are also one line), lists by count, and the free-form JSON objects (event
``properties``, customer ``attributes``) by their size as JSON, so a 422 names the field
that is too large before anything is stored. The body as a whole is capped before it is
parsed (`engine.api.limits`). An event's rules (`EventIn`, its limits) live in
`engine.services.event_input`, shared with the CLI, and are re-exported here.
"""

from __future__ import annotations

import dataclasses
from datetime import date, datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from engine.addresses import MAX_EMAIL_LENGTH, NO_CONTROL, check_email
from engine.scopes import Scope
from engine.services.event_input import ID, MAX_BATCH, EventIn, storable_json
from engine.services.event_input import MAX_PROPERTIES_BYTES as MAX_PROPERTIES_BYTES
from engine.services.event_input import Properties as Properties
from engine.services.tokens import DEFAULT_EXPIRY, TokenInfo

_ADDRESS_PART = r'[^@\s\x00-\x1f\x7f"<>()\[\]\\,;:]+'
EMAIL = rf"^{_ADDRESS_PART}@{_ADDRESS_PART}\.{_ADDRESS_PART}$"
"""A first sieve for addresses (no quotes, brackets, markup or whitespace); `Email` fields
are then checked by ``email-validator`` (`engine.addresses.check_email`)."""
MAX_ATTRIBUTES_BYTES = 64 * 1024
"""A customer's ``attributes``, as JSON (UTF-8)."""
MAX_REASON_LENGTH = 1000
"""Free-text reasons (skip, cancel)."""

Email = Annotated[
    str,
    Field(pattern=EMAIL, max_length=MAX_EMAIL_LENGTH, json_schema_extra={"format": "email"}),
    AfterValidator(check_email),
]
Line = Annotated[str, Field(pattern=NO_CONTROL)]
"""One line of text: names and values that can reach an email header."""
Label = Annotated[str, Field(min_length=1, max_length=64, pattern=NO_CONTROL)]


Attributes = Annotated[dict[str, Any], storable_json(MAX_ATTRIBUTES_BYTES)]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class FromRow(BaseModel):
    """A response body read from a store row's attributes."""

    model_config = ConfigDict(from_attributes=True, populate_by_name=True)


class EventBatch(Strict):
    events: list[EventIn] = Field(min_length=1, max_length=MAX_BATCH)


class FieldError(BaseModel):
    """Why a batch item was refused, located as in a 422 (``["body", "events", 3, "name"]``)."""

    loc: list[str | int]
    msg: str
    type: str


class EventResult(BaseModel):
    id: str = Field(description="The event's id (an invalid item's, when it is text; else empty).")
    status: str = Field(description="accepted | duplicate | unknown_customer | invalid")
    signalled: list[str] = Field(default_factory=list)
    enrolled: list[str] = Field(default_factory=list)
    notes: list[str] = Field(default_factory=list)
    errors: list[FieldError] = Field(
        default_factory=list,
        exclude_if=lambda errors: not errors,
        description="Only for an `invalid` item of a batch: why it was refused.",
    )


class EventsResponse(BaseModel):
    results: list[EventResult]


class ContactIn(Strict):
    email: Email
    first_name: Line | None = Field(default=None, max_length=255)
    last_name: Line | None = Field(default=None, max_length=255)
    role: Line | None = Field(default=None, max_length=64)
    timezone: str | None = Field(
        default=None, max_length=64, description="The contact's own zone (else the customer's)."
    )
    locale: str | None = Field(default=None, max_length=35, examples=["ko"])
    country: str | None = Field(default=None, max_length=2, examples=["KR"])


class CustomerIn(Strict):
    """A customer as a CRM sends it; contacts are upserted by email, never deleted."""

    name: Line = Field(min_length=1, max_length=255)
    segment: Line | None = Field(default=None, max_length=64)
    timezone: str = Field(default="UTC", max_length=64, examples=["Europe/Berlin"])
    country: str | None = Field(default=None, max_length=2, examples=["DE"])
    locale: str | None = Field(default=None, max_length=35, examples=["de"])
    owner: Email | None = Field(default=None, description="The CSM's email.")
    renewal_date: date | None = None
    health_score: int | None = Field(default=None, ge=0, le=100)
    attributes: Attributes = Field(
        default_factory=dict, description=f"At most {MAX_ATTRIBUTES_BYTES} bytes as JSON."
    )
    tags: list[Label] = Field(default_factory=list, max_length=100)
    contacts: list[ContactIn] | None = Field(default=None, max_length=1000)


class ContactOut(FromRow):
    email: str
    first_name: str | None
    last_name: str | None
    role: str | None
    unsubscribed: bool
    timezone: str | None = None
    locale: str | None = None
    country: str | None = None


class CustomerOut(FromRow):
    id: str
    name: str
    segment: str | None
    timezone: str
    country: str | None = None
    locale: str | None = None
    owner: str | None = Field(validation_alias="owner_email")
    renewal_date: date | None
    health_score: int | None
    attributes: dict[str, Any]
    tags: list[str]
    contacts: list[ContactOut]


class TeamMemberIn(Strict):
    name: Line = Field(min_length=1, max_length=255)
    manager: Email | None = None
    roles: list[Label] = Field(default_factory=list, max_length=20)
    is_admin: bool = False
    password: str | None = Field(
        default=None, min_length=8, max_length=200, description="Sets the UI login password."
    )


class TimeOff(BaseModel):
    first: date = Field(description="First day off (inclusive).")
    last: date = Field(description="Last day off (inclusive).")


class CalendarIn(Strict):
    """When a member works; parts left out stay as they are."""

    timezone: str | None = Field(default=None, max_length=64, examples=["Europe/Berlin"])
    working_days: list[Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]] | None = None
    hours: str | None = Field(
        default=None, pattern=r"^\d{1,2}:\d{2}-\d{1,2}:\d{2}$", examples=["09:00-17:30"]
    )
    time_off: list[TimeOff] | None = Field(default=None, max_length=100)


class CalendarOut(BaseModel):
    email: str
    timezone: str
    working_days: list[str]
    hours: str
    time_off: list[TimeOff]


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
    snoozed_until: datetime | None = None
    cancel_reason: str | None = None
    assigned_by: str | None = None
    undo_until: datetime | None = Field(
        default=None, description="Until then the completion can be undone (POST .../undo)."
    )


class TaskCompleteMany(Strict):
    """Complete several tasks with one outcome; each is completed or refused on its own."""

    task_ids: list[str] = Field(min_length=1, max_length=200)
    outcome: str = Field(min_length=1, max_length=64)
    note: str | None = Field(default=None, max_length=5000)


class TaskCompleteManyOut(BaseModel):
    completed: list[TaskOut]
    refused: dict[str, str] = Field(description="Task id -> why it was not completed.")


class TaskSnooze(Strict):
    until: datetime | None = Field(description="Hidden from the inbox until then; null wakes it.")


class TaskCommentIn(Strict):
    body: str = Field(min_length=1, max_length=5000)


class TaskCommentOut(FromRow):
    id: int
    task_id: str
    author: str
    body: str
    created_at: datetime


class TaskComplete(Strict):
    """The task is recorded as completed by the caller (``api:<token name>``); there is no
    ``completed_by`` to fill in, and one sent is refused (422) rather than ignored."""

    outcome: str = Field(min_length=1, max_length=64)
    note: str | None = Field(default=None, max_length=5000)


class TaskReassign(Strict):
    assignee: Email


class EnrollIn(Strict):
    playbook: str = Field(min_length=1, max_length=128)
    customer_id: str = Field(min_length=1, max_length=255, pattern=ID)


class EnrollmentOut(FromRow):
    id: str = Field(validation_alias="workflow_id")
    # One enrollment ID can have several runs (re-enrollment); each has its own key.
    run: str = Field(validation_alias="enrollment_key")
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
    reason: str | None = Field(default=None, max_length=MAX_REASON_LENGTH)


class CancelIn(Strict):
    reason: str = Field(default="cancelled by an operator", max_length=MAX_REASON_LENGTH)


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
