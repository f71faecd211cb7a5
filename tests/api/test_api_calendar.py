"""Team members' working calendars: PUT/GET /api/team/{email}/calendar and `playbook team
calendar`."""

from __future__ import annotations

from pathlib import Path

import httpx
from click.testing import CliRunner

from engine.cli import main
from engine.services import Services
from engine.settings import settings_override
from engine.store.db import migrate, session_factory
from engine.store.models import TeamMember


async def test_a_calendar_is_set_in_parts_and_read_back(
    api: httpx.AsyncClient, services: Services
) -> None:
    with services.sessions.begin() as session:
        session.merge(TeamMember(email="cal@vendor.example", name="Cal"))
    url = "/api/team/cal@vendor.example/calendar"
    default = (await api.get(url)).json()
    assert default["timezone"] == "UTC" and default["hours"] == "09:00-17:00"
    assert default["working_days"] == ["mon", "tue", "wed", "thu", "fri"]
    put = await api.put(
        url,
        json={
            "timezone": "Asia/Tokyo",
            "working_days": ["sun", "mon", "tue", "wed", "thu"],
            "time_off": [{"first": "2027-01-01", "last": "2027-01-03"}],
        },
    )
    assert put.status_code == 200, put.text
    assert put.json()["working_days"] == ["mon", "tue", "wed", "thu", "sun"]
    assert put.json()["hours"] == "09:00-17:00"  # not named: unchanged
    assert (await api.get(url)).json() == put.json()
    bad = await api.put(url, json={"timezone": "Mars/Olympus"})
    assert bad.status_code == 422 and "Mars/Olympus" in bad.json()["detail"]
    for hours in ("17:00-09:00", "09:00-25:00"):
        assert (await api.put(url, json={"hours": hours})).status_code == 422, hours
    folder = await api.put(url, json={"timezone": "Europe"})
    assert folder.status_code == 422
    missing = await api.get("/api/team/nobody@vendor.example/calendar")
    assert missing.status_code == 404


def test_the_cli_shows_and_sets_a_calendar(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'team.db'}"
    migrate(url)
    with session_factory(url).begin() as session:
        session.add(TeamMember(email="cal@vendor.example", name="Cal"))
    runner = CliRunner()
    with settings_override(playbook_home=tmp_path / "home", database_url=url):
        result = runner.invoke(
            main,
            [
                "team", "calendar", "cal@vendor.example", "--timezone", "Europe/Berlin",
                "--days", "mon-thu", "--hours", "08:30-16:00", "--off", "2027-08-02..2027-08-13",
            ],
        )  # fmt: skip
        assert result.exit_code == 0, result.output
        shown = runner.invoke(main, ["team", "calendar", "cal@vendor.example"]).output
    assert shown.splitlines() == [
        "cal@vendor.example: Europe/Berlin",
        "  works mon, tue, wed, thu",
        "  hours 08:30-16:00",
        "  off   2027-08-02..2027-08-13",
    ]
