"""`playbook events send --file`: a file of events checked line by line with the API's
rules, the good ones sent through the batch path (`EventRouter.handle_batch`) against the
session's store and Temporal."""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path

import pytest
from sqlalchemy import func, select

from engine.client.routing import EventRouter, RoutedEvent
from engine.services import Services
from engine.store import repository
from engine.store.events import IncomingEvent
from engine.store.models import Event
from tests.api.test_api_cli import playbook
from tests.helpers.api import outbox_rows, seed
from tests.helpers.polling import eventually


def _jsonl(*lines: object) -> str:
    return "\n".join(line if isinstance(line, str) else json.dumps(line) for line in lines)


async def test_a_mixed_file_keeps_the_good_events_and_reports_the_bad_by_line(
    services: Services, customer: str, tmp_path: Path
) -> None:
    root = str(services.project.root)
    enrolled = await playbook(
        services, "enroll", "probe_twice", "--customer", customer, "--root", root
    )
    assert enrolled.exit_code == 0, enrolled.output
    enrollment = enrolled.stdout.strip()
    tag = uuid.uuid4().hex[:6]
    before = await playbook(
        services, "events", "send", customer, "x.y", "--id", f"{tag}-before", "--root", root
    )
    assert before.exit_code == 0, before.output

    file = tmp_path / "events.jsonl"
    file.write_text(
        _jsonl(
            {"id": f"{tag}-go", "customer_id": customer, "name": "probe.go"},  # 1
            {"id": f"{tag}-bad", "customer_id": customer, "name": "no spaces"},  # 2
            "",  # 3: blank, skipped
            "{not json",  # 4
            {"id": f"{tag}-go", "customer_id": customer, "name": "probe.go"},  # 5: repeat
            {"id": f"{tag}-before", "customer_id": customer, "name": "x.y"},  # 6: sent before
            {"id": f"{tag}-lost", "customer_id": "nobody-here", "name": "x.y"},  # 7
            {"customer_id": customer, "name": "x.y"},  # 8: no id
            {
                "id": f"{tag}-naive",
                "customer_id": customer,
                "name": "x.y",
                "at": "2026-01-05T10:00",
            },
            {"id": f"{tag}-ok", "customer_id": customer, "name": "x.y", "properties": {"n": 1}},
        )
    )
    sent = await playbook(services, "events", "send", "--file", str(file), "--root", root)

    assert sent.exit_code == 1, sent.output
    errors = [line for line in sent.stderr.splitlines() if line.startswith(f"{file}:")]
    assert [e.split(": ")[0:2] for e in errors] == [
        [f"{file}:2", "name"],
        [f"{file}:4", "-"],
        [f"{file}:7", "customer_id"],
        [f"{file}:8", "id"],
        [f"{file}:9", "at"],
    ]
    assert "not JSON" in errors[1] and "no customer 'nobody-here'" in errors[2]
    assert "deduplicated by id" in errors[3] and "--generate-ids" in errors[3]
    assert "timezone" in errors[4]
    assert (
        "9 event(s) from" in sent.stderr
        and "2 accepted, 2 duplicate, 1 unknown customer, 4 invalid" in sent.stderr
        and "1 enrollment(s) signalled, 0 started" in sent.stderr
    )
    with services.sessions() as session:
        assert repository.get_event(session, f"{tag}-ok").properties == {"n": 1}
        assert repository.get_event(session, f"{tag}-go") is not None
        assert repository.get_event(session, f"{tag}-lost").status == "unknown_customer"
        assert repository.get_event(session, f"{tag}-bad") is None
        assert repository.get_event(session, f"{tag}-naive") is None
        stored = session.scalar(
            select(func.count()).select_from(Event).where(Event.customer_id == customer)
        )
        assert stored == 3  # before, go and ok, each once
    # The enrollment waiting for probe.go heard it and sent its second email.
    await eventually(lambda: len(outbox_rows(services, enrollment)) == 2)

    again = await playbook(
        services, "events", "send", "--file", str(file), "--format", "json", "--root", root
    )
    assert again.exit_code == 1
    answer = json.loads(again.stdout)
    assert answer["summary"] == {
        "events": 9,
        "accepted": 0,
        "duplicate": 4,
        "unknown_customer": 1,
        "invalid": 4,
        "signalled": 0,
        "started": 0,
    }
    by_line = {r["line"]: r for r in answer["results"]}
    assert sorted(by_line) == [1, 2, 4, 5, 6, 7, 8, 9, 10]
    assert by_line[1]["status"] == "duplicate" and by_line[1]["id"] == f"{tag}-go"
    assert by_line[7]["status"] == "unknown_customer"
    assert by_line[2]["status"] == "invalid" and by_line[2]["errors"][0]["field"] == "name"


