"""The paged trigger sweep (issue 20): the store read in pages by customer id, a date
trigger on a stored date narrowed by the query, and a sweep cut short resumed after the
last page it reported.

On the time-skipping server and a real store: each trigger is swept twice over the same
book, once paged (under its own playbook id) and once over the whole book read at once (the
unpaged path the book simulation takes, which reads every customer); both must enroll the
same customers for the same cycles.
"""

from __future__ import annotations

import dataclasses
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy.orm import Session, sessionmaker
from temporalio.testing import ActivityEnvironment, WorkflowEnvironment

from activities.sweep import SweepActivities
from engine.client.deployment import deploy_working_copy
from engine.client.sweeps import sweep
from engine.language.calendar import due_field_window
from engine.language.plan import CompiledPlan
from engine.messages import SweepInput
from engine.store.context import all_customer_snapshots
from tests.helpers.harness import seed_customer, write_project

# Zones at both ends of the day line, so a customer's day is UTC's, the day before or after.
ZONES = ("Pacific/Kiritimati", "Pacific/Pago_Pago", "UTC")
TRIGGERS = {
    "until": "on_date: customer.renewal_date - days(30)",  # enroll_until the renewal date
    "catchup": "on_date: customer.renewal_date + weeks(1)\n  late: {catch_up: 3d}",
    "skip": "on_date: customer.renewal_date\n  late: skip",
    "attribute": "on_date: date(customer.attributes.started) + days(10)",  # catch up 7d
    "computed": "on_date: customer.renewal_date - days(customer.attributes.lead)",
}
PLAYBOOK = """\
playbook: {id}
name: {id}
trigger:
  {trigger}
steps:
  - id: done
    end: {{outcome: done}}
"""


def _plans(root: Path, name: str) -> tuple[CompiledPlan, CompiledPlan]:
    """The trigger ``name`` as two playbooks: one swept paged, one swept whole."""
    ids = (f"{name}-paged", f"{name}-whole")
    project = write_project(
        root / name, {i: PLAYBOOK.format(id=i, trigger=TRIGGERS[name]) for i in ids}
    )
    return project.plan(ids[0]), project.plan(ids[1])


def _seed_book(sessions: sessionmaker[Session], now: datetime) -> None:
    """60 customers with renewal and start dates from 45 days before their own today to 50
    days after."""
    for n in range(60):
        days = -45 + (n * 37) % 96
        timezone = ZONES[n % len(ZONES)]
        today = now.astimezone(ZoneInfo(timezone)).date()
        seed_customer(
            sessions,
            f"c-{n:03d}",
            timezone=timezone,
            renewal=today + timedelta(days=days),
            contacts=[],
            attributes={
                "started": (today - timedelta(days=days + 10)).isoformat(),
                "lead": 20 + n % 15,
            },
        )


def _customers(ids: list[str]) -> list[tuple[str, str]]:
    """(customer, cycle) of enrollment IDs ``playbook/customer/cycle``."""
    return sorted((i.split("/")[1], i.split("/")[2]) for i in ids)


@pytest.mark.parametrize("name", sorted(TRIGGERS))
async def test_a_paged_sweep_enrolls_whom_a_whole_book_sweep_enrolls(
    temporal_env: WorkflowEnvironment,
    sessions: sessionmaker[Session],
    task_queue: str,
    tmp_path: Path,
    name: str,
) -> None:
    """Pages of 7, with the query's date window when the trigger has one, enroll the same
    customers for the same cycles as the sweep over every customer; pages report
    increasing ids, and a date window reads fewer customers than the book."""
    now = await temporal_env.get_current_time()
    _seed_book(sessions, now)
    paged, whole = _plans(tmp_path, name)
    with sessions() as session:
        book = all_customer_snapshots(session)
    client = temporal_env.client
    expected = await sweep(
        sessions, client, whole, task_queue, now, False, customers=book
    )  # fmt: skip
    pages: list[str] = []
    started = await sweep(
        sessions, client, paged, task_queue, now, False, page_size=7, on_page=pages.append
    )
    assert expected, "the book has due customers for every trigger"
    assert _customers(started) == _customers(expected)
    assert pages == sorted(set(pages))
    assert paged.trigger is not None
    if due_field_window(paged.trigger, now.date()) is not None:
        read: list[str] = []
        await sweep(
            sessions, client, paged, task_queue, now, False, page_size=1, on_page=read.append
        )
        assert len(expected) <= len(read) < len(book)
    else:
        assert name == "computed"
        assert len(pages) == -(-len(book) // 7)


class WorkerDied(Exception):
    """The worker running the sweep went away after a page."""


async def test_a_sweep_cut_short_resumes_after_its_last_page(
    temporal_env: WorkflowEnvironment,
    sessions: sessionmaker[Session],
    task_queue: str,
    tmp_path: Path,
) -> None:
    """A sweep that dies after its second page of 4 has started that many pages' worth of
    enrollments; resumed after the last id it reported, it starts the rest, each once, and
    together they are what one whole sweep starts."""
    now = await temporal_env.get_current_time()
    _seed_book(sessions, now)
    paged, whole = _plans(tmp_path, "computed")  # no date window: every customer is read
    client = temporal_env.client
    expected = await sweep(sessions, client, whole, task_queue, now, False)
    beats: list[str] = []

    def heartbeat(last: str) -> None:
        beats.append(last)
        if len(beats) == 2:
            raise WorkerDied

    async def first_attempt() -> None:
        await sweep(sessions, client, paged, task_queue, now, False, page_size=4, on_page=heartbeat)

    with pytest.raises(WorkerDied):
        await first_attempt()
    assert beats == ["c-003", "c-007"]
    rest = await sweep(sessions, client, paged, task_queue, now, False, after=beats[-1])
    assert _customers(rest) == [c for c in _customers(expected) if c[0] > "c-007"]
    # What the first attempt started is running: a sweep from the start enrolls nobody twice.
    assert await sweep(sessions, client, paged, task_queue, now, False) == []


async def test_the_sweep_activity_resumes_after_the_id_it_heartbeated(
    temporal_env: WorkflowEnvironment,
    sessions: sessionmaker[Session],
    task_queue: str,
    tmp_path: Path,
) -> None:
    """A retried `sweep_triggers` attempt reads the last id its previous attempt heartbeated
    and sweeps only the customers after it, heartbeating each page's last id in turn."""
    now = await temporal_env.get_current_time()
    _seed_book(sessions, now)
    project = write_project(
        tmp_path / "deployed",
        {"resumed": PLAYBOOK.format(id="resumed", trigger=TRIGGERS["computed"])},
    )
    deploy_working_copy(sessions, project, by="test")
    env = ActivityEnvironment()
    env.info = dataclasses.replace(env.info, heartbeat_details=["c-019"])
    beats: list[str] = []
    env.on_heartbeat = lambda *details: beats.append(details[0])
    activities = SweepActivities(sessions, temporal_env.client, task_queue, False)
    result = await env.run(activities.sweep_triggers, SweepInput(playbook="resumed"))
    enrolled = [i.split("/")[1] for i in result.enrolled]
    assert "c-020" in enrolled  # due, and the first customer after the heartbeat
    assert all(c > "c-019" for c in enrolled)  # c-007 is due too, but was swept before
    assert beats == ["c-059"]  # one page: the 40 customers after c-019
