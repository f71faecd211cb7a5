"""Health scorecards, ``playbooks/health.yaml``: measures, weights, bands, segment overrides.

One scorecard per project, versioned with the playbooks and checked like them (every error
at ``path:line:col``, a JSON Schema for editors)::

    user_property: user            # the event property naming who did it
    bands: {red: 0, yellow: 40, green: 70}     # a band starts at its score
    measures:
      weekly_active_users:
        event: session.started     # from events over a window...
        window: 7d
        measure: distinct_users    # or count, active_days, user_share, days_since, latest
        linear: {from: 0, to: 10}  # ...mapped to 0-100 linearly
        weight: 40
      nps:
        field: attributes.nps      # ...or from a customer field
        thresholds: [{at_least: 50, score: 100}, {at_least: 0, score: 60}, {score: 20}]
        weight: 20
    segments:
      enterprise: {weights: {weekly_active_users: 60}}

A measure with no data (the customer never sent its event, the field is not set) is
*unknown*: it counts neither for nor against the score, and the score says how much of its
weight was known. Scoring is pure (`score_customer`): the store feeds it the customer's
fields and events (`engine.store.health`), and so does the simulator.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, model_validator

from engine.language.diagnostics import Diagnostic, did_you_mean
from engine.language.durations import parse_duration
from engine.language.expressions import CUSTOMER_FIELDS
from engine.language.loader import LoadedFile, parse_text, read_source
from engine.language.schema import ID_PATTERN, Duration, Model

HEALTH_FILE = "health.yaml"
UNKNOWN_BAND = "unknown"
EventMeasure = Literal[
    "count", "active_days", "distinct_users", "user_share", "days_since", "latest"
]
Score = Annotated[float, Field(ge=0, le=100)]
MeasureName = Annotated[str, Field(pattern=ID_PATTERN)]


class Threshold(Model):
    """Values at or above ``at_least`` score ``score``; the first match wins, so list them
    from the highest; one without ``at_least`` catches the rest."""

    at_least: float | None = None
    score: Score


class Linear(Model):
    """``from`` scores 0 and ``to`` scores 100, straight between, clamped outside; write
    ``from`` above ``to`` when less is better (open tickets)."""

    from_: float = Field(alias="from")
    to: float

    @model_validator(mode="after")
    def _distinct(self) -> Linear:
        if self.from_ == self.to:
            raise ValueError("'from' and 'to' must differ")
        return self


class Scoring(Model):
    """How a raw value maps to 0-100: thresholds or a linear range (exactly one)."""

    thresholds: list[Threshold] | None = Field(default=None, min_length=1)
    linear: Linear | None = None

    @model_validator(mode="after")
    def _exactly_one_scoring(self) -> Scoring:
        if (self.thresholds is None) == (self.linear is None):
            raise ValueError("a measure needs exactly one of 'thresholds' or 'linear'")
        return self

    def points(self, value: float) -> float:
        """The 0-100 score of a raw value."""
        if self.linear is not None:
            span = self.linear.to - self.linear.from_
            return round(min(100.0, max(0.0, (value - self.linear.from_) / span * 100)), 1)
        for threshold in self.thresholds or ():
            if threshold.at_least is None or value >= threshold.at_least:
                return threshold.score
        return 0.0


class Measure(Scoring):
    """One input to the score: an event statistic over a window, or a customer field."""

    label: str | None = Field(default=None, description="The measure's name for people.")
    event: str | None = Field(default=None, description="Event name the measure counts.")
    where: dict[str, Any] = Field(
        default_factory=dict, description="Only events whose properties match these values."
    )
    window: Duration = Field(default="30d", description="How far back events count.")
    measure: EventMeasure = Field(
        default="count",
        description="count: events; active_days: distinct days with one; distinct_users: "
        "distinct users; user_share: % of the window's active users who sent it; "
        "days_since: days since the last one; latest: the last one's numeric 'value' "
        "property (a metric such as weekly_active_users).",
    )
    field: str | None = Field(
        default=None,
        description="A customer field, e.g. 'attributes.nps' or 'attributes.open_tickets'.",
    )
    per: str | None = Field(
        default=None,
        description="Divide the field by this field (e.g. seats used per seat bought), in %.",
    )
    weight: Annotated[float, Field(gt=0, le=1000)] = 1

    @model_validator(mode="after")
    def _one_source(self) -> Measure:
        if (self.event is None) == (self.field is None):
            raise ValueError("a measure needs exactly one of 'event' or 'field'")
        if self.per is not None and self.field is None:
            raise ValueError("'per' divides a 'field' measure")
        return self

    @property
    def window_seconds(self) -> int:
        return parse_duration(self.window)


class SegmentOverride(Model):
    """How one segment is scored differently: other weights, other scoring of a measure."""

    weights: dict[MeasureName, Annotated[float, Field(ge=0, le=1000)]] = Field(
        default_factory=dict, description="Measure -> weight (0 leaves the measure out)."
    )
    measures: dict[MeasureName, Scoring] = Field(
        default_factory=dict, description="Measure -> its thresholds or linear range."
    )


class Scorecard(Model):
    """``playbooks/health.yaml``: how a customer's health score is computed."""

    user_property: str = Field(
        default="user", description="The event property that names the user who acted."
    )
    bands: dict[MeasureName, Score] = Field(
        default_factory=lambda: {"red": 0.0, "yellow": 40.0, "green": 70.0},
        description="Band -> the score it starts at (one must start at 0).",
    )
    measures: dict[MeasureName, Measure] = Field(min_length=1)
    segments: dict[str, SegmentOverride] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _bands_from_zero(self) -> Scorecard:
        if 0 not in self.bands.values():
            raise ValueError("one band must start at 0, e.g. bands: {red: 0, yellow: 40}")
        return self

    def band(self, score: float | None) -> str:
        """The band a score falls in: the one with the highest start at or below it."""
        if score is None:
            return UNKNOWN_BAND
        starts = sorted(self.bands.items(), key=lambda item: item[1])
        return [name for name, start in starts if start <= score][-1]

    def event_names(self) -> set[str]:
        return {m.event for m in self.measures.values() if m.event is not None}

    def longest_window(self) -> int:
        return max((m.window_seconds for m in self.measures.values() if m.event), default=0)


