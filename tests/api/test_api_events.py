"""POST /api/events: validation names the field, nothing is lost, duplicates are reported."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import httpx
import pytest

from engine.api.schemas import EventsResponse
from engine.client.playbook import EnrollmentHandle
from engine.client.routing import Delivery, EventRouter
from engine.services import Services
from engine.store import repository
from tests.helpers.polling import eventually


def event(customer: str, name: str = "report.created", **fields: Any) -> dict[str, Any]:
    return {"id": uuid.uuid4().hex, "customer_id": customer, "name": name, **fields}


def field_errors(response: httpx.Response) -> list[str]:
    """The dotted locations FastAPI reports for a 422."""
    assert response.status_code == 422, response.text
    return [".".join(str(p) for p in error["loc"]) for error in response.json()["detail"]]


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"customer_id": None}, "customer_id"),
        ({"customer_id": ""}, "customer_id"),
        ({"customer_id": "x" * 256}, "customer_id"),
        ({"customer_id": "tab\there"}, "customer_id"),
        ({"id": 42}, "id"),
        ({"id": ""}, "id"),
        ({"id": "nul\u0000byte"}, "id"),
        ({"name": "has spaces"}, "name"),
        ({"name": ["a"]}, "name"),
        ({"at": "yesterday"}, "at"),
        ({"at": "2026-01-05T10:00:00"}, "at"),  # no offset: whose 10:00?
        ({"properties": ["not", "an", "object"]}, "properties"),
        ({"colour": "extra fields are refused"}, "colour"),
    ],
)
async def test_a_bad_event_is_a_422_naming_the_field(
    api: httpx.AsyncClient, customer: str, change: dict[str, Any], field: str
) -> None:
    body = event(customer) | change
    body = {k: v for k, v in body.items() if v is not None}
    locations = field_errors(await api.post("/api/events", json=body))
    assert any(loc.endswith(field) for loc in locations), locations


async def test_a_bad_item_in_a_batch_is_answered_invalid_and_the_good_ones_kept(
    api: httpx.AsyncClient, customer: str, services: Services
) -> None:
    """Each item of a batch is judged on its own: the bad ones are answered `invalid` with
    their errors located as in a 422, the good ones (repeats included) as if alone."""
    good, later = event(customer), event(customer)
    bad_name = event(customer, name="bad name")
    two_faults = event(customer, at="2026-01-05T10:00:00", colour="red")
    body = {"events": [good, bad_name, two_faults, "not an object", later, good]}
    response = await api.post("/api/events", json=body)
    assert response.status_code == 202, response.text
    results = response.json()["results"]
    assert EventsResponse.model_validate(response.json()).model_dump() == response.json()
    assert [(r["id"], r["status"]) for r in results] == [
        (good["id"], "accepted"),
        (bad_name["id"], "invalid"),
        (two_faults["id"], "invalid"),
        ("", "invalid"),
        (later["id"], "accepted"),
        (good["id"], "duplicate"),
    ]
    assert [[e["loc"] for e in r.get("errors", [])] for r in results] == [
        [],
        [["body", "events", 1, "name"]],
        [["body", "events", 2, "at"], ["body", "events", 2, "colour"]],
        [["body", "events", 3]],
        [],
        [],
    ]
    assert all(e["msg"] and e["type"] for r in results for e in r.get("errors", []))
    with services.sessions() as session:
        assert repository.get_event(session, good["id"]) is not None
        assert repository.get_event(session, later["id"]) is not None
        assert repository.get_event(session, bad_name["id"]) is None
    # the bad item fixed and sent again is stored, once; the good ones are repeats
    fixed = bad_name | {"name": "bad.name"}
    again = await api.post("/api/events", json={"events": [fixed, good, fixed]})
    assert [r["status"] for r in again.json()["results"]] == ["accepted", "duplicate", "duplicate"]


async def test_a_body_that_is_no_event_and_no_batch_is_refused_whole(
    api: httpx.AsyncClient, customer: str, services: Services
) -> None:
    """A 422 when nothing of the body can be kept: a batch without one good item, an
    empty or oversized batch, a batch with another key, a body that is not JSON."""
    bad = [event(customer, name="bad name"), event(customer, id="")]
    locations = field_errors(await api.post("/api/events", json={"events": bad}))
    assert locations == ["body.events.0.name", "body.events.1.id"]
    assert field_errors(await api.post("/api/events", json={"events": []})) == ["body.events"]
    too_many = {"events": [event(customer) for _ in range(1001)]}
    assert field_errors(await api.post("/api/events", json=too_many)) == ["body.events"]
    extra = {"events": [event(customer)], "source": "crm"}
    assert field_errors(await api.post("/api/events", json=extra)) == ["body.source"]
    assert field_errors(await api.post("/api/events", json={"events": "many"})) == ["body.events"]
    not_json = await api.post(
        "/api/events", content=b'{"events": [', headers={"Content-Type": "application/json"}
    )
    assert not_json.status_code == 422
    with services.sessions() as session:  # nothing of a refused body was stored
        assert repository.get_event(session, too_many["events"][0]["id"]) is None
        assert repository.get_event(session, extra["events"][0]["id"]) is None


async def test_an_event_for_an_unknown_customer_is_404_and_stored(
    api: httpx.AsyncClient, services: Services
) -> None:
    body = event("nobody-" + uuid.uuid4().hex[:6], "customer.created", properties={"k": 1})
    response = await api.post("/api/events", json=body)
    assert response.status_code == 404
    assert body["customer_id"] in response.json()["detail"]
    assert "stored" in response.json()["detail"]
    with services.sessions() as session:
        stored = repository.get_event(session, body["id"])
        assert stored is not None
        assert stored.status == "unknown_customer"
        assert stored.properties == {"k": 1}
    # in a batch the same is reported per item
    batch = await api.post("/api/events", json={"events": [event(body["customer_id"])]})
    assert batch.status_code == 202
    assert batch.json()["results"][0]["status"] == "unknown_customer"


async def test_a_batch_with_repeats_says_which_were_duplicates(
    api: httpx.AsyncClient, customer: str, services: Services
) -> None:
    first, second = event(customer, "user.invited"), event(customer, "user.invited")
    response = await api.post("/api/events", json={"events": [first, second, first]})
    assert response.status_code == 202, response.text
    statuses = [(r["id"], r["status"]) for r in response.json()["results"]]
    assert statuses == [
        (first["id"], "accepted"),
        (second["id"], "accepted"),
        (first["id"], "duplicate"),
    ]
    again = await api.post("/api/events", json=second)
    assert again.status_code == 202
    assert again.json()["results"][0]["status"] == "duplicate"
    with services.sessions() as session:
        assert repository.get_milestones(session, customer) == {}  # 2 of 3 invitations


async def test_customer_created_starts_onboarding_and_the_repeat_does_not(
    api: httpx.AsyncClient, customer: str
) -> None:
    body = event(customer, "customer.created", at="2026-01-05T10:00:00+01:00")
    response = await api.post("/api/events", json=body)
    assert response.status_code == 202, response.text
    assert response.json()["results"][0]["enrolled"] == [f"onboarding/{customer}"]
    again = await api.post("/api/events", json=body | {"id": uuid.uuid4().hex})
    result = again.json()["results"][0]
    assert result["enrolled"] == []
    assert any("already enrolled" in note for note in result["notes"])


async def test_a_locked_store_is_a_503_to_retry_and_the_retry_is_stored(
    api: httpx.AsyncClient, services: Services, customer: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SQLite's writer lock held past the router's wait (heavy load) is not a 500: the client
    is told to retry, and the retry of the same event id is stored once."""
    import sqlite3

    from sqlalchemy.exc import OperationalError

    from engine.client import routing

    def locked(*_: Any, **__: Any) -> None:
        raise OperationalError(
            "INSERT INTO events", {}, sqlite3.OperationalError("database is locked")
        )

    body = event(customer)
    with monkeypatch.context() as patch:
        patch.setattr(routing, "ingest_events", locked)
        patch.setattr(services.router, "lock_wait_seconds", 0.05)
        response = await api.post("/api/events", json=body)
    assert response.status_code == 503, response.text
    assert response.headers["retry-after"] == "1"
    assert "database is locked" in response.json()["detail"]
    retry = await api.post("/api/events", json=body)
    assert retry.status_code == 202, retry.text
    assert retry.json()["results"][0]["status"] == "accepted"
    with services.sessions() as session:
        assert repository.get_event(session, body["id"]) is not None


