"""Replay the recorded histories in tests/histories/ against today's workflow code.

Each history is a real enrollment of a shipped playbook, recorded by
``python -m tests.histories.record``. If a change to the interpreter would make it issue different
commands for the same history, Temporal could not resume enrollments that are running now;
the Replayer raises and this test fails. Guard such changes with ``workflow.patched``
instead of re-recording (see tests/histories/README.md).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from temporalio.client import WorkflowHistory
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Replayer

from engine.client.sandbox import workflow_runner
from tests.helpers.paths import PLAYBOOKS
from workflows.playbook import PlaybookWorkflow

HISTORIES = Path(__file__).resolve().parents[1] / "histories"
FILES = sorted(HISTORIES.glob("*.json"))


def test_every_shipped_playbook_has_recorded_histories():
    shipped = {p.stem for p in PLAYBOOKS.glob("*.yaml")} - {"milestones", "policies", "health"}
    recorded = {f.stem.split("_")[0] for f in FILES}
    assert shipped <= recorded, f"no recorded history for {sorted(shipped - recorded)}"
    for playbook in ("onboarding", "renewal"):
        assert len([f for f in FILES if f.stem.startswith(f"{playbook}_")]) >= 2


@pytest.mark.parametrize("path", FILES, ids=[f.stem for f in FILES])
async def test_recorded_history_replays(path: Path):
    text = path.read_text()
    events = json.loads(text)["events"]
    assert events[-1]["eventType"] == "EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED", (
        "record finished enrollments only, so the whole run is replayed"
    )
    history = WorkflowHistory.from_json(path.stem, text)
    replayer = Replayer(
        workflows=[PlaybookWorkflow],
        data_converter=pydantic_data_converter,
        workflow_runner=workflow_runner(),
    )
    result = await replayer.replay_workflow(history)
    assert result.replay_failure is None
