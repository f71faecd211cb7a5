"""Operator commands against the configured store and Temporal (the session's dev server):
`playbook enroll`, `playbook status`, `playbook events send`.

Each command runs `asyncio.run` itself, so it is invoked in a thread while the session's
event loop keeps the worker polling.
"""

from __future__ import annotations

import asyncio
import json
import uuid

from click.testing import CliRunner, Result

from engine.cli import main
from engine.services import Services
from engine.settings import settings_override
from engine.store import repository
from tests.helpers.api import outbox_rows, seed
from tests.helpers.polling import eventually


async def playbook(services: Services, *args: str, stdin: str | None = None) -> Result:
    """Run `playbook ARGS...` configured like the app under test (``stdin``: its input)."""
    settings = services.settings

    def run() -> Result:
        with settings_override(
            playbook_home=settings.playbook_home,
            database_url=settings.database_url,
            temporal_address=settings.temporal_address,
            temporal_namespace=settings.temporal_namespace,
            temporal_task_queue=settings.temporal_task_queue,
            signing_secret=settings.signing_secret,
        ):
            return CliRunner().invoke(main, list(args), input=stdin, catch_exceptions=False)

    return await asyncio.to_thread(run)


async def test_enroll_then_send_the_event_it_waits_for_then_status(
    services: Services, customer: str
) -> None:
    root = str(services.project.root)
    enrolled = await playbook(
        services, "enroll", "probe_twice", "--customer", customer, "--root", root
    )
    assert enrolled.exit_code == 0, enrolled.output
    enrollment = enrolled.stdout.strip()
    assert enrollment == f"probe_twice/{customer}"
    with services.sessions() as session:
        row = repository.latest_enrollment(session, enrollment)
        assert row is not None and row.playbook_id == "probe_twice"
        assert repository.get_playbook_version(session, "probe_twice", row.version) is not None
    await eventually(lambda: [r for r in outbox_rows(services, enrollment) if r.status == "sent"])

    again = await playbook(
        services, "enroll", "probe_twice", "--customer", customer, "--root", root
    )
    assert again.exit_code == 1 and "already enrolled" in again.output

    async def at_step(step: str) -> bool:
        status = await playbook(
            services, "status", "--playbook", "probe_twice", "--customer", customer
        )
        assert status.exit_code == 0, status.output
        return f"step:        {step}" in status.stdout

    await eventually(lambda: at_step("await_go"))

    event_id = f"go-{uuid.uuid4().hex[:6]}"
    sent = await playbook(
        services,
        "events",
        "send",
        customer,
        "probe.go",
        "source=cli",
        "n=3",
        "--id",
        event_id,
        "--at",
        "2026-01-05T10:00:00+01:00",
        "--root",
        root,
    )
    assert sent.exit_code == 0, sent.output
    assert "accepted" in sent.output and f"signalled {enrollment}" in sent.output
    with services.sessions() as session:
        stored = repository.get_event(session, event_id)
        assert stored.properties == {"source": "cli", "n": 3}
    await eventually(lambda: len(outbox_rows(services, enrollment)) == 2)

    repeat = await playbook(
        services, "events", "send", customer, "probe.go", "--id", event_id, "--root", root
    )
    assert repeat.exit_code == 0 and "duplicate" in repeat.output

    listed = await playbook(services, "status", "--customer", customer)
    assert listed.exit_code == 0
    assert enrollment in listed.stdout


