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
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, Field, model_validator

from engine.language.diagnostics import Diagnostic, did_you_mean
from engine.language.durations import parse_duration
from engine.language.expressions import CUSTOMER_FIELDS
from engine.language.loader import LoadedFile, parse_text, read_source
from engine.language.schema import ID_PATTERN, Duration, Model

HEALTH_FILE = "health.yaml"
UNKNOWN_BAND = "unknown"
EventMeasure = Literal[
    "count", "active_days", "distinct_users", "user_share", "days_since", "latest", "change"
]
# What one window of events amounts to, for a ``change`` measure and a usage-drop signal.
WindowStat = Literal["count", "active_days", "distinct_users", "latest"]
SignalKind = Literal["usage_drop", "inactivity", "repeated", "feature_unused"]
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
        "property (a metric such as weekly_active_users); change: % change of 'of' "
        "against the previous window of the same length.",
    )
    of: WindowStat = Field(
        default="count",
        description="With measure: change, what each window amounts to (count, active_days, "
        "distinct_users, latest).",
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


def _percent(value: Any) -> Any:
    """``30%`` or ``30``: a percentage."""
    return value.strip().removesuffix("%").strip() if isinstance(value, str) else value


Percent = Annotated[float, BeforeValidator(_percent), Field(gt=0, le=100)]
# The settings each signal kind takes (its YAML keys); any other is a mistake.
SIGNAL_SETTINGS: dict[str, tuple[str, ...]] = {
    "usage_drop": ("by", "window", "of"),
    "inactivity": ("for",),
    "repeated": ("count", "within"),
    "feature_unused": ("after",),
}


class Signal(Model):
    """A named risk signal, true, false or unknown (no data) at each computation:

    - ``usage_drop``: what ``of`` the event amounts to over ``window`` fell ``by`` percent
      or more against the window before it;
    - ``inactivity``: the event was not sent ``for`` this long (it was sent before);
    - ``repeated``: the event was sent ``count`` times or more ``within`` this long;
    - ``feature_unused``: the event was never sent, ``after`` the customer was added.
    """

    kind: SignalKind
    label: str | None = Field(default=None, description="The signal's name for people.")
    event: str = Field(description="The event the signal watches.")
    where: dict[str, Any] = Field(
        default_factory=dict, description="Only events whose properties match these values."
    )
    by: Percent | None = Field(default=None, description="usage_drop: the drop, e.g. 30%.")
    window: Duration | None = Field(
        default=None, description="usage_drop: this window against the one before it."
    )
    of: WindowStat = Field(
        default="count",
        description="usage_drop: what a window amounts to (count, active_days, "
        "distinct_users, latest: the last 'value' of a metric event).",
    )
    for_: Duration | None = Field(
        default=None, alias="for", description="inactivity: how long without the event."
    )
    count: Annotated[int, Field(ge=1)] | None = Field(
        default=None, description="repeated: how many events..."
    )
    within: Duration | None = Field(default=None, description="repeated: ...within how long.")
    after: Duration | None = Field(
        default=None, description="feature_unused: how long after the customer was added."
    )

    @model_validator(mode="after")
    def _settings_of_its_kind(self) -> Signal:
        wanted = SIGNAL_SETTINGS[self.kind]
        given = {"for" if k == "for_" else k for k in self.model_fields_set}
        missing = [k for k in wanted if k != "of" and k not in given]
        if missing:
            raise ValueError(f"kind '{self.kind}' needs {', '.join(map(repr, missing))}")
        other = sorted(given & {k for ks in SIGNAL_SETTINGS.values() for k in ks} - set(wanted))
        if other:
            raise ValueError(
                f"{', '.join(map(repr, other))} is not a setting of kind '{self.kind}' "
                f"(it takes {', '.join(map(repr, wanted))})"
            )
        return self

    def seconds(self, key: str) -> int:
        """One of the signal's durations, in seconds (0 when unset)."""
        value = getattr(self, "for_" if key == "for" else key)
        return parse_duration(value) if value else 0


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
    signals: dict[MeasureName, Signal] = Field(
        default_factory=dict,
        description="Named risk signals, seen by playbooks as health.signals.<name>.",
    )

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
        """The events the measures and signals read."""
        names = {m.event for m in self.measures.values() if m.event is not None}
        return names | {s.event for s in self.signals.values()}

    def reads(self, event: str) -> bool:
        """Whether an event of this name can move a score or signal (every event does when
        a measure is a share of active users)."""
        shares = any(m.measure == "user_share" for m in self.measures.values())
        return shares or event in self.event_names()

    def longest_window(self) -> int:
        """How far back scoring reads events (two windows for a change), in seconds."""
        spans = [
            m.window_seconds * (2 if m.measure == "change" else 1)
            for m in self.measures.values()
            if m.event
        ]
        spans += [2 * s.seconds("window") + s.seconds("within") for s in self.signals.values()]
        return max(spans, default=0)


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
    for name, signal in card.signals.items():
        if events and signal.event not in events:
            diags.append(
                doc.diagnostic(
                    ("signals", name, "event"),
                    f"no playbook or milestone names event '{signal.event}'"
                    f"{did_you_mean(signal.event, events)}",
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
class SignalResult:
    """One risk signal: on (True), off (False) or unknown (None, no data), with its number
    (the % change, days without, events counted, days since added) and a sentence."""

    name: str
    kind: str
    on: bool | None
    value: float | None
    text: str

    def as_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "on": self.on, "value": self.value, "text": self.text}


@dataclass
class HealthResult:
    """A customer's score (None when nothing is known), band, known share, measures and
    risk signals."""

    score: int | None
    band: str
    known: float  # share of the weight that had data, 0-1
    measures: list[MeasureResult] = field(default_factory=list)
    signals: list[SignalResult] = field(default_factory=list)

    def measures_dict(self) -> dict[str, dict[str, Any]]:
        return {
            m.name: {"value": m.value, "points": m.points, "weight": m.weight}
            for m in self.measures
        }

    def signals_dict(self) -> dict[str, dict[str, Any]]:
        return {s.name: s.as_dict() for s in self.signals}


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


def _matching(
    events: Iterable[EventFact], name: str | None, where: Mapping[str, Any], now: datetime
) -> list[EventFact]:
    """The events of ``name`` whose properties match ``where``, up to ``now``, oldest first."""
    return sorted(
        (
            e
            for e in events
            if e.name == name
            and e.at <= now
            and all(e.properties.get(k) == v for k, v in where.items())
        ),
        key=lambda e: e.at,
    )


def window_stat(
    card: Scorecard, of: str, events: list[EventFact], since: datetime, until: datetime
) -> float | None:
    """What the events in ``[since, until)`` amount to (``latest``: None without one)."""
    inside = [e for e in events if since <= e.at < until]
    if of == "count":
        return float(len(inside))
    if of == "active_days":
        return float(len({e.at.date() for e in inside}))
    if of == "distinct_users":
        return float(len({e.properties.get(card.user_property) for e in inside} - {None}))
    return _number(inside[-1].properties.get("value")) if inside else None


def window_change(
    card: Scorecard, of: str, events: list[EventFact], window: int, now: datetime
) -> tuple[float | None, float | None, float | None]:
    """(% change, this window's value, the previous window's) of matching ``events``; the
    change is None when either is unknown or the previous one is 0."""
    span = timedelta(seconds=window)
    end = now + timedelta(microseconds=1)  # the window includes now
    current = window_stat(card, of, events, end - span, end)
    previous = window_stat(card, of, events, end - 2 * span, end - span)
    if current is None or not previous:
        return None, current, previous
    return round((current - previous) / previous * 100, 1), current, previous


def _num(value: float) -> str:
    return f"{value:g}"


def evaluate_signal(
    card: Scorecard,
    name: str,
    signal: Signal,
    fields: Mapping[str, Any],
    events: Iterable[EventFact],
    now: datetime,
) -> SignalResult:
    """Whether one signal is on; unknown (None) when there is no data to tell."""
    matching = _matching(events, signal.event, signal.where, now)
    label = signal.label or signal.event

    def result(on: bool | None, value: float | None, text: str) -> SignalResult:
        return SignalResult(name, signal.kind, on, value, text)

    if signal.kind == "feature_unused":
        if matching:
            return result(False, None, f"{label}: used")
        added = fields.get("created_at")
        if not isinstance(added, datetime):
            return result(None, None, f"{label}: never used, since an unknown date")
        added = added if added.tzinfo else added.replace(tzinfo=UTC)  # the store keeps UTC
        age = (now - added).days
        on = age * 86400 >= signal.seconds("after")
        return result(on, float(age), f"{label}: never used in {age} days since added")
    if not matching:
        return result(None, None, f"{label}: no data")
    if signal.kind == "usage_drop":
        change, current, previous = window_change(
            card, signal.of, matching, signal.seconds("window"), now
        )
        if change is None:
            return result(None, None, f"{label}: not enough data for a change")
        assert signal.by is not None and current is not None and previous is not None
        moved = f"fell {_num(-change)}%" if change < 0 else f"rose {_num(change)}%"
        text = f"{label} {moved} ({_num(previous)} -> {_num(current)}) over {signal.window}"
        return result(change <= -signal.by, change, text)
    if signal.kind == "inactivity":
        days = (now - matching[-1].at).days
        on = (now - matching[-1].at).total_seconds() >= signal.seconds("for")
        return result(on, float(days), f"no {label} for {days} days")
    since = now - timedelta(seconds=signal.seconds("within"))
    count = sum(1 for e in matching if e.at >= since)
    assert signal.count is not None
    return result(count >= signal.count, float(count), f"{count} x {label} in {signal.within}")


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
    if measure.measure == "change":
        matching = _matching(events, measure.event, measure.where, now)
        return window_change(card, measure.of, matching, measure.window_seconds, now)[0]
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
    """The customer's health: the weighted mean of its known measures' points, and its
    risk signals."""
    events = list(events)
    signals = [
        evaluate_signal(card, name, signal, fields, events, now)
        for name, signal in card.signals.items()
    ]
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
        return HealthResult(None, UNKNOWN_BAND, 0.0, results, signals)
    for r in results:
        if r.points is not None:
            r.contribution = round(r.points * r.weight / known_weight, 1)
    score = round(sum(r.contribution or 0 for r in results))
    known = round(known_weight / total, 2)
    return HealthResult(score, card.band(score), known, results, signals)
