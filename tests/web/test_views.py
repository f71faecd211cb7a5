"""The UI's building blocks without a browser: visibility, redirects, funnels, timelines."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy.orm import Session, sessionmaker

from engine.messages import EnrollmentSnapshot, StepRecord
from engine.project import load_project
from engine.signing import Keyring
from engine.statuses import OutboxStatus
from engine.store import repository
from engine.store.models import Enrollment, MilestoneState, OutboxMessage, TeamMember
from engine.web.security import csrf_token, safe_next, team_of
from engine.web.timeline import EnrollmentView, customer_timeline, funnels
from engine.web.words import Words, in_words
from tests.helpers.paths import PLAYBOOKS

T0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)


def test_safe_next_only_follows_local_paths() -> None:
    assert safe_next("/tasks/abc?x=1") == "/tasks/abc?x=1"
    for bad in (None, "", "https://evil.example/", "//evil.example/x", "/\\evil.example", "inbox"):
        assert safe_next(bad) == "/inbox"


def test_csrf_tokens_are_bound_to_the_session_and_the_secret() -> None:
    s1, s2 = Keyring("s1"), Keyring("s2")
    assert csrf_token(s1, "cookie-a") == csrf_token(s1, "cookie-a")
    assert csrf_token(s1, "cookie-a") != csrf_token(s1, "cookie-b")
    assert csrf_token(s1, "cookie-a") != csrf_token(s2, "cookie-a")


def test_a_managers_team_reaches_down_the_hierarchy_and_survives_cycles(
    sessions: sessionmaker[Session],
) -> None:
    with sessions.begin() as session:
        for email, manager in [
            ("head@x.example", "csm3@x.example"),  # a cycle from bad CRM data
            ("lead@x.example", "head@x.example"),
            ("csm1@x.example", "lead@x.example"),
            ("csm2@x.example", "head@x.example"),
            ("csm3@x.example", None),
            ("other@x.example", None),
        ]:
            session.add(TeamMember(email=email, name=email, manager_email=manager))
    with sessions() as session:
        assert team_of(session, "csm1@x.example") == {"csm1@x.example"}
        assert team_of(session, "lead@x.example") == {"lead@x.example", "csm1@x.example"}
        head = {"head@x.example", "lead@x.example", "csm1@x.example", "csm2@x.example"}
        assert team_of(session, "head@x.example") == head
        assert team_of(session, "csm3@x.example") == head | {"csm3@x.example"}


def test_funnel_counts_running_enrollments_per_step_in_plan_order(
    sessions: sessionmaker[Session],
) -> None:
    project = load_project(PLAYBOOKS)
    rows = [("kickoff", "running", None)] * 3 + [("welcome", "running", None)]
    rows += [("gone_step", "running", None)]  # a step of an older version
    rows += [(None, "completed", "goal_reached")] * 2 + [(None, "exited", "exited")]
    with sessions.begin() as session:
        for i, (step, status, outcome) in enumerate(rows):
            session.add(
                Enrollment(
                    enrollment_key=f"onboarding/c{i}@1",
                    workflow_id=f"onboarding/c{i}",
                    playbook_id="onboarding",
                    version="v1",
                    customer_id=f"c{i}",
                    status=status,
                    current_step=step,
                    outcome=outcome,
                )
            )
    with sessions() as session:
        result = {f.playbook: f for f in funnels(session, project.plans)}
    onboarding = result["onboarding"]
    steps = [(s.id, s.count) for s in onboarding.steps]
    assert steps[:3] == [("welcome", 1), ("kickoff", 3), ("await_integration", 0)]
    assert steps[-1] == ("gone_step", 1) and not onboarding.steps[-1].known
    assert onboarding.running == 5 and onboarding.ended_total == 3
    assert onboarding.ended == [("completed", "goal_reached", 2), ("exited", "exited", 1)]
    assert result["qbr"].running == 0


def test_timeline_leads_with_what_happened_and_keeps_usage_apart(
    sessions: sessionmaker[Session],
) -> None:
    project = load_project(PLAYBOOKS)
    with sessions.begin() as session:
        repository.upsert_customer(
            session, repository.CustomerData(id="acme", name="Acme", health_score=80)
        )
        repository.upsert_customer(
            session, repository.CustomerData(id="acme", name="Acme", health_score=45)
        )
        repository.upsert_customer(session, repository.CustomerData(id="acme", name="Acme"))
        repository.record_event(session, "e1", "acme", "customer.created", T0)
        repository.record_event(
            session, "e2", "acme", "report.created", T0 + timedelta(minutes=5),
            {"report": {"kind": "usage", "pages": 3}, "tags": ["a", "b"]},
        )  # fmt: skip
        message, _ = repository.insert_outbox(
            session, "k1", "ada@acme.example", "Welcome", customer_id="acme",
            playbook_id="onboarding", step_id="welcome",
        )  # fmt: skip
        message.created_at = T0 + timedelta(minutes=1)
        message_id = message.id
        task, _ = repository.create_task(session, "t1", "Kickoff", customer_id="acme")
        task.created_at = T0 + timedelta(minutes=2)
        repository.complete_task(
            session, task.id, "no_response", "csm@x.example", note="went well",
            at=T0 + timedelta(hours=1),
        )  # fmt: skip
        session.add(
            MilestoneState(
                customer_id="acme", milestone="first_value", reached_at=T0 + timedelta(minutes=30)
            )
        )
        row = Enrollment(
            enrollment_key="onboarding/acme@1",
            workflow_id="onboarding/acme", playbook_id="onboarding", version="v",
            customer_id="acme", started_at=T0,
        )  # fmt: skip
    status = EnrollmentSnapshot(
        enrollment_id="onboarding/acme",
        playbook="onboarding",
        version="v",
        customer_id="acme",
        current_step="await_integration",
        records=[
            StepRecord(at=T0, step="welcome", kind="start", detail="enrolled"),
            StepRecord(at=T0 + timedelta(minutes=1), step="welcome", kind="email",
                       detail="ada (captured)", data={"deliveries": [{"contact": "ada"}]}),
            StepRecord(at=T0 + timedelta(minutes=2), step="kickoff", kind="task", detail="x"),
            StepRecord(at=T0 + timedelta(hours=2), step="await_integration", kind="wait",
                       detail="waiting for milestone integration_connected"),
            StepRecord(at=T0 + timedelta(hours=3), step="kickoff", kind="task_escalated",
                       detail="escalated to manager"),
        ],
    )  # fmt: skip
    words = Words(project.plans)
    names = {"csm@x.example": "Casey"}
    with sessions() as session:
        timeline = customer_timeline(
            session, "acme", [EnrollmentView(row, status)], words, names=names
        )
        only_reports = customer_timeline(
            session, "acme", [EnrollmentView(row, status)], words, usage="report.created"
        )
    assert [(i.kind, i.title) for i in timeline.items] == [
        ("health", "Health 80 → 45"),  # recorded now, so the newest
        ("health", "Health 80"),
        ("step", "Task escalated"),
        ("task_done", "Kickoff: No response"),
        ("milestone", "Reached “First value”"),
        ("task", "Kickoff"),
        ("email", "Welcome"),
        ("enrollment", "Started “New customer onboarding”"),
    ]  # waits are where it stands, not news; emails and tasks come from their store rows
    assert timeline.items[0].badges == ["dropped"]
    assert timeline.items[3].detail == "by Casey: went well"
    assert timeline.items[6].link == f"/outbox/{message_id}"
    assert [e.title for e in timeline.usage] == ["report.created", "customer.created"]
    assert timeline.usage[0].properties == [
        ("report.kind", "usage"), ("report.pages", "3"), ("tags", "a, b"),
    ]  # fmt: skip
    assert sorted(timeline.usage_names) == [("customer.created", 1), ("report.created", 1)]
    assert [e.title for e in only_reports.usage] == ["report.created"]


def test_words_name_playbooks_steps_and_segments_for_people() -> None:
    words = Words(load_project(PLAYBOOKS).plans)
    assert words.playbook("onboarding") == "New customer onboarding"
    assert words.playbook("gone_playbook") == "Gone playbook"
    assert words.step("onboarding", "await_integration") == "Await integration"
    assert in_words("mid_market") == "Mid market" and in_words("smb") == "SMB"
    assert in_words("qbr_prep") == "QBR prep" and in_words(None) == ""


def test_the_timeline_says_why_an_email_waited_or_was_skipped(
    sessions: sessionmaker[Session],
) -> None:
    """The delivery policy's reasons (docs/delivery.md) show on the customer's timeline, and
    an email that waited stands where it was last decided: after the unsubscribe that
    stopped it, not where it first waited."""
    project = load_project(PLAYBOOKS)
    why = "deferred: cap of 1 email a day reached for ada@acme.example"
    with sessions.begin() as session:
        repository.upsert_customer(session, repository.CustomerData(id="acme", name="Acme"))
        sent, _ = repository.insert_outbox(
            session, "k1", "ada@acme.example", "Welcome", customer_id="acme", reason="ignored"
        )
        held, _ = repository.insert_outbox(
            session, "k2", "ada@acme.example", "Your week", customer_id="acme",
            status=OutboxStatus.SUPPRESSED, reason=f"{why}; then contact unsubscribed",
        )  # fmt: skip
        skipped, _ = repository.insert_outbox(
            session, "k3", "ada@acme.example", "Try dashboards", customer_id="acme",
            status=OutboxStatus.SKIPPED, reason="cap of 3 emails in 7 days reached",
        )  # fmt: skip
        sent.created_at = T0
        held.created_at, held.not_before = T0 + timedelta(minutes=1), T0 + timedelta(days=1)
        skipped.created_at = T0 + timedelta(minutes=2)
        repository.record_event(session, "e1", "acme", "unsubscribed", T0 + timedelta(hours=1))
    with sessions.begin() as session:  # the held email is decided later: it ends suppressed
        row = session.get(OutboxMessage, held.id)
        assert row is not None
        row.updated_at = T0 + timedelta(days=1)
    with sessions() as session:
        timeline = customer_timeline(session, "acme", [], Words(project.plans))
    emails = [(i.title, i.detail, i.status) for i in timeline.items if i.kind == "email"]
    assert emails == [
        ("Your week", f"to ada@acme.example: {why}; then contact unsubscribed", "suppressed"),
        ("Try dashboards", "to ada@acme.example: cap of 3 emails in 7 days reached", "skipped"),
        ("Welcome", "to ada@acme.example", "captured"),
    ]