async def test_operator_mistakes_are_clear_errors(services: Services, customer: str) -> None:
    root = str(services.project.root)
    unknown_customer = await playbook(
        services, "enroll", "probe_twice", "--customer", "nobody-here", "--root", root
    )
    assert unknown_customer.exit_code == 1
    assert "no customer 'nobody-here'" in unknown_customer.output
    unknown_playbook = await playbook(
        services, "enroll", "no_such_playbook", "--customer", customer, "--root", root
    )
    assert unknown_playbook.exit_code == 1
    assert "no playbook 'no_such_playbook'" in unknown_playbook.output

    event_id = f"lost-{uuid.uuid4().hex[:6]}"
    unknown = await playbook(
        services, "events", "send", "nobody-here", "x.y", "--id", event_id, "--root", root
    )
    assert unknown.exit_code == 1
    assert "unknown_customer" in unknown.output and "stored" in unknown.output
    with services.sessions() as session:
        assert repository.get_event(session, event_id).status == "unknown_customer"

    naive = await playbook(
        services, "events", "send", customer, "x.y", "--at", "2026-01-05T10:00", "--root", root
    )
    assert naive.exit_code == 2 and "offset" in naive.output
    bad_pair = await playbook(services, "events", "send", customer, "x.y", "oops", "--root", root)
    assert bad_pair.exit_code == 2 and "key=value" in bad_pair.output


async def test_status_piped_is_never_folded_and_has_a_json_form(services: Services) -> None:
    customer = seed(services, f"a-customer-whose-id-is-longer-than-a-terminal-{uuid.uuid4().hex}")
    root = str(services.project.root)
    enrolled = await playbook(
        services, "enroll", "probe_twice", "--customer", customer, "--root", root
    )
    assert enrolled.exit_code == 0, enrolled.output
    enrollment = enrolled.stdout.strip()
    assert len(enrollment) > 80

    listed = await playbook(services, "status", "--customer", customer)  # not a terminal
    assert listed.exit_code == 0, listed.output
    [row] = [line for line in listed.stdout.splitlines() if enrollment in line]
    assert "running" in row

    both = ("--playbook", "probe_twice", "--customer", customer, "--format", "json")
    answered = await playbook(services, "status", *both)
    assert answered.exit_code == 0, answered.output
    status = json.loads(answered.stdout)
    [listed_row] = status["enrollments"]
    assert listed_row["enrollment"] == enrollment and listed_row["customer"] == customer
    assert status["now"]["enrollment_id"] == enrollment and "records" in status["now"]


async def test_an_import_that_moves_a_renewal_date_moves_the_running_wait(
    services: Services, tmp_path
) -> None:
    """Issue 13, defect 3: `playbook customers import` tells the running enrollments of each
    customer whose dates it changed, and their `wait: until` follows."""
    from datetime import date, timedelta

    from engine.client.playbook import EnrollmentHandle
    from engine.messages import CancelRequest

    customer = seed(services, f"imp-{uuid.uuid4().hex[:8]}", timezone="UTC", health_score=90)
    renews = date.today() + timedelta(days=200)
    csv = tmp_path / "crm.csv"

    async def import_renewal(day: date) -> Result:
        csv.write_text(f"id,name,renewal_date\n{customer},Imported,{day}\n")
        return await playbook(services, "customers", "import", str(csv))

    assert (await import_renewal(renews)).exit_code == 0
    enrolled = await playbook(
        services, "enroll", "renewal", "--customer", customer, "--root", str(services.project.root)
    )
    assert enrolled.exit_code == 0, enrolled.output
    enrollment = enrolled.stdout.strip()

    async def waiting_until() -> str | None:
        status = await playbook(
            services, "status", "--playbook", "renewal", "--customer", customer, "--format", "json"
        )
        assert status.exit_code == 0, status.output
        now = json.loads(status.stdout)["now"] or {}
        return now.get("waiting_until") if now.get("current_step") == "wait_90" else None

    first = await eventually(waiting_until, what="the 90-day wait")
    assert first.startswith(f"{renews - timedelta(days=90)}T10:00:00")
    moved = renews + timedelta(days=10)
    imported = await import_renewal(moved)
    assert imported.exit_code == 0, imported.output
    assert f"told {enrollment}" in imported.stderr

    async def followed() -> bool:
        return (await waiting_until() or "").startswith(f"{moved - timedelta(days=90)}T10:00")

    await eventually(followed, what="the wait to follow the imported renewal date")
    await EnrollmentHandle.get(services.client, enrollment).cancel(CancelRequest())
