"""Scenario 2, event -> action latency: events posted at a steady rate to parked
enrollments, timed from the POST (or signal) to the email row it causes.

A round runs each variant's events whole, one variant after the other (`latency_run`).
With ``--latency-slice N`` the variants take turns instead, N seconds of events each in one
steady stream at the same rate (`interleaved_round`): a spell that slows the whole machine
then shows in every variant's events, which tells such spells from a variant's own tail.

After each round the slowest events are taken apart from their histories (`segments`): the
"slowest 1%" rows say which part of an event's path the tail is spent in."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable, Sequence
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TypeVar

from sqlalchemy import select

from bench.report import Metric, percentile, ratio_interval
from bench.scenarios.driver import (
    EMAIL_STEPS,
    PARK_STEP,
    post_event,
    round_order,
    run_median,
    run_rounds,
    seed_run,
    side_by_side,
    signal_event,
    start_enrollments,
    verify,
    wait_for_projection,
    workflow_id,
)
from bench.scenarios.segments import Traced, segment_metrics, trace, traced_count
from bench.scenarios.spec import BASELINE, BASELINE_API, ENGINE, ENGINE_SIGNAL, Progress, Sizes
from bench.scenarios.stack import Stack, WorkerProcess, cpu_seconds
from engine.store.models import OutboxMessage

T = TypeVar("T")


@dataclass
class LatencyRun:
    latencies_ms: list[float]
    """In the order the events were sent."""
    post_ms: list[float]
    cpu_ms: float
    server_cpu_ms: float
    driver_cpu_ms: float
    traced: Traced
    """The round's slowest events and a few typical ones, taken apart (`segments`)."""

    @property
    def total_cpu_ms(self) -> float:
        return self.cpu_ms + self.server_cpu_ms + self.driver_cpu_ms


async def latency_run(
    stack: Stack, variant: str, sizes: Sizes, round_no: int, progress: Progress
) -> LatencyRun:
    """One variant's round on its own: park, then send all of its events."""
    n = sizes.events
    prefix, queue, customers = seed_run(stack, "lat", round_no, variant, n)
    async with WorkerProcess(stack, variant, queue) as worker:
        lane = _Lane(variant, prefix, queue, customers, worker)
        await _park(stack, lane, sizes, round_no, progress)
        await asyncio.sleep(1.0)  # let the worker go idle: measure events, not the backlog
        report = progress.phase(f"latency {variant} round {round_no}: {sizes.rate:g} events/s", n)
        cpu_before = worker.cpu_seconds()
        shared = _SharedCpu(stack)
        await _send_all(stack, [(lane, c) for c in customers], sizes.rate, report, shared)
        await _completed(stack, lane, sizes)
        shared.charge(lane)
        worker_cpu = worker.cpu_seconds() - cpu_before
    await verify(stack, variant, prefix, customers, queue, completed=True)
    return await lane.result(stack, worker_cpu, sizes)


