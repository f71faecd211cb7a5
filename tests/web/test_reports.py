"""The report pages in a real browser: filters, charts, every figure linked to its
customers, CSV export; and (with UI_SCREENSHOTS set) the screenshots in docs/reports.md,
made from the demo customers and their made-up year (`engine.demo_history`)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx
import pytest
from selenium.webdriver.common.by import By

from engine.demo import COMPANIES
from engine.demo_history import seed_history
from engine.project import load_project
from engine.services.reports.portfolio import RENEWALS_PAGE
from engine.store import repository
from tests.helpers.browser import ADMIN, CSM_A, Browser, Stack
from tests.helpers.insight import seed_email, seed_funnel
from tests.helpers.paths import REPO


@pytest.fixture(scope="module")
def funnel_and_email(stack: Stack) -> None:
    with stack.sessions.begin() as session:
        seed_funnel(session)
        seed_email(session)


def test_funnel_page_charts_filters_and_links_to_customers(
    stack: Stack, browser: Browser, funnel_and_email: None
) -> None:
    browser.login(CSM_A)
    browser.get("/inbox")
    browser.click_and_load(browser.find("nav a[href='/reports']"))
    browser.wait_for("#report-filters")
    browser.get("/reports/funnel?playbook=onb&since=2026-04-01")
    table = browser.find("section[data-table='onb@v1']")
    assert "7 entered" in table.find_element(By.TAG_NAME, "h2").text
    assert table.find_elements(By.CSS_SELECTOR, "figure.chart svg")  # drawn server-side
    reached = [td.text for td in table.find_elements(By.CSS_SELECTOR, "td[data-col='reached']")]
    assert reached == ["6", "5", "3", "2"]

    # The 1 that left "wait" by the exit condition is customer C2.
    exits = table.find_elements(By.CSS_SELECTOR, "td[data-col='exit'] a")
    assert [a.text for a in exits] == ["1"]
    browser.click_and_load(exits[0])
    browser.wait_for("#behind")
    assert [a.text for a in browser.find_all("#behind tbody td:first-child a")] == ["Customer C2"]
    browser.click_and_load(browser.find("p.summary a"))  # back, with the same filters
    browser.wait_for("section[data-table='onb@v1']")
    assert "since=2026-04-01" in browser.driver.current_url

    # Filtering by segment through the form narrows the funnel to c7.
    browser.find("select[name=segment] option[value='smb']").click()
    browser.click_and_load(browser.find("#report-filters button"))
    browser.wait_for("section[data-table='onb@v1']")
    assert "1 entered" in browser.text("section[data-table='onb@v1'] h2")


def test_email_page_gives_the_verdict_and_exports_csv(
    stack: Stack, browser: Browser, funnel_and_email: None
) -> None:
    browser.login(CSM_A)
    browser.get("/reports/email?segment=mail")
    assert "variant B does better" in browser.text("p.verdict")
    rows = browser.find_all("section[data-table='steps'] tbody tr")
    assert len(rows) == 2
    href = browser.find("#report-filters a[download]").get_attribute("href")
    assert href.endswith("/reports/email.csv?segment=mail")
    # The download itself, with the browser's session cookie.
    cookies = {c["name"]: c["value"] for c in browser.driver.get_cookies()}
    exported = httpx.get(href, cookies=cookies)
    assert exported.status_code == 200
    assert exported.text.splitlines()[0].startswith("table,playbook,version,step,variant")
    assert "Content-Security-Policy" in exported.headers


def test_report_pages_screenshots(stack: Stack, browser: Browser) -> None:
    """The docs' screenshots: run alone, `make screenshots` (UI_SCREENSHOTS=docs/images)."""
    project = load_project(REPO / "playbooks")
    with stack.sessions.begin() as session:
        for cid, name, segment, _tz, health in COMPANIES:
            if repository.get_customer(session, cid) is None:
                repository.upsert_customer(
                    session,
                    repository.CustomerData(
                        id=cid, name=name, segment=segment, health_score=health
                    ),
                )
        seed_history(
            session,
            project.plans.values(),
            datetime.now(UTC),
            customers=[cid for cid, *_ in COMPANIES],
        )
    browser.login(ADMIN)
    for kind in ("funnel", "ttv", "email", "tasks", "portfolio"):
        browser.get(f"/reports/{kind}")
        browser.wait_for("#report-filters")
        assert "Something went wrong" not in browser.text()
        browser.screenshot(f"reports-{kind}")


def test_portfolio_renewals_come_a_page_at_a_time(stack: Stack, browser: Browser) -> None:
    today = datetime.now(UTC).date()
    with stack.sessions.begin() as session:
        for i in range(RENEWALS_PAGE + 10):
            repository.upsert_customer(
                session,
                repository.CustomerData(
                    id=f"renew-{i:03d}", name=f"Renewing {i:03d}", segment="renewing",
                    renewal_date=today + timedelta(days=i % 80),
                ),
            )  # fmt: skip
    browser.login(ADMIN)
    browser.get("/reports/portfolio?segment=renewing")
    renewals = "section[data-table='renewals']"
    assert len(browser.find_all(f"{renewals} tbody tr")) == RENEWALS_PAGE
    pager = f"Page 1 of 2 ({RENEWALS_PAGE + 10} rows)"
    assert pager in browser.text(f"{renewals} nav.pager")
    browser.find(f"{renewals} nav.pager a[rel=next]").click()
    browser.wait_for(f"{renewals} nav.pager a[rel=prev]")
    assert len(browser.find_all(f"{renewals} tbody tr")) == 10
    assert "segment=renewing" in browser.driver.current_url
    assert "page=2" in browser.driver.current_url
