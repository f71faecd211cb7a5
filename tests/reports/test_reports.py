"""Every report against known data (tests/helpers/insight.py), figures worked out by hand,
on SQLite and PostgreSQL."""

from __future__ import annotations

import csv
import io
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy.orm import Session

from engine.errors import Invalid, NotFound
from engine.services import reports
from engine.services.reports import Report, ReportFilters, portfolio
from engine.services.reports.email import verdict
from engine.services.reports.portfolio import band
from tests.helpers.insight import NOW, SINCE


def table(report: Report, key: str) -> list[dict[str, Any]]:
    """A table's rows as plain values."""
    found = next(t for t in report.tables if t.key == key)
    return [{k: cell.value for k, cell in row.items()} for row in found.rows]


def run(session: Session, kind: str, **filters: Any) -> Report:
    return reports.build(session, kind, ReportFilters(**filters), now=NOW)


def behind(session: Session, kind: str, cell: str, **filters: Any) -> list[str]:
    """The IDs of the customers behind one figure, found when asked for."""
    _, customers = reports.customers_behind(session, kind, ReportFilters(**filters), cell, NOW)
    return [c.id for c in customers]


def test_funnel_counts_worked_out_by_hand(known: Session) -> None:
    # Runs started since April: c1..c7 (c8 started in January). c6 has not entered a step.
    # welcome: c1 c2 c3 c4 c5 c7 reached; c4 has stood there 40 days (stuck).
    # wait: c1 c2 c3 c5 c7; c2 left by the exit condition, c5 by reaching the goal.
    # call: c1 c3 c7; c3 is still waiting there (2 days). done: c1 c7 ended there.
    # c1's earlier run (March, same workflow ID) is not counted.
    filters = ReportFilters(since=SINCE, playbook="onb")
    report = reports.build(known, "funnel", filters, now=NOW)
    [funnel] = report.tables
    assert funnel.entered is not None and funnel.entered.value == 7
    rows = {r["step"]: r for r in table(report, "onb@v1")}
    assert list(rows) == ["welcome", "wait", "call", "done"]
    zero = {k: 0 for k in ("exit", "goal", "completed", "stopped", "waiting", "stuck")}
    assert rows["welcome"] == {
        "step": "welcome", "reached": 6, "past": 5, "past_rate": 5 / 6, **zero, "stuck": 1
    }  # fmt: skip
    assert rows["wait"] == {
        "step": "wait", "reached": 5, "past": 3, "past_rate": 3 / 5, **zero, "exit": 1, "goal": 1
    }  # fmt: skip
    assert rows["call"] == {
        "step": "call", "reached": 3, "past": 2, "past_rate": 2 / 3, **zero, "waiting": 1
    }  # fmt: skip
    assert rows["done"] == {
        "step": "done", "reached": 2, "past": 0, "past_rate": 0.0, **zero, "completed": 2
    }  # fmt: skip
    # Every figure links to its customers.
    behind = {
        cell: [c.id for c in reports.customers_behind(known, "funnel", filters, cell, NOW)[1]]
        for row in funnel.rows
        for cell in [c.cell for c in row.values() if c.cell]
    }
    assert behind["funnel|onb|v1|wait|exit"] == ["c2"]
    assert behind["funnel|onb|v1|welcome|reached"] == ["c1", "c2", "c3", "c4", "c5", "c7"]
    assert behind["funnel|onb|v1|welcome|past"] == ["c1", "c2", "c3", "c5", "c7"]
    assert behind["funnel|onb|v1|welcome|stuck"] == ["c4"]
    assert behind["funnel|onb|v1|done|completed"] == ["c1", "c7"]
    assert behind["funnel|onb|v1|call|waiting"] == ["c3"]
    assert behind["funnel|onb|v1|done|past"] == []
    for row in funnel.rows:  # each count is the number of runs, here one per customer
        for cell in row.values():
            if cell.cell:
                assert cell.value == len(behind[cell.cell]), cell.cell
    entered = reports.customers_behind(known, "funnel", filters, "funnel|onb|v1||entered", NOW)
    assert [c.id for c in entered[1]] == [f"c{i}" for i in range(1, 8)]


