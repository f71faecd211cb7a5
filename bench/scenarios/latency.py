"""Scenario 2, event -> action latency: events posted at a steady rate to parked
enrollments, timed from the POST (or signal) to the email row it causes."""

from __future__ import annotations

import asyncio
import os
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import select

from bench.report import Metric, percentile, ratio_interval
from bench.scenarios.driver import (
    EMAIL_STEPS,
    PARK_STEP,
    post_event,
    run_median,
    run_rounds,
    seed_run,
    side_by_side,
    signal_event,
    start_enrollments,
    verify,
    wait_for_projection,
)
from bench.scenarios.spec import BASELINE, BASELINE_API, ENGINE, ENGINE_SIGNAL, Progress, Sizes
from bench.scenarios.stack import Stack, WorkerProcess, cpu_seconds
from engine.store.models import OutboxMessage


@dataclass
class LatencyRun:
    latencies_ms: list[float]
    """In the order the events were sent."""
    post_ms: list[float]
    cpu_ms: float
    server_cpu_ms: float
    driver_cpu_ms: float

    @property
    def total_cpu_ms(self) -> float:
        return self.cpu_ms + self.server_cpu_ms + self.driver_cpu_ms


async def latency_run(
    stack: Stack, variant: str, sizes: Sizes, round_no: int, progress: Progress
) -> LatencyRun:
    n = sizes.events
    prefix, queue, customers = seed_run(stack, "lat", round_no, variant, n)
    async with WorkerProcess(stack, variant, queue) as worker:
        parking = progress.phase(f"latency {variant} round {round_no}: parking", n)
        starting = asyncio.create_task(start_enrollments(stack, variant, customers, queue))
        try:
            await wait_for_projection(
                stack,
                prefix,
                n,
                lambda status, step: step == PARK_STEP,
                worker,
                parking,
                sizes.stall_timeout,
            )
        finally:
            await starting
        await asyncio.sleep(1.0)  # let the worker go idle: measure events, not the backlog
        sent: dict[str, datetime] = {}
        post_ms: list[float] = []

        async def send(customer_id: str) -> None:
            sent[customer_id] = datetime.now(UTC)
            if variant in (ENGINE, BASELINE_API):
                post_ms.append(await post_event(stack, customer_id, variant) * 1000)
            else:
                await signal_event(stack, variant, customer_id)

        report = progress.phase(f"latency {variant} round {round_no}: {sizes.rate:g} events/s", n)
        cpu_before = worker.cpu_seconds()
        server_before = cpu_seconds(stack.server) if stack.server else 0.0
        driver_before = cpu_seconds(os.getpid())
        loop = asyncio.get_running_loop()
        began = loop.time()
        sending: list[asyncio.Task[None]] = []
        for index, customer_id in enumerate(customers):  # open loop: a steady rate
            delay = began + index / sizes.rate - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            sending.append(asyncio.create_task(send(customer_id)))
            report(index + 1)
        await asyncio.gather(*sending)
        await wait_for_projection(
            stack,
            prefix,
            n,
            lambda status, _: status == "completed",
            worker,
            lambda _: None,
            sizes.stall_timeout,
        )
        cpu = worker.cpu_seconds() - cpu_before
        server = cpu_seconds(stack.server) - server_before if stack.server else float("nan")
        driver = cpu_seconds(os.getpid()) - driver_before
    await verify(stack, variant, prefix, customers, queue, completed=True)
    with stack.sessions() as session:
        rows = session.execute(
            select(OutboxMessage.customer_id, OutboxMessage.created_at).where(
                OutboxMessage.customer_id.like(f"{prefix}-%"),
                OutboxMessage.step_id == EMAIL_STEPS[-1],
            )
        ).all()
    emailed = sorted(((c, at) for c, at in rows if c), key=lambda row: sent[row[0]])
    latencies = [(at - sent[c]).total_seconds() * 1000 for c, at in emailed]
    return LatencyRun(latencies, post_ms, cpu * 1000 / n, server * 1000 / n, driver * 1000 / n)


async def latency(stack: Stack, sizes: Sizes, progress: Progress) -> list[Metric]:
    retries = stack.api_retries
    runs = await run_rounds(
        latency_run, stack, sizes, progress, [ENGINE, BASELINE, ENGINE_SIGNAL, BASELINE_API]
    )

    def pct(variant: str, p: float) -> float:
        return percentile([x for r in runs[variant] for x in r.latencies_ms], p)

    label = f"POST -> email row, {sizes.rate:g}/s"
    metrics = [
        Metric("latency", f"{label}, p50", "ms", pct(ENGINE, 50), pct(BASELINE, 50)),
        Metric("latency", f"{label}, p95", "ms", pct(ENGINE, 95), pct(BASELINE, 95)),
    ]
    # A second's events of one round go together: what slows one slows its neighbours.
    block = max(1, round(sizes.rate))

    def blocks(variant: str) -> list[list[float]]:
        """A variant's latencies, a second's events of a round to a block."""
        return [
            r.latencies_ms[i : i + block]
            for r in runs[variant]
            for i in range(0, len(r.latencies_ms), block)
        ]

    def interval(reference: str) -> str:
        """The p99 ratio's 95% interval against ``reference``, as the notes give it."""
        low, high = ratio_interval(blocks(ENGINE), blocks(reference), 99)
        return f"ratio's 95% interval {low:.2f} to {high:.2f}"

    p99 = Metric(
        "latency",
        f"{label}, p99",
        "ms",
        pct(ENGINE, 99),
        pct(BASELINE, 99),
        goal="ratio <= 1.2, < 250 ms",
        note=f"baseline: signal straight to workflow; {interval(BASELINE)}, seconds of "
        "events resampled",
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
    return [*metrics, direct, like, api, cpu, server, driver, demand]
