"""The latency scenario's slowest events taken apart (`bench.scenarios.segments`): the four
parts are cut where a real history records them and add up to the event's latency, and
the rows report the run's slowest 1% whatever round they fell in."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
from temporalio import activity, workflow
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import UnsandboxedWorkflowRunner, Worker

from bench.scenarios.segments import (
    Segments,
    Traced,
    pooled_slowest,
    segment_metrics,
    segments_of,
    trace,
    traced_count,
)
from tests.helpers.temporal import start_dev_server


@activity.defn
async def act() -> None:
    """Stands for the email activity."""


@workflow.defn
class WaitsThenActs:
    """Stands for a parked enrollment: waits for its event, then runs an activity."""

    def __init__(self) -> None:
        self.arrived = False

    @workflow.run
    async def run(self) -> None:
        await workflow.wait_condition(lambda: self.arrived)
        await workflow.execute_activity(act, start_to_close_timeout=timedelta(seconds=10))

    @workflow.signal
    def event(self) -> None:
        self.arrived = True


@pytest.fixture(scope="module")
async def dev_env() -> AsyncIterator[WorkflowEnvironment]:
    """Real time, as the benchmark runs (the time-skipping server's clock is its own)."""
    env = await start_dev_server()
    try:
        yield env
    finally:
        await env.shutdown()


def _worker(env: WorkflowEnvironment, queue: str) -> Worker:
    # Unsandboxed: the sandbox would import this module again, and the bench's report with it.
    return Worker(
        env.client,
        task_queue=queue,
        workflows=[WaitsThenActs],
        activities=[act],
        workflow_runner=UnsandboxedWorkflowRunner(),
    )


async def _one_event(env: WorkflowEnvironment) -> tuple[str, datetime, datetime]:
    """A parked workflow sent its event: its id, when it was sent, and when it was done."""
    queue = f"segments-{uuid.uuid4().hex[:8]}"
    async with _worker(env, queue):
        handle = await env.client.start_workflow(
            WaitsThenActs.run, id=f"wf-{queue}", task_queue=queue
        )
        await handle.describe()
        await asyncio.sleep(0.2)  # parked: its first workflow task is long done
        sent = datetime.now(UTC)
        await handle.signal(WaitsThenActs.event)
        await handle.result()
        done = datetime.now(UTC)
    return handle.id, sent, done


async def test_the_parts_of_a_real_history_add_up_to_the_latency(
    dev_env: WorkflowEnvironment,
) -> None:
    workflow_id, sent, done = await _one_event(dev_env)
    history = await dev_env.client.get_workflow_handle(workflow_id).fetch_history()
    parts = segments_of(sent, history.events, done)
    assert parts is not None
    latency = (done - sent).total_seconds() * 1000
    assert parts.total == pytest.approx(latency)
    # Each part is a stretch of real time on one machine, cut after the signal (the task
    # that started the workflow came 200 ms before it): none runs backwards.
    for value in (parts.before_signal, parts.to_task, parts.task, parts.to_email):
        assert value >= -1.0  # the server's timestamps against this process's clock

    traced = await trace(dev_env.client, {"c": workflow_id}, {"c": sent}, {"c": done}, 1)
    assert traced.slowest == [(pytest.approx(latency), parts)]
    assert traced.typical == [parts]


async def test_a_history_without_the_signal_has_no_parts(dev_env: WorkflowEnvironment) -> None:
    queue = f"segments-{uuid.uuid4().hex[:8]}"
    async with _worker(dev_env, queue):
        handle = await dev_env.client.start_workflow(
            WaitsThenActs.run, id=f"wf-{queue}", task_queue=queue
        )
        await handle.describe()
        history = await handle.fetch_history()
        await handle.terminate()
    now = datetime.now(UTC)
    assert segments_of(now, history.events, now) is None


def _parts(before: float) -> Segments:
    return Segments(before_signal=before, to_task=1.0, task=2.0, to_email=3.0)


def test_enough_is_traced_for_the_slowest_percent_to_fall_in_one_round() -> None:
    assert traced_count(150, 6) == 9  # 1% of 900 events
    assert traced_count(150, 1) == 2
    assert traced_count(5, 400) == 5  # never more than a round has


def test_the_slowest_are_pooled_across_rounds() -> None:
    # Round one's tail is slower than anything in round two: the run's slowest come from it.
    one = Traced([(90.0, _parts(80.0)), (85.0, _parts(70.0)), (20.0, _parts(5.0))], [])
    two = Traced([(40.0, _parts(30.0)), (30.0, _parts(20.0)), (10.0, _parts(1.0))], [])
    assert pooled_slowest([two, one], 3) == [_parts(80.0), _parts(70.0), _parts(30.0)]


def test_one_row_per_part_with_the_typical_event_in_the_note() -> None:
    engine = [Traced([(60.0, _parts(50.0)), (15.0, _parts(4.0))], [_parts(3.0)])]
    baseline = [Traced([(20.0, _parts(10.0)), (10.0, _parts(2.0))], [_parts(1.0)])]
    rows = segment_metrics({"e": engine, "b": baseline}, "e", "b", events=100)
    assert [r.name for r in rows] == [
        f"slowest 1%: {part}, mean"
        for part in (
            "before the signal (POST: API and RPC; signal: RPC)",
            "signal -> workflow task started",
            "workflow task",
            "workflow task done -> email row (activities)",
        )
    ]
    before = rows[0]
    assert (before.engine, before.baseline) == (50.0, 10.0)  # the slowest 1% of 100: one each
    assert before.note == "typical event 3.0 / 1.0 ms"
    assert rows[3].engine == rows[3].baseline == 3.0


def test_a_third_variant_slowest_goes_in_the_note() -> None:
    engine = [Traced([(60.0, _parts(50.0))], [_parts(3.0)])]
    by_hand = [Traced([(45.0, _parts(35.0))], [_parts(2.5)])]
    rows = segment_metrics({"e": engine, "b": [], "a": by_hand}, "e", "b", events=100, also="a")
    assert rows[0].baseline is None  # nothing traced for it: no figure, not a zero
    assert rows[0].note == "typical event 3.0 / - ms; a's slowest 1% 35.0 ms"
