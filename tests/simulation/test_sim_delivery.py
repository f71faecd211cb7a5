"""Each contact's time and calendar in the simulator (docs/delivery.md), on the shipped
playbooks and policy: an email to contacts in Seoul and Berlin goes out at each one's
morning, across Berlin's DST change; a public holiday moves it, and the timeline says so."""

from __future__ import annotations

from datetime import datetime

import pytest

from engine.language.delivery import Send, cap_violations
from tests.helpers.simulation import CONTACTS, at, customer, entries, local, show


def minute(moment: datetime) -> datetime:
    return moment.replace(second=0, microsecond=0)


SEOUL = {
    "email": "min@globex.example",
    "first_name": "Min",
    "role": "admin",
    "timezone": "Asia/Seoul",
}


async def test_each_contact_gets_the_welcome_at_their_own_nine_across_dst(sim, project):
    # Clocks go forward on Sunday 2027-03-28 in Berlin: enrolled Saturday in CET.
    person = customer("Europe/Berlin", contacts=[CONTACTS[0], SEOUL])
    start = at("Europe/Berlin", 2027, 3, 27, 12, 0)
    timeline = await sim.run(project.plan("onboarding"), person, start=start, days=4)

    sent = {e.to[0]: e.at for e in entries(timeline, "email", "welcome") if e.to}
    assert set(sent) == {"ada@globex.example", "min@globex.example"}, show(timeline)
    seoul = minute(local(sent["min@globex.example"], "Asia/Seoul"))
    berlin = minute(sent["ada@globex.example"])
    assert seoul == at("Asia/Seoul", 2027, 3, 29, 9, 0), show(timeline)
    assert berlin == at("Europe/Berlin", 2027, 3, 29, 9, 0), show(timeline)
    assert berlin.utcoffset() is not None and berlin.utcoffset().total_seconds() == 7200  # CEST
    assert seoul < berlin


@pytest.mark.parametrize(
    ("locale", "holiday"), [(None, "New Year's Day"), ("de-AT", "Neujahr")]
)  # named in the recipient's language where the holidays library knows it, else English
async def test_a_public_holiday_moves_the_email_and_the_timeline_names_it(
    sim, project, locale, holiday
):
    person = customer("Europe/Berlin", country="DE", locale=locale, contacts=[CONTACTS[0]])
    start = at("Europe/Berlin", 2026, 12, 31, 18, 0)  # Thursday evening; Friday is a holiday
    timeline = await sim.run(project.plan("onboarding"), person, start=start, days=6)

    [email] = entries(timeline, "email", "welcome")
    assert minute(email.at) == at("Europe/Berlin", 2027, 1, 4, 9, 0), show(timeline)
    waits = [e.detail for e in entries(timeline, "wait", "welcome")]
    assert any(f"moved from 2027-01-01, {holiday}, to 2027-01-04" in detail for detail in waits), (
        show(timeline)
    )


async def test_the_simulated_sends_stay_within_the_shipped_caps(sim, project):
    """The checker the book simulation runs, on a single customer's onboarding."""
    person = customer("Europe/Berlin", country="DE")
    timeline = await sim.run(
        project.plan("onboarding"), person, start=at("Europe/Berlin", 2027, 3, 1, 8, 0), days=30
    )
    sends = [
        Send(contact, entry.at, person.timezone)
        for entry in entries(timeline, "email")
        for contact in entry.to or []
    ]
    assert sends, show(timeline)
    delivery = project.plan("onboarding").delivery
    assert delivery is not None and delivery.caps
    assert cap_violations(sends, delivery.caps) == []
    # ... and the checker does see a contact over the cap.
    doubled = [*sends, Send(sends[0].contact, sends[0].at, person.timezone)]
    assert cap_violations(doubled, delivery.caps)


async def test_each_contact_reads_the_welcome_in_their_language(sim, project):
    """ko-KR finds welcome.ko.html through its fallback chain; de-AT has no version and gets
    the template itself; a contact without a locale takes the customer's (here Korean)."""
    people = [
        {"email": "min@globex.example", "first_name": "Min", "role": "admin", "locale": "ko-KR"},
        {"email": "ada@globex.example", "first_name": "Ada", "role": "admin", "locale": "de-AT"},
        {"email": "carl@globex.example", "first_name": "Carl", "role": "champion"},
    ]
    person = customer("Asia/Seoul", locale="ko", contacts=people)
    start = at("Asia/Seoul", 2027, 3, 29, 10, 0)  # a Monday morning: sent at once
    timeline = await sim.run(project.plan("onboarding"), person, start=start, days=1)

    welcome = {e.to: e for e in timeline.emails if e.step == "welcome"}
    assert set(welcome) == {p["email"] for p in people}, show(timeline)
    assert welcome["min@globex.example"].subject == "Min님, Acme에 오신 것을 환영합니다"
    assert welcome["carl@globex.example"].subject == "Carl님, Acme에 오신 것을 환영합니다"
    assert welcome["ada@globex.example"].subject == "Welcome to Acme, Ada"
    korean = welcome["min@globex.example"]
    assert korean.text and "2027년 3월 29일" in korean.text  # Babel's Korean long date
    assert korean.html and "첫 보고서 만들기" in korean.html


async def test_a_wait_at_ten_sends_each_contact_the_email_at_their_own_ten_across_dst(sim, project):
    """Renewal's `wait: {until: renewal_date - days(90), at: "10:00"}` before the 90-day
    email: Seoul gets it at 10:00 in Seoul and Berlin at 10:00 in Berlin, the day after
    Berlin's clocks went forward (not both at the customer's 10:00)."""
    seoul = {**SEOUL, "email": "min@globex.example", "role": "sponsor"}
    person = customer(
        "Europe/Berlin",
        contacts=[CONTACTS[0], seoul],
        renewal_date="2027-06-27",  # 90 days before: Monday 2027-03-29
    )
    start = at("Europe/Berlin", 2027, 3, 26, 12, 0)  # Friday, in CET
    timeline = await sim.run(project.plan("renewal"), person, start=start, days=4)

    sent = {e.to[0]: e.at for e in entries(timeline, "email", "email_90") if e.to}
    assert set(sent) == {"ada@globex.example", "min@globex.example"}, show(timeline)
    assert minute(local(sent["min@globex.example"], "Asia/Seoul")) == at(
        "Asia/Seoul", 2027, 3, 29, 10, 0
    ), show(timeline)
    berlin = minute(local(sent["ada@globex.example"], "Europe/Berlin"))
    assert berlin == at("Europe/Berlin", 2027, 3, 29, 10, 0), show(timeline)
    assert berlin.utcoffset() is not None and berlin.utcoffset().total_seconds() == 7200  # CEST
    waits = [e.detail for e in entries(timeline, "wait", "email_90")]
    assert any("10:00 in Europe/Berlin" in detail for detail in waits), show(timeline)
