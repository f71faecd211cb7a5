"""The compiler: a plan with every reference resolved, a content-hashed version, JSON data."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from engine.language.plan import CompiledPlan
from engine.project import load_project

REPO = Path(__file__).resolve().parents[2]
VALID = REPO / "tests" / "fixtures" / "valid"
MONDAY_TO_FRIDAY = [0, 1, 2, 3, 4]


@pytest.fixture
def project_dir(tmp_path: Path) -> Path:
    root = tmp_path / "project"
    shutil.copytree(VALID, root)
    return root


def compile_one(root: Path, playbook: str = "onboarding") -> CompiledPlan:
    project = load_project(root)
    assert project.errors == [], [str(d) for d in project.errors]
    return project.plan(playbook)


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, f"{old!r} not in {path.name}"
    path.write_text(text.replace(old, new, 1))


def test_the_valid_fixtures_compile_without_diagnostics() -> None:
    project = load_project(VALID)
    assert project.diagnostics == []
    assert sorted(project.plans) == ["adoption", "onboarding"]


# -- version --------------------------------------------------------------------------------


def test_version_is_a_sha256_stable_across_compiles(project_dir: Path) -> None:
    first = compile_one(project_dir)
    second = compile_one(project_dir)
    assert len(first.version) == 64 and int(first.version, 16) >= 0
    assert first.version == second.version
    assert first.short_version == first.version[:12]
    assert first.with_version().version == first.version  # the hash of the plan itself


def test_version_changes_when_a_step_changes(project_dir: Path) -> None:
    before = compile_one(project_dir)
    edit(project_dir / "onboarding.yaml", "due: 3d", "due: 4d")
    after = compile_one(project_dir)
    assert after.version != before.version
    assert after.step("kickoff").task is not None
    assert after.step("kickoff").task.due_seconds == 4 * 86_400


def test_version_changes_when_a_used_template_changes(project_dir: Path) -> None:
    before = compile_one(project_dir)
    adoption_before = compile_one(project_dir, "adoption")
    edit(project_dir / "templates" / "_layout.html", "Unsubscribe", "Unsubscribe here")
    after = compile_one(project_dir)
    assert after.version != before.version
    assert "Unsubscribe here" in after.templates["_layout.html"]
    # adoption uses no template file: its version does not move
    assert compile_one(project_dir, "adoption").version == adoption_before.version


def test_version_ignores_unused_templates(project_dir: Path) -> None:
    before = compile_one(project_dir)
    (project_dir / "templates" / "unused.html").write_text("---\nsubject: x\n---\n<p>x</p>\n")
    assert compile_one(project_dir).version == before.version


# -- plan data ------------------------------------------------------------------------------


def test_plan_is_json_and_round_trips() -> None:
    plan = compile_one(VALID)
    text = plan.model_dump_json()
    assert json.loads(text)["playbook"] == "onboarding"
    again = CompiledPlan.model_validate_json(text)
    assert again == plan
    assert again.version == plan.version
    assert again.with_version().version == plan.version
    json.dumps(plan.model_dump(mode="json"))  # plain JSON types all the way down


def test_plan_carries_every_template_file_it_renders() -> None:
    plan = compile_one(VALID)
    assert set(plan.templates) == {
        "_layout.html",
        "onboarding/welcome.html",
        "onboarding/welcome.txt",
        "onboarding/connect_your_data.html",
    }
    welcome = plan.step("welcome").email
    assert welcome is not None
    assert welcome.subject == "Welcome to Acme, {{ contact.first_name }}"
    assert (welcome.html_template, welcome.text_template) == (
        "onboarding/welcome.html",
        "onboarding/welcome.txt",
    )
    assert welcome.to == 'contact.role in ["admin", "champion"]'
    assert welcome.recipient == "contacts"


def test_next_defaults_to_the_following_step_and_the_last_to_end() -> None:
    plan = compile_one(VALID)
    assert plan.start == "welcome"
    nexts = {step.id: step.next for step in plan.steps}
    assert nexts == {
        "welcome": "route",
        "route": "kickoff",
        "kickoff": "await_integration",
        "await_integration": "tag_connected",  # explicit next
        "nudge_integration": "pause",
        "pause": "tag_connected",
        "tag_connected": "done",
        "done": "end",
    }
    route = plan.step("route").branch
    assert route is not None
    assert [(c.condition, c.goto) for c in route.cases] == [
        ('customer.segment == "enterprise"', "kickoff"),
        ('customer.segment == "mid_market"', "kickoff"),
    ]
    assert route.otherwise == "await_integration"
    wait_for = plan.step("await_integration").wait_for
    assert wait_for is not None
    assert (wait_for.timeout_seconds, wait_for.on_timeout) == (7 * 86_400, "nudge_integration")


def test_defaults_fill_what_a_step_leaves_out(tmp_path: Path) -> None:
    (tmp_path / "milestones.yaml").write_text(
        "milestones:\n  first_value:\n    event: dashboard.viewed\n"
    )
    (tmp_path / "p.yaml").write_text(
        "playbook: p\nname: P\nsteps:\n"
        "  - id: hello\n    email:\n      subject: Hi\n      body: <p>Hi</p>\n"
        "  - id: waiting\n    wait_for:\n      milestone: first_value\n      timeout: 2d\n"
        "  - id: call\n    task:\n      title: Call\n"
    )
    plan = compile_one(tmp_path, "p")
    hello = plan.step("hello").email
    assert hello is not None
    # no send window anywhere: Monday to Friday, 09:00-17:00 local time
    assert hello.window is not None
    assert hello.window.model_dump() == {
        "days": MONDAY_TO_FRIDAY,
        "start_minute": 9 * 60,
        "end_minute": 17 * 60,
    }
    assert hello.recipient == "contacts" and hello.to is None  # every subscribed contact
    assert plan.step("waiting").wait_for.on_timeout == "call"  # type: ignore[union-attr]
    call = plan.step("call").task
    assert call is not None
    assert (call.assignee, call.priority, call.outcomes, call.wait) == (
        "owner",
        "normal",
        ["done"],
        False,
    )
    assert plan.step("call").next == "end"
    assert plan.trigger is None and plan.reenroll == "never"


def test_playbook_send_window_applies_and_anytime_disables_it() -> None:
    onboarding = compile_one(VALID)
    assert onboarding.window is not None
    assert onboarding.window.days == MONDAY_TO_FRIDAY
    welcome = onboarding.step("welcome").email
    assert welcome is not None and welcome.window == onboarding.window
    check_in = compile_one(VALID, "adoption").step("check_in").email
    assert check_in is not None
    assert check_in.window is None
    assert (check_in.recipient, check_in.recipient_value) == ("owner", None)


def test_durations_times_and_header_are_compiled() -> None:
    plan = compile_one(VALID)
    assert plan.trigger is not None
    assert (plan.trigger.kind, plan.trigger.event, plan.trigger.condition) == (
        "event",
        "customer.created",
        'customer.segment != "internal"',
    )
    assert plan.exit is not None and plan.exit.on_events == ["customer.churned"]
    assert plan.goal is not None and plan.goal.milestone == "first_value"
    assert sorted(plan.milestones) == ["first_value", "integration_connected"]
    assert plan.milestones["first_value"].count == 3
    kickoff = plan.step("kickoff").task
    assert kickoff is not None
    assert (kickoff.due_seconds, kickoff.escalate_after_seconds) == (3 * 86_400, 5 * 86_400)
    assert kickoff.on_outcome == {"no_response": "await_integration"}
    adoption = compile_one(VALID, "adoption")
    wait = adoption.step("wait_a_week").wait
    assert wait is not None and (wait.seconds, wait.at_minute) == (7 * 86_400, 600)
    assert adoption.step("start_onboarding").enroll.playbook == "onboarding"  # type: ignore[union-attr]


def test_a_plan_records_the_source_line_of_each_step() -> None:
    plan = compile_one(VALID)
    lines = (VALID / "onboarding.yaml").read_text().splitlines()
    for step in plan.steps:
        assert lines[step.line - 1].strip() == f"- id: {step.id}", (step.id, step.line)


def test_a_step_label_is_compiled_and_checked(project_dir: Path) -> None:
    edit(
        project_dir / "onboarding.yaml",
        "- id: kickoff\n",
        "- id: kickoff\n    label: Kickoff call\n",
    )
    assert compile_one(project_dir).step("kickoff").label == "Kickoff call"
    assert compile_one(project_dir).step("welcome").label is None  # the UI says "Welcome"
    edit(project_dir / "onboarding.yaml", "label: Kickoff call", f"label: {'x' * 81}")
    problems = [str(d) for d in load_project(project_dir).errors]
    assert any("onboarding.yaml:" in p and "label" in p for p in problems), problems
