"""``/api/reports``: the reports as JSON and CSV, and the customers behind a figure
(scopes are checked for every route by test_api_auth with tests/helpers/api.py)."""

from __future__ import annotations

import csv
import io

import httpx
import pytest

from engine.services import Services
from tests.helpers.insight import SINCE, seed_funnel


@pytest.fixture(scope="module")
def funnel_data(services: Services) -> None:
    with services.sessions.begin() as session:
        seed_funnel(session)


async def test_the_funnel_as_json_csv_and_its_customers(
    api: httpx.AsyncClient, funnel_data: None
) -> None:
    query = {"playbook": "onb", "since": SINCE.isoformat()}
    response = await api.get("/api/reports/funnel", params=query)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["kind"] == "funnel" and body["filters"]["playbook"] == "onb"
    [table] = body["tables"]
    assert table["entered"]["value"] == 7
    reached = {r["step"]["value"]: r["reached"]["value"] for r in table["rows"]}
    assert reached == {"welcome": 6, "wait": 5, "call": 3, "done": 2}
    exits = next(r for r in table["rows"] if r["step"]["value"] == "wait")["exit"]
    assert exits["value"] == 1

    behind = await api.get("/api/reports/funnel/customers", params={**query, "cell": exits["cell"]})
    assert behind.status_code == 200, behind.text
    assert [c["id"] for c in behind.json()["customers"]] == ["c2"]

    exported = await api.get("/api/reports/funnel", params={**query, "format": "csv"})
    assert exported.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(exported.text)))
    assert [(r["table"], r["step"], r["reached"]) for r in rows] == [
        ("onb@v1", "welcome", "6"),
        ("onb@v1", "wait", "5"),
        ("onb@v1", "call", "3"),
        ("onb@v1", "done", "2"),
    ]


async def test_bad_report_requests_say_what_is_wrong(api: httpx.AsyncClient) -> None:
    assert (await api.get("/api/reports/nonsense")).status_code == 422
    assert (await api.get("/api/reports/funnel", params={"since": "yesterday"})).status_code == 422
    reversed_range = await api.get(
        "/api/reports/tasks", params={"since": "2026-05-01", "until": "2026-04-01"}
    )
    assert reversed_range.status_code == 422
    assert "since must not be after until" in reversed_range.text
    missing = await api.get("/api/reports/funnel/customers", params={"cell": "funnel|no|such"})
    assert missing.status_code == 404
