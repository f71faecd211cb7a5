"""Scenario 1, throughput: enrollments of the five-step bench playbook, start to end."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

from temporalio.client import WorkflowHistory

from bench.report import Metric
from bench.scenarios.driver import (
    PARK_STEP,
    history_lengths,
    history_metric,
    post_event,
    replay_cpu_ms,
    run_rounds,
    sample_histories,
    seed_run,
    side_by_side,
    start_enrollments,
    verify,
    wait_for_projection,
)
from bench.scenarios.spec import BASELINE, ENGINE, Progress, Sizes
from bench.scenarios.stack import Stack, WorkerProcess, cpu_seconds

STEPS = 5
POST_CONCURRENCY = 8


@dataclass
class ThroughputRun:
    rate: float
    cpu_ms: float
    server_cpu_ms: float
    histories: list[WorkflowHistory]

    @property
    def history(self) -> tuple[int, float, float]:
        return history_lengths(self.histories)


async def throughput_run(
    stack: Stack, variant: str, sizes: Sizes, round_no: int, progress: Progress
) -> ThroughputRun:
    n = sizes.enrollments
    prefix, queue, customers = seed_run(stack, "tp", round_no, variant, n)
    report = progress.phase(f"throughput {variant} round {round_no}", n)
    async with WorkerProcess(stack, variant, queue) as worker:
        cpu_before = worker.cpu_seconds()
        server_before = cpu_seconds(stack.server) if stack.server else 0.0
        posted: set[str] = set()
        posts: list[asyncio.Task[float]] = []
        gate = asyncio.Semaphore(POST_CONCURRENCY)

        async def post(customer_id: str) -> float:
            async with gate:
                return await post_event(stack, customer_id)

        def post_for_parked(rows: list[tuple[str, str, str | None]]) -> None:
            for task in posts:
                if task.done() and (error := task.exception()) is not None:
                    raise error
            for customer_id, status, step in rows:
                if status == "running" and step == PARK_STEP and customer_id not in posted:
                    posted.add(customer_id)
                    posts.append(asyncio.create_task(post(customer_id)))

        began = time.perf_counter()
        starting = asyncio.create_task(start_enrollments(stack, variant, customers, queue))
        try:
            ended = await wait_for_projection(
                stack,
                prefix,
                n,
                lambda status, _: status == "completed",
                worker,
                report,
                sizes.stall_timeout,
                post_for_parked,
            )
            workflow_ids = await starting
            await asyncio.gather(*posts)
        finally:
            for task in (starting, *posts):
                task.cancel()
        cpu = worker.cpu_seconds() - cpu_before
        server = cpu_seconds(stack.server) - server_before if stack.server else float("nan")
    await verify(stack, variant, prefix, customers, queue, completed=True)
    return ThroughputRun(
        rate=n / (ended - began),
        cpu_ms=cpu * 1000 / n,
        server_cpu_ms=server * 1000 / n,
        histories=await sample_histories(stack, workflow_ids, sizes.history_sample),
    )


async def throughput(stack: Stack, sizes: Sizes, progress: Progress) -> list[Metric]:
    runs = await run_rounds(throughput_run, stack, sizes, progress)
    rate = side_by_side(
        "throughput",
        f"{sizes.enrollments} five-step enrollments",
        "/s",
        runs,
        "rate",
        goal="ratio >= 0.95",
        note=f"median of {sizes.rounds}",
    )
    rate.met = rate.ratio is not None and rate.ratio >= 0.95
    cpu = side_by_side(
        "throughput",
        "worker CPU per enrollment",
        "ms",
        runs,
        "cpu_ms",
        note="workflows and activities",
    )
    server = side_by_side(
        "throughput",
        "Temporal server CPU per enrollment",
        "ms",
        runs,
        "server_cpu_ms",
        note="the dev server process",
    )
    replay = await replay_cpu_ms(
        {v: runs[v][-1].histories for v in (ENGINE, BASELINE)}, sizes.replays
    )
    code = Metric(
        "throughput",
        "workflow code CPU per enrollment",
        "ms",
        replay[ENGINE],
        replay[BASELINE],
        note=f"replay of {len(runs[ENGINE][-1].histories)} histories, best of {sizes.replays}",
    )
    events = history_metric(
        "throughput",
        "history events per completed enrollment",
        sizes,
        runs[ENGINE],
        runs[BASELINE],
    )
    per_step = Metric(
        "throughput",
        f"history events per step ({STEPS} steps)",
        "",
        (events.engine or 0) / STEPS,
        (events.baseline or 0) / STEPS,
        goal="= baseline",
        met=events.met,
    )
    if stack.api_retries:
        rate.note += f"; {stack.api_retries} POSTs retried after a 5xx"
    return [rate, cpu, server, code, events, per_step]
