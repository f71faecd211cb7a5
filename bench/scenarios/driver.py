"""Driving a run and checking it: start enrollments, post or signal events, watch the
store, verify the work was done exactly once, and read histories and figures.

Every run uses customers of its own (prefix ``<scenario><round><variant>``), so runs never
see each other's enrollments, events, outbox rows or tasks. After each run `verify` checks
the store and Temporal: every enrollment completed (or is parked where it should be),
exactly one email per enrollment, step and contact, one task per enrollment. A run that
fails that check raises `BenchFailure` and gives no figure.
"""

from __future__ import annotations

import asyncio
import statistics
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, Protocol, TypeVar

from sqlalchemy import select
from temporalio.api.enums.v1 import EventType
from temporalio.client import WorkflowHistory
from temporalio.common import (
    SearchAttributeKey,
    SearchAttributePair,
    TypedSearchAttributes,
    WorkflowIDConflictPolicy,
    WorkflowIDReusePolicy,
)
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Replayer

from bench.baseline import (
    BASELINE_WORKFLOW,
    PLAYBOOK,
    VERSION,
    BaselineInput,
    BaselineWorkflow,
    baseline_id,
)
from bench.report import Metric, median
from bench.scenarios.spec import (
    BASELINE,
    BASELINE_API,
    CODES,
    ENGINE,
    BenchFailure,
    Progress,
    Sizes,
    runs_as,
)
from bench.scenarios.stack import Stack, WorkerProcess
from engine.client.enrollment import enroll, enrollment_id, new_enrollment_key
from engine.client.playbook import EnrollmentHandle
from engine.messages import SA_CUSTOMER, SA_PLAYBOOK, SA_STEP, SA_VERSION, EventSignal
from engine.store.models import OutboxMessage, Task

MILESTONE_EVENT = "bench.activated"
PARK_STEP = "await_activation"
EMAIL_STEPS = ("welcome", "activated")
START_CONCURRENCY = 32
START_WINDOW = 250  # enrollments under way at once in the memory scenario
POLL_SECONDS = 0.05
POST_ATTEMPTS = 5

RunT = TypeVar("RunT")


def workflow_id(variant: str, customer_id: str) -> str:
    if runs_as(variant) == BASELINE:
        return baseline_id(customer_id)
    return enrollment_id(PLAYBOOK, customer_id)


def baseline_search_attributes(customer_id: str) -> TypedSearchAttributes:
    """The same attributes `engine.client.enrollment.enroll` sets, with the baseline's values."""
    values = (
        (SA_PLAYBOOK, PLAYBOOK),
        (SA_VERSION, VERSION),
        (SA_CUSTOMER, customer_id),
        (SA_STEP, "welcome"),
    )
    return TypedSearchAttributes(
        [SearchAttributePair(SearchAttributeKey.for_keyword(k), v) for k, v in values]
    )


async def start_enrollments(
    stack: Stack,
    variant: str,
    customers: Sequence[str],
    queue: str,
    settled: Callable[[], int] | None = None,
) -> list[str]:
    """Start one enrollment per customer the way production does (or the baseline's way).

    With ``settled`` (how many have reached their resting step so far), at most
    `START_WINDOW` enrollments are under way at once: a worker fed at its own pace rather
    than handed every workflow in one burst (see RESULTS.md, "Bursts").
    """
    gate = asyncio.Semaphore(START_CONCURRENCY)

    async def one(customer_id: str) -> str:
        async with gate:
            if runs_as(variant) != BASELINE:
                return await enroll(stack.client, stack.plan, customer_id, task_queue=queue)
            wid = baseline_id(customer_id)
            await stack.client.start_workflow(
                BASELINE_WORKFLOW,
                BaselineInput(
                    customer_id=customer_id,
                    enrollment_id=wid,
                    enrollment_key=new_enrollment_key(wid),
                    started_at=datetime.now(UTC),
                ),
                id=wid,
                task_queue=queue,
                id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
                id_conflict_policy=WorkflowIDConflictPolicy.FAIL,
                search_attributes=baseline_search_attributes(customer_id),
            )
            return wid

    if settled is None:
        return list(await asyncio.gather(*(one(c) for c in customers)))
    started: list[asyncio.Task[str]] = []
    for index, customer_id in enumerate(customers):
        while index - settled() >= START_WINDOW:
            await asyncio.sleep(POLL_SECONDS)
        started.append(asyncio.create_task(one(customer_id)))
    return list(await asyncio.gather(*started))


