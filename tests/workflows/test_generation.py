"""New enrollments carry the interpreter's generation, and their histories no patch markers.

`workflow.patched` writes a marker (and, with it, a search-attribute upsert) into every new
history that reaches a guarded change, forever: two more events per enrollment than a
hand-written workflow, for changes that are simply how the interpreter behaves now. An
enrollment started at `INTERPRETER_GENERATION` has those changes from its first step without
asking; one whose input has no generation (started before generations existed) still asks,
so histories recorded then replay (tests/workflows/test_replay.py).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from temporalio.api.enums.v1 import EventType
from temporalio.client import WorkflowHistory
from temporalio.testing import WorkflowEnvironment

from engine.client.playbook import start_enrollment
from engine.messages import INTERPRETER_GENERATION, EnrollmentInput
from engine.project import Project
from tests.helpers.harness import records, running, seed_customer
from tests.helpers.onboarding import kickoff_task
from workflows.interpreter import PATCH_PER_RECIPIENT_DELIVERY

HISTORIES = Path(__file__).resolve().parents[1] / "histories"


def patches(history: WorkflowHistory) -> list[str]:
    """The ids of the patch markers in ``history``, in order."""
    found = []
    for event in history.events:
        if event.event_type != EventType.EVENT_TYPE_MARKER_RECORDED:
            continue
        marker = event.marker_recorded_event_attributes
        if marker.marker_name == "core_patch":
            found.append(json.loads(marker.details["patch-data"].payloads[0].data)["id"])
    return found


def started_generation(history: WorkflowHistory) -> Any:
    start = history.events[0].workflow_execution_started_event_attributes
    return json.loads(start.input.payloads[0].data).get("generation")


async def test_a_new_enrollment_has_todays_behaviour_without_patch_markers(onboarding) -> None:
    async with onboarding() as (h, handle):
        await kickoff_task(h)  # the welcome email went out before it
        history = await handle.fetch_history()
        status = await h.status(handle)
    assert started_generation(history) == INTERPRETER_GENERATION >= 1
    assert patches(history) == []
    # Per-recipient delivery, the newest email behaviour: one delivery per contact.
    [welcome] = records(status, "email", "welcome")
    assert len(welcome.data["deliveries"]) == 2


async def test_an_enrollment_without_a_generation_still_asks_workflow_patched(
    temporal_env: WorkflowEnvironment, sessions, task_queue: str, project: Project, customer_id
) -> None:
    seed_customer(sessions, customer_id)
    async with running(temporal_env, sessions, task_queue, customer_id=customer_id) as h:
        workflow_id = f"onboarding/{customer_id}"
        payload = EnrollmentInput(
            plan=project.plan("onboarding"),
            customer_id=customer_id,
            enrollment_id=workflow_id,
            started_at=await h.now(),
            use_search_attributes=False,
        )
        handle = await start_enrollment(
            temporal_env.client, payload, id=workflow_id, task_queue=task_queue
        )
        h.started.append(workflow_id)
        await kickoff_task(h)
        history = await h.env.client.get_workflow_handle(workflow_id).fetch_history()
    assert started_generation(history) == 0
    assert patches(history) == [PATCH_PER_RECIPIENT_DELIVERY]
    assert handle.id == workflow_id


def test_the_replay_suite_holds_histories_of_both_generations() -> None:
    """tests/workflows/test_replay.py replays these: the no-marker path stays guarded too."""
    for name in ("onboarding_nudged_gen1", "renewal_late_moved_gen1"):
        history = WorkflowHistory.from_json(name, (HISTORIES / f"{name}.json").read_text())
        assert started_generation(history) == 1
        assert patches(history) == []
    for name in ("onboarding_nudged", "renewal_late_moved"):
        history = WorkflowHistory.from_json(name, (HISTORIES / f"{name}.json").read_text())
        assert started_generation(history) is None
        assert patches(history) != []