async def interleaved_round(
    stack: Stack, variants: Sequence[str], sizes: Sizes, round_no: int, progress: Progress
) -> dict[str, LatencyRun]:
    """Every variant's round at once: all park, then they take turns sending, a slice of
    `Sizes.latency_slice` seconds each, the events one steady stream at `Sizes.rate`.

    Each variant's CPU in the shared processes (the Temporal server, this one) is what they
    spent during its turns; its worker's is its own process's.
    """
    n = sizes.events
    per_turn = _block(sizes) * sizes.latency_slice
    async with AsyncExitStack() as running:
        lanes: list[_Lane] = []
        for variant in round_order(variants, round_no):
            prefix, queue, customers = seed_run(stack, "lat", round_no, variant, n)
            worker = await running.enter_async_context(WorkerProcess(stack, variant, queue))
            lanes.append(_Lane(variant, prefix, queue, customers, worker))
        for lane in lanes:
            await _park(stack, lane, sizes, round_no, progress)
        await asyncio.sleep(1.0)  # let the workers go idle: measure events, not the backlog
        turns = in_turns([[(lane, c) for c in lane.customers] for lane in lanes], per_turn)
        report = progress.phase(
            f"latency round {round_no}: {sizes.rate:g} events/s, variants in turns of "
            f"{sizes.latency_slice} s",
            len(turns),
        )
        cpu_before = {lane.variant: lane.worker.cpu_seconds() for lane in lanes}
        shared = _SharedCpu(stack)
        last = await _send_all(stack, turns, sizes.rate, report, shared)
        await _completed(stack, last, sizes)
        shared.charge(last)
        for lane in lanes:
            await _completed(stack, lane, sizes)
        worker_cpu = {
            lane.variant: lane.worker.cpu_seconds() - cpu_before[lane.variant] for lane in lanes
        }
    results: dict[str, LatencyRun] = {}
    for lane in lanes:
        await verify(stack, lane.variant, lane.prefix, lane.customers, lane.queue, completed=True)
        results[lane.variant] = await lane.result(stack, worker_cpu[lane.variant], sizes)
    return results


def in_turns(queues: Sequence[Sequence[T]], per_turn: int) -> list[T]:
    """Every queue's items in one stream: ``per_turn`` of the first queue's, then of the
    next one's, and round again until all are out, each queue's in its own order."""
    longest = max((len(q) for q in queues), default=0)
    return [
        item
        for start in range(0, longest, per_turn)
        for queue in queues
        for item in queue[start : start + per_turn]
    ]


@dataclass
class _Lane:
    """One variant's part of a round: its customers, its worker, what its sends saw."""

    variant: str
    prefix: str
    queue: str
    customers: list[str]
    worker: WorkerProcess
    sent: dict[str, datetime] = field(default_factory=dict)
    post_ms: list[float] = field(default_factory=list)
    server_cpu: float = 0.0
    driver_cpu: float = 0.0

    async def result(self, stack: Stack, worker_cpu: float, sizes: Sizes) -> LatencyRun:
        """The lane's latencies, from its send times to its last email rows, and its
        slowest events taken apart from their histories (outside any timing)."""
        with stack.sessions() as session:
            rows = session.execute(
                select(OutboxMessage.customer_id, OutboxMessage.created_at).where(
                    OutboxMessage.customer_id.like(f"{self.prefix}-%"),
                    OutboxMessage.step_id == EMAIL_STEPS[-1],
                )
            ).all()
        sent = self.sent
        emailed = sorted(((c, at) for c, at in rows if c), key=lambda row: sent[row[0]])
        latencies = [(at - sent[c]).total_seconds() * 1000 for c, at in emailed]
        traced = await trace(
            stack.client,
            {c: workflow_id(self.variant, c) for c, _ in emailed},
            sent,
            dict(emailed),
            traced_count(sizes.events, sizes.rounds),
        )
        n = len(self.customers)
        server = self.server_cpu if stack.server else float("nan")
        return LatencyRun(
            latencies,
            self.post_ms,
            worker_cpu * 1000 / n,
            server * 1000 / n,
            self.driver_cpu * 1000 / n,
            traced,
        )


class _SharedCpu:
    """The CPU the Temporal server and this process (the API, the load) spend, charged to
    the lane that was sending since the last charge."""

    def __init__(self, stack: Stack) -> None:
        self.stack = stack
        self.server, self.driver = self._read()

    def _read(self) -> tuple[float, float]:
        server = cpu_seconds(self.stack.server) if self.stack.server else 0.0
        return server, cpu_seconds(os.getpid())

    def charge(self, lane: _Lane) -> None:
        server, driver = self._read()
        lane.server_cpu += server - self.server
        lane.driver_cpu += driver - self.driver
        self.server, self.driver = server, driver