async def post_event(stack: Stack, customer_id: str, variant: str = ENGINE) -> float:
    """POST the milestone event to /api/events (for `BASELINE_API`: to the hand-written
    endpoint); returns how long it took (s), retries included: a 5xx (the SQLite store
    locked under load) is retried like a client would."""
    began = time.perf_counter()
    body = {"id": uuid.uuid4().hex, "customer_id": customer_id, "name": MILESTONE_EVENT}
    headers = {"Authorization": f"Bearer {stack.token}"}
    http, path = (
        (stack.baseline_http, "/events") if variant == BASELINE_API else (stack.http, "/api/events")
    )
    for attempt in range(POST_ATTEMPTS):
        response = await http.post(path, json=body, headers=headers)
        if response.status_code < 500 or attempt == POST_ATTEMPTS - 1:
            break
        stack.api_retries += 1
        await asyncio.sleep(0.1 * 2**attempt)
    took = time.perf_counter() - began
    if response.status_code != 202:
        raise BenchFailure(
            f"POST {path} for {customer_id}: {response.status_code} {response.text[:300]}"
        )
    answer = response.json()
    if variant == BASELINE_API:
        if answer["status"] != "accepted":
            raise BenchFailure(f"POST {path} for {customer_id} reached no workflow: {answer}")
        return took
    result = answer["results"][0]
    if result["status"] not in ("accepted", "duplicate") or (
        result["status"] == "accepted" and not result["signalled"]
    ):
        raise BenchFailure(f"POST {path} for {customer_id} reached no enrollment: {result}")
    return took


async def signal_event(stack: Stack, variant: str, customer_id: str) -> None:
    """The same `event` signal the router sends, straight to the workflow."""
    event = EventSignal(id=uuid.uuid4().hex, name=MILESTONE_EVENT, at=datetime.now(UTC))
    if variant == BASELINE:
        baseline = stack.client.get_workflow_handle_for(
            BaselineWorkflow.run, baseline_id(customer_id)
        )
        await baseline.signal(BaselineWorkflow.event, event)
    else:
        await EnrollmentHandle.get(stack.client, enrollment_id(PLAYBOOK, customer_id)).send_event(
            event
        )


async def wait_for_projection(
    stack: Stack,
    prefix: str,
    n: int,
    done: Callable[[str, str | None], bool],
    worker: WorkerProcess,
    report: Callable[[float], None],
    stall_timeout: float,
    on_rows: Callable[[list[tuple[str, str, str | None]]], None] | None = None,
) -> float:
    """Poll the store until ``n`` enrollments satisfy ``done(status, step)``.

    Returns the time (perf_counter) it saw the last one; fails if nothing moved for
    ``stall_timeout`` seconds or an enrollment ended some other way.
    """
    last, last_change = -1, time.perf_counter()
    while True:
        rows = stack.projection(prefix)
        if on_rows is not None:
            on_rows(rows)
        count = sum(1 for _, status, step in rows if done(status, step))
        now = time.perf_counter()
        report(count)
        if count >= n:
            return now
        wrong = [(c, s) for c, s, _ in rows if s not in ("running", "completed")]
        if wrong:
            raise BenchFailure(f"{len(wrong)} enrollments ended unexpectedly, e.g. {wrong[:3]}")
        if count != last:
            last, last_change = count, now
        elif now - last_change > stall_timeout:
            raise BenchFailure(
                f"{prefix}: stuck at {count}/{n} for {stall_timeout:.0f} s\n{worker.log_tail()}"
            )
        worker.check_alive()
        await asyncio.sleep(POLL_SECONDS)


