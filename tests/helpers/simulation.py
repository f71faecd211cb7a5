"""Helpers for the simulation tests: small customers and timeline lookups."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from engine.simulation import SimCustomer, Timeline, TimelineEntry

OWNER = "aiko.tanaka@acme.example"  # in playbooks/examples/team.yaml
MANAGER = "kenji.watanabe@acme.example"  # Aiko's manager there

CONTACTS: list[dict[str, Any]] = [
    {"email": "ada@globex.example", "first_name": "Ada", "role": "admin"},
    {"email": "carl@globex.example", "first_name": "Carl", "role": "champion"},
    {"email": "sue@globex.example", "first_name": "Sue", "role": "sponsor"},
]


def customer(timezone: str, **fields: Any) -> SimCustomer:
    """A small customer; `segment` smb skips onboarding's kickoff task."""
    data: dict[str, Any] = {
        "id": f"globex-{timezone.lower().replace('/', '-')}",
        "name": "Globex",
        "segment": "smb",
        "timezone": timezone,
        "owner": OWNER,
        "health_score": 80,
        "contacts": CONTACTS,
    }
    data.update(fields)
    return SimCustomer.model_validate(data)


def at(timezone: str, *parts: int) -> datetime:
    """A wall-clock moment in ``timezone``."""
    return datetime(*parts, tzinfo=ZoneInfo(timezone))  # type: ignore[misc]


def local(moment: datetime, timezone: str) -> datetime:
    return moment.astimezone(ZoneInfo(timezone))


def entries(timeline: Timeline, kind: str, step: str | None = None) -> list[TimelineEntry]:
    return [e for e in timeline.timeline if e.kind == kind and (step is None or e.step == step)]


def one(timeline: Timeline, kind: str, step: str | None = None) -> TimelineEntry:
    found = entries(timeline, kind, step)
    assert len(found) == 1, (kind, step, show(timeline))
    return found[0]


def index(timeline: Timeline, entry: TimelineEntry) -> int:
    return next(i for i, e in enumerate(timeline.timeline) if e is entry)


def show(timeline: Timeline) -> str:
    """The timeline as text, for assertion messages."""
    lines = [f"outcome={timeline.outcome} warnings={timeline.warnings}"]
    lines += [
        f"{e.at:%a %Y-%m-%d %H:%M %z} d{e.day} {e.step} {e.kind} {e.detail}"
        for e in timeline.timeline
    ]
    return "\n".join(lines)


def near(actual: datetime | None, expected: datetime, slack: float = 60.0) -> bool:
    """Within ``slack`` seconds: activities take a few virtual milliseconds."""
    return actual is not None and abs((actual - expected).total_seconds()) < slack
