"""Risk signals in the scorecard (docs/health.md): usage drop, inactivity, repeated events and
an unused feature, each true, false or unknown when there is no data; a ``change`` measure;
mistakes reported at their line, unknown events warned about."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from engine.language.health import EventFact, Scorecard, score_customer
from engine.project import load_project
from tests.helpers.harness import write_project

NOW = datetime(2027, 3, 1, 12, tzinfo=UTC)
CARD = Scorecard.model_validate(
    {
        "measures": {
            "wau_change": {
                "event": "weekly_active_users",
                "measure": "change",
                "of": "latest",
                "window": "14d",
                "linear": {"from": -50, "to": 0},
            }
        },
        "signals": {
            "usage_drop": {
                "kind": "usage_drop",
                "event": "weekly_active_users",
                "of": "latest",
                "by": "30%",
                "window": "14d",
            },
            "inactive": {"kind": "inactivity", "event": "login", "for": "14d"},
            "support_burst": {
                "kind": "repeated",
                "event": "ticket.opened",
                "count": 3,
                "within": "30d",
            },
            "reports_unused": {"kind": "feature_unused", "event": "report.created", "after": "30d"},
        },
    }
)


def _ago(name: str, days: float, **properties: object) -> EventFact:
    return EventFact(name, NOW - timedelta(days=days), properties)


def _signals(events: list[EventFact], added_days_ago: int | None = 40) -> dict[str, object]:
    fields = {} if added_days_ago is None else {"created_at": NOW - timedelta(days=added_days_ago)}
    result = score_customer(CARD, fields, events, NOW)
    return {s.name: (s.on, s.value, s.text) for s in result.signals}


def test_each_signal_on_with_its_detail() -> None:
    signals = _signals(
        [
            _ago("weekly_active_users", 20, value=11),
            _ago("weekly_active_users", 2, value=6),
            _ago("login", 20),
            *[_ago("ticket.opened", d) for d in (1, 5, 29)],
        ]
    )
    assert signals == {
        "usage_drop": (True, -45.5, "weekly_active_users fell 45.5% (11 -> 6) over 14d"),
        "inactive": (True, 20.0, "no login for 20 days"),
        "support_burst": (True, 3.0, "3 x ticket.opened in 30d"),
        "reports_unused": (True, 40.0, "report.created: never used in 40 days since added"),
    }


def test_each_signal_off() -> None:
    signals = _signals(
        [
            _ago("weekly_active_users", 20, value=10),
            _ago("weekly_active_users", 2, value=8),  # -20%: not 30
            _ago("login", 3),
            *[_ago("ticket.opened", d) for d in (1, 31, 45)],  # two of three long ago
            _ago("report.created", 60),  # used once, long ago: not unused
        ],
        added_days_ago=90,
    )
    assert {name: on for name, (on, _, _) in signals.items()} == dict.fromkeys(
        ("usage_drop", "inactive", "support_burst", "reports_unused"), False
    )
    # a feature not yet used by a customer added 10 days ago is not "unused after 30 days"
    assert _signals([], added_days_ago=10)["reports_unused"][0] is False


def test_each_signal_is_unknown_without_data() -> None:
    signals = _signals([], added_days_ago=None)
    assert {name: on for name, (on, _, _) in signals.items()} == dict.fromkeys(
        ("usage_drop", "inactive", "support_burst", "reports_unused"), None
    )
    # a metric with no value in the window before: no change to tell
    only_now = _signals([_ago("weekly_active_users", 2, value=6)])
    assert only_now["usage_drop"][0] is None


def test_a_change_measure_scores_the_drop() -> None:
    events = [_ago("weekly_active_users", 20, value=10), _ago("weekly_active_users", 2, value=6)]
    result = score_customer(CARD, {}, events, NOW)
    assert [(m.value, m.points) for m in result.measures] == [(-40.0, 20.0)]
    assert score_customer(CARD, {}, events[1:], NOW).measures[0].value is None  # unknown


def test_signal_mistakes_are_located_and_unknown_events_warn(tmp_path: Path) -> None:
    write_project(tmp_path, {})
    (tmp_path / "health.yaml").write_text(
        "measures:\n"
        "  nps:\n"
        "    field: attributes.nps\n"
        "    linear: {from: 0, to: 100}\n"
        "signals:\n"
        "  drop:\n"
        "    kind: usage_drop\n"
        "    event: weekly_active_users\n"
        "    window: 14d\n"
        "  quiet:\n"
        "    kind: inactivity\n"
        "    event: login\n"
        "    for: 14d\n"
        "    count: 3\n"
        "  burst:\n"
        "    kind: repeated\n"
        "    event: tickets.opened\n"
        "    count: 3\n"
        "    within: 30d\n"
        "  odd:\n"
        "    kind: sudden\n"
        "    event: login\n"
    )
    shown = [str(d) for d in load_project(tmp_path).diagnostics if "health.yaml" in d.path]
    errors = [s for s in shown if ": warning:" not in s]
    assert len(errors) == 3, shown
    assert ":7:" in errors[0] and "kind 'usage_drop' needs 'by'" in errors[0], errors
    assert ":11:" in errors[1] and "'count' is not a setting of kind 'inactivity'" in errors[1]
    assert ":21:" in errors[2] and "sudden" in errors[2]
    # fixed, the card is valid: a signal on an event nobody names warns, as a measure does
    text = (tmp_path / "health.yaml").read_text()
    text = text.replace("    window: 14d\n", "    window: 14d\n    by: 30%\n", 1)
    text = text.replace("    count: 3\n  burst", "  burst").split("  odd:")[0]
    (tmp_path / "health.yaml").write_text(text)
    warnings = [str(d) for d in load_project(tmp_path).diagnostics if "health.yaml" in d.path]
    assert warnings and all(": warning:" in w for w in warnings), warnings
    assert ":17:12: warning:" in warnings[-1] and "'tickets.opened'" in warnings[-1], warnings
