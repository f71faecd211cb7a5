"""Acceptance: emails wait for the send window (Mon-Fri 09:00-17:00) in the customer's zone."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from tests.helpers.simulation import at, customer, entries, index, local, one, show

WELCOME_RECIPIENTS = ["ada@globex.example", "carl@globex.example"]


@pytest.mark.parametrize(
    ("timezone", "start", "expected"),
    [
        pytest.param(
            "Asia/Tokyo",
            datetime.fromisoformat("2026-11-20T15:00:00+00:00"),  # Sat 00:00 in Tokyo
            at("Asia/Tokyo", 2026, 11, 23, 9, 0),
            id="tokyo-enrolled-late-friday-utc",
        ),
        pytest.param(
            "America/New_York",
            at("America/New_York", 2026, 11, 20, 18, 0),  # Friday, after hours
            at("America/New_York", 2026, 11, 23, 9, 0),
            id="new-york-friday-evening",
        ),
        pytest.param(
            # Clocks go forward on Sunday 2027-03-28 in Berlin: enrolled Saturday in CET
            # (+01:00), mailed Monday 09:00 CEST (+02:00), not 10:00 and not 08:00.
            "Europe/Berlin",
            at("Europe/Berlin", 2027, 3, 27, 12, 0),
            at("Europe/Berlin", 2027, 3, 29, 9, 0),
            id="berlin-across-the-march-2027-dst-change",
        ),
    ],
)
async def test_welcome_waits_for_monday_nine_local(sim, project, timezone, start, expected):
    person = customer(timezone)
    timeline = await sim.run(project.plan("onboarding"), person, start=start, days=5)

    email = one(timeline, "email", "welcome")
    sent = local(email.at, timezone)
    assert sent.weekday() == 0, show(timeline)
    assert (sent.date(), sent.hour, sent.minute) == (expected.date(), 9, 0), show(timeline)
    assert sent.utcoffset() == expected.utcoffset()
    assert email.at.utcoffset() == expected.utcoffset(), "`at` is in the customer's zone"
    assert email.to == WELCOME_RECIPIENTS
    assert email.subject

    wait = timeline.timeline[index(timeline, email) - 1]
    assert (wait.kind, wait.step) == ("wait", "welcome"), show(timeline)
    assert wait.until == expected
    assert local(wait.until, timezone).utcoffset() == expected.utcoffset()
    assert abs(wait.at - start) < timedelta(minutes=1), "the wait starts at enrollment"


async def test_weekday_office_hours_sends_at_once(sim, project):
    timezone = "America/New_York"
    start = at(timezone, 2026, 11, 24, 10, 0)  # Tuesday 10:00
    timeline = await sim.run(project.plan("onboarding"), customer(timezone), start=start, days=2)

    email = one(timeline, "email", "welcome")
    assert timeline.timeline[0] is email, show(timeline)
    assert not entries(timeline, "wait", "welcome")
    assert start <= email.at < start + timedelta(minutes=1)
    assert local(email.at, timezone).utcoffset() == timedelta(hours=-5)
    assert email.day == 0
