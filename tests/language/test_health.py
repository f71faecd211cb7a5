"""The health scorecard (docs/health.md): checked with path:line:col, described by a
committed JSON Schema, and scored with unknown measures left out rather than counted as 0."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

from click.testing import CliRunner

from engine.cli import main
from engine.language.health import EventFact, Scorecard, score_customer
from engine.project import load_project
from tests.helpers.harness import write_project
from tests.helpers.paths import PLAYBOOKS

REPO = Path(__file__).resolve().parents[2]
NOW = datetime(2027, 3, 1, 12, tzinfo=UTC)
CARD = Scorecard.model_validate(
    {
        "bands": {"red": 0, "yellow": 40, "green": 70},
        "measures": {
            "wau": {
                "event": "weekly_active_users",
                "measure": "latest",
                "window": "14d",
                "linear": {"from": 0, "to": 10},
                "weight": 3,
            },
            "nps": {
                "field": "attributes.nps",
                "weight": 1,
                "thresholds": [{"at_least": 50, "score": 100}, {"score": 20}],
            },
            "logins": {
                "event": "login",
                "measure": "distinct_users",
                "window": "7d",
                "linear": {"from": 0, "to": 4},
                "weight": 2,
            },
        },
        "segments": {"enterprise": {"weights": {"logins": 0}}},
    }
)


def test_the_committed_schema_is_current_and_the_shipped_scorecard_is_clean() -> None:
    printed = CliRunner().invoke(main, ["schema", "--health"])
    assert printed.exit_code == 0, printed.output
    assert json.loads((REPO / "docs" / "health.schema.json").read_text()) == json.loads(
        printed.stdout
    ), "regenerate: playbook schema --health > docs/health.schema.json"
    project = load_project(PLAYBOOKS)
    assert project.scorecard is not None
    assert [str(d) for d in project.diagnostics if "health.yaml" in d.path] == []


def test_a_scorecard_with_mistakes_gets_every_error_with_its_line(tmp_path: Path) -> None:
    write_project(tmp_path, {})
    (tmp_path / "health.yaml").write_text(
        "bands: {red: 0, green: 70}\n"
        "measures:\n"
        "  wau:\n"
        "    event: weekly_active_users\n"
        "    measure: latest\n"
        "    linear: {from: 0, to: 10}\n"
        "    wieght: 3\n"
        "  nps:\n"
        "    field: attributes.nps\n"
        "    measure: sum\n"
        "    linear: {from: 0, to: 100}\n"
    )
    shown = [str(d) for d in load_project(tmp_path).diagnostics]
    assert all("health.yaml:" in s for s in shown), shown
    assert [s.split(": ", 1)[0].rsplit(":", 2)[-2] for s in shown] == ["7", "10"], shown
    assert "wieght" in shown[0] and "sum" in shown[1]


def test_unknown_events_and_fields_warn(tmp_path: Path) -> None:
    write_project(tmp_path, {})
    (tmp_path / "health.yaml").write_text(
        "measures:\n"
        "  tickets:\n"
        "    event: report.craeted\n"
        "    linear: {from: 0, to: 5}\n"
        "  seats:\n"
        "    field: atributes.seats\n"
        "    linear: {from: 0, to: 5}\n"
    )
    project = load_project(tmp_path)
    assert project.errors == []
    warnings = [str(d) for d in project.warnings]
    assert len(warnings) == 2, warnings
    assert ":3:12: warning:" in warnings[0] and "did you mean 'report.created'" in warnings[0]
    assert ":6:12: warning:" in warnings[1] and "'atributes.seats'" in warnings[1]


def test_a_measure_with_no_data_is_unknown_not_zero() -> None:
    events = [EventFact("weekly_active_users", NOW - timedelta(days=3), {"value": 5})]
    result = score_customer(CARD, {"attributes": {}}, events, NOW)
    by_name = {m.name: m for m in result.measures}
    assert by_name["nps"].value is None and by_name["logins"].value is None
    # only the known measure counts: 50 points, not (3*50 + 0 + 0) / 6
    assert (result.score, result.band, result.known) == (50, "yellow", 0.5)
    assert score_customer(CARD, {}, [], NOW).band == "unknown"


def test_measures_windows_and_segment_overrides() -> None:
    events = [
        EventFact("weekly_active_users", NOW - timedelta(days=20), {"value": 9}),
        EventFact("weekly_active_users", NOW - timedelta(days=1), {"value": 2}),
        EventFact("login", NOW - timedelta(days=1), {"user": "a"}),
        EventFact("login", NOW - timedelta(days=2), {"user": "b"}),
        EventFact("login", NOW - timedelta(days=9), {"user": "c"}),
    ]
    result = score_customer(CARD, {"attributes": {"nps": 60}}, events, NOW)
    values = {m.name: (m.value, m.points) for m in result.measures}
    assert values == {"wau": (2.0, 20.0), "nps": (60.0, 100.0), "logins": (2.0, 50.0)}
    assert result.score == round((3 * 20 + 100 + 2 * 50) / 6)
    enterprise = score_customer(CARD, {"attributes": {"nps": 60}}, events, NOW, "enterprise")
    assert [m.name for m in enterprise.measures] == ["wau", "nps"]
    assert enterprise.score == round((3 * 20 + 100) / 4)
