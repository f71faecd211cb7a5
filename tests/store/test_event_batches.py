"""Batch ingestion (`engine.store.events.ingest_events`) on a real database: repeats found as a
set (in the batch and across batches), unknown customers stored, milestones counted across a
batch, and only the running enrollments whose plan listens to an event are named for it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from engine.language.listening import listened_events
from engine.project import Project
from engine.statuses import EnrollmentStatus
from engine.store import repository
from engine.store.events import IncomingEvent, Ingested, ingest_events
from engine.store.models import Event

AT = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


def events(*specs: tuple[str, str, str]) -> list[IncomingEvent]:
    """(id, customer, name) triples, a minute apart."""
    return [
        IncomingEvent(event_id, customer, name, AT + timedelta(minutes=i))
        for i, (event_id, customer, name) in enumerate(specs)
    ]


def seed(sessions: sessionmaker[Session], *customers: str) -> None:
    with sessions.begin() as session:
        for customer in customers:
            repository.upsert_customer(session, repository.CustomerData(id=customer, name=customer))


def statuses(sessions: sessionmaker[Session]) -> dict[str, str]:
    with sessions() as session:
        return dict(session.execute(select(Event.id, Event.status)).all())


def test_a_batch_keeps_the_good_events_and_says_what_became_of_each(
    sessions: sessionmaker[Session], project: Project
) -> None:
    seed(sessions, "acme")
    batch = events(
        ("e1", "acme", "user.invited"),
        ("e2", "nobody", "user.invited"),
        ("e1", "acme", "user.invited"),  # a repeat inside the batch
        ("e3", "acme", "user.invited"),
    )
    with sessions.begin() as session:
        first = ingest_events(session, batch, milestones=project.milestones)
    assert [(r.new, r.known_customer) for r in first] == [
        (True, True),
        (True, False),
        (False, True),
        (True, True),
    ]
    assert statuses(sessions) == {"e1": "stored", "e2": "unknown_customer", "e3": "stored"}
    # across batches: the stored ids are repeats; the third invitation reaches team_invited
    again = events(("e3", "acme", "user.invited"), ("e4", "acme", "user.invited"))
    with sessions.begin() as session:
        second = ingest_events(session, again, milestones=project.milestones)
    assert [r.new for r in second] == [False, True]
    assert second[1].milestones_reached == ["team_invited"]
    with sessions() as session:
        assert repository.get_milestones(session, "acme")["team_invited"].count == 1


def test_milestones_are_counted_within_one_batch(
    sessions: sessionmaker[Session], project: Project
) -> None:
    seed(sessions, "acme", "beta")
    batch = events(
        *[(f"i{n}", "acme", "user.invited") for n in range(4)],
        ("b1", "beta", "user.invited"),
        ("r1", "beta", "report.created"),
    )
    with sessions.begin() as session:
        results = ingest_events(session, batch, milestones=project.milestones)
    assert [r.milestones_reached for r in results] == [
        [],
        [],
        ["team_invited"],
        [],
        [],
        ["first_value"],
    ]
    with sessions() as session:
        reached = repository.get_milestones(session, "acme")
        assert reached["team_invited"].reached_at == AT + timedelta(minutes=2)
        assert set(repository.get_milestones(session, "beta")) == {"first_value"}


def test_only_enrollments_whose_plan_listens_are_named(
    sessions: sessionmaker[Session], project: Project
) -> None:
    onboarding, renewal = project.plan("onboarding"), project.plan("renewal")
    heard = listened_events(onboarding)
    assert {"customer.churned", "report.created", "integration.connected"} <= heard
    assert "page.viewed" not in heard
    seed(sessions, "acme")
    with sessions.begin() as session:
        # onboarding from the deployed set; renewal's version read from the registered ones
        repository.register_playbook_version(
            session,
            playbook_id="renewal",
            version=renewal.version,
            name=renewal.name,
            source="",
            plan=renewal.model_dump(mode="json"),
        )
        for playbook, version in (
            ("onboarding", onboarding.version),
            ("renewal", renewal.version),
            ("legacy", "not-registered"),  # an unknown version hears everything, as before
        ):
            repository.upsert_enrollment(
                session,
                workflow_id=f"{playbook}/acme",
                playbook_id=playbook,
                version=version,
                customer_id="acme",
            )
    assert "contract.renewed" in listened_events(renewal) - heard
    assert "report.created" not in listened_events(renewal)
    batch = events(
        ("p1", "acme", "page.viewed"),
        ("r1", "acme", "report.created"),
        ("c1", "acme", "contract.renewed"),
    )
    with sessions.begin() as session:
        results = ingest_events(
            session, batch, milestones=project.milestones, plans={"onboarding": onboarding}
        )
    assert [sorted(r.enrollments) for r in results] == [
        ["legacy/acme"],
        ["legacy/acme", "onboarding/acme"],
        ["legacy/acme", "renewal/acme"],
    ]
    assert statuses(sessions) == {"p1": "routed", "r1": "routed", "c1": "routed"}
    with sessions.begin() as session:  # once the unknown version ends, nobody hears page.viewed
        repository.upsert_enrollment(
            session,
            workflow_id="legacy/acme",
            playbook_id="legacy",
            version="not-registered",
            customer_id="acme",
            status=EnrollmentStatus.COMPLETED,
        )
        (alone,) = ingest_events(
            session,
            events(("p2", "acme", "page.viewed")),
            milestones=project.milestones,
            plans={"onboarding": onboarding},
        )
    assert alone.enrollments == []
    assert statuses(sessions)["p2"] == "stored"


def test_an_id_stored_by_another_writer_meanwhile_is_not_counted_as_ours(
    sessions: sessionmaker[Session],
) -> None:
    """Between a batch's check for repeats and its insert another writer may store one of
    its ids: the insert skips it and says which rows it stored itself."""
    with sessions.begin() as session:
        repository.record_event(session, "taken", "acme", "page.viewed", AT)
    row = {"customer_id": "acme", "name": "page.viewed", "at": AT, "properties": {}}
    received = AT + timedelta(hours=1)
    rows = [
        {"id": event_id, **row, "received_at": received, "status": "stored", "note": None}
        for event_id in ("taken", "free")
    ]
    with sessions.begin() as session:
        assert repository.insert_new_events(session, rows) == {"free"}
    assert statuses(sessions) == {"taken": "unknown_customer", "free": "stored"}


def test_a_batch_reads_back_as_it_was_given(sessions: sessionmaker[Session]) -> None:
    """The insert writes rows without SQLAlchemy's per-row conversions (SQLite: tuples to the
    driver; PostgreSQL: arrays): times come back as the same instants in UTC, properties as
    the same JSON, and a repeat of an earlier batch is skipped by the insert itself."""
    seed(sessions, "acme")
    at = datetime(2026, 3, 2, 11, 30, 15, 123456, tzinfo=timezone(timedelta(hours=2)))
    properties = {"pfad": "/über", "n": [1, 2.5, None, True], "nested": {"k": "v"}}
    given = [IncomingEvent("r1", "acme", "page.viewed", at, properties)]
    with sessions.begin() as session:
        (first,) = ingest_events(session, given, milestones={})
    with sessions.begin() as session:
        (again,) = ingest_events(session, given, milestones={})
    assert (first.new, again.new) == (True, False)
    with sessions() as session:
        stored = repository.get_event(session, "r1")
        assert stored is not None
        assert stored.at == at and stored.at.tzinfo == UTC
        assert stored.properties == properties
        assert stored.received_at.tzinfo == UTC


def test_one_event_alone_is_answered_as_in_a_batch(
    sessions: sessionmaker[Session], project: Project
) -> None:
    """Each event posted alone (the live API's usual case) gets the answer and leaves the
    rows that the same events in one batch give."""
    onboarding = project.plan("onboarding")
    seed(sessions, "alone", "batched")
    with sessions.begin() as session:
        for customer in ("alone", "batched"):
            repository.upsert_enrollment(
                session,
                workflow_id=f"onboarding/{customer}",
                playbook_id="onboarding",
                version=onboarding.version,
                customer_id=customer,
            )
    specs = [
        ("i0", "user.invited"),
        ("p1", "page.viewed"),  # onboarding does not listen
        ("i0", "user.invited"),  # a repeat
        ("i1", "user.invited"),
        ("i2", "user.invited"),  # the third invitation: team_invited
        ("r1", "report.created"),  # first_value
    ]
    plans = {"onboarding": onboarding}
    alone = []
    for event in events(*[(f"a-{i}", "alone", name) for i, name in specs]):
        with sessions.begin() as session:
            alone += ingest_events(session, [event], milestones=project.milestones, plans=plans)
    with sessions.begin() as session:
        batched = ingest_events(
            session,
            events(*[(f"b-{i}", "batched", name) for i, name in specs]),
            milestones=project.milestones,
            plans=plans,
        )
    with sessions.begin() as session:  # and alone, a stranger's event is stored as such
        (stranger,) = ingest_events(
            session, events(("s-1", "nobody", "user.invited")), milestones=project.milestones
        )

    def answers(results: list[Ingested]) -> list[tuple[object, ...]]:
        return [
            (
                r.new,
                r.known_customer,
                r.milestones_reached,
                [e.split("/")[0] for e in r.enrollments],
            )
            for r in results
        ]

    assert answers(alone) == answers(batched)
    assert answers(alone) == [
        (True, True, [], ["onboarding"]),
        (True, True, [], []),
        (False, True, [], []),
        (True, True, [], ["onboarding"]),
        (True, True, ["team_invited"], ["onboarding"]),
        (True, True, ["first_value"], ["onboarding"]),
    ]
    assert (stranger.new, stranger.known_customer, stranger.enrollments) == (True, False, [])
    rows = statuses(sessions)
    assert {k[2:]: v for k, v in rows.items() if k.startswith("a-")} == {
        k[2:]: v for k, v in rows.items() if k.startswith("b-")
    }
    assert rows["s-1"] == "unknown_customer"
    with sessions() as session:
        assert repository.get_milestones(session, "alone")["team_invited"].count == 1
        assert {
            k: (m.reached_at, m.count)
            for k, m in repository.get_milestones(session, "alone").items()
        } == {
            k: (m.reached_at, m.count)
            for k, m in repository.get_milestones(session, "batched").items()
        }