async def test_a_batch_keeps_its_good_events_and_reports_the_rest_one_by_one(
    api: httpx.AsyncClient, customer: str, services: Services
) -> None:
    good, stranger, later = event(customer), event("nobody-" + uuid.uuid4().hex), event(customer)
    response = await api.post("/api/events", json={"events": [good, stranger, good, later]})
    assert response.status_code == 202, response.text
    # the answer is written without the response model: it must still be its shape
    assert EventsResponse.model_validate(response.json()).model_dump() == response.json()
    assert [r["status"] for r in response.json()["results"]] == [
        "accepted",
        "unknown_customer",
        "duplicate",
        "accepted",
    ]
    # across batches: what was stored is a repeat, the rest is new
    fresh = event(customer)
    again = await api.post("/api/events", json={"events": [later, fresh, stranger]})
    assert [r["status"] for r in again.json()["results"]] == [
        "duplicate",
        "accepted",
        "unknown_customer",  # stored once, and still answered for what it is
    ]
    with services.sessions() as session:
        stored = {e["id"]: repository.get_event(session, e["id"]) for e in (good, stranger, fresh)}
        assert {k: v.status if v else None for k, v in stored.items()} == {
            good["id"]: "stored",
            stranger["id"]: "unknown_customer",
            fresh["id"]: "stored",
        }


