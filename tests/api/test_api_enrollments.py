"""/api/enrollments: start by hand, list, ask the workflow, pause/resume/skip/cancel."""

from __future__ import annotations

import uuid

import httpx

from engine.services import Services
from tests.helpers.polling import eventually


async def start(api: httpx.AsyncClient, playbook: str, customer: str) -> httpx.Response:
    return await api.post("/api/enrollments", json={"playbook": playbook, "customer_id": customer})


async def status(api: httpx.AsyncClient, enrollment: str) -> dict:
    response = await api.get(f"/api/enrollments/{enrollment}/status")
    assert response.status_code == 200, response.text
    return response.json()


async def test_enroll_by_hand_then_list_and_ask_where_it_stands(
    api: httpx.AsyncClient, customer: str
) -> None:
    response = await start(api, "probe_twice", customer)
    assert response.status_code == 201, response.text
    body = response.json()
    enrollment = body["id"]
    assert enrollment == f"probe_twice/{customer}"
    assert body["playbook"] == "probe_twice" and body["status"] == "running"

    again = await start(api, "probe_twice", customer)
    assert again.status_code == 409
    assert "already enrolled" in again.json()["detail"]

    listed = await api.get("/api/enrollments", params={"customer": customer, "status": "running"})
    assert [e["id"] for e in listed.json()] == [enrollment]
    other = await api.get("/api/enrollments", params={"customer": customer, "playbook": "qbr"})
    assert other.json() == []

    async def waiting() -> dict | None:
        now = await status(api, enrollment)
        return now if now["current_step"] == "await_go" else None

    now = await eventually(waiting)
    assert "probe.go" in (now["waiting_for"] or "")
    assert now["customer_id"] == customer and now["playbook"] == "probe_twice"


async def test_operators_pause_resume_skip_and_cancel(
    api: httpx.AsyncClient, customer: str
) -> None:
    enrollment = (await start(api, "probe_twice", customer)).json()["id"]
    base = f"/api/enrollments/{enrollment}"
    paused = await api.post(f"{base}/pause")
    assert paused.status_code == 200, paused.text
    assert paused.json()["paused"] is True
    resumed = await api.post(f"{base}/resume")
    assert resumed.status_code == 200 and resumed.json()["paused"] is False

    nowhere = await api.post(f"{base}/skip", json={"step": "no_such_step"})
    assert nowhere.status_code == 409
    assert "no_such_step" in nowhere.json()["detail"]
    assert (await api.post(f"{base}/skip", json={})).status_code == 422

    cancelled = await api.post(f"{base}/cancel", json={"reason": "customer asked"})
    assert cancelled.status_code == 200, cancelled.text

    async def ended() -> bool:
        return (await status(api, enrollment))["outcome"] == "cancelled"

    await eventually(ended)  # the ended enrollment can still be asked, not changed
    late = await api.post(f"{base}/pause")
    assert late.status_code in (404, 409), late.text


async def test_unknown_playbooks_customers_and_enrollments_are_404(
    api: httpx.AsyncClient, customer: str
) -> None:
    assert (await start(api, "no_such_playbook", customer)).status_code == 404
    assert (await start(api, "probe_twice", "no-such-customer")).status_code == 404
    missing = [
        f"onboarding/nobody-{uuid.uuid4().hex[:6]}",
        "a/b/c/d",
        "with%20space",
        "x" * 3000,
    ]
    for enrollment in missing:
        got = await api.get(f"/api/enrollments/{enrollment}/status")
        assert got.status_code == 404, (enrollment[:40], got.text)
        for action in ("pause", "resume"):
            response = await api.post(f"/api/enrollments/{enrollment}/{action}")
            assert response.status_code == 404, (enrollment[:40], action, response.text)
        cancel = await api.post(f"/api/enrollments/{enrollment}/cancel", json={})
        assert cancel.status_code == 404, (enrollment[:40], cancel.text)


async def test_a_workflow_that_is_not_an_enrollment_is_not_an_enrollment(
    api: httpx.AsyncClient, services: Services
) -> None:
    from engine.messages import SWEEP_WORKFLOW_NAME, SweepInput

    workflow_id = f"sweep-test-{uuid.uuid4().hex[:6]}"
    handle = await services.client.start_workflow(
        SWEEP_WORKFLOW_NAME,
        SweepInput(playbook="no_such_playbook"),
        id=workflow_id,
        task_queue=services.settings.temporal_task_queue,
    )
    await handle.result()
    response = await api.get(f"/api/enrollments/{workflow_id}/status")
    assert response.status_code in (404, 409), response.text
    response = await api.post(f"/api/enrollments/{workflow_id}/pause")
    assert response.status_code in (404, 409), response.text
