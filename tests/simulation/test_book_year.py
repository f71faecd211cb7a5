"""A year in the life of a book: the shipped playbooks over 100 customers for 400 days.

One run of `simulate_book` (its own time-skipping server, the real sweeps and event
routing) over `sample_book`: customers across segments and time zones, renewal dates
spread over the run, some imported mid-way, monthly product usage, unsubscribes, renewals
(the goal event, then the CRM moves ``renewal_date`` a year on: a second cycle), renewal
dates moved before their cycle, churn, and the renewal playbook changed on day 200. The
figures are in docs/reliability.md; ``python -m bench --only book`` times the same run.
Every email stays within the shipped delivery policy's caps (playbooks/policies.yaml).

``BOOK_YEAR_CUSTOMERS`` and ``BOOK_YEAR_DAYS`` shrink (or grow) the run.
"""

from __future__ import annotations

import os
import shutil
from collections import Counter, defaultdict
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest

from engine.project import load_project
from engine.simulation.book import (
    BookAction,
    BookEnrollment,
    BookResult,
    ProjectSwitch,
    check_caps,
    simulate_book,
)
from engine.simulation.book_view import summary_lines
from engine.simulation.sample_book import SampleBook, sample_book
from tests.helpers.paths import PLAYBOOKS

CUSTOMERS = int(os.environ.get("BOOK_YEAR_CUSTOMERS", "100"))
DAYS = int(os.environ.get("BOOK_YEAR_DAYS", "400"))
START = date(2026, 12, 1)
SWITCH_DAY = 200
TOUCHES = {"email_90": 90, "email_60": 60, "email_30": 30}
# The latest a due touch may go: its send window, a weekend, or a contact at the shipped
# policy's cap of 3 emails in 7 days (deferred to the first day under it).
DEFERRED = timedelta(days=8)


@dataclass
class Year:
    sample: SampleBook
    result: BookResult
    begin: datetime

    def zone(self, customer: str) -> ZoneInfo:
        return ZoneInfo(next(c.timezone for c in self.sample.book.customers if c.id == customer))

    def runs(self, playbook: str) -> list[BookEnrollment]:
        return [e for e in self.result.enrollments if e.playbook == playbook]

    def actions(self, run: BookEnrollment) -> list[BookAction]:
        return [a for a in self.result.actions if a.enrollment == run.key]

    def moment(self, day: int, customer: str | None = None) -> datetime:
        """Day ``day`` at midnight, on the customer's own calendar if given."""
        if customer is None:
            return self.begin + timedelta(days=day)
        local = datetime.combine(START + timedelta(days=day), time(0), self.zone(customer))
        return max(local, self.begin)


@pytest.fixture(scope="module")
async def year(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Year]:
    sample = sample_book(CUSTOMERS, DAYS, START)
    project = load_project(PLAYBOOKS)
    # The playbook change mid-way: the renewal call is due sooner from day 200 on.
    changed = tmp_path_factory.mktemp("changed") / "playbooks"
    shutil.copytree(PLAYBOOKS, changed)
    renewal = changed / "renewal.yaml"
    source = renewal.read_text()
    assert "      due: 14d\n" in source
    renewal.write_text(source.replace("      due: 14d\n", "      due: 10d\n"))
    result = await simulate_book(
        project,
        sample.book,
        sample.events,
        days=DAYS,
        start=START,
        switches=[ProjectSwitch(SWITCH_DAY, load_project(changed))],
    )
    print("\n".join(["", *summary_lines(result)]))
    yield Year(sample, result, datetime(START.year, START.month, START.day, tzinfo=UTC))


def _renewal_date(run: BookEnrollment) -> date:
    assert run.cycle is not None
    return date.fromisoformat(run.cycle) + timedelta(days=120)


async def test_the_book_runs_every_playbook_and_has_a_summary(year: Year) -> None:
    s = year.result.summary
    assert s.customers == CUSTOMERS
    assert set(s.outcomes) >= {"renewal", "qbr", "onboarding"}
    assert s.emails == sum(s.emails_per_day.values()) == sum(s.emails_per_playbook.values())
    assert s.tasks == sum(sum(w.values()) for w in s.tasks_per_csm_week.values())
    assert not [w for w in year.result.warnings if "not in the store" in w]
    assert f"contacts over the caps: {year.result.contacts_over_caps}" in summary_lines(year.result)


