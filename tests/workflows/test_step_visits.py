"""The interpreter reports the steps it enters, and the funnel reads them (issue 19)."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select
from temporalio.testing import WorkflowEnvironment

from engine.client.registration import register_versions
from engine.project import Project
from engine.services import reports
from engine.services.reports import ReportFilters
from engine.store.models import StepVisit
from tests.helpers.onboarding import hold_kickoff


async def test_steps_entered_are_kept_and_make_the_funnel(
    temporal_env: WorkflowEnvironment, onboarding, project: Project
) -> None:
    async with onboarding() as (h, handle):
        register_versions(h.sessions, project)  # as the API and worker do: the step order
        await hold_kickoff(h, handle)
        await temporal_env.sleep(timedelta(days=2))
        await h.event(handle, "report.created")  # first value: the goal ends it here
        result = await h.result(handle)
        assert result.outcome == "goal_reached"

        with h.sessions() as session:
            visits = session.scalars(
                select(StepVisit).where(StepVisit.workflow_id == handle.id).order_by(StepVisit.id)
            ).all()
            report = reports.build(session, "funnel", ReportFilters(playbook="onboarding"))

    assert [(v.step_id, v.visit) for v in visits] == [
        ("welcome", 1),
        ("kickoff", 1),
        ("await_integration", 1),
    ]
    assert all(v.customer_id == h.customer_id and v.run_key for v in visits)
    [funnel] = report.tables
    rows = {row["step"].value: row for row in funnel.rows}
    assert [rows[s]["reached"].value for s in ("welcome", "kickoff", "await_integration")] == [
        1,
        1,
        1,
    ]
    assert rows["await_integration"]["goal"].value == 1
    assert rows["kickoff"]["past"].value == 1 and rows["nudge_integration"]["reached"].value == 0