def test_funnel_by_segment_date_and_version(known: Session) -> None:
    smb = run(known, "funnel", since=SINCE, segment="smb")
    rows = {r["step"]: r for r in table(smb, "onb@v1")}
    assert [rows[s]["reached"] for s in ("welcome", "wait", "call", "done")] == [1, 1, 1, 1]
    assert rows["done"]["completed"] == 1
    # Without a start date c8 (January: welcome, then done) counts too.
    everything = {r["step"]: r for r in table(run(known, "funnel", playbook="onb"), "onb@v1")}
    assert everything["welcome"]["reached"] == 7 and everything["done"]["completed"] == 3
    assert run(known, "funnel", version="v2").tables == []
    assert run(known, "funnel", until=SINCE - timedelta(days=90)).tables == []


def test_customers_behind_a_figure(known: Session) -> None:
    filters = ReportFilters(since=SINCE)
    _, customers = reports.customers_behind(
        known, "funnel", filters, "funnel|onb|v1|call|waiting", now=NOW
    )
    assert [(c.id, c.name) for c in customers] == [("c3", "Customer C3")]
    with pytest.raises(NotFound):
        reports.customers_behind(known, "funnel", filters, "funnel|onb|v1|welcome|bogus")
    with pytest.raises(Invalid):
        reports.build(known, "nonsense", filters)


def test_time_to_value_worked_out_by_hand(known: Session) -> None:
    # Segment "ttv": a (Jan 10), b (Jan 20), c (Feb 5), d (Feb 10). activated after 5, 40
    # and 10 days (d never); kickoff: a after 2 days. First value: a 2, b 40, c 10.
    report = run(known, "ttv", segment="ttv")
    overall = {r["milestone"]: r for r in table(report, "all")}
    assert overall["activated"] == {
        "milestone": "activated", "customers": 4, "reached": 3, "median_days": 10.0,
        "p90_days": 34.0, "within_30d": 2, "within_30d_rate": 0.5,
    }  # fmt: skip
    assert overall["first value"]["median_days"] == 10.0
    assert overall["first value"]["within_30d"] == 2
    assert overall["kickoff"]["reached"] == 1 and overall["kickoff"]["median_days"] == 2.0
    cohorts = {(r["milestone"], r["group"]): r for r in table(report, "cohort")}
    january = cohorts[("activated", "2026-01")]
    assert (january["customers"], january["reached"], january["median_days"]) == (2, 2, 22.5)
    assert (january["p90_days"], january["within_30d_rate"]) == (36.5, 0.5)
    february = cohorts[("activated", "2026-02")]
    assert (february["customers"], february["reached"], february["median_days"]) == (2, 1, 10.0)
    assert behind(known, "ttv", "ttv|cohort|activated|2026-02|within", segment="ttv") == ["c"]
    assert behind(known, "ttv", "ttv|all|activated||reached", segment="ttv") == ["a", "b", "c"]
    assert behind(known, "ttv", "ttv|all|first value||customers", segment="ttv") == [
        "a", "b", "c", "d"
    ]  # fmt: skip
    segments = {(r["milestone"], r["group"]): r for r in table(report, "segment")}
    assert segments[("activated", "ttv")]["reached"] == 3


def test_email_performance_and_the_variant_verdict(known: Session) -> None:
    report = run(known, "email", segment="mail")
    rows = {r["variant"]: r for r in table(report, "steps")}
    assert rows["A"] == {
        "playbook": "onb", "version": "v1", "step": "welcome / A", "variant": "A",
        "recipients": 102, "delivered": 100, "opened": 50, "clicked": 10, "bounced": 2,
        "unsubscribed": 0, "delivered_rate": 100 / 102, "opened_rate": 0.5,
        "clicked_rate": 0.1, "bounced_rate": 2 / 102, "unsubscribed_rate": 0.0,
    }  # fmt: skip
    assert (rows["B"]["recipients"], rows["B"]["opened"], rows["B"]["clicked"]) == (100, 60, 30)
    # 10/100 against 30/100 clicks: chi-squared with Yates' correction, p = 0.00078.
    clicks = next(n for n in report.notes if "Clicks" in n)
    assert "variant B does better" in clicks and "p = 0.001" in clicks and "99.9%" in clicks
    opens = next(n for n in report.notes if "Opens" in n)  # 50/100 against 60/100: p = 0.20
    assert "no clear winner yet" in opens


def test_verdict_wording_at_the_edges() -> None:
    assert "not enough" in verdict({"A": (3, 10)}, "Clicks")
    assert "no difference to test" in verdict({"A": (0, 10), "B": (0, 12)}, "Clicks")