async def test_csv_columns_become_properties_and_stdin_reads_json_lines(
    services: Services, customer: str, tmp_path: Path
) -> None:
    root = str(services.project.root)
    tag = uuid.uuid4().hex[:6]
    file = tmp_path / "export.csv"
    file.write_text(
        "id,customer_id,name,at,seats,source,plan\n"
        f"{tag}-1,{customer},seats.changed,2026-01-05T10:00:00+01:00,12,salesforce,\n"
        f"{tag}-2,{customer},bad name,,3,,\n"
        f'{tag}-3,{customer},plan.changed,,,"crm, manual","{{""tier"": 2}}"\n'
    )
    sent = await playbook(services, "events", "send", "--file", str(file), "--root", root)
    assert sent.exit_code == 1, sent.output
    assert f"{file}:3: name:" in sent.stderr
    assert "2 accepted, 0 duplicate, 0 unknown customer, 1 invalid" in sent.stderr
    with services.sessions() as session:
        first = repository.get_event(session, f"{tag}-1")
        assert first is not None and first.properties == {"seats": 12, "source": "salesforce"}
        assert first.at.replace(tzinfo=None) == datetime(2026, 1, 5, 9, 0)
        third = repository.get_event(session, f"{tag}-3")
        assert third is not None
        assert third.properties == {"source": "crm, manual", "plan": {"tier": 2}}

    piped = await playbook(
        services,
        "events",
        "send",
        "--file",
        "-",
        "--root",
        root,
        stdin=_jsonl({"id": f"{tag}-4", "customer_id": customer, "name": "piped.in"}),
    )
    assert piped.exit_code == 0, piped.output
    assert "1 accepted" in piped.stderr
    with services.sessions() as session:
        assert repository.get_event(session, f"{tag}-4") is not None

    batch_body = tmp_path / "batch.json"  # the API's batch body; problems by item number
    batch_body.write_text(
        json.dumps(
            {
                "events": [
                    {"id": f"{tag}-5", "customer_id": customer, "name": "json.in"},
                    {"id": f"{tag}-6", "customer_id": customer, "name": "json.in", "extra": 1},
                ]
            }
        )
    )
    from_json = await playbook(services, "events", "send", "--file", str(batch_body))
    assert from_json.exit_code == 1
    assert f"{batch_body}:2: extra:" in from_json.stderr and "1 accepted" in from_json.stderr

    mixed = await playbook(services, "events", "send", customer, "x.y", "--file", str(file))
    assert mixed.exit_code == 2 and "--file" in mixed.output
    unknown_format = tmp_path / "events.txt"
    unknown_format.write_text("")
    unreadable = await playbook(services, "events", "send", "--file", str(unknown_format))
    assert unreadable.exit_code == 2 and ".jsonl" in unreadable.output


async def test_a_large_file_goes_in_batches_of_a_thousand(
    services: Services, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    customer = seed(services, f"bulk-{uuid.uuid4().hex[:10]}")
    batches: list[int] = []
    handle_batch = EventRouter.handle_batch

    async def spy(
        self: EventRouter, events: Sequence[IncomingEvent], now: datetime | None = None
    ) -> list[RoutedEvent]:
        batches.append(len(events))
        return await handle_batch(self, events, now)

    monkeypatch.setattr(EventRouter, "handle_batch", spy)
    file = tmp_path / "history.ndjson"
    file.write_text(
        _jsonl(
            *(
                {"customer_id": customer, "name": "page.viewed", "properties": {"n": n}}
                for n in range(2500)
            )
        )
    )
    sent = await playbook(
        services,
        "events",
        "send",
        "--file",
        str(file),
        "--generate-ids",
        "--root",
        str(services.project.root),
    )
    assert sent.exit_code == 0, sent.output
    assert "2500 accepted" in sent.stderr
    assert batches == [1000, 1000, 500]
    with services.sessions() as session:
        received = session.scalars(
            select(Event.received_at).where(Event.customer_id == customer).distinct()
        ).all()
    assert len(received) == 3  # one store transaction (one received_at) per batch


async def test_the_docs_sample_is_what_a_mixed_file_prints(
    services: Services, customer: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """docs/api.md shows `playbook events send --file history.jsonl` on a file with a bad
    name, an unknown customer, an event without an id and a repeat: this sends such a file
    and compares what is printed, line for line."""
    block = (Path(__file__).resolve().parents[2] / "docs" / "api.md").read_text()
    shown = block.split("$ playbook events send --file history.jsonl\n", 1)[1].split("```")[0]
    root = str(services.project.root)
    enrolled = await playbook(
        services, "enroll", "probe_twice", "--customer", customer, "--root", root
    )
    assert enrolled.exit_code == 0, enrolled.output
    tag = uuid.uuid4().hex[:6]
    (tmp_path / "history.jsonl").write_text(
        _jsonl(
            {"id": f"{tag}-1", "customer_id": customer, "name": "probe.go"},  # heard
            {"id": f"{tag}-2", "customer_id": customer, "name": "no spaces"},
            {"id": f"{tag}-3", "customer_id": customer, "name": "feature.used"},
            {"id": f"{tag}-4", "customer_id": customer, "name": "feature.used"},
            {"id": f"{tag}-1", "customer_id": customer, "name": "probe.go"},  # repeat
            {"id": f"{tag}-6", "customer_id": customer, "name": "page.viewed"},
            {"id": f"{tag}-7", "customer_id": "nobody-here", "name": "page.viewed"},
            {"customer_id": customer, "name": "page.viewed"},  # no id
            {"id": f"{tag}-9", "customer_id": customer, "name": "page.viewed"},
        )
    )
    monkeypatch.chdir(tmp_path)
    sent = await playbook(services, "events", "send", "--file", "history.jsonl", "--root", root)
    assert sent.exit_code == 1, sent.output
    assert sent.stderr == shown
