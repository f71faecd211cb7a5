"""`playbook diff`: a real change to onboarding.yaml, its diff, who it touches, its forecast."""

from __future__ import annotations

import asyncio
import json
import shutil
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from click.testing import CliRunner
from sqlalchemy.orm import Session, sessionmaker

from engine.cli import main
from engine.client.deployment import deploy_working_copy
from engine.language.plandiff import diff_plans
from engine.project import load_project
from engine.settings import settings_override
from engine.simulation.book_inputs import load_book
from engine.simulation.forecast import book_from_store, forecast_change
from engine.store import repository
from engine.store.models import Enrollment
from tests.helpers.paths import REPO

WHERE = ["await_integration", "await_integration", "await_integration_after_nudge", "kickoff"]


def edited_copy(tmp_path: Path) -> Path:
    """The shipped playbooks with a real change: kickoff due in 2 days instead of 3, the
    integration wait 5 days instead of 7, the nudge's text edited, integration_help gone."""
    root = tmp_path / "playbooks"
    shutil.copytree(REPO / "playbooks", root)
    return root


def edit(root: Path) -> None:
    book = root / "onboarding.yaml"
    text = book.read_text().replace("      due: 3d", "      due: 2d", 1)
    text = text.replace(
        "timeout: 7d\n      on_timeout: nudge_integration",
        "timeout: 5d\n      on_timeout: nudge_integration",
    )
    book.write_text(text)
    txt = root / "templates" / "onboarding" / "connect_your_data.txt"
    txt.write_text(txt.read_text().replace("about five minutes", "about three minutes"))


def seed(sessions: sessionmaker[Session], root: Path) -> str:
    """Deploy the shipped onboarding; four customers running it at various steps."""
    project = load_project(root)
    deploy_working_copy(sessions, project, ["onboarding"], by="test")
    version = project.plans["onboarding"].version
    customers = load_book(root / "examples" / "book" / "customers.yaml").customers[:4]
    with sessions.begin() as session:
        for customer, step in zip(customers, WHERE, strict=True):
            repository.upsert_customer(session, customer.customer_data())
            session.add(
                Enrollment(
                    enrollment_key=f"onboarding:{customer.id}:1",
                    workflow_id=f"onboarding:{customer.id}",
                    playbook_id="onboarding",
                    version=version,
                    customer_id=customer.id,
                    current_step=step,
                    started_at=datetime.now(UTC),
                )
            )
    return version


def test_diff_names_changes_emails_and_running_enrollments_per_step(
    sessions: sessionmaker[Session], db_url: str, tmp_path: Path
) -> None:
    root = edited_copy(tmp_path)
    version = seed(sessions, root)
    edit(root)
    with settings_override(database_url=db_url, playbook_home=tmp_path):
        result = CliRunner().invoke(
            main,
            [
                "diff",
                "onboarding",
                "--root",
                str(root),
                "--no-forecast",
                "--format",
                "json",
                "--html",
                str(tmp_path / "review.html"),
            ],
            catch_exceptions=False,
        )
    assert result.exit_code == 0, result.output
    review = json.loads(result.stdout)
    assert review["diff"]["old_version"] == version
    changes = {
        (s["step"], c["path"], c["aspect"]) for s in review["diff"]["steps"] for c in s["changes"]
    }
    assert changes == {
        ("kickoff", "task.due_seconds", "task"),
        ("await_integration", "wait_for.timeout_seconds", "wait"),
        ("nudge_integration", "email.templates", "email"),
    }
    (email,) = review["emails"]
    assert "about five minutes" in email["before"]["text"]
    assert "about three minutes" in email["after"]["text"]
    impact = review["impact"]
    assert impact["running"] == 4 and impact["on_deployed"] == 4
    per_step = {s["step"]: s["running"] for s in impact["steps"]}
    assert per_step == {"kickoff": 1, "await_integration": 2, "await_integration_after_nudge": 1}
    assert all(s["same_id"] == "moves" for s in impact["steps"])
    # Past the nudge nothing changed: moving those enrollments changes nothing for them.
    touched = {s["step"]: s["touched"] for s in impact["steps"]}
    assert touched == {
        "kickoff": True,
        "await_integration": True,
        "await_integration_after_nudge": False,
    }
    page = (tmp_path / "review.html").read_text()
    assert "await_integration_after_nudge" in page and "about three minutes" in page


