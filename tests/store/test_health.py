"""Health scores in the store: computed from events and fields, recorded as one point per
customer per day plus a change row per move, and seen by expressions as ``health.*``."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

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


def _book(sessions: sessionmaker[Session]) -> None:
    """Twelve customers covering every measure kind: fields or none, events in and out of
    the windows, quiet ones, an enterprise override, a score posted by a CRM, one with no
    data at all."""
    from sqlalchemy import insert

    from engine.store.models import Event

    events: list[dict[str, Any]] = []
    with sessions.begin() as session:
        for n in range(12):
            cid = f"c{n:02d}"
            attributes = {} if n % 4 == 0 else {"nps": n * 15 - 60, "seats": 10, "seats_used": n}
            repository.upsert_customer(
                session,
                repository.CustomerData(
                    id=cid,
                    name=cid,
                    segment="enterprise" if n % 3 == 0 else "smb",
                    health_score=55 if n == 5 else None,
                    attributes={**attributes, "open_tickets": n % 5} if n % 2 else attributes,
                ),
            )
            if n == 8:
                continue  # nothing known: its score stays unknown
            for day in range(0, 90, 3 + n % 4):
                if n % 6 == 1 and day > 40:  # went quiet
                    break
                at = NOW - timedelta(days=90 - day, hours=n)
                user = {"user": f"u{(day + n) % (1 + n % 4)}"}
                for name, offset, properties in (
                    ("weekly_active_users", 0, {"value": n + day % 7}),
                    ("report.created", 0, user),
                    ("session.started", 1, user),
                ):
                    events.append(
                        {
                            "id": f"{cid}/{name}/{day}",
                            "customer_id": cid,
                            "name": name,
                            "at": at + timedelta(hours=offset),
                            "properties": properties,
                        }
                    )
        session.execute(insert(Event), events)


def _health_rows(sessions: sessionmaker[Session]) -> tuple[list[Any], ...]:
    """Every customer's score and band, every daily point, every change."""
    from engine.store.models import Customer

    with sessions() as session:
        customers = session.execute(
            select(Customer.id, Customer.health_score, Customer.health_band).order_by(Customer.id)
        ).all()
        points = session.execute(
            select(
                HealthScore.customer_id,
                HealthScore.day,
                HealthScore.at,
                HealthScore.score,
                HealthScore.band,
                HealthScore.known,
                HealthScore.measures,
                HealthScore.signals,
            ).order_by(HealthScore.customer_id, HealthScore.day)
        ).all()
        changes = session.execute(
            select(
                HealthChange.customer_id,
                HealthChange.at,
                HealthChange.old,
                HealthChange.new,
                HealthChange.old_band,
                HealthChange.new_band,
            ).order_by(HealthChange.customer_id, HealthChange.at)
        ).all()
    return [tuple(r) for r in customers], [tuple(r) for r in points], [tuple(r) for r in changes]


def _reset(sessions: sessionmaker[Session]) -> None:
    """Back to before any scoring: no points, no scorecard changes, the CRM's score."""
    from sqlalchemy import delete, update

    from engine.store.models import Customer

    with sessions.begin() as session:
        session.execute(delete(HealthScore))
        session.execute(delete(HealthChange).where(HealthChange.new_band.is_not(None)))
        session.execute(update(Customer).values(health_score=None, health_band=None))
        session.execute(update(Customer).where(Customer.id == "c05").values(health_score=55))