def load_scorecard(path: Path, display: str | None = None) -> LoadedFile:
    """Parse and validate a scorecard file; never raises for bad input."""
    text, diags = read_source(path, display)
    if text is None:
        return LoadedFile(display or str(path), None, None, diags)
    return parse_text(text, display or str(path), Scorecard)


def check_references(loaded: LoadedFile, known_events: Iterable[str]) -> list[Diagnostic]:
    """Errors for overrides naming no measure; warnings for events no playbook or milestone
    names and for fields a customer does not have (probably typos, but events may come
    from a product the playbooks never mention, so not errors)."""
    card: Scorecard | None = loaded.model
    if card is None or loaded.document is None:
        return []
    doc = loaded.document
    events = set(known_events)
    diags: list[Diagnostic] = []
    for name, measure in card.measures.items():
        if measure.event is not None and events and measure.event not in events:
            diags.append(
                doc.diagnostic(
                    ("measures", name, "event"),
                    f"no playbook or milestone names event '{measure.event}'"
                    f"{did_you_mean(measure.event, events)}",
                    severity="warning",
                )
            )
        for key in ("field", "per"):
            path = getattr(measure, key)
            if path is not None and path.split(".")[0] not in CUSTOMER_FIELDS:
                diags.append(
                    doc.diagnostic(
                        ("measures", name, key),
                        f"a customer has no field '{path}'"
                        f"{did_you_mean(path.split('.')[0], CUSTOMER_FIELDS)}",
                        severity="warning",
                    )
                )
    for segment, override in card.segments.items():
        for section in ("weights", "measures"):
            for name in getattr(override, section):
                if name not in card.measures:
                    diags.append(
                        doc.diagnostic(
                            ("segments", segment, section, name),
                            f"no measure '{name}'{did_you_mean(name, card.measures)}",
                            key=True,
                        )
                    )
    return diags