def test_task_performance_worked_out_by_hand(known: Session) -> None:
    report = run(known, "tasks", segment="tasks")
    csm = {r["group"]: r for r in table(report, "csm")}
    assert csm["x@cs.example"] == {
        "group": "x@cs.example", "created": 3, "completed": 2, "on_time": 1, "late": 1,
        "on_time_rate": 0.5, "escalated": 1, "open": 1, "median_hours": 26.0,
        "outcomes": "done: 2",
    }  # fmt: skip
    assert csm["y@cs.example"]["on_time"] == 1 and csm["y@cs.example"]["median_hours"] == 4.0
    [playbook] = table(report, "playbook")
    assert (playbook["created"], playbook["completed"], playbook["on_time"]) == (4, 3, 2)
    assert playbook["outcomes"] == "done: 2, no_show: 1"


def test_portfolio_bands_and_renewals(known: Session) -> None:
    assert [band(s) for s in (None, 0, 39, 40, 69, 70, 100)] == [
        "unknown", "red", "red", "yellow", "yellow", "green", "green"
    ]  # fmt: skip
    report = run(known, "portfolio")
    bands = {r["segment"]: r for r in table(report, "bands")}
    assert bands["pf-red"] == {
        "segment": "pf-red", "red": 1, "yellow": 1, "green": 0, "unknown": 0, "total": 2
    }  # fmt: skip
    assert bands["pf-blue"] == {
        "segment": "pf-blue", "red": 0, "yellow": 1, "green": 1, "unknown": 1, "total": 3
    }  # fmt: skip
    # Renewals within 90 days, today included: p1 (in 10 days, red), p2 (in 90, yellow).
    renewals = table(report, "renewals")
    assert [(r["customer"], r["band"]) for r in renewals] == [
        ("Customer P1", "red"), ("Customer P2", "yellow")
    ]  # fmt: skip
    assert behind(known, "portfolio", "portfolio|pf-blue|unknown") == ["p5"]
    assert behind(known, "portfolio", "portfolio|pf-red|total") == ["p1", "p2"]
    assert behind(known, "portfolio", "portfolio|renewal|p1") == ["p1"]


def test_portfolio_renewals_are_paged(known: Session, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(portfolio, "RENEWALS_PAGE", 1)
    for page, customer in ((1, "Customer P1"), (2, "Customer P2"), (9, "Customer P2")):
        report = run(known, "portfolio", page=page)
        renewals = next(t for t in report.tables if t.key == "renewals")
        assert [r["customer"].value for r in renewals.rows] == [customer]
        assert renewals.pager is not None
        assert (renewals.pager.page, renewals.pager.pages, renewals.pager.total) == (
            min(page, 2), 2, 2
        )  # fmt: skip
    assert ReportFilters(segment="x", page=3).query_at(1) == {"segment": "x"}


def test_csv_has_every_table_with_a_table_column(known: Session) -> None:
    report = run(known, "tasks", segment="tasks")
    rows = list(csv.DictReader(io.StringIO(report.to_csv())))
    assert [(r["table"], r["group"], r["created"]) for r in rows] == [
        ("csm", "x@cs.example", "3"), ("csm", "y@cs.example", "1"), ("playbook", "onb", "4")
    ]  # fmt: skip


def test_email_and_task_figures_find_their_customers_on_demand(known: Session) -> None:
    assert behind(known, "email", "email|onb|v1|welcome|B|clicked", segment="mail") == ["m1"]
    assert behind(known, "email", "email|onb|v1|welcome|A|unsubscribed", segment="mail") == []
    assert behind(known, "tasks", "tasks|csm|x@cs.example|escalated", segment="tasks") == ["t1"]
    assert behind(known, "tasks", "tasks|playbook|onb|open", segment="smb") == []
    with pytest.raises(NotFound):
        behind(known, "tasks", "tasks|csm|x@cs.example|bogus")


def test_every_report_honours_playbook_and_version(known: Session) -> None:
    # The task seed's tasks belong to no enrollment run, so no version has them.
    assert table(run(known, "tasks", segment="tasks", version="v1"), "csm") == []
    # Time to value counts only customers enrolled in the playbook: none of segment "ttv".
    assert table(run(known, "ttv", segment="ttv", playbook="onb"), "all") == []
    enrolled = table(run(known, "ttv", segment="ent", playbook="onb", version="v"), "all")
    assert enrolled[0]["customers"] == 7  # c1-c6 and c8
    assert run(known, "email", segment="mail", version="v2").tables[0].rows == []
