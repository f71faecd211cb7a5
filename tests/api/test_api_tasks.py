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


async def test_snooze_comment_and_complete_several(
    api: httpx.AsyncClient, services: Services, customer: str
) -> None:
    first, second, third = (open_task(services, customer) for _ in range(3))
    until = "2030-01-02T09:00:00+01:00"
    snoozed = await api.post(f"/api/tasks/{first}/snooze", json={"until": until})
    assert snoozed.status_code == 200 and snoozed.json()["snoozed_until"].startswith("2030-01-02")
    naive = await api.post(f"/api/tasks/{first}/snooze", json={"until": "2030-01-02T09:00:00"})
    assert naive.status_code == 422
    woken = await api.post(f"/api/tasks/{first}/snooze", json={"until": None})
    assert woken.json()["snoozed_until"] is None

    said = await api.post(f"/api/tasks/{first}/comments", json={"body": "Called, no answer"})
    assert said.status_code == 201 and said.json()["author"] == "api:tests"
    listed = await api.get(f"/api/tasks/{first}/comments")
    assert [c["body"] for c in listed.json()] == ["Called, no answer"]
    assert (await api.post(f"/api/tasks/{first}/comments", json={"body": " "})).status_code == 422

    await api.post(f"/api/tasks/{third}/complete", json={"outcome": "no_response"})
    bulk = await api.post(
        "/api/tasks/complete",
        json={"task_ids": [first, second, third, "no-such-task"], "outcome": "held"},
    )
    assert bulk.status_code == 200, bulk.text
    assert sorted(t["id"] for t in bulk.json()["completed"]) == sorted([first, second])
    assert set(bulk.json()["refused"]) == {third, "no-such-task"}
    assert (await api.post(f"/api/tasks/{first}/snooze", json={"until": until})).status_code == 409


async def test_undo_reopens_a_task_of_no_enrollment_within_the_window(
    api: httpx.AsyncClient, services: Services, customer: str
) -> None:
    task = open_task(services, customer)
    done = await api.post(f"/api/tasks/{task}/complete", json={"outcome": "held"})
    assert done.json()["undo_until"] is not None
    undone = await api.post(f"/api/tasks/{task}/undo")
    assert undone.status_code == 200, undone.text
    assert (undone.json()["status"], undone.json()["outcome"]) == ("open", None)
    assert (await api.post(f"/api/tasks/{task}/undo")).status_code == 409  # open: nothing to undo
    with services.sessions.begin() as session:
        stored = repository.get_task(session, task)
        repository.complete_task(session, task, "held", "csm@vendor.example")
        stored.undo_until = None  # completed before undo existed, or the window is over
    assert (await api.post(f"/api/tasks/{task}/undo")).status_code == 409


async def test_undo_of_a_completion_whose_enrollment_has_ended_is_refused(
    api: httpx.AsyncClient, services: Services, customer: str
) -> None:
    task = open_task(services, customer, enrollment_id=f"onboarding/{customer}-gone")
    await api.post(f"/api/tasks/{task}/complete", json={"outcome": "held"})
    refused = await api.post(f"/api/tasks/{task}/undo")
    assert refused.status_code == 409 and "ended" in refused.json()["detail"]