async def test_no_contact_goes_over_the_shipped_caps(year: Year) -> None:
    """Issue 17: the contact budget holds across every playbook over the whole book."""
    policy = load_project(PLAYBOOKS).plan("renewal").delivery
    assert policy is not None and policy.caps, "the shipped policy has no caps to check"
    assert year.result.over_caps == []
    assert year.result.contacts_over_caps == 0
    # ... and the check sees a contact over a cap: one email sent three more times that day.
    emails = [a for a in year.result.actions if a.kind == "email" and "admin@" in " ".join(a.to)]
    assert emails, "the book emailed no customer contact: the check is vacuous"
    again = [emails[0].model_copy(update={"step": f"again-{n}"}) for n in range(3)]
    everyone = {a.enrollment: policy for a in year.result.actions}
    over = check_caps([*year.result.actions, *again], year.sample.book, everyone)
    assert any(line.startswith(f"admin@{emails[0].customer}.example") for line in over), over


async def test_no_email_step_sends_twice_to_anyone(year: Year) -> None:
    sent: Counter[tuple[str, str, str | None, str, str]] = Counter()
    runs = {e.key: e for e in year.result.enrollments}
    for action in year.result.actions:
        if action.kind == "email":
            cycle = runs[action.enrollment].cycle or action.enrollment
            for contact in action.to:
                sent[(action.customer, action.playbook, cycle, action.step, contact)] += 1
    assert sent, "the book sent no email"
    assert [k for k, n in sent.items() if n > 1] == []


async def test_nothing_reaches_a_contact_after_they_unsubscribed(year: Year) -> None:
    assert year.sample.unsubscribed
    suppressed = 0
    for customer, (contact, day) in year.sample.unsubscribed.items():
        gone = year.moment(day, customer)
        for action in year.result.actions:
            if action.customer != customer or action.kind != "email":
                continue
            if contact in action.to:
                assert action.at < gone, (customer, action.step, action.at)
            if contact in action.suppressed:
                assert action.at >= gone
                suppressed += 1
    assert suppressed > 0, "no email was due to an unsubscribed contact: the check is vacuous"


async def test_every_renewal_and_quarter_cycle_is_enrolled_once(year: Year) -> None:
    for playbook in ("renewal", "qbr"):
        cycles = Counter((r.customer, r.cycle) for r in year.runs(playbook))
        assert cycles, playbook
        assert [c for c, n in cycles.items() if n > 1] == [], playbook
    internal = {c.id for c in year.sample.book.customers if c.segment == "internal"}
    assert not [r for r in year.runs("renewal") if r.customer in internal]
    enterprise = {c.id for c in year.sample.book.customers if c.segment == "enterprise"}
    assert {r.customer for r in year.runs("qbr")} <= enterprise


def _expected_on_time_cycles(year: Year) -> dict[str, list[date]]:
    """Per customer, the renewal dates whose 120-day trigger falls inside the run while the
    customer is in the store (enrolled on time, no late policy involved)."""
    expected: dict[str, list[date]] = defaultdict(list)
    horizon = START + timedelta(days=DAYS)
    for customer in year.sample.book.customers:
        if customer.segment == "internal" or customer.renewal_date is None:
            continue
        present = START + timedelta(days=customer.added_day)
        renewal = customer.renewal_date
        if customer.id in year.sample.moved:
            renewal = year.sample.moved[customer.id][1]
        dates = [renewal]
        if customer.id in year.sample.renewed:
            dates.append(renewal + timedelta(days=365))
        for when in dates:
            trigger = when - timedelta(days=120)
            if present <= trigger and trigger + timedelta(days=1) < horizon:
                expected[customer.id].append(when)
    return expected


async def test_every_on_time_renewal_cycle_is_enrolled_on_its_day(year: Year) -> None:
    expected = _expected_on_time_cycles(year)
    got: dict[str, list[date]] = defaultdict(list)
    for run in year.runs("renewal"):
        got[run.customer].append(_renewal_date(run))
    second_cycles = 0
    for customer, dates in expected.items():
        assert set(dates) <= set(got[customer]), customer
        second_cycles += len(dates) > 1
    for run in year.runs("renewal"):
        if _renewal_date(run) in expected.get(run.customer, []):
            trigger = _renewal_date(run) - timedelta(days=120)
            assert run.started_at.date() - trigger <= timedelta(days=1), run
    assert second_cycles > 0, "no customer renewed early enough for a second cycle"