# -- scoring ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class EventFact:
    """One event as scoring needs it."""

    name: str
    at: datetime
    properties: Mapping[str, Any]


@dataclass
class MeasureResult:
    """One measure's raw value, its 0-100 points and its share of the score."""

    name: str
    label: str
    value: float | None
    points: float | None
    weight: float
    contribution: float | None = None  # points x weight / known weight: adds up to the score

    @property
    def known(self) -> bool:
        return self.value is not None


@dataclass
class HealthResult:
    """A customer's score (None when nothing is known), band, known share and measures."""

    score: int | None
    band: str
    known: float  # share of the weight that had data, 0-1
    measures: list[MeasureResult] = field(default_factory=list)

    def measures_dict(self) -> dict[str, dict[str, Any]]:
        return {
            m.name: {"value": m.value, "points": m.points, "weight": m.weight}
            for m in self.measures
        }


def _lookup(fields: Mapping[str, Any], path: str) -> Any:
    value: Any = fields
    for part in path.split("."):
        if not isinstance(value, Mapping):
            return None
        value = value.get(part)
    return value


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return None
    try:
        return float(value)
    except ValueError:
        return None


def measure_value(
    card: Scorecard,
    measure: Measure,
    fields: Mapping[str, Any],
    events: Iterable[EventFact],
    now: datetime,
) -> float | None:
    """The raw value of one measure, or None when there is no data for it.

    ``events`` are the customer's events (at least those within the measure's window, and
    the latest of each name for ``days_since`` and "never sent")."""
    if measure.field is not None:
        value = _number(_lookup(fields, measure.field))
        if value is None or measure.per is None:
            return value
        base = _number(_lookup(fields, measure.per))
        return None if not base else round(value / base * 100, 1)
    since = now - timedelta(seconds=measure.window_seconds)
    ever = False
    last: datetime | None = None
    in_window: list[EventFact] = []
    users: set[Any] = set()
    for event in events:
        if event.at > now:
            continue
        if measure.measure == "user_share" and event.at >= since:
            user = event.properties.get(card.user_property)
            if user is not None:
                users.add(user)
        if event.name != measure.event:
            continue
        if any(event.properties.get(k) != v for k, v in measure.where.items()):
            continue
        ever = True
        last = event.at if last is None or event.at > last else last
        if event.at >= since:
            in_window.append(event)
    if not ever:
        return None
    if measure.measure == "days_since":
        assert last is not None
        return float((now - last).days)
    if measure.measure == "latest":
        latest = max(in_window, key=lambda e: e.at, default=None)
        return None if latest is None else _number(latest.properties.get("value"))
    if measure.measure == "count":
        return float(len(in_window))
    if measure.measure == "active_days":
        return float(len({e.at.date() for e in in_window}))
    actors = {e.properties.get(card.user_property) for e in in_window} - {None}
    if measure.measure == "distinct_users":
        return float(len(actors))
    return None if not users else round(len(actors) / len(users) * 100, 1)


def score_customer(
    card: Scorecard,
    fields: Mapping[str, Any],
    events: Iterable[EventFact],
    now: datetime,
    segment: str | None = None,
) -> HealthResult:
    """The customer's health: the weighted mean of its known measures' points."""
    events = list(events)
    override = card.segments.get(segment or "") or SegmentOverride()
    results: list[MeasureResult] = []
    for name, measure in card.measures.items():
        weight = override.weights.get(name, measure.weight)
        if weight == 0:
            continue
        value = measure_value(card, measure, fields, events, now)
        scoring = override.measures.get(name, measure)
        points = None if value is None else scoring.points(value)
        results.append(MeasureResult(name, measure.label or name, value, points, weight))
    total = sum(r.weight for r in results)
    known_weight = sum(r.weight for r in results if r.points is not None)
    if not known_weight:
        return HealthResult(None, UNKNOWN_BAND, 0.0, results)
    for r in results:
        if r.points is not None:
            r.contribution = round(r.points * r.weight / known_weight, 1)
    score = round(sum(r.contribution or 0 for r in results))
    return HealthResult(score, card.band(score), round(known_weight / total, 2), results)
