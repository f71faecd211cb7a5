"""Scenario 3, memory and history: enrollments parked on a wait, the worker's peak RSS."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

from bench.report import Metric
from bench.scenarios.driver import (
    PARK_STEP,
    history_lengths,
    history_metric,
    run_rounds,
    sample_histories,
    seed_run,
    side_by_side,
    start_enrollments,
    verify,
    wait_for_projection,
)
from bench.scenarios.spec import BASELINE, ENGINE, Progress, Sizes
from bench.scenarios.stack import Stack, WorkerProcess


@dataclass
class MemoryRun:
    peak_mb: float
    growth_mb: float
    history: tuple[int, float, float]
    parked_per_s: float


async def memory_run(
    stack: Stack, variant: str, sizes: Sizes, round_no: int, progress: Progress
) -> MemoryRun:
    n = sizes.parked
    prefix, queue, customers = seed_run(stack, "mem", round_no, variant, n)
    report = progress.phase(f"memory {variant} round {round_no}: parking", n)
    async with WorkerProcess(stack, variant, queue) as worker:
        idle = worker.memory_kb()["VmRSS"]
        began = time.perf_counter()
        count = 0

        def on_count(parked: float) -> None:
            nonlocal count
            count = int(parked)
            report(parked)

        starting = asyncio.create_task(
            start_enrollments(stack, variant, customers, queue, settled=lambda: count)
        )
        try:
            parked = await wait_for_projection(
                stack,
                prefix,
                n,
                lambda status, step: step == PARK_STEP,
                worker,
                on_count,
                sizes.stall_timeout,
            )
        finally:
            workflow_ids = await starting
        await asyncio.sleep(1.0)  # let the last workflow tasks settle
        memory = worker.memory_kb()
    await verify(stack, variant, prefix, customers, queue, completed=False)
    return MemoryRun(
        peak_mb=memory["VmHWM"] / 1024,
        growth_mb=(memory["VmHWM"] - idle) / 1024,
        history=history_lengths(await sample_histories(stack, workflow_ids, sizes.history_sample)),
        parked_per_s=n / (parked - began),
    )


async def memory(stack: Stack, sizes: Sizes, progress: Progress) -> list[Metric]:
    runs = await run_rounds(memory_run, stack, sizes, progress)
    peak = side_by_side(
        "memory",
        f"worker peak RSS, {sizes.parked} parked",
        "MB",
        runs,
        "peak_mb",
        goal="ratio <= 1.2",
    )
    peak.met = peak.ratio is not None and peak.ratio <= 1.2
    growth = side_by_side("memory", "peak RSS above the idle worker", "MB", runs, "growth_mb")
    events = history_metric(
        "memory", "history events per parked enrollment", sizes, runs[ENGINE], runs[BASELINE]
    )
    rate = side_by_side("memory", "enrollments parked per second", "/s", runs, "parked_per_s")
    return [peak, growth, events, rate]
