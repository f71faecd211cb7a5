"""The delivery policy file: checked with path:line:col, described by a committed JSON Schema,
and resolved per playbook and step (docs/delivery.md)."""

from __future__ import annotations

import json
from datetime import date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import yaml
from click.testing import CliRunner
from jsonschema import Draft202012Validator

from engine.cli import main
from engine.language.delivery import first_day_under_caps, holiday_language, next_send_moment
from engine.language.plan import CapPlan, WindowPlan
from engine.project import load_project
from tests.helpers.harness import write_project
from tests.helpers.paths import PLAYBOOKS

REPO = Path(__file__).resolve().parents[2]
ONE = """\
playbook: one
name: One
trigger: {manual: true}
steps:
  - id: hello
    email: {subject: Hi, body: "<p>Hi</p>", send_window: anytime}
"""


def test_the_committed_schema_is_current_and_accepts_the_shipped_policy():
    printed = CliRunner().invoke(main, ["schema", "--policies"])
    assert printed.exit_code == 0, printed.output
    schema = json.loads(printed.stdout)
    assert json.loads((REPO / "docs" / "policies.schema.json").read_text()) == schema, (
        "regenerate: playbook schema --policies > docs/policies.schema.json"
    )
    shipped = yaml.safe_load((PLAYBOOKS / "policies.yaml").read_text())
    assert list(Draft202012Validator(schema).iter_errors(shipped)) == []


def test_mistakes_are_reported_with_their_line_and_column(tmp_path):
    write_project(tmp_path, {"one": ONE})
    (tmp_path / "policies.yaml").write_text(
        "caps:\n"
        "  - {max: 0, days: 1}\n"
        "playbooks:\n"
        "  onr: {priority: 3}\n"
        "steps:\n"
        "  one.helo: {on_cap: skip}\n"
        "  one.hello: {on_cap: later}\n"
    )
    errors = [str(d) for d in load_project(tmp_path).errors]
    assert any("policies.yaml:2:" in e and "max" in e for e in errors), errors
    assert any("policies.yaml:7:" in e and "on_cap" in e for e in errors), errors


def test_unknown_playbooks_and_steps_are_named(tmp_path):
    write_project(tmp_path, {"one": ONE})
    (tmp_path / "policies.yaml").write_text(
        "playbooks:\n  onr: {priority: 3}\nsteps:\n  one.helo: {on_cap: skip}\n"
    )
    errors = [str(d) for d in load_project(tmp_path).errors]
    assert any("policies.yaml:2:3" in e and "did you mean 'one'" in e for e in errors), errors
    assert any("policies.yaml:4:3" in e and "did you mean 'hello'" in e for e in errors), errors


def test_each_step_gets_its_playbooks_rule_and_its_own_overrides():
    plan = load_project(PLAYBOOKS).plan("renewal")
    assert plan.delivery is not None
    assert plan.delivery.for_step("email_30").priority == 40
    assert plan.delivery.for_step("email_90").priority == 30
    assert plan.delivery.playbook.on_cap == "defer"
    assert [(c.max, c.days) for c in plan.delivery.caps] == [(1, 1), (3, 7)]


def test_a_project_without_a_policy_keeps_its_plan_versions(tmp_path):
    without = write_project(tmp_path / "a", {"one": ONE}).plan("one")
    assert without.delivery is None
    assert '"delivery"' not in without.canonical_json()
    assert '"variants"' not in without.canonical_json()


def test_a_cap_defers_to_the_first_day_the_oldest_email_drops_out():
    caps = [CapPlan(max=1, days=1), CapPlan(max=3, days=7)]
    sent = [date(2027, 3, 1), date(2027, 3, 2), date(2027, 3, 3)]
    assert first_day_under_caps(caps, date(2027, 3, 3), sent) == date(2027, 3, 8)
    assert first_day_under_caps(caps, date(2027, 3, 3), sent[-1:]) == date(2027, 3, 4)


def test_the_window_opens_in_local_time_across_dst_and_skips_days_off():
    berlin = ZoneInfo("Europe/Berlin")
    window = WindowPlan(days=[0, 1, 2, 3, 4], start_minute=9 * 60, end_minute=17 * 60)
    saturday = datetime(2027, 3, 27, 12, 0, tzinfo=berlin)
    monday = next_send_moment(saturday, "Europe/Berlin", window)
    assert monday.at == datetime(2027, 3, 29, 9, 0, tzinfo=berlin)
    assert monday.at.utcoffset() is not None and monday.at.utcoffset().total_seconds() == 7200

    def company(day: date) -> str | None:
        return "Company holiday" if day == date(2027, 3, 29) else None

    tuesday = next_send_moment(saturday, "Europe/Berlin", window, company)
    assert tuesday.at == datetime(2027, 3, 30, 9, 0, tzinfo=berlin)
    assert tuesday.moves == ["moved from 2027-03-29, Company holiday, to 2027-03-30"]


def test_holidays_are_named_in_the_recipients_language_where_the_library_has_it():
    supported = ("de", "en_US", "th", "uk")
    assert holiday_language("de-AT", supported) == "de"
    assert holiday_language("ko", ("en_US", "ko", "th")) == "ko"
    assert holiday_language("pt", ("en_US", "pt_BR", "uk")) == "pt_BR"  # the language alone
    assert holiday_language("fr", supported) == "en_US"  # not known for this country
    assert holiday_language(None, supported) == "en_US"