async def test_every_due_renewal_touch_is_sent_once_on_its_date(year: Year) -> None:
    """On-time cycles: the 90-, 60- and 30-day emails to admins and sponsors, each once,
    at 10:00 on its date or the next send window (later for a contact at the policy's
    caps); none once the run has ended."""
    checked = 0
    for run in year.runs("renewal"):
        renewal = _renewal_date(run)
        if renewal not in _expected_on_time_cycles(year).get(run.customer, []):
            continue
        tz = year.zone(run.customer)
        end = run.ended_at or year.result.end
        by_step = defaultdict(list)
        for action in year.actions(run):
            if action.kind == "email":
                by_step[action.step].append(action)
        for step, days in TOUCHES.items():
            due = datetime.combine(renewal - timedelta(days=days), time(10), tzinfo=tz)
            sends = by_step.get(step, [])
            if due >= end:
                assert sends == [], (run.key, step)
                continue
            # Each recipient once (sent, or not sent after an unsubscribe). A recipient the
            # delivery policy postponed (at a cap, or a day off) gets their own later record.
            reached = Counter(c for send in sends for c in [*send.to, *send.suppressed])
            assert reached == {
                f"admin@{run.customer}.example": 1,
                f"sponsor@{run.customer}.example": 1,
            }, (run.key, step, sends)
            for send in sends:
                assert due <= send.at < due + DEFERRED, (run.key, step, send.at)
            checked += 1
    assert checked >= CUSTOMERS


async def test_an_exit_stops_the_touches(year: Year) -> None:
    assert year.sample.churned
    for customer, day in year.sample.churned.items():
        for run in year.runs("renewal"):
            if run.customer == customer:
                assert run.outcome == "exited" or run.status == "exited", run
                late = [a for a in year.actions(run) if a.at >= year.moment(day, customer)]
                assert late == []


async def test_no_enrollment_is_left_running_without_a_wait_it_can_name(year: Year) -> None:
    running = [r for r in year.result.enrollments if r.outcome is None]
    assert running, "nothing still running at the end: the check is vacuous"
    for run in running:
        assert run.waiting, run
        assert "with no deadline" not in run.waiting or " for " in run.waiting, run


async def test_the_playbook_change_applies_to_enrollments_from_its_day(year: Year) -> None:
    before = {r.version for r in year.runs("renewal") if r.started_at < year.moment(SWITCH_DAY)}
    after = {r.version for r in year.runs("renewal") if r.started_at >= year.moment(SWITCH_DAY)}
    assert len(before) == 1 and len(after) == 1 and before != after
    # Runs keep the version they started with: their actions carry it.
    for run in year.runs("renewal"):
        assert {a.version for a in year.actions(run)} <= {run.version}


async def test_customers_past_their_trigger_day_are_enrolled_while_renewal_is_ahead(
    year: Year,
) -> None:
    """Imported mid-cycle, or already inside the 120 days at the start: enrolled, and
    only the touches still ahead of them are sent (not the stale 90-day one)."""
    late = 0
    got = {(r.customer, _renewal_date(r)): r for r in year.runs("renewal")}
    for customer in year.sample.book.customers:
        if customer.segment == "internal" or customer.renewal_date is None:
            continue
        if customer.id in year.sample.moved:
            continue
        present = START + timedelta(days=customer.added_day)
        renewal = customer.renewal_date
        if renewal - timedelta(days=120) >= present or renewal <= present:
            continue
        late += 1
        run = got.get((customer.id, renewal))
        assert run is not None, f"{customer.id} renewing {renewal} was never enrolled"
        tz = year.zone(customer.id)
        for action in year.actions(run):
            if action.step in TOUCHES:
                due = datetime.combine(
                    renewal - timedelta(days=TOUCHES[action.step]), time(10), tzinfo=tz
                )
                assert due >= run.started_at, f"{run.key}: stale {action.step}"
    assert late > 0
