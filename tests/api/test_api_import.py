"""`playbook customers import`: CSV and JSON into a fresh SQLite store, bad rows reported
(row, field, message) and skipped, good rows imported, exit 1 when any row failed."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from engine.cli import main
from engine.settings import settings_override
from engine.store import repository
from engine.store.db import migrate, session_factory
from engine.store.models import Customer, TeamMember

HEADER = (
    "id,name,segment,timezone,owner,renewal_date,health_score,"
    "contact_email,contact_first_name,contact_last_name,contact_role,attributes.plan\n"
)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[sessionmaker[Session]]:
    url = f"sqlite:///{tmp_path / 'import.db'}"
    migrate(url)
    with settings_override(playbook_home=tmp_path / "home", database_url=url):
        sessions = session_factory(url)
        with sessions.begin() as session:
            session.add(TeamMember(email="csm@vendor.example", name="Casey"))
        yield sessions


def run(*args: str) -> Result:
    return CliRunner().invoke(main, ["customers", "import", *args], catch_exceptions=False)


def write(tmp_path: Path, name: str, text: str) -> str:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return str(path)


def customers(store: sessionmaker[Session]) -> dict[str, Customer]:
    with store() as session:
        ids = session.scalars(select(Customer.id)).all()
        return {i: repository.get_customer(session, i) for i in ids}


def report(result: Result) -> list[str]:
    """The per-row error lines, without the file name."""
    return [line.split(": ", 1)[1] for line in result.stderr.splitlines() if ": row " in line]


def test_a_clean_csv_imports_and_rows_of_one_id_add_contacts(
    tmp_path: Path, store: sessionmaker[Session]
) -> None:
    path = write(
        tmp_path,
        "customers.csv",
        HEADER + "acme,Acme Corp,enterprise,Europe/Berlin,CSM@vendor.example,2027-03-31,80,"
        "ada@acme.example,Ada,Admin,admin,scale\n"
        + "acme,,,,,,,carl@acme.example,Carl,,champion,\n"
        + "globex,Globex,smb,America/Chicago,,,55,,,,,\n",
    )
    result = run(path)
    assert result.exit_code == 0, result.output
    assert "imported 2 customer(s) from 3 row(s)" in result.stderr
    stored = customers(store)
    acme = stored["acme"]
    assert (acme.name, acme.segment, acme.timezone) == ("Acme Corp", "enterprise", "Europe/Berlin")
    assert acme.owner_email == "csm@vendor.example"
    assert str(acme.renewal_date) == "2027-03-31" and acme.health_score == 80
    assert acme.attributes == {"plan": "scale"}
    assert [(c.email, c.role) for c in acme.contacts] == [
        ("ada@acme.example", "admin"),
        ("carl@acme.example", "champion"),
    ]
    assert stored["globex"].contacts == [] and stored["globex"].health_score == 55


def test_bad_rows_are_reported_with_row_field_and_message_and_the_rest_is_imported(
    tmp_path: Path, store: sessionmaker[Session]
) -> None:
    path = write(
        tmp_path,
        "customers.csv",
        HEADER
        + "good,Good Co,smb,UTC,,,10,g@good.example,,,,\n"  # line 2
        + "sick,Sick Co,smb,UTC,,,150,,,,,\n"  # 3: health out of range
        + "mail,Mail Co,smb,UTC,,,,not-an-email,,,,\n"  # 4: contact email
        + "zone,Zone Co,smb,Mars/Olympus,,,,,,,,\n"  # 5: time zone
        + ",No Id,smb,UTC,,,,,,,,\n"  # 6: id missing
        + "good,Other Name,,,,,,h@good.example,,,,\n"  # 7: conflicts with line 2
        + "date,Date Co,smb,UTC,,2027-02-30,,,,,,\n"  # 8: no such date
        + "owner,Owner Co,smb,UTC,nobody,,,,,,,\n"  # 9: owner not an email
        + "wide,Wide Co,smb,UTC,,,,,,,,,extra\n"  # 10: more cells than columns
        + "fine,Fine Co,mid_market,Asia/Tokyo,,,,f@fine.example,,,admin,\n",  # 11
    )
    result = run(path)
    assert result.exit_code == 1, result.output
    lines = report(result)
    expected = {
        3: "health_score",
        4: "contact_email",
        5: "timezone",
        6: "id",
        7: "name",
        8: "renewal_date",
        9: "owner",
        10: "-",
    }
    assert [int(line.split(":")[0].removeprefix("row ")) for line in lines] == sorted(expected)
    for line, (row, field) in zip(lines, sorted(expected.items()), strict=True):
        assert line.startswith(f"row {row}: {field}: "), line
    assert "less than or equal to 100" in lines[0]
    assert "'Other Name' differs from 'Good Co' given in row 2" in lines[4]
    assert "8 row(s) failed" in result.stderr
    assert "imported 2 customer(s) from 10 row(s)" in result.stderr
    stored = customers(store)
    assert sorted(stored) == ["fine", "good"]
    assert [c.email for c in stored["good"].contacts] == ["g@good.example"]  # not row 7's


def test_a_reimport_changes_only_given_cells_and_keeps_unsubscribes(
    tmp_path: Path, store: sessionmaker[Session]
) -> None:
    first = HEADER + "acme,Acme,enterprise,Europe/Berlin,,,80,ada@acme.example,Ada,,admin,gold\n"
    assert run(write(tmp_path, "one.csv", first)).exit_code == 0
    with store.begin() as session:
        repository.suppress(session, "ada@acme.example", "unsubscribed", source="test")
    second = HEADER + "acme,Acme Corp,,,,,42,ada@acme.example,Adaline,,,\n"
    assert run(write(tmp_path, "two.csv", second)).exit_code == 0
    acme = customers(store)["acme"]
    assert (acme.name, acme.health_score, acme.segment) == ("Acme Corp", 42, "enterprise")
    assert acme.timezone == "Europe/Berlin" and acme.attributes == {"plan": "gold"}
    [ada] = acme.contacts
    assert (ada.first_name, ada.role, ada.unsubscribed) == ("Adaline", "admin", True)


def test_json_in_the_api_shape_or_flat(tmp_path: Path, store: sessionmaker[Session]) -> None:
    data = {
        "customers": [
            {
                "id": "hoshino",
                "name": "Hoshino Logistics",
                "timezone": "Asia/Tokyo",
                "health_score": 72,
                "attributes": {"seats": 40},
                "tags": ["apac"],
                "contacts": [{"email": "aiko@hoshino.example", "role": "admin"}],
            },
            {"id": "flat", "name": "Flat Co", "contact_email": "f@flat.example"},
            {"id": "typo", "name": "Typo Co", "helth_score": 3},
            {"id": "bad", "name": "Bad Co", "contacts": [{"email": "x@y.example", "phone": 1}]},
            "not an object",
            {"id": "tags", "name": "Tags Co", "tags": "one"},
        ]
    }
    result = run(write(tmp_path, "customers.json", json.dumps(data)))
    assert result.exit_code == 1, result.output
    assert [line.split(": ")[0:2] for line in report(result)] == [
        ["row 3", "helth_score"],
        ["row 4", "contacts.0.phone"],
        ["row 5", "-"],
        ["row 6", "tags"],
    ]
    stored = customers(store)
    assert sorted(stored) == ["flat", "hoshino"]
    assert stored["hoshino"].tags == ["apac"] and stored["hoshino"].attributes == {"seats": 40}
    assert [c.email for c in stored["flat"].contacts] == ["f@flat.example"]


@pytest.mark.parametrize(
    ("name", "text", "message"),
    [
        ("typo.csv", "id,name,heath_score\nacme,Acme,3\n", "unknown column(s) 'heath_score'"),
        ("noid.csv", "name\nAcme\n", "'id'"),
        ("broken.json", '{"customers": [', "not valid JSON"),
        ("object.json", '{"id": "acme"}', "expected a JSON list"),
        ("customers.xlsx", "id\n", "use .csv or .json"),
    ],
)
def test_an_unreadable_file_stops_before_anything_is_written(
    tmp_path: Path, store: sessionmaker[Session], name: str, text: str, message: str
) -> None:
    result = run(write(tmp_path, name, text))
    assert result.exit_code == 2, result.output
    assert message in result.stderr
    with store() as session:
        assert session.scalar(select(func.count()).select_from(Customer)) == 0


def test_dry_run_checks_and_writes_nothing(tmp_path: Path, store: sessionmaker[Session]) -> None:
    path = write(tmp_path, "c.csv", HEADER + "acme,Acme,,UTC,,,,,,,,\nbad,,,,,,,,,,,\n")
    result = run(path, "--dry-run")
    assert result.exit_code == 1
    assert report(result) == ["row 3: name: Field required"]
    assert "would import 1 customer(s)" in result.stderr
    assert customers(store) == {}


def test_an_owner_who_is_not_on_the_team_is_a_row_error(
    tmp_path: Path, store: sessionmaker[Session]
) -> None:
    path = write(
        tmp_path,
        "customers.csv",
        HEADER + "acme,Acme Corp,smb,UTC,nobody@acme.example,,,,,,,\n"
        "globex,Globex,smb,UTC,csm@vendor.example,,,,,,,\n",
    )
    result = run(path)
    assert result.exit_code == 1
    assert report(result) == [
        "row 2: owner: 'nobody@acme.example' is not a team member; add them first"
    ]
    assert set(customers(store)) == {"globex"}
