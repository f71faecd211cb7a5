"""PUT/GET /api/customers/{id} and PUT /api/team/{email}: upserts from a CRM."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest

from engine.services import Services
from engine.store.models import TeamMember


def new_id() -> str:
    return f"crm-{uuid.uuid4().hex[:10]}"


FULL = {
    "name": "Hoshino Logistics",
    "segment": "enterprise",
    "timezone": "Asia/Tokyo",
    "owner": "Casey@Vendor.example",
    "renewal_date": "2027-03-31",
    "health_score": 72,
    "attributes": {"plan": "scale", "seats": 40},
    "tags": ["apac"],
    "contacts": [
        {"email": "Aiko@Hoshino.example", "first_name": "Aiko", "role": "admin"},
        {"email": "ken@hoshino.example", "first_name": "Ken", "role": "champion"},
    ],
}


@pytest.fixture(autouse=True)
def casey(services: Services) -> None:
    """The owner the customers below name is on the team."""
    with services.sessions.begin() as session:
        session.merge(TeamMember(email="casey@vendor.example", name="Casey"))


async def test_an_owner_who_is_not_on_the_team_is_a_422(api: httpx.AsyncClient) -> None:
    customer = new_id()
    put = await api.put(f"/api/customers/{customer}", json={**FULL, "owner": "nobody@acme.example"})
    assert put.status_code == 422
    assert "'nobody@acme.example' is not a team member" in put.json()["detail"]
    assert (await api.get(f"/api/customers/{customer}")).status_code == 404


async def test_upsert_then_get(api: httpx.AsyncClient) -> None:
    customer = new_id()
    put = await api.put(f"/api/customers/{customer}", json=FULL)
    assert put.status_code == 200, put.text
    got = await api.get(f"/api/customers/{customer}")
    assert got.status_code == 200
    body = got.json()
    assert body == put.json()
    assert body["id"] == customer
    assert body["owner"] == "casey@vendor.example"
    assert body["renewal_date"] == "2027-03-31"
    assert body["attributes"] == {"plan": "scale", "seats": 40}
    assert [c["email"] for c in body["contacts"]] == ["aiko@hoshino.example", "ken@hoshino.example"]
    assert not any(c["unsubscribed"] for c in body["contacts"])


async def test_a_partial_update_changes_only_what_it_names(api: httpx.AsyncClient) -> None:
    customer = new_id()
    await api.put(f"/api/customers/{customer}", json=FULL)
    update = {
        "name": "Hoshino Logistics KK",
        "health_score": 35,
        "owner": None,
        "contacts": [{"email": "mei@hoshino.example", "role": "user"}],
    }
    response = await api.put(f"/api/customers/{customer}", json=update)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["name"] == "Hoshino Logistics KK" and body["health_score"] == 35
    assert body["owner"] is None  # explicitly cleared
    assert body["timezone"] == "Asia/Tokyo" and body["segment"] == "enterprise"  # untouched
    emails = [c["email"] for c in body["contacts"]]
    assert emails == ["aiko@hoshino.example", "ken@hoshino.example", "mei@hoshino.example"]


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"name": ""}, "name"),
        ({"name": None}, "name"),
        ({"health_score": 101}, "health_score"),
        ({"health_score": "very healthy"}, "health_score"),
        ({"renewal_date": "2027-02-30"}, "renewal_date"),
        ({"owner": "not-an-email"}, "owner"),
        ({"contacts": [{"email": "nope"}]}, "email"),
        ({"contacts": [{"first_name": "No email"}]}, "email"),
        ({"contacts": {"email": "a@b.example"}}, "contacts"),
        ({"tags": "one-string"}, "tags"),
        ({"attributes": [1, 2]}, "attributes"),
        ({"segment": "s" * 65}, "segment"),
        ({"unknown": 1}, "unknown"),
    ],
)
async def test_a_bad_customer_is_a_422_naming_the_field(
    api: httpx.AsyncClient, change: dict[str, Any], field: str
) -> None:
    response = await api.put(f"/api/customers/{new_id()}", json=FULL | change)
    assert response.status_code == 422, response.text
    locations = [".".join(map(str, e["loc"])) for e in response.json()["detail"]]
    assert any(loc.endswith(field) for loc in locations), locations


async def test_an_unknown_time_zone_is_a_422_that_names_it(api: httpx.AsyncClient) -> None:
    for zone in ("Mars/Olympus", "", "../../etc/passwd", "Europe/Berlin\u0000"):
        response = await api.put(f"/api/customers/{new_id()}", json=FULL | {"timezone": zone})
        assert response.status_code == 422, (zone, response.text)
        assert "zone" in response.text


async def test_customer_ids_are_checked_in_the_path(api: httpx.AsyncClient) -> None:
    for bad in ("x" * 256, "tab%09id"):
        response = await api.put(f"/api/customers/{bad}", json=FULL)
        assert response.status_code == 422, response.text
        assert response.json()["detail"][0]["loc"] == ["path", "customer_id"]
    assert (await api.get("/api/customers/no-such-customer")).status_code == 404
    assert (await api.get("/api/customers/" + "y" * 5000)).status_code == 404
    # a slash is not part of an id: no such route
    assert (await api.get("/api/customers/a/b")).status_code == 404


async def test_team_members_are_upserted_and_their_email_is_checked(
    api: httpx.AsyncClient, services: Services
) -> None:
    email = f"CSM-{uuid.uuid4().hex[:6]}@Vendor.example"
    body = {"name": "Casey", "roles": ["csm"], "password": "long enough"}
    assert (await api.put(f"/api/team/{email}", json=body)).status_code == 204
    assert (await api.put(f"/api/team/{email}", json={"name": "Casey S."})).status_code == 204
    with services.sessions() as session:
        member = session.get(TeamMember, email.lower())
        assert member is not None and member.name == "Casey S."
        assert member.password_hash and member.password_hash.startswith("scrypt$")
    for bad_email in ("not-an-email", "a@b", "x" * 400 + "@vendor.example"):
        response = await api.put(f"/api/team/{bad_email}", json=body)
        assert response.status_code == 422, (bad_email, response.text)
    response = await api.put(f"/api/team/{email}", json={"name": "x", "password": "short"})
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", "password"]


async def test_contacts_carry_their_own_zone_locale_and_country(api: httpx.AsyncClient) -> None:
    """docs/delivery.md: each falls back to the customer's when left out; bad values are 422."""
    customer = new_id()
    body = {
        **FULL,
        "country": "JP",
        "locale": "ja",
        "contacts": [
            {
                "email": "min@hoshino.example",
                "timezone": "Asia/Seoul",
                "locale": "ko-KR",
                "country": "KR",
            },
            {"email": "ken@hoshino.example"},
        ],
    }
    put = await api.put(f"/api/customers/{customer}", json=body)
    assert put.status_code == 200, put.text
    got = (await api.get(f"/api/customers/{customer}")).json()
    assert (got["country"], got["locale"]) == ("JP", "ja")
    min_, ken = got["contacts"]
    assert (min_["timezone"], min_["locale"], min_["country"]) == ("Asia/Seoul", "ko-KR", "KR")
    assert (ken["timezone"], ken["locale"], ken["country"]) == (None, None, None)
    bad = {**body, "contacts": [{"email": "x@hoshino.example", "timezone": "Mars/Olympus"}]}
    assert (await api.put(f"/api/customers/{customer}", json=bad)).status_code == 422