async def verify(
    stack: Stack,
    variant: str,
    prefix: str,
    customers: Sequence[str],
    queue: str,
    *,
    completed: bool,
) -> None:
    """Fail unless each enrollment did its work exactly once (emails, task, projection,
    Temporal status); ``completed=False`` checks enrollments parked on the milestone."""
    like = f"{prefix}-%"
    with stack.sessions() as session:
        emails = session.execute(
            select(
                OutboxMessage.enrollment_id,
                OutboxMessage.step_id,
                OutboxMessage.contact_email,
                OutboxMessage.status,
                OutboxMessage.idempotency_key,
            ).where(OutboxMessage.customer_id.like(like))
        ).all()
        tasks = session.execute(
            select(Task.enrollment_id, Task.step_id).where(Task.customer_id.like(like))
        ).all()
    projection = {c: (status, step) for c, status, step in stack.projection(prefix)}
    problems: list[str] = []
    steps = EMAIL_STEPS if completed else EMAIL_STEPS[:1]
    per_step = Counter((e, s, c) for e, s, c, _, _ in emails)
    keys = Counter(k for *_, k in emails)
    expected = {(workflow_id(variant, c), s, f"ada@{c}.example") for c in customers for s in steps}
    for key in sorted(expected):
        if per_step.get(key, 0) != 1:
            problems.append(f"{per_step.get(key, 0)} emails for {key}")
    problems += [
        f"unexpected email {key} x{n}" for key, n in per_step.items() if key not in expected
    ]
    problems += [f"duplicate outbox key {k}" for k, n in keys.items() if n > 1]
    problems += [f"email {e}/{s} is {st}" for e, s, _, st, _ in emails if st != "captured"]
    task_count = Counter(e for e, _ in tasks)
    for customer_id in customers:
        wid = workflow_id(variant, customer_id)
        if task_count.get(wid, 0) != 1:
            problems.append(f"{task_count.get(wid, 0)} tasks for {wid}")
        status, step = projection.get(customer_id, (None, None))
        if (status, step if not completed else None) != (
            ("completed", None) if completed else ("running", PARK_STEP)
        ):
            problems.append(f"{wid} is {status} at {step}")
    status = "Completed" if completed else "Running"
    count = -1
    for _ in range(50):  # visibility can trail the workflows by a moment
        count = (
            await stack.client.count_workflows(
                f"TaskQueue = '{queue}' AND ExecutionStatus = '{status}'"
            )
        ).count
        if count == len(customers):
            break
        await asyncio.sleep(0.1)
    if count != len(customers):
        problems.append(f"Temporal has {count} {status} workflows, expected {len(customers)}")
    if problems:
        raise BenchFailure(
            f"{variant} run {prefix}: {len(problems)} problem(s): " + "; ".join(problems[:5])
        )


