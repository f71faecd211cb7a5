"""`engine.store.insight.record_step_visits` keeps exactly one visit of a run marked latest
(the funnel's "where enrollments stand now"), moved by one UPDATE as visits arrive."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from engine.store.insight import record_step_visits
from engine.store.models import StepVisit

AT = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


def visit(sessions: sessionmaker[Session], run_key: str, *steps: tuple[str, int, int]) -> int:
    """Record (step, visit, minutes after AT) entries of ``run_key``; how many were new."""
    with sessions.begin() as session:
        return record_step_visits(
            session,
            run_key=run_key,
            workflow_id=f"onboarding/{run_key}",
            playbook_id="onboarding",
            version="v1",
            customer_id=run_key,
            visits=[(step, n, AT + timedelta(minutes=m)) for step, n, m in steps],
        )


def latest(sessions: sessionmaker[Session]) -> list[tuple[str, str, int]]:
    with sessions() as session:
        rows = session.execute(
            select(StepVisit.run_key, StepVisit.step_id, StepVisit.visit).where(
                StepVisit.latest.is_(True)
            )
        )
        return sorted((r, s, v) for r, s, v in rows)


def test_the_newest_visit_of_each_run_is_the_only_latest(
    sessions: sessionmaker[Session],
) -> None:
    assert visit(sessions, "acme", ("welcome", 1, 0), ("kickoff", 1, 1)) == 2
    assert visit(sessions, "beta", ("welcome", 1, 0)) == 1
    assert latest(sessions) == [("acme", "kickoff", 1), ("beta", "welcome", 1)]
    assert visit(sessions, "acme", ("welcome", 2, 5)) == 1  # back to a step: its 2nd visit
    assert latest(sessions) == [("acme", "welcome", 2), ("beta", "welcome", 1)]
    assert visit(sessions, "acme", ("welcome", 2, 5)) == 0  # a retried activity: no change
    assert latest(sessions) == [("acme", "welcome", 2), ("beta", "welcome", 1)]
