"""`playbook validate` reports every problem of a file in one run (issue 13, defect 6).

The schema's errors used to stop the run before the whole-playbook checks, so a file with
schema mistakes and reference, expression or template mistakes showed the first kind and,
once those were fixed, the second. Now the compiler also checks the parts the schema
accepted, and nothing it finds is an echo of a schema error.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from engine.cli import main
from engine.project import load_project

REPO = Path(__file__).resolve().parents[2]
INVALID = REPO / "tests" / "fixtures" / "invalid"
SEVEN = INVALID / "seven_mistakes.yaml"

# (line, column, part of the message): four schema errors, then three the compiler finds.
SEVEN_MISTAKES = [
    (3, 1, "unknown key 'owner' in playbook"),
    (9, 5, "send window must open before it closes"),
    (13, 17, "template 'onboarding/welcom' not found"),
    (17, 12, "'for': '3 dayz' is not a duration"),
    (19, 5, "unknown step type 'emial'"),
    (25, 19, "no step 'nudge_integraton' in this playbook"),
    (27, 9, "'customer' has no field 'segmnt'"),
]

# The schema mistakes of the fixture, corrected: what a second run would have looked at.
SCHEMA_FIXES = [
    ("owner: ops@example.com\n", ""),
    ('between: ["17:00", "09:00"]', 'between: ["09:00", "17:00"]'),
    ("for: 3 dayz", "for: 3d"),
    ("emial:", "email:"),
]


def located(path: Path, only: Path) -> list[tuple[int, int, str]]:
    project = load_project(path, [only])
    assert project.plans == {}
    return sorted((d.line, d.column, d.message) for d in project.diagnostics)


def test_seven_mistakes_are_reported_in_one_run_each_once() -> None:
    found = located(INVALID, SEVEN)
    assert len(found) == len(SEVEN_MISTAKES), "\n".join(map(str, found))
    for (line, column, message), (want_line, want_column, part) in zip(
        found, SEVEN_MISTAKES, strict=True
    ):
        assert (line, column) == (want_line, want_column) and part in message, message


def test_fixing_the_schema_errors_reveals_nothing_new(tmp_path: Path) -> None:
    """What a second run reports after the schema fixes was all in the first run."""
    for name in ("milestones.yaml", "templates"):
        (tmp_path / name).symlink_to(INVALID / name)
    text = SEVEN.read_text(encoding="utf-8")
    for old, new in SCHEMA_FIXES:
        assert old in text
        text = text.replace(old, new)
    fixed = tmp_path / "seven_mistakes.yaml"
    fixed.write_text(text, encoding="utf-8")
    second = [message for _, _, message in located(tmp_path, fixed)]
    first = [message for _, _, message in located(INVALID, SEVEN)]
    assert len(second) == 3
    assert set(second) <= set(first)


def test_cli_validate_prints_all_seven(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(REPO)
    result = CliRunner().invoke(main, ["validate", str(SEVEN.relative_to(REPO))])
    assert result.exit_code == 1
    lines = result.stdout.splitlines()
    shown = str(SEVEN.relative_to(REPO))
    assert [line.split(": ", 1)[0] for line in lines] == [
        f"{shown}:{line}:{column}" for line, column, _ in SEVEN_MISTAKES
    ]
    assert "7 error(s), 0 warning(s)" in result.stderr


REJECTED_TRIGGER = """\
playbook: rejected-trigger
name: Both kinds of trigger
trigger:
  on_event: health.changed
  manual: true
steps:
  - id: flag
    if: event.properties.score < 40
    task:
      title: "Look at {{ customer.name }}"
      escalate_after: 2d
"""

REJECTED_STEPS = """\
playbook: rejected-steps
name: Steps the schema rejects are still steps
trigger:
  on_event: customer.created
steps:
  - id: route
    branch:
      cases:
        - if: customer.segment == "enterprise"
          goto: call_them
      otherwise: later
  - id: call_them
    task:
      title: "Call {{ customer.name }}"
      priority: asap
  - id: later
    wait:
      for: soon
  - id: hand_over
    enroll:
      playbook: rejected-trigger
"""


def test_a_rejected_part_does_not_echo_into_the_rest(tmp_path: Path) -> None:
    """A rejected trigger still lets steps use 'event'; references to rejected steps and
    enrollment in a playbook with errors of its own are not reported again; the
    reachability of steps the schema rejected is not guessed at."""
    (tmp_path / "rejected_trigger.yaml").write_text(REJECTED_TRIGGER)
    (tmp_path / "rejected_steps.yaml").write_text(REJECTED_STEPS)
    project = load_project(tmp_path)
    assert project.plans == {}
    found = sorted((Path(d.path).name, d.line, d.severity) for d in project.diagnostics)
    assert found == [
        ("rejected_steps.yaml", 15, "error"),  # the priority 'asap'
        ("rejected_steps.yaml", 18, "error"),  # the duration 'soon'
        ("rejected_trigger.yaml", 4, "error"),  # two kinds of trigger
        ("rejected_trigger.yaml", 11, "warning"),  # escalate_after without wait: true
    ], "\n".join(map(str, project.diagnostics))
