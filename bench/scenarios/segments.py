"""Where an event's latency goes: the latency scenario's slowest 1%, taken apart.

An event's time, from its POST (or signal) to its email row, is cut at three points that
the enrollment's Temporal history records, so the four parts add up to the whole:

- **before the signal**: from the send to the ``WorkflowExecutionSignaled`` event. For the
  variants that POST, the API's path (token, store, routing) and the signal's RPC; for the
  ones that signal, the RPC alone.
- **to the workflow task**: from the signal to the start of the workflow task that sees it
  (the task queue, and the worker picking it up).
- **workflow task**: that task, from started to completed (the worker's workflow code and
  the server recording the completion).
- **to the email row**: from the task's completion to the email row (the activities).

Histories are fetched after a round, outside every timing, for the slowest events of each
lane (enough to hold the run's slowest 1% whatever round they fall in) and for a few around
its median, which stand for a typical event.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, fields
from datetime import UTC, datetime
from statistics import fmean

from temporalio.api.enums.v1 import EventType
from temporalio.api.history.v1 import HistoryEvent
from temporalio.client import Client

from bench.report import Metric

TYPICAL = 5
"""How many events around a lane's median are traced to stand for a typical event."""


@dataclass(frozen=True)
class Segments:
    """One event's latency in its four parts, in milliseconds (see the module docstring)."""

    before_signal: float
    to_task: float
    task: float
    to_email: float

    @property
    def total(self) -> float:
        return self.before_signal + self.to_task + self.task + self.to_email


LABELS = {
    "before_signal": "before the signal (POST: API and RPC; signal: RPC)",
    "to_task": "signal -> workflow task started",
    "task": "workflow task",
    "to_email": "workflow task done -> email row (activities)",
}


@dataclass(frozen=True)
class Traced:
    """What a lane's round traced: its slowest events (latency, parts) and typical ones."""

    slowest: list[tuple[float, Segments]]
    typical: list[Segments]


def _ms(later: datetime, earlier: datetime) -> float:
    return (later - earlier).total_seconds() * 1000


def segments_of(
    sent: datetime, events: Sequence[HistoryEvent], emailed: datetime
) -> Segments | None:
    """The parts of one event's latency from its enrollment's history; None if the history
    has no signal followed by a completed workflow task (the event never arrived)."""

    def at(event: HistoryEvent) -> datetime:
        return event.event_time.ToDatetime(tzinfo=UTC)

    signalled = [
        i
        for i, e in enumerate(events)
        if e.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED
    ]
    if not signalled:
        return None
    signal = signalled[-1]
    after = events[signal + 1 :]
    started = next(
        (e for e in after if e.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_STARTED), None
    )
    completed = next(
        (e for e in after if e.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED), None
    )
    if started is None or completed is None:
        return None
    return Segments(
        before_signal=_ms(at(events[signal]), sent),
        to_task=_ms(at(started), at(events[signal])),
        task=_ms(at(completed), at(started)),
        to_email=_ms(emailed, at(completed)),
    )


def traced_count(events: int, rounds: int) -> int:
    """How many of a round's slowest events to trace so that the run's slowest 1% are
    among them even if they all fall in one round."""
    return min(events, math.ceil(0.01 * events * rounds))


async def trace(
    client: Client,
    workflow_ids: Mapping[str, str],
    sent: Mapping[str, datetime],
    emailed: Mapping[str, datetime],
    slowest: int,
) -> Traced:
    """Trace a lane's ``slowest`` events and `TYPICAL` around its median (customer ids to
    their enrollment's workflow id, send time and email row time)."""
    by_latency = sorted(emailed, key=lambda c: _ms(emailed[c], sent[c]))
    middle = max(0, len(by_latency) // 2 - TYPICAL // 2)

    async def parts(customer_id: str) -> Segments | None:
        history = await client.get_workflow_handle(workflow_ids[customer_id]).fetch_history()
        return segments_of(sent[customer_id], history.events, emailed[customer_id])

    slow: list[tuple[float, Segments]] = []
    for customer_id in by_latency[::-1][:slowest]:
        found = await parts(customer_id)
        if found is not None:
            slow.append((_ms(emailed[customer_id], sent[customer_id]), found))
    typical = [
        found
        for customer_id in by_latency[middle : middle + TYPICAL]
        if (found := await parts(customer_id)) is not None
    ]
    return Traced(slow, typical)


def _mean(parts: Iterable[Segments], name: str) -> float | None:
    values = [getattr(p, name) for p in parts]
    return fmean(values) if values else None


def pooled_slowest(traced: Sequence[Traced], count: int) -> list[Segments]:
    """The ``count`` slowest events of all the rounds, from what each round traced."""
    everything = sorted(
        (item for t in traced for item in t.slowest), key=lambda item: item[0], reverse=True
    )
    return [parts for _, parts in everything[:count]]


def segment_metrics(
    traced: Mapping[str, Sequence[Traced]],
    engine: str,
    baseline: str,
    events: int,
    also: str | None = None,
) -> list[Metric]:
    """One row per part: its mean over the run's slowest 1% for the engine and the baseline,
    with the typical event's in the note (and ``also``'s slowest, for a third variant)."""
    rows: list[Metric] = []
    slowest = {
        variant: pooled_slowest(runs, traced_count(events, len(runs)))
        for variant, runs in traced.items()
    }
    typical = {v: [p for t in runs for p in t.typical] for v, runs in traced.items()}
    for field in fields(Segments):
        name = field.name
        note = (
            f"typical event {_fmt(_mean(typical.get(engine, []), name))} / "
            f"{_fmt(_mean(typical.get(baseline, []), name))} ms"
        )
        if also is not None:
            note += f"; {also}'s slowest 1% {_fmt(_mean(slowest.get(also, []), name))} ms"
        rows.append(
            Metric(
                "latency",
                f"slowest 1%: {LABELS[name]}, mean",
                "ms",
                _mean(slowest.get(engine, []), name),
                _mean(slowest.get(baseline, []), name),
                note=note,
            )
        )
    return rows


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"
