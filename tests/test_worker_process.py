"""What a worker or API process sets up for latency: activity polls that leave slots free for
eager starts, and start-up objects frozen out of the garbage collector's scans."""

from __future__ import annotations

import gc
import weakref
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import PollerBehaviorSimpleMaximum

from engine.gc_freeze import freeze_startup_objects
from engine.settings import Settings, load_settings

SECRET = "worker-process-test-signing-secret-32-bytes"
# Temporal's worker asks for at most this many eager starts in one workflow task's reply.
MAX_EAGER_PER_WORKFLOW_TASK = 3


def settings_for(tmp_path: Path, database_url: str, **overrides: object) -> Settings:
    return load_settings(
        playbook_home=tmp_path, database_url=database_url, signing_secret=SECRET, **overrides
    )


def test_on_sqlite_the_polls_leave_room_for_eager_activity_starts(tmp_path: Path) -> None:
    settings = settings_for(tmp_path, f"sqlite:///{tmp_path / 'p.db'}")
    assert settings.activity_slots == 8
    assert settings.activity_pollers == 2
    # Each open poll holds a slot: what is left is what eager starts can take.
    free = settings.activity_slots - settings.activity_pollers
    assert free >= MAX_EAGER_PER_WORKFLOW_TASK + 2


def test_on_postgresql_the_sdk_default_of_five_polls_is_kept(tmp_path: Path) -> None:
    settings = settings_for(tmp_path, "postgresql://u:p@db:5432/playbook")
    assert (settings.activity_slots, settings.activity_pollers) == (100, 5)


def test_the_number_of_polls_is_configurable_and_never_above_the_slots(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WORKER_ACTIVITY_POLLERS", "3")
    assert settings_for(tmp_path, "postgresql://u:p@db/pb").activity_pollers == 3
    monkeypatch.setenv("WORKER_ACTIVITY_POLLERS", "50")
    sqlite = settings_for(tmp_path, f"sqlite:///{tmp_path / 'p.db'}")
    assert sqlite.activity_pollers == sqlite.activity_slots == 8


async def test_the_production_worker_uses_the_slots_and_polls_of_the_settings(
    temporal_env: WorkflowEnvironment, task_queue: str, tmp_path: Path
) -> None:
    from worker import build_activities, build_worker

    settings = settings_for(
        tmp_path, f"sqlite:///{tmp_path / 'w.db'}", temporal_task_queue=task_queue
    )
    with ThreadPoolExecutor(max_workers=settings.activity_slots) as pool:
        client = temporal_env.client
        async with build_worker(client, settings, build_activities(settings), pool) as worker:
            config = worker.config()
    assert config.get("max_concurrent_activities") == 8
    assert config.get("activity_task_poller_behavior") == PollerBehaviorSimpleMaximum(2)


@pytest.fixture
def unfrozen() -> Iterator[None]:
    """Leave the test process's collector as it was."""
    yield
    gc.unfreeze()


class Node:
    def __init__(self) -> None:
        self.other: Node | None = None


def cycle() -> weakref.ref[Node]:
    """Two objects that only reference each other: garbage only the cyclic collector frees."""
    a, b = Node(), Node()
    a.other, b.other = b, a
    return weakref.ref(a)


@pytest.mark.usefixtures("unfrozen")
def test_start_up_objects_are_frozen_and_later_garbage_is_still_collected() -> None:
    before_garbage = cycle()  # garbage by the time the process is ready: collected first
    kept = Node()
    kept.other = kept
    frozen = freeze_startup_objects()
    assert before_garbage() is None
    # Frozen objects still go when their last reference does, so the count can only shrink.
    assert 0 < gc.get_freeze_count() <= frozen
    assert not any(o is kept for o in gc.get_objects())  # no collection walks it any more

    later_garbage = cycle()
    gc.collect()
    assert later_garbage() is None
