"""A date trigger's `late` policy, `wait: on_passed` and `enrollment` in expressions: how they
validate (located errors, one warning), compile, and decide when a cycle is due."""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner

from engine.cli import main
from engine.language.calendar import due_cycle
from engine.language.plan import LatePlan, TriggerPlan
from engine.project import load_project

PLAYBOOK = """\
playbook: dates
name: Dates
trigger:
  on_date: customer.renewal_date - days(120)
{late}steps:
  - id: wait_90
    wait:
      until: customer.renewal_date - days(90)
{on_passed}  - id: log
    update: {{add_tags: [renewal]}}
  - id: email_90
    email: {{subject: Hello, body: Hi}}
  - id: wait_60
    wait: {{until: customer.renewal_date - days(60)}}
  - id: late_only
    if: enrollment.late_days > 0 and enrollment.anchor_date is not none
    end: {{outcome: late}}
"""


def write(tmp_path: Path, late: str = "", on_passed: str = "") -> Path:
    path = tmp_path / "dates.yaml"
    path.write_text(PLAYBOOK.format(late=late, on_passed=on_passed))
    return path


def validate(path: Path) -> tuple[int, str]:
    result = CliRunner().invoke(main, ["validate", str(path)])
    return result.exit_code, result.output


def test_by_default_an_anchored_trigger_enrolls_late_until_its_anchor(tmp_path: Path) -> None:
    write(tmp_path, on_passed="      on_passed: wait_60\n")
    plan = load_project(tmp_path).plans["dates"]
    assert plan.trigger is not None
    assert plan.trigger.late == LatePlan(policy="enroll_until", until="customer.renewal_date")
    assert plan.step("wait_90").wait.on_passed == "wait_60"  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("late", "expected"),
    [
        ("  late: skip\n", LatePlan(policy="skip")),
        ("  late: {catch_up: 3d}\n", LatePlan(policy="catch_up", catch_up_seconds=3 * 86400)),
        (
            "  late: {enroll_until: customer.attributes.contract_end}\n",
            LatePlan(policy="enroll_until", until="customer.attributes.contract_end"),
        ),
    ],
)
def test_a_written_late_policy_compiles(tmp_path: Path, late: str, expected: LatePlan) -> None:
    write(tmp_path, late=late, on_passed="      on_passed: wait_60\n")
    plan = load_project(tmp_path).plans["dates"]
    assert plan.trigger is not None and plan.trigger.late == expected


@pytest.mark.parametrize(
    ("late", "where", "message"),
    [
        ("  late: later\n", "5:9", "'late' must be 'skip'"),
        ("  late: {catch_up: 3x}\n", "5:9", "'late': '3x' is not a duration"),
        ("  late: {}\n", "5:9", "'late' needs exactly one of 'enroll_until' (a date)"),
        (
            "  late: {enroll_until: customer.renewl_date}\n",
            "5:24",
            "'customer' has no field 'renewl_date' (did you mean 'renewal_date'?)",
        ),
    ],
)
def test_a_bad_late_policy_is_a_located_error(
    tmp_path: Path, late: str, where: str, message: str
) -> None:
    code, output = validate(write(tmp_path, late=late))
    assert code == 1
    assert f"dates.yaml:{where}: {message}" in output, output


def test_on_passed_must_name_a_step(tmp_path: Path) -> None:
    code, output = validate(write(tmp_path, on_passed="      on_passed: wait_6\n"))
    assert code == 1
    assert "dates.yaml:9:18: no step 'wait_6' in this playbook (did you mean 'wait_60'?)" in output


def test_validate_warns_where_a_late_enrollment_would_send_an_email_at_once(
    tmp_path: Path,
) -> None:
    code, output = validate(write(tmp_path))
    assert code == 0
    assert (
        "dates.yaml:8:14: warning: a customer enrolled late (after the trigger date) may find "
        "this date already past and get email 'email_90'"
    ) in output, output
    # on_passed, or a trigger that never enrolls late, answers it.
    assert "warning:" not in validate(write(tmp_path, on_passed="      on_passed: wait_60\n"))[1]
    assert "warning:" not in validate(write(tmp_path, late="  late: skip\n"))[1]


TODAY = date(2026, 12, 3)


def _trigger(late: LatePlan | None) -> TriggerPlan:
    return TriggerPlan(kind="date", date="customer.renewal_date - days(120)", late=late)


@pytest.mark.parametrize(
    ("late", "days_out", "due"),
    [
        (LatePlan(policy="enroll_until", until="customer.renewal_date"), 120, True),
        (LatePlan(policy="enroll_until", until="customer.renewal_date"), 113, True),
        (LatePlan(policy="enroll_until", until="customer.renewal_date"), 112, True),
        (LatePlan(policy="enroll_until", until="customer.renewal_date"), 90, True),
        (LatePlan(policy="enroll_until", until="customer.renewal_date"), 1, True),
        (LatePlan(policy="enroll_until", until="customer.renewal_date"), 0, False),
        (LatePlan(policy="enroll_until", until="customer.renewal_date"), 121, False),
        (LatePlan(policy="catch_up", catch_up_seconds=3 * 86400), 117, True),
        (LatePlan(policy="catch_up", catch_up_seconds=3 * 86400), 116, False),
        (LatePlan(policy="skip"), 120, True),
        (LatePlan(policy="skip"), 119, False),
        (None, 113, True),  # a plan compiled before late policies: the 7-day catch-up
        (None, 112, False),
    ],
)
def test_when_a_date_cycle_is_due(late: LatePlan | None, days_out: int, due: bool) -> None:
    renews = TODAY + timedelta(days=days_out)
    trigger_date = renews - timedelta(days=120)
    cycle = due_cycle(_trigger(late), TODAY, trigger_date, renews)
    assert cycle == (trigger_date.isoformat() if due else None)


def test_plans_without_the_new_fields_keep_their_version() -> None:
    """Fields added to plans are left out while unset, so the versions of playbooks that do
    not use them (every schedule- and event-triggered one) do not change."""
    assert "late" not in TriggerPlan(kind="event", event="x").model_dump()
    assert "late" in _trigger(LatePlan(policy="skip")).model_dump()
