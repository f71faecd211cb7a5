"""The simulation's inputs: the customer and team fixtures, and what happens to them when.

A customer file (``playbooks/examples/*.yaml``) and a team file load into `SimCustomer` and
`SimTeamMember`; ``--event`` and ``--complete-task`` specs parse into `ScheduledEvent` and
`ScheduledCompletion`, which `schedule` puts in time order; ``--trigger`` parses into the
`TriggerEvent` that enrolls the customer in an ``on_event`` playbook. Bad input raises
`SimulationInputError` with the file, line and field, or the spec, in its message.
"""

from __future__ import annotations

import json
import re
from datetime import date, datetime, time, timedelta, tzinfo
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field, ValidationError, field_validator

from engine.errors import SimulationInputError, YamlSourceError
from engine.language.loader import parse_text
from engine.language.yaml_source import load_yaml
from engine.store import repository
from engine.store.models import check_timezone


class SimContact(BaseModel):
    model_config = {"extra": "forbid"}

    email: str = Field(pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
    first_name: str | None = None
    last_name: str | None = None
    role: str | None = None
    unsubscribed: bool = False
    # The contact's own zone, locale and country (None: the customer's).
    timezone: str | None = None
    locale: str | None = None
    country: str | None = None


class SimCustomer(BaseModel):
    """One customer, as in ``playbooks/examples/*.yaml``."""

    model_config = {"extra": "forbid"}

    id: str = Field(min_length=1)
    name: str = Field(min_length=1)
    segment: str | None = None
    timezone: str = "UTC"
    country: str | None = None
    locale: str | None = None
    owner: str | None = None
    renewal_date: date | None = None
    health_score: int | None = Field(default=None, ge=0, le=100)
    attributes: dict[str, Any] = Field(default_factory=dict)
    tags: list[str] = Field(default_factory=list)
    contacts: list[SimContact] = Field(default_factory=list)

    def customer_data(self) -> repository.CustomerData:
        """This customer as the store's upsert input (contacts included)."""
        return repository.CustomerData(
            id=self.id,
            name=self.name,
            segment=self.segment,
            timezone=self.timezone,
            country=self.country,
            locale=self.locale,
            owner_email=self.owner,
            renewal_date=self.renewal_date,
            health_score=self.health_score,
            attributes=self.attributes,
            tags=self.tags,
            contacts=[
                repository.ContactData(
                    email=c.email,
                    first_name=c.first_name,
                    last_name=c.last_name,
                    role=c.role,
                    timezone=c.timezone,
                    locale=c.locale,
                    country=c.country,
                )
                for c in self.contacts
            ],
        )

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        return check_timezone(value)


class SimTeamMember(BaseModel):
    model_config = {"extra": "forbid"}

    email: str
    name: str
    manager: str | None = None
    roles: list[str] = Field(default_factory=list)


class ScheduledEvent(BaseModel):
    """An event delivered on ``day`` (from the start), at ``at`` local time if given."""

    day: int = Field(ge=0)
    at: time | None = None
    name: str
    properties: dict[str, Any] = Field(default_factory=dict)


class TriggerEvent(BaseModel):
    """The event that enrolls the customer (``--trigger``), delivered at the start: what
    ``event.properties`` reads in the trigger's ``if`` and in the playbook's templates."""

    name: str
    properties: dict[str, Any] = Field(default_factory=dict)


class ScheduledCompletion(BaseModel):
    """The CSM completes the open task of ``step`` on ``day`` with ``outcome``."""

    step: str
    day: int = Field(ge=0)
    at: time | None = None
    outcome: str | None = None


_EVENT = re.compile(r"^(?P<day>\d+)(?:@(?P<at>\d{1,2}:\d{2}))?\s+(?P<name>[\w.:-]+)(?P<rest>.*)$")
_TRIGGER = re.compile(r"^(?P<name>[\w.:-]+)(?P<rest>.*)$")
_COMPLETE = re.compile(
    r"^(?P<step>[A-Za-z0-9_-]+)@(?P<day>\d+)(?:@(?P<at>\d{1,2}:\d{2}))?(?::(?P<outcome>[a-z0-9_]+))?$"
)


def parse_event(spec: str) -> ScheduledEvent:
    """``"<day>[@HH:MM] <name> [key=value ...]"``; values read as JSON when they can."""
    match = _EVENT.match(spec.strip())
    if not match:
        raise SimulationInputError(
            f"--event {spec!r}: expected '<day>[@HH:MM] <event name> [key=value ...]', "
            "e.g. '3@10:00 integration.connected source=salesforce'"
        )
    properties = _properties("--event", spec, match["rest"])
    at = None
    if match["at"]:
        try:
            at = time.fromisoformat(match["at"].zfill(5))
        except ValueError:
            raise SimulationInputError(f"--event {spec!r}: '{match['at']}' is not HH:MM") from None
    return ScheduledEvent(day=int(match["day"]), at=at, name=match["name"], properties=properties)


def parse_trigger(spec: str) -> TriggerEvent:
    """``"<name> [key=value ...]"``; values read as JSON when they can."""
    match = _TRIGGER.match(spec.strip())
    if not match or (match["rest"] and not match["rest"][0].isspace()):
        raise SimulationInputError(
            f"--trigger {spec!r}: expected '<event name> [key=value ...]', "
            "e.g. 'health.changed score=30'"
        )
    return TriggerEvent(
        name=match["name"], properties=_properties("--trigger", spec, match["rest"])
    )


def _properties(option: str, spec: str, rest: str) -> dict[str, Any]:
    properties: dict[str, Any] = {}
    for pair in rest.split():
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise SimulationInputError(f"{option} {spec!r}: '{pair}' is not key=value")
        try:
            properties[key] = json.loads(value)
        except ValueError:
            properties[key] = value
    return properties


def parse_completion(spec: str) -> ScheduledCompletion:
    """``"<step id>@<day>[@HH:MM][:<outcome>]"``."""
    match = _COMPLETE.match(spec.strip())
    if not match:
        raise SimulationInputError(
            f"--complete-task {spec!r}: expected '<step id>@<day>[@HH:MM][:<outcome>]', "
            "e.g. 'kickoff@2@14:00:held'"
        )
    try:
        at = time.fromisoformat(match["at"].zfill(5)) if match["at"] else None
    except ValueError:
        raise SimulationInputError(f"--complete-task {spec!r}: bad time") from None
    return ScheduledCompletion(
        step=match["step"], day=int(match["day"]), at=at, outcome=match["outcome"]
    )


def load_customer(path: Path) -> SimCustomer:
    """Read one customer from YAML or JSON; errors name the file, line and field."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise SimulationInputError(f"{path}: cannot read customer file: {exc.strerror}") from None
    loaded = parse_text(text, str(path), SimCustomer)
    if loaded.model is None:
        raise SimulationInputError("\n".join(str(d) for d in loaded.diagnostics))
    return loaded.model


def load_team(path: Path) -> list[SimTeamMember]:
    """Read the team (a YAML list of people); errors name the file, line and field."""
    try:
        doc = load_yaml(path.read_text(encoding="utf-8"), str(path))
    except (OSError, YamlSourceError) as exc:
        raise SimulationInputError(str(exc)) from None
    if not isinstance(doc.data, list):
        raise SimulationInputError(f"{path}:1:1: a team file is a list of people")
    members = []
    for index, item in enumerate(doc.data):
        try:
            members.append(SimTeamMember.model_validate(item))
        except ValidationError as exc:
            pos = doc.where((index,))
            problems = "; ".join(
                f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors()
            )
            raise SimulationInputError(f"{path}:{pos.line}:{pos.column}: {problems}") from None
    return members


def schedule(
    start: datetime,
    tz: tzinfo,
    events: list[ScheduledEvent],
    completions: list[ScheduledCompletion],
) -> list[tuple[datetime, ScheduledEvent | ScheduledCompletion]]:
    """Every event and completion at its moment (``at`` is the customer's ``tz``), in order."""

    def moment(day: int, at: time | None) -> datetime:
        when = start + timedelta(days=day)
        if at is None:
            return when
        return datetime.combine(when.astimezone(tz).date(), at, tzinfo=tz)

    actions: list[ScheduledEvent | ScheduledCompletion] = [*events, *completions]
    out = [(moment(a.day, a.at), a) for a in actions]
    return sorted(out, key=lambda item: item[0])


def describe_action(action: ScheduledEvent | ScheduledCompletion) -> str:
    """How a warning names a scheduled action."""
    if isinstance(action, ScheduledEvent):
        return f"event {action.name} on day {action.day}"
    return f"completing {action.step} on day {action.day}"