def _block(sizes: Sizes) -> int:
    """A second's events: the unit of a turn, and of the p99 ratio's resampling."""
    return max(1, round(sizes.rate))


async def _park(stack: Stack, lane: _Lane, sizes: Sizes, round_no: int, progress: Progress) -> None:
    """Start the lane's enrollments and wait until all wait for the milestone."""
    n = len(lane.customers)
    parking = progress.phase(f"latency {lane.variant} round {round_no}: parking", n)
    starting = asyncio.create_task(
        start_enrollments(stack, lane.variant, lane.customers, lane.queue)
    )
    try:
        await wait_for_projection(
            stack,
            lane.prefix,
            n,
            lambda status, step: step == PARK_STEP,
            lane.worker,
            parking,
            sizes.stall_timeout,
        )
    finally:
        await starting


async def _send_all(
    stack: Stack,
    turns: Sequence[tuple[_Lane, str]],
    rate: float,
    report: Callable[[float], None],
    shared: _SharedCpu,
) -> _Lane:
    """Send each (lane, customer)'s event at ``rate`` (an open loop), charging the shared
    CPU to a lane when its turn ends; returns the last lane, whose turn has not ended."""

    async def send(lane: _Lane, customer_id: str) -> None:
        lane.sent[customer_id] = datetime.now(UTC)
        if lane.variant in (ENGINE, BASELINE_API):
            lane.post_ms.append(await post_event(stack, customer_id, lane.variant) * 1000)
        else:
            await signal_event(stack, lane.variant, customer_id)

    loop = asyncio.get_running_loop()
    began = loop.time()
    sending: list[asyncio.Task[None]] = []
    current = turns[0][0]
    for index, (lane, customer_id) in enumerate(turns):
        delay = began + index / rate - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        if lane is not current:
            shared.charge(current)
            current = lane
        sending.append(asyncio.create_task(send(lane, customer_id)))
        report(index + 1)
    await asyncio.gather(*sending)
    return current


async def _completed(stack: Stack, lane: _Lane, sizes: Sizes) -> None:
    """Wait until every enrollment of the lane has completed."""
    await wait_for_projection(
        stack,
        lane.prefix,
        len(lane.customers),
        lambda status, _: status == "completed",
        lane.worker,
        lambda _: None,
        sizes.stall_timeout,
    )