async def test_only_enrollments_that_listen_are_signalled(
    api: httpx.AsyncClient, customer: str, services: Services
) -> None:
    """Onboarding listens to integration.connected (a milestone it waits for), not to
    page.viewed: the first is signalled to the running enrollment and reaches it, the
    second is stored and costs no signal."""
    started = await api.post("/api/events", json=event(customer, "customer.created"))
    enrollment = f"onboarding/{customer}"
    assert started.json()["results"][0]["enrolled"] == [enrollment]

    def running() -> bool:
        with services.sessions() as session:
            row = repository.latest_enrollment(session, enrollment)
            return row is not None and row.status == "running"

    await eventually(running, what="the onboarding enrollment's row")
    viewed, connected = event(customer, "page.viewed"), event(customer, "integration.connected")
    response = await api.post("/api/events", json={"events": [viewed, connected]})
    assert response.status_code == 202, response.text
    assert [r["signalled"] for r in response.json()["results"]] == [[], [enrollment]]
    with services.sessions() as session:
        assert repository.get_event(session, viewed["id"]).status == "stored"
        assert repository.get_event(session, connected["id"]).status == "routed"

    async def heard() -> set[str]:
        snapshot = await EnrollmentHandle.get(services.client, enrollment).status()
        names = {r.data.get("name") for r in snapshot.records if r.kind == "event"}
        return names if connected["name"] in names else set()

    assert viewed["name"] not in await eventually(heard, what="integration.connected heard")


async def test_a_process_stores_one_batch_at_a_time(
    api: httpx.AsyncClient, customer: str, services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Batches posted at once to one process are stored one after the other: two at once
    only compete for the GIL, and under SQLite the one holding the writer lock would hold
    it while it waits (bench/RESULTS.md). The lock is the router's, one per `Services`."""
    assert services.router is services.router
    inside, most = 0, 0
    real_store = EventRouter.store

    async def store(self: EventRouter, events: Any) -> Any:
        nonlocal inside, most
        inside += 1
        most = max(most, inside)
        await asyncio.sleep(0.05)  # long enough for the others to start if they could
        try:
            return await real_store(self, events)
        finally:
            inside -= 1

    monkeypatch.setattr(EventRouter, "store", store)
    answers = await asyncio.gather(
        *(api.post("/api/events", json={"events": [event(customer)]}) for _ in range(4))
    )
    assert [a.status_code for a in answers] == [202] * 4
    assert most == 1


async def test_a_batch_waiting_on_temporal_does_not_hold_up_the_next(
    api: httpx.AsyncClient, customer: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The one-batch-at-a-time lock is released before a batch waits on Temporal (signals,
    starts): a slow Temporal must not stop the process from storing other events."""
    temporal_answers = asyncio.Event()
    real_sort, real_deliver = EventRouter.sort, EventRouter.deliver

    def sort(self: EventRouter, events: Any, stored: Any) -> Delivery:
        delivery = real_sort(self, events, stored)
        delivery.waits = events[0].name == "slow.event"  # as if it had enrollments to signal
        return delivery

    async def deliver(self: EventRouter, delivery: Delivery, now: Any = None) -> Any:
        if delivery.waits:
            await asyncio.wait_for(temporal_answers.wait(), 10)
        return await real_deliver(self, delivery, now)

    monkeypatch.setattr(EventRouter, "sort", sort)
    monkeypatch.setattr(EventRouter, "deliver", deliver)
    slow = asyncio.create_task(api.post("/api/events", json=event(customer, "slow.event")))
    await asyncio.sleep(0.2)  # the slow batch is stored and waiting
    assert not slow.done()
    quick = await asyncio.wait_for(api.post("/api/events", json=event(customer)), 5)
    assert quick.status_code == 202
    temporal_answers.set()
    assert (await slow).status_code == 202
