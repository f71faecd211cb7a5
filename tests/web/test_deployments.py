"""Admin pages of change safety: deploy history per playbook and the diff of a deploy."""

from __future__ import annotations

import shutil
from pathlib import Path

from selenium.webdriver.common.by import By

from engine.client.deployment import deploy_version, deploy_working_copy
from engine.project import load_project
from engine.store import deployments
from tests.helpers.browser import ADMIN, CSM_A, Browser, Stack
from tests.helpers.paths import REPO


def test_admin_sees_deploy_history_and_the_diff_page(
    stack: Stack, browser: Browser, tmp_path: Path
) -> None:
    root = tmp_path / "playbooks"
    shutil.copytree(REPO / "playbooks", root)
    book = root / "onboarding.yaml"
    book.write_text(book.read_text().replace("      due: 3d", "      due: 2d", 1))
    with stack.sessions() as session:
        shipped = deployments.deployed_plan(session, "onboarding")
    assert shipped is not None
    deploy_working_copy(
        stack.sessions,
        load_project(root),
        ["onboarding"],
        by="dana",
        message="kickoff due in 2 days",
    )
    try:
        browser.login(ADMIN)
        browser.get("/deployments")
        browser.click_and_load(browser.find("a[href='/deployments/onboarding']"))
        history = browser.text("main")
        assert "kickoff due in 2 days" in history and "dana" in history
        browser.click_and_load(browser.find("td a[href*='/diff?old=']"))
        page = browser.text("main")
        assert "kickoff" in page and "task.due_seconds" in page
        assert "3d" in page and "2d" in page
        assert "Running enrollments" in page
        browser.driver.delete_all_cookies()
        browser.login(CSM_A)
        browser.get("/deployments/onboarding")
        assert "Only admins see deployments." in browser.text("main")
        assert not browser.driver.find_elements(By.CSS_SELECTOR, "nav a[href='/deployments']")
    finally:
        deploy_version(stack.sessions, "onboarding", shipped.version, by="web-tests")