def test_a_removed_step_with_enrollments_is_refused_under_same_id(
    sessions: sessionmaker[Session], db_url: str, tmp_path: Path
) -> None:
    root = edited_copy(tmp_path)
    seed(sessions, root)
    old = load_project(root).plan("onboarding")
    book = root / "onboarding.yaml"
    text = book.read_text()
    start = text.index("  - id: await_integration_after_nudge")
    end = text.index("  - id: integration_help")
    book.write_text(text[:start] + text[end:].replace("on_timeout: integration_help", ""))
    book.write_text(
        book.read_text().replace(
            "template: onboarding/connect_your_data\n",
            "template: onboarding/connect_your_data\n    next: integration_help\n",
        )
    )
    new = load_project(root).plan("onboarding")
    diff = diff_plans(old, new)
    assert diff.removed == ["await_integration_after_nudge"]
    from engine.services.change import running_impact

    with sessions() as session:
        impact = running_impact(session, old, new, diff)
    refused = [s for s in impact.steps if s.same_id == "refused"]
    assert [(s.step, s.running) for s in refused] == [("await_integration_after_nudge", 1)]
    assert "--map await_integration_after_nudge=" in refused[0].reason
    assert impact.touched("stay") == 0 and impact.refused() == 1


def test_forecast_compares_old_and_new_over_the_store_book(
    sessions: sessionmaker[Session], tmp_path: Path
) -> None:
    root = edited_copy(tmp_path)
    seed(sessions, root)
    old = load_project(root).plan("onboarding")
    edit(root)
    project = load_project(root)
    new = project.plan("onboarding")
    with sessions() as session:
        book = book_from_store(session)
    assert book is not None and len(book.customers) == 4
    forecast = asyncio.run(
        forecast_change(
            project,
            old,
            new,
            book=book,
            running=[c.id for c in book.customers],
            days=10,
            start=date(2026, 12, 7),
        )
    )
    assert forecast.source == "store" and forecast.days == 10
    assert (forecast.old.version, forecast.new.version) == (old.short_version, new.short_version)
    # Every running customer enters onboarding again in each run (minus the internal ones).
    assert forecast.old.enrollments == forecast.new.enrollments > 0
    assert forecast.old.emails > 0 and forecast.new.emails > 0


def test_backtest_replays_recorded_events_through_two_versions(
    sessions: sessionmaker[Session], tmp_path: Path
) -> None:
    from engine.simulation.backtest import backtest

    root = edited_copy(tmp_path)
    seed(sessions, root)
    old = load_project(root).plan("onboarding")
    edit(root)
    project = load_project(root)
    new = project.plan("onboarding")
    now = datetime(2026, 12, 3, 12, tzinfo=UTC)
    with sessions.begin() as session:
        customers = [c.id for c in book_from_store(session).customers]  # type: ignore[union-attr]
        for i, customer in enumerate(customers):
            at = now - timedelta(days=12, hours=-i)
            repository.record_event(session, f"c-{customer}", customer, "customer.created", at)
        first = customers[0]
        for name, days in (("integration.connected", 10), ("report.created", 9)):
            at = now - timedelta(days=days)
            repository.record_event(session, f"{name}-{first}", first, name, at)
    with sessions() as session:
        result = asyncio.run(backtest(project, [old, new], session, since_days=14, now=now))
    assert result.source == "store" and result.events == 6
    a, b = result.sides
    assert (a.version, b.version) == (old.short_version, new.short_version)
    assert a.enrollments == b.enrollments > 0
    # The customer who created a report reached the goal in both versions.
    assert a.goal_rate > 0 and b.goal_rate > 0 and a.median_days_to_goal is not None
    assert sum(a.stopped.values()) == a.enrollments
    assert a.emails_per_customer > 0