async def latency(stack: Stack, sizes: Sizes, progress: Progress) -> list[Metric]:
    retries = stack.api_retries
    variants = [ENGINE, BASELINE, ENGINE_SIGNAL, BASELINE_API]
    interleaved = sizes.latency_slice > 0
    if interleaved:
        runs: dict[str, list[LatencyRun]] = {v: [] for v in variants}
        for round_no in range(1, sizes.rounds + 1):
            for variant, run in (
                await interleaved_round(stack, variants, sizes, round_no, progress)
            ).items():
                runs[variant].append(run)
    else:
        runs = await run_rounds(latency_run, stack, sizes, progress, variants)

    def pct(variant: str, p: float) -> float:
        return percentile([x for r in runs[variant] for x in r.latencies_ms], p)

    label = f"POST -> email row, {sizes.rate:g}/s"
    metrics = [
        Metric("latency", f"{label}, p50", "ms", pct(ENGINE, 50), pct(BASELINE, 50)),
        Metric("latency", f"{label}, p95", "ms", pct(ENGINE, 95), pct(BASELINE, 95)),
    ]
    # A second's events of one round go together: what slows one slows its neighbours.
    block = _block(sizes)

    def blocks(variant: str) -> list[list[float]]:
        """A variant's latencies, a second's events of a round to a block."""
        return [
            r.latencies_ms[i : i + block]
            for r in runs[variant]
            for i in range(0, len(r.latencies_ms), block)
        ]

    def interval(reference: str) -> str:
        """The p99 ratio's 95% interval against ``reference``, as the notes give it. In
        turns, a second of each variant's events is paired with the other's of the same
        turn number: they were sent seconds apart, so they are resampled together."""
        low, high = ratio_interval(blocks(ENGINE), blocks(reference), 99, paired=interleaved)
        return f"ratio's 95% interval {low:.2f} to {high:.2f}"

    def by_round(variant: str) -> str:
        return ", ".join(f"{percentile(r.latencies_ms, 99):.0f}" for r in runs[variant])

    how = (
        f"variants in turns of {sizes.latency_slice} s"
        if interleaved
        else "each variant's round whole, one after the other"
    )
    p99 = Metric(
        "latency",
        f"{label}, p99",
        "ms",
        pct(ENGINE, 99),
        pct(BASELINE, 99),
        goal="ratio <= 1.2, < 250 ms",
        note=f"baseline: signal straight to workflow; {how}; {interval(BASELINE)}, seconds "
        f"of events resampled; each round's p99: {by_round(ENGINE)} / {by_round(BASELINE)} ms",
    )
    p99.met = p99.ratio is not None and p99.ratio <= 1.2 and (p99.engine or 0) < 250
    metrics.append(p99)
    direct = Metric(
        "latency",
        "signal -> email row, p99",
        "ms",
        pct(ENGINE_SIGNAL, 99),
        pct(BASELINE, 99),
        note="engine signalled directly too: interpreter only",
    )
    like = Metric(
        "latency",
        f"{label}, p99, against the baseline behind its own endpoint",
        "ms",
        pct(ENGINE, 99),
        pct(BASELINE_API, 99),
        note="like for like: the baseline's events through a hand-written POST /events "
        f"(bench/baseline_api.py: token, store, signal); {interval(BASELINE_API)}; "
        f"p50 {pct(ENGINE, 50):.1f} / {pct(BASELINE_API, 50):.1f} ms",
    )
    posts = [x for r in runs[ENGINE] for x in r.post_ms]
    by_hand = [x for r in runs[BASELINE_API] for x in r.post_ms]
    api = Metric(
        "latency",
        "POST response, p50: /api/events / hand-written /events",
        "ms",
        percentile(posts, 50),
        percentile(by_hand, 50),
        note=f"p99 {percentile(posts, 99):.1f} / {percentile(by_hand, 99):.1f} ms"
        + (
            f"; {stack.api_retries - retries} retried after a 5xx"
            if stack.api_retries > retries
            else ""
        ),
    )
    cpu = side_by_side(
        "latency",
        "worker CPU per event",
        "ms",
        runs,
        "cpu_ms",
        note="from the event to the end of the enrollment; 1000 / this = events/s a core can take",
    )
    server = side_by_side(
        "latency",
        "Temporal server CPU per event",
        "ms",
        runs,
        "server_cpu_ms",
        note="the dev server process",
    )
    driver = side_by_side(
        "latency",
        "API and load generator CPU per event",
        "ms",
        runs,
        "driver_cpu_ms",
        note="the harness process; it serves /api/events for the engine, signals for the baseline",
    )
    total = [run_median(runs[v], "total_cpu_ms") for v in (ENGINE, BASELINE)]
    cores = len(os.sched_getaffinity(0))
    demand = Metric(
        "latency",
        "CPU per event, all processes",
        "ms",
        total[0],
        total[1],
        note=f"at {sizes.rate:g}/s that is {total[0] * sizes.rate / 1000:.2f} / "
        f"{total[1] * sizes.rate / 1000:.2f} cores busy of {cores}; "
        f"the most the machine can take is about {1000 * cores / total[0]:.0f} / "
        f"{1000 * cores / total[1]:.0f} events/s",
    )
    parts = segment_metrics(
        {v: [r.traced for r in runs[v]] for v in variants},
        ENGINE,
        BASELINE,
        sizes.events,
        also=BASELINE_API,
    )
    return [*metrics, direct, like, api, *parts, cpu, server, driver, demand]
