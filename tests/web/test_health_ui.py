"""Health in the browser: the customer list's bands, trend lines and risk order, a
customer's score chart and band changes, the portfolio view, and the QBR brief's health.

Every test seeds its own customers in a segment of its own (the stack is shared with the
other browser tests, which add customers of their own) and writes the health history
straight to the store, as the recompute would have.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as EC
from selenium.webdriver.support.ui import Select, WebDriverWait
from sqlalchemy import event
from sqlalchemy.orm import Session, sessionmaker

from engine.demo_health import DAYS, seed_health
from engine.project import load_project
from engine.store import health_trends, repository
from engine.store.models import HealthChange, HealthScore
from tests.helpers.accessibility import serious_violations
from tests.helpers.browser import CSM_A, Browser, Stack
from tests.helpers.paths import PLAYBOOKS


@dataclass(frozen=True)
class Seeded:
    """One customer of a test: its id, name, score now, band and daily scores (oldest
    first, one a day up to today)."""

    key: str
    name: str
    score: int | None
    band: str | None
    line: tuple[int, ...] = ()


def measures(score: int) -> dict[str, dict[str, float | None]]:
    """Two measures adding up to ``score``: usage (weight 3) carries the change, NPS
    (weight 1) stays at 60; unknown seats are left out."""
    usage = (4 * score - 60) / 3
    return {
        "weekly_active_users": {"value": usage / 10, "points": usage, "weight": 3},
        "nps": {"value": 20, "points": 60, "weight": 1},
        "seat_usage": {"value": None, "points": None, "weight": 10},
    }


def seed(stack: Stack, accounts: list[Seeded], segment: str, today: date) -> dict[str, str]:
    """The accounts (ids made unique) with their history; key -> customer id."""
    ids = {a.key: f"{segment}-{a.key}" for a in accounts}
    with stack.sessions.begin() as session:
        for a in accounts:
            cid = ids[a.key]
            repository.upsert_customer(
                session,
                repository.CustomerData(
                    id=cid, name=a.name, segment=segment, owner_email=CSM_A, health_score=a.score
                ),
            )
            repository.get_customer(session, cid).health_band = a.band  # type: ignore[union-attr]
            for back, score in enumerate(reversed(a.line)):
                day = today - timedelta(days=back)
                session.add(
                    HealthScore(
                        customer_id=cid,
                        day=day,
                        at=datetime.combine(day, datetime.min.time(), UTC),
                        score=score,
                        band=a.band or "unknown",
                        known=0.2,
                        measures=measures(score),
                    )
                )
    return ids


def change(
    stack: Stack, cid: str, days_ago: float, old: tuple[int, str], new: tuple[int, str]
) -> None:
    with stack.sessions.begin() as session:
        session.add(
            HealthChange(
                customer_id=cid,
                at=datetime.now(UTC) - timedelta(days=days_ago),
                old=old[0],
                new=new[0],
                old_band=old[1],
                new_band=new[1],
            )
        )


# Falling from 50 to 20 over the month, flat at 20, and the others.
ACCOUNTS = [
    Seeded("flat", "Alpha Flat", 20, "red", (20,) * 10),
    Seeded("falling", "Beta Falling", 20, "red", (50, 45, 40, 35, 30, 25, 20)),
    Seeded("low", "Charlie Low", 35, "red", (38, 35)),
    Seeded("watch", "Delta Watch", 45, "yellow", (45, 45)),
    Seeded("unscored", "Echo Unscored", None, None),
    Seeded("rising", "Foxtrot Rising", 80, "green", (60, 70, 80)),
]


def _rows(browser: Browser) -> list[tuple[str, str]]:
    return [
        (row.get_attribute("data-customer") or "", row.get_attribute("data-band") or "")
        for row in browser.find_all("table.list tbody tr[data-customer]")
    ]


def test_the_customer_list_sorts_by_risk_with_bands_and_trend_lines(
    stack: Stack, browser: Browser
) -> None:
    segment = f"hl{uuid.uuid4().hex[:6]}"
    ids = seed(stack, ACCOUNTS, segment, datetime.now(UTC).date())
    browser.login(CSM_A)
    history_reads: list[str] = []  # the page's reads of health_scores naming our customers

    def note(conn: object, cursor: object, statement: str, params: object, *_: object) -> None:
        if "health_scores" in statement and any(cid in repr(params) for cid in ids.values()):
            history_reads.append(statement)

    engine = stack.sessions.kw["bind"]
    event.listen(engine, "before_cursor_execute", note)
    try:
        browser.get(f"/customers?q={segment}")
    finally:
        event.remove(engine, "before_cursor_execute", note)
    assert len(history_reads) == 1, history_reads  # one query for every row's trend line
    by_risk = ["falling", "flat", "low", "watch", "rising", "unscored"]
    assert _rows(browser) == [
        (ids[k], {"watch": "yellow", "rising": "green", "unscored": "unknown"}.get(k, "red"))
        for k in by_risk
    ]
    falling = browser.find(f'tr[data-customer="{ids["falling"]}"]')
    spark = falling.find_element(By.CSS_SELECTOR, "td.trend svg.spark")
    assert spark.get_attribute("aria-label") == "Health 50 to 20 over 30 days"
    assert falling.find_element(By.CSS_SELECTOR, "td.trend small.down").text == "-30"
    assert falling.find_element(By.CSS_SELECTOR, ".band").text == "Red"
    unscored = browser.find(f'tr[data-customer="{ids["unscored"]}"]')
    assert not unscored.find_elements(By.CSS_SELECTOR, "svg.spark")  # no history, no line
    browser.screenshot("health-customers")

    old = browser.find("table.list tbody tr")
    Select(browser.find("select[name=sort]")).select_by_value("name")
    browser.find("form.filters button[type=submit]").click()
    WebDriverWait(browser.driver, 10).until(EC.staleness_of(old))
    assert [cid for cid, _ in _rows(browser)] == [ids[a.key] for a in ACCOUNTS]  # by name


def test_the_customer_page_charts_the_score_by_measure_and_lists_band_changes(
    stack: Stack, browser: Browser
) -> None:
    segment = f"hc{uuid.uuid4().hex[:6]}"
    ids = seed(stack, ACCOUNTS[1:2], segment, datetime.now(UTC).date())
    change(stack, ids["falling"], 3, (41, "yellow"), (39, "red"))
    change(stack, ids["falling"], 2, (39, "red"), (30, "red"))  # a score change, same band
    browser.login(CSM_A)
    browser.get(f"/customers/{ids['falling']}")
    section = browser.wait_for("#health")
    legend = section.text
    assert "Weekly active users" in legend and "NPS" in legend
    assert "Seats used" not in legend and "seat usage" not in legend  # never known
    assert section.find_elements(By.CSS_SELECTOR, ".chart svg")
    changes = [li.text for li in section.find_elements(By.CSS_SELECTOR, "ul.band-changes li")]
    assert len(changes) == 1 and "Yellow → Red" in changes[0] and "41 → 39" in changes[0]
    assert "Red" in browser.text(".pagehead .summary")
    browser.screenshot("health-customer")


def test_the_portfolio_view_counts_bands_per_segment_and_who_moved(
    stack: Stack, browser: Browser
) -> None:
    segment = f"hp{uuid.uuid4().hex[:6]}"
    ids = seed(stack, ACCOUNTS, segment, datetime.now(UTC).date())
    change(stack, ids["falling"], 2, (41, "yellow"), (39, "red"))
    change(stack, ids["rising"], 1, (69, "yellow"), (70, "green"))
    change(stack, ids["low"], 10, (40, "yellow"), (39, "red"))  # before this week
    browser.login(CSM_A)
    browser.get("/health")
    row = browser.wait_for(f'tr[data-segment="{segment}"]')
    counts = {
        cell.get_attribute("data-band"): cell.text
        for cell in row.find_elements(By.CSS_SELECTOR, "td[data-band]")
    }
    assert counts == {"red": "3", "yellow": "1", "green": "1", "unknown": "1"}
    worse = browser.find("#moved-worse").text
    better = browser.find("#moved-better").text
    assert "Beta Falling" in worse and "Foxtrot Rising" not in worse
    assert "Foxtrot Rising" in better and "Charlie Low" not in worse + better
    assert not serious_violations(browser.driver)
    browser.screenshot("health-portfolio")

    old = browser.find("h1")
    row.find_element(By.CSS_SELECTOR, 'td[data-band="red"] a').click()
    WebDriverWait(browser.driver, 10).until(EC.staleness_of(old))
    assert sorted(cid for cid, _ in _rows(browser)) == sorted(
        ids[k] for k in ("falling", "flat", "low")
    )
    old = browser.find("h1")
    browser.get("/health")
    WebDriverWait(browser.driver, 10).until(EC.staleness_of(old))
    old = browser.find("h1")
    browser.find(f'#moved-worse a[href="/customers/{ids["falling"]}"]').click()
    WebDriverWait(browser.driver, 10).until(EC.staleness_of(old))
    assert browser.text("h1") == "Beta Falling"


def test_the_qbr_brief_shows_band_trend_and_the_measures_that_moved(
    stack: Stack, browser: Browser
) -> None:
    segment = f"hq{uuid.uuid4().hex[:6]}"
    ids = seed(stack, ACCOUNTS[1:2], segment, datetime.now(UTC).date())
    with stack.sessions.begin() as session:
        task, _ = repository.create_task(
            session,
            f"{ids['falling']}:qbr",
            "Prepare the QBR",
            customer_id=ids["falling"],
            playbook_id="qbr",
            step_id="prepare",
            assignee_email=CSM_A,
            outcomes=["scheduled"],
        )
        task_id = task.id
    browser.login(CSM_A)
    browser.get(f"/tasks/{task_id}")
    brief = browser.wait_for("#brief")
    assert brief.find_element(By.CSS_SELECTOR, ".health-band .band").text == "Red"
    assert brief.find_element(By.CSS_SELECTOR, ".health-trend").text == "-30 in 90 days"
    moved = [row.text for row in brief.find_elements(By.CSS_SELECTOR, "table.moved tbody tr")]
    assert moved == ["Weekly active users 47 7 -40"]  # NPS did not move; seats unknown
    for path in (f"/tasks/{task_id}", f"/customers?q={segment}", f"/customers/{ids['falling']}"):
        browser.get(path)
        assert not serious_violations(browser.driver), path
    browser.screenshot("health-brief")


def test_the_demo_health_history_ends_at_todays_scores(sessions: sessionmaker[Session]) -> None:
    card = load_project(PLAYBOOKS).scorecard
    assert card is not None
    now = datetime(2026, 12, 10, 15, 0, tzinfo=UTC)
    scores = {"steady": 71, "sliding": 36}
    with sessions.begin() as session:
        for cid in scores:
            repository.upsert_customer(session, repository.CustomerData(id=cid, name=cid))
        assert seed_health(session, card, now, scores, falling=["sliding"]) == 2 * DAYS
        assert seed_health(session, card, now, scores, falling=["sliding"]) == 0  # once
    with sessions() as session:
        for cid, final in scores.items():
            points = health_trends.daily_points(session, cid, now.date() - timedelta(days=365))
            assert len(points) == DAYS and points[-1].day == now.date() - timedelta(days=1)
            assert points[-1].score == final
            for p in points:  # the measures' shares add up to the day's score
                weight = sum(m["weight"] for m in p.measures.values())
                total = sum(m["points"] * m["weight"] for m in p.measures.values()) / weight
                assert abs(total - (p.score or 0)) < 1.5, (cid, p.day)
            customer = repository.get_customer(session, cid)
            assert customer is not None and customer.health_band == card.band(final)
        moves = health_trends.band_moves_since(session, now - timedelta(days=7))
        assert [(m.customer_id, m.new_band) for m in moves] == [("sliding", "red")]