async def test_a_moved_renewal_date_moves_the_running_wait(
    api: httpx.AsyncClient, services: Services
) -> None:
    """Issue 13, defect 3: the CRM moves `renewal_date`; the renewal enrollment's running
    `wait: until` follows it (the `customer_changed` signal, sent by the customer service)."""
    from datetime import date, timedelta

    from tests.helpers.polling import eventually

    customer = new_id()
    renews = date.today() + timedelta(days=200)
    body = {**FULL, "renewal_date": renews.isoformat(), "health_score": 90}
    assert (await api.put(f"/api/customers/{customer}", json=body)).status_code == 200
    started = await api.post(
        "/api/enrollments", json={"playbook": "renewal", "customer_id": customer}
    )
    assert started.status_code == 201, started.text
    enrollment = started.json()["id"]

    async def waiting_until() -> str | None:
        status = (await api.get(f"/api/enrollments/{enrollment}/status")).json()
        return status["waiting_until"] if status["current_step"] == "wait_90" else None

    before = await eventually(waiting_until, what="the 90-day wait")
    assert before.startswith(f"{renews - timedelta(days=90)}T10:00:00")  # Asia/Tokyo, 10:00

    moved = renews + timedelta(days=21)
    update = await api.put(f"/api/customers/{customer}", json={**body, "renewal_date": str(moved)})
    assert update.status_code == 200, update.text
    after = await eventually(
        lambda: _moved(waiting_until, before), what="the wait to follow the renewal date"
    )
    assert after.startswith(f"{moved - timedelta(days=90)}T10:00:00")
    cancelled = await api.post(f"/api/enrollments/{enrollment}/cancel", json={})
    assert cancelled.status_code == 200, cancelled.text


async def _moved(waiting_until: Any, before: str) -> str | None:
    now = await waiting_until()
    return now if now and now != before else None
