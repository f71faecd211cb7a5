"""Health scores in the store: computed from events and fields, recorded as one point per
customer per day plus a change row per move, and seen by expressions as ``health.*``."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from click.testing import CliRunner
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from engine.cli import main
from engine.language.health import Scorecard
from engine.settings import settings_override
from engine.store import health, repository
from engine.store.context import decide
from engine.store.models import HealthChange, HealthScore
from tests.helpers.paths import PLAYBOOKS

NOW = datetime(2027, 3, 1, 12, tzinfo=UTC)
CARD = Scorecard.model_validate(
    {
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
        }
    }
)


def _wau(session: Session, customer: str, value: int, at: datetime) -> None:
    repository.record_event(
        session,
        f"{customer}-{at.isoformat()}",
        customer,
        "weekly_active_users",
        at,
        {"value": value},
    )


def test_scores_are_recorded_daily_with_changes_and_trend(sessions: sessionmaker[Session]) -> None:
    with sessions.begin() as session:
        for cid in ("acme", "bolt"):
            repository.upsert_customer(session, repository.CustomerData(id=cid, name=cid))
        _wau(session, "acme", 9, NOW - timedelta(days=31))
    with sessions.begin() as session:
        first = health.recompute_all(session, CARD, NOW - timedelta(days=30))
    assert [(r.customer_id, r.result.score, r.result.band) for r in first] == [
        ("acme", 90, "green"),
        ("bolt", None, "unknown"),  # no data at all: unknown, not 0
    ]
    with sessions.begin() as session:
        _wau(session, "acme", 2, NOW - timedelta(days=1))
        repository.upsert_customer(
            session, repository.CustomerData(id="acme", name="acme", attributes={"nps": 10})
        )
        assert health.recompute(session, CARD, "acme", NOW) is not None
        health.recompute(session, CARD, "acme", NOW)  # same day: one point, no new change
    with sessions() as session:
        points = session.execute(
            select(HealthScore.day, HealthScore.score, HealthScore.band)
            .where(HealthScore.customer_id == "acme")
            .order_by(HealthScore.day)
        ).all()
        assert [(p.score, p.band) for p in points] == [(90, "green"), (20, "red")]
        changes = session.execute(
            select(HealthChange.old, HealthChange.new, HealthChange.new_band)
            .where(HealthChange.customer_id == "acme")
            .order_by(HealthChange.id)
        ).all()
        assert [tuple(c) for c in changes] == [(None, 90, "green"), (90, 20, "red")]
        _, _, values, errors = decide(
            session,
            "acme",
            "risk",
            [
                "health.score < 40",
                "health.band == 'red'",
                "health.trend(30) == -70",
                "health.trend('7d') == -70",
                "health.raw.nps == 10 and health.measures.wau.points == 20",
            ],
            NOW,
        )
        assert values == [True] * 5, errors


def test_playbook_health_prints_score_measures_and_trend(db_url: str) -> None:
    from engine.store.db import migrate, session_factory

    migrate(db_url)
    sessions = session_factory(db_url)
    now = datetime.now(UTC)
    with sessions.begin() as session:
        repository.upsert_customer(
            session,
            repository.CustomerData(
                id="acme", name="Acme", attributes={"nps": 60, "seats": 10, "seats_used": 9}
            ),
        )
        _wau(session, "acme", 3, now - timedelta(days=2))
    with settings_override(database_url=db_url):
        table = CliRunner().invoke(main, ["health", "acme", "--root", str(PLAYBOOKS), "--save"])
        as_json = CliRunner().invoke(
            main, ["health", "acme", "--root", str(PLAYBOOKS), "--format", "json"]
        )
        missing = CliRunner().invoke(main, ["health", "nobody", "--root", str(PLAYBOOKS)])
    assert table.exit_code == 0, table.output
    assert "acme: health" in table.output and "Weekly active users" in table.output
    assert "unknown" in table.output  # reports_adoption has no data
    data = json.loads(as_json.output)
    assert data["band"] in ("red", "yellow", "green") and 0 < data["known"] < 1
    assert data["trend"]["7d"] is None  # no point a week ago yet
    # risk signals: one metric value is no change yet; a customer added today is not late
    signals = {sig["name"]: sig["on"] for sig in data["signals"]}
    assert signals == {"usage_drop": None, "no_reports": None, "reports_unused": False}
    assert "risk signal" in table.output and "never used in 0 days" in table.output
    assert missing.exit_code != 0 and "no customer 'nobody'" in missing.output