def test_the_paged_recompute_records_what_one_customer_at_a_time_does(
    sessions: sessionmaker[Session],
) -> None:
    """The set-based pages (bulk reads and writes, a transaction per page) of the daily
    recompute, and of `recompute`, give exactly the scores, points and changes of `compute`
    and `record` called per customer (what `playbook health --save` does): on a
    first day, again the same day (today's point rewritten), and on later days."""
    from engine.project import load_project
    from engine.store.models import Customer

    card = load_project(PLAYBOOKS).scorecard
    assert card is not None
    _book(sessions)
    days = [NOW - timedelta(days=20), NOW - timedelta(days=20, hours=-3), NOW + timedelta(30)]
    with sessions() as session:
        ids = list(session.scalars(select(Customer.id).order_by(Customer.id)))
    moves: list[tuple[Any, ...]] = []
    for now in days:
        for cid in ids:
            with sessions.begin() as session:
                customer = session.get(Customer, cid, populate_existing=True)
                assert customer is not None
                r = health.record(
                    session, customer, health.compute(session, card, customer, now), now
                )
                moves.append((now, cid, r.old_signals, r.signals_changed, r.changed, r.moved))
    one_by_one = _health_rows(sessions)
    _reset(sessions)
    paged_moves: list[tuple[Any, ...]] = []
    for now in days:
        pages = list(health.recompute_book(sessions, card, now, page=5))
        assert [len(page) for page in pages] == [5, 5, 2]
        paged_moves += [
            (now, r.customer_id, r.old_signals, r.signals_changed, r.changed, r.moved)
            for page in pages
            for r in page
        ]
    paged = _health_rows(sessions)
    assert paged == one_by_one
    # the previous signals come from each customer's latest point, as `record` reads them
    assert paged_moves == moves
    customers, points, changes = paged
    assert {point[4] for point in points} == {"red", "yellow", "green", "unknown"}
    assert len(points) == 12 * 2 and len(changes) > 12  # scores moved on later days
    assert any(score is None for _, _, _, score, *_ in points)  # no data: unknown, not 0
    signals = [{n: s["on"] for n, s in point[7].items()} for point in points]
    assert {True, False, None} <= {on for sig in signals for on in sig.values()}
    # a signal moved without the score or band: a move all the same
    assert any(sig and not changed and moved for *_, sig, changed, moved in paged_moves)
    _reset(sessions)
    for now in days:
        for cid in ids:
            with sessions.begin() as session:
                health.recompute(session, card, cid, now)
    assert _health_rows(sessions) == one_by_one
    _reset(sessions)
    with sessions.begin() as session:
        session.get(Customer, "c03")  # an object the caller holds is not left stale
        for now in days:
            health.recompute_all(session, card, now, batch=7)
        held = session.get(Customer, "c03")
        assert held is not None and held.health_score == customers[3][1]
    assert _health_rows(sessions) == one_by_one


def test_two_writers_scoring_one_customer_at_once_keep_one_point(
    sessions: sessionmaker[Session],
) -> None:
    """Two event batches for one customer rescore it at once: both read "no point today",
    and the second to write must update the first's point, not fail on the unique day."""
    import threading

    from sqlalchemy import event

    from engine.store.models import Customer

    with sessions.begin() as session:
        repository.upsert_customer(session, repository.CustomerData(id="race", name="race"))
        _wau(session, "race", 2, NOW - timedelta(hours=2))
    first, second = sessions(), sessions()
    writing = threading.Event()

    def before_execute(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        if statement.lstrip().upper().startswith(("INSERT", "UPDATE")):
            writing.set()  # the second writer has read (no point today) and starts writing

    failed: list[BaseException] = []

    def score_again() -> None:
        try:
            customers = [second.get_one(Customer, "race")]
            health.recompute_page(second, CARD, customers, NOW + timedelta(minutes=1))
            second.commit()
        except BaseException as exc:  # reported by the assertion below
            failed.append(exc)
            writing.set()

    try:
        health.recompute_page(first, CARD, [first.get_one(Customer, "race")], NOW)
        event.listen(second.connection(), "before_cursor_execute", before_execute)
        writer = threading.Thread(target=score_again)
        writer.start()
        assert writing.wait(30)
        first.commit()
        writer.join(timeout=60)
        assert not writer.is_alive() and failed == []
    finally:
        first.close()
        second.close()
    with sessions() as session:
        points = list(session.scalars(select(HealthScore).where(HealthScore.customer_id == "race")))
    assert [(p.day, p.at) for p in points] == [(NOW.date(), NOW + timedelta(minutes=1))]
