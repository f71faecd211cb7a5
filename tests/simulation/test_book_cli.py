"""`playbook simulate --book`: the example book from the command line, and its input files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from engine.cli import main
from engine.errors import SimulationInputError
from engine.simulation.book_inputs import load_book, load_events
from tests.helpers.paths import EXAMPLES, PLAYBOOKS

BOOK = EXAMPLES / "book"


def test_the_example_book_over_three_weeks_as_json() -> None:
    result = CliRunner().invoke(
        main,
        [
            "simulate",
            "--book",
            str(BOOK / "customers.yaml"),
            "--events",
            str(BOOK / "events.yaml"),
            "--start",
            "2026-12-01",
            "--days",
            "21",
            "--format",
            "json",
            "--root",
            str(PLAYBOOKS),
        ],
        catch_exceptions=False,
    )
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert set(data) >= {"actions", "enrollments", "summary", "warnings", "over_caps"}
    assert data["over_caps"] == []  # the shipped policy's caps hold (issue 17)
    summary = data["summary"]
    assert summary["customers"] == 24
    # The QBR quarter closes in December and renewals are due: both playbooks ran, and
    # every action names its customer, playbook, version, step and kind, in local time.
    assert {e["playbook"] for e in data["enrollments"]} >= {"qbr", "renewal"}
    assert summary["emails"] == sum(summary["emails_per_playbook"].values()) > 0
    assert summary["tasks_per_csm_week"]
    for action in data["actions"]:
        assert action["customer"] and action["playbook"] and action["version"]
        assert action["step"] and action["kind"]
    # Times are the customer's own: cust-014 is in Tokyo.
    tokyo = [a for a in data["actions"] if a["customer"] == "cust-014"]
    assert tokyo and all(a["at"].endswith("+09:00") for a in tokyo)


def test_the_table_has_the_summary(tmp_path: Path) -> None:
    customers = tmp_path / "book.json"
    customers.write_text(
        json.dumps(
            [
                {
                    "id": "globex",
                    "name": "Globex",
                    "segment": "enterprise",
                    "timezone": "Asia/Tokyo",
                    "owner": "aiko.tanaka@acme.example",
                    "renewal_date": "2027-04-05",
                    "health_score": 80,
                    "contacts": [{"email": "ada@globex.example", "role": "admin"}],
                }
            ]
        )
    )
    result = CliRunner().invoke(
        main,
        ["simulate", "--book", str(customers), "--start", "2026-12-01", "--days", "10"],
        catch_exceptions=False,
    )
    assert result.exit_code == 0, result.output
    assert "1 customers, 10 days from 2026-12-01" in result.stdout
    assert "renewal" in result.stdout and "emails per playbook" in result.stdout
    assert "contacts over the caps: 0" in result.stdout


def test_events_come_from_csv(tmp_path: Path) -> None:
    path = tmp_path / "events.csv"
    path.write_text(
        "customer,day,at,name,properties,update,unsubscribe\n"
        'globex,3,10:00,usage.monthly,"{""active_users"": 4}",,\n'
        'globex,5,,,,"{""renewal_date"": ""2027-06-01""}",\n'
        "globex,6,,,,,ada@globex.example\n"
    )
    events = load_events(path)
    assert [e.kind for e in events] == ["event", "update", "unsubscribe"]
    assert events[0].properties == {"active_users": 4}
    assert events[0].at is not None and events[0].at.hour == 10
    assert events[1].update == {"renewal_date": "2027-06-01"}


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("- {customer: globex, day: 1}", "exactly one of name, update, unsubscribe"),
        ("- {customer: globex, day: 1, update: {plan: x}}", "update cannot set plan"),
        ("- {customer: globex, day: -1, name: x}", "day"),
    ],
)
def test_bad_events_name_the_row(tmp_path: Path, text: str, problem: str) -> None:
    path = tmp_path / "events.yaml"
    path.write_text(text)
    with pytest.raises(SimulationInputError, match="row 1") as caught:
        load_events(path)
    assert problem in str(caught.value)


def test_a_book_folder_has_its_team_and_customers() -> None:
    book = load_book(EXAMPLES)
    assert {c.id for c in book.customers} >= {"hoshino-logistics", "thornbury-capital"}
    assert book.team and all(c.added_day == 0 for c in book.customers)