async def sample_histories(
    stack: Stack, workflow_ids: Sequence[str], size: int
) -> list[WorkflowHistory]:
    """The histories of an even sample of a run's workflows."""
    step = max(1, len(workflow_ids) // size)
    sample = list(workflow_ids)[::step][:size]
    return [await stack.client.get_workflow_handle(w).fetch_history() for w in sample]


def history_lengths(histories: Sequence[WorkflowHistory]) -> tuple[int, float, float]:
    """(canonical length, mean length, share of short paths) of a sample of histories.

    Timing changes a history's length, so lengths are compared on the same path: the
    canonical length is the shortest among histories where the 1 s pause needed its timer,
    which is what the workflow's own commands cost. Timing only adds to it: a signal that
    arrives while a workflow task runs adds a task, and on a loaded machine tasks time out
    and run again. When the projection write before the pause took longer than the pause,
    both workflows rightly go on without a timer, 5 events fewer; the share of such short
    paths is the third figure.
    """
    fired = EventType.EVENT_TYPE_TIMER_FIRED
    lengths = [len(h.events) for h in histories]
    full = [len(h.events) for h in histories if any(e.event_type == fired for e in h.events)]
    return min(full or lengths), statistics.mean(lengths), 1 - len(full) / len(lengths)


async def replay_cpu_ms(
    histories: dict[str, list[WorkflowHistory]], replays: int
) -> dict[str, float]:
    """CPU per enrollment of the workflow code alone: replay each variant's histories in
    this process (sandbox, decoding, the workflow's own code; no server, no activities).
    Alternated ``replays`` times; the least disturbed (smallest) figure counts. Replaying
    also proves both workflows deterministic over what they just ran."""
    from workflows.playbook import PlaybookWorkflow

    classes = {ENGINE: PlaybookWorkflow, BASELINE: BaselineWorkflow}
    best: dict[str, float] = {}
    for _ in range(replays):
        for variant, sample in histories.items():

            async def each(items: list[WorkflowHistory] = sample) -> AsyncIterator[WorkflowHistory]:
                for item in items:
                    yield item

            replayer = Replayer(
                workflows=[classes[variant]], data_converter=pydantic_data_converter
            )
            began = time.process_time()
            await replayer.replay_workflows(each(), raise_on_replay_failure=True)
            spent = (time.process_time() - began) * 1000 / len(sample)
            best[variant] = min(best.get(variant, spent), spent)
    return best


def run_median(runs: Sequence[Any], attr: str) -> float:
    """The median of one figure over a variant's runs (every scenario has at least one)."""
    value = median([getattr(r, attr) for r in runs])
    assert value is not None, f"no runs for {attr}"
    return value


def round_order(variants: Sequence[str], round_no: int) -> list[str]:
    """The order the variants run in, round ``round_no``: drift (a warming server, a
    growing database) shared between the variants compared.

    The variants go in pairs, as listed: the first and second, the third and fourth...;
    list the two a goal compares first. The two of a pair always run back to back, which
    of them goes first alternating from round to round, and the pairs take turns going
    first every two rounds. Over any even number of rounds both of a pair have the same
    mean place, and over a multiple of ``2 x pairs`` rounds every variant has.

    A run's later rounds are slower than its first ones (the in-memory dev server keeps
    every history), so a variant that ran later on average, or last, would pay for it.
    """
    pairs = [list(variants[i : i + 2]) for i in range(0, len(variants), 2)]
    if round_no % 2 == 0:
        pairs = [pair[::-1] for pair in pairs]
    shift = (round_no - 1) // 2 % len(pairs)
    return [v for pair in [*pairs[shift:], *pairs[:shift]] for v in pair]


async def run_rounds(
    run: Callable[[Stack, str, Sizes, int, Progress], Awaitable[RunT]],
    stack: Stack,
    sizes: Sizes,
    progress: Progress,
    variants: Sequence[str] = (ENGINE, BASELINE),
) -> dict[str, list[RunT]]:
    """``run`` for every variant, `Sizes.rounds` times, in `round_order`; each variant's
    runs in the order they ran."""
    runs: dict[str, list[RunT]] = {v: [] for v in variants}
    for round_no in range(1, sizes.rounds + 1):
        for variant in round_order(variants, round_no):
            runs[variant].append(await run(stack, variant, sizes, round_no, progress))
    return runs


def seed_run(
    stack: Stack, scenario: str, round_no: int, variant: str, n: int
) -> tuple[str, str, list[str]]:
    """``n`` customers of a run's own: their prefix ``<scenario><round><variant>``, the
    run's task queue, and their ids."""
    prefix = f"{scenario}{round_no}{CODES[variant]}"
    return prefix, f"bench-{prefix}", stack.seed(prefix, n)


class HasHistory(Protocol):
    """A run with the (canonical, mean, short-path share) lengths of its sampled histories."""

    @property
    def history(self) -> tuple[int, float, float]: ...


def side_by_side(
    scenario: str,
    name: str,
    unit: str,
    runs: Mapping[str, Sequence[Any]],
    attr: str,
    *,
    goal: str = "",
    note: str = "",
) -> Metric:
    """One figure, the median over the engine's runs beside the median over the baseline's."""
    engine, baseline = (run_median(runs[v], attr) for v in (ENGINE, BASELINE))
    return Metric(scenario, name, unit, engine, baseline, goal=goal, note=note)


def history_metric(
    scenario: str,
    name: str,
    sizes: Sizes,
    engine: Sequence[HasHistory],
    baseline: Sequence[HasHistory],
) -> Metric:
    """History length on the same path for both (see `history_lengths`)."""

    def usual(runs: Sequence[HasHistory]) -> float:
        return float(min(r.history[0] for r in runs))

    def mean(runs: Sequence[HasHistory], index: int) -> float:
        return statistics.mean(r.history[index] for r in runs)

    metric = Metric(
        scenario,
        name,
        "",
        usual(engine),
        usual(baseline),
        goal="= baseline",
        note=f"shortest on the full path, {sizes.history_sample} sampled a run; "
        f"means {mean(engine, 1):.1f} / {mean(baseline, 1):.1f}; "
        f"pause timer not needed in {mean(engine, 2):.0%} / {mean(baseline, 2):.0%}",
    )
    metric.met = metric.engine == metric.baseline
    return metric
