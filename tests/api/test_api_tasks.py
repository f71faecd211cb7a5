"""/api/tasks: list, complete (once, with one of the task's outcomes), reassign."""

from __future__ import annotations

import uuid

import httpx

from engine.services import Services
from engine.store import repository
from engine.store.models import TeamMember


def open_task(services: Services, customer: str, **fields: object) -> str:
    with services.sessions.begin() as session:
        task, _ = repository.create_task(
            session,
            f"test:{uuid.uuid4().hex}",
            f"Call {customer}",
            customer_id=customer,
            assignee_email="csm@vendor.example",
            outcomes=["held", "no_response"],
            **fields,  # type: ignore[arg-type]
        )
        return task.id


async def test_complete_is_idempotent_and_a_different_outcome_is_409(
    api: httpx.AsyncClient, services: Services, customer: str
) -> None:
    task = open_task(services, customer)
    url = f"/api/tasks/{task}/complete"
    first = await api.post(url, json={"outcome": "held", "note": "great call"})
    assert first.status_code == 200, first.text
    assert first.json()["status"] == "completed" and first.json()["outcome"] == "held"
    repeat = await api.post(url, json={"outcome": "held"})
    assert repeat.status_code == 200  # a retry of the same completion
    conflict = await api.post(url, json={"outcome": "no_response"})
    assert conflict.status_code == 409
    assert "completed" in conflict.json()["detail"]
    with services.sessions() as session:
        stored = repository.get_task(session, task)
        assert stored.outcome == "held" and stored.note == "great call"
        assert stored.completed_by == "api:tests"


async def test_complete_checks_the_outcome_and_the_task(
    api: httpx.AsyncClient, services: Services, customer: str
) -> None:
    task = open_task(services, customer)
    wrong = await api.post(f"/api/tasks/{task}/complete", json={"outcome": "exploded"})
    assert wrong.status_code == 422
    assert "exploded" in wrong.json()["detail"]
    missing = await api.post(f"/api/tasks/{task}/complete", json={})
    assert missing.status_code == 422
    assert missing.json()["detail"][0]["loc"] == ["body", "outcome"]
    # The caller is who completed it: naming someone else is refused, not stored.
    by = await api.post(
        f"/api/tasks/{task}/complete",
        json={"outcome": "held", "completed_by": "casey@vendor.example"},
    )
    assert by.status_code == 422
    assert by.json()["detail"][0]["loc"] == ["body", "completed_by"]
    with services.sessions() as session:
        assert repository.get_task(session, task).status == "open"
    unknown = await api.post("/api/tasks/no-such-task/complete", json={"outcome": "held"})
    assert unknown.status_code == 404


async def test_completing_a_task_of_an_enrollment_that_is_gone_still_completes_it(
    api: httpx.AsyncClient, services: Services, customer: str
) -> None:
    task = open_task(services, customer, enrollment_id=f"onboarding/{customer}-gone")
    response = await api.post(f"/api/tasks/{task}/complete", json={"outcome": "held"})
    assert response.status_code == 200, response.text


async def test_list_filters_and_reassign(
    api: httpx.AsyncClient, services: Services, customer: str
) -> None:
    task = open_task(services, customer)
    with services.sessions.begin() as session:
        session.merge(TeamMember(email="other@vendor.example", name="Other"))
    mine = await api.get("/api/tasks", params={"assignee": "CSM@vendor.example", "status": "open"})
    assert mine.status_code == 200
    assert task in [t["id"] for t in mine.json()]
    stranger = await api.post(
        f"/api/tasks/{task}/reassign", json={"assignee": "nobody@acme.example"}
    )
    assert stranger.status_code == 422 and "not a team member" in stranger.json()["detail"]
    moved = await api.post(f"/api/tasks/{task}/reassign", json={"assignee": "Other@Vendor.example"})
    assert moved.status_code == 200 and moved.json()["assignee"] == "other@vendor.example"
    mine = await api.get("/api/tasks", params={"assignee": "csm@vendor.example", "status": "open"})
    assert task not in [t["id"] for t in mine.json()]
    await api.post(f"/api/tasks/{task}/complete", json={"outcome": "held"})
    closed = await api.post(f"/api/tasks/{task}/reassign", json={"assignee": "x@vendor.example"})
    assert closed.status_code == 409
    done = await api.get("/api/tasks", params={"assignee": "other@vendor.example"})
    assert [t["status"] for t in done.json() if t["id"] == task] == ["completed"]
    for limit in (0, -1, 1001, "many"):
        response = await api.get("/api/tasks", params={"limit": limit})
        assert response.status_code == 422, limit
        assert response.json()["detail"][0]["loc"] == ["query", "limit"]
