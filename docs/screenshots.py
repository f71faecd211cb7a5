"""Make the screenshots of docs/ui.md from the demo: `python docs/screenshots.py`.

Runs `playbook up --demo` in a throwaway home on free ports, lets the demo play for a while
(`--wait`, default 80 s: long enough for a renewal to be escalated), then drives headless
Chromium (Debian's chromium and chromedriver, as the browser tests) through the pages and
saves PNGs in docs/images/. Stops the stack it started when done.
"""

from __future__ import annotations

import argparse
import os
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import httpx
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver

REPO = Path(__file__).resolve().parent.parent
IMAGES = REPO / "docs" / "images"
ADMIN, CSM, PASSWORD = "admin@demo.example", "aiko.tanaka@acme.example", "playbook-demo"
WIDE, PHONE = (1280, 900), (390, 844)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_demo(home: Path) -> tuple[subprocess.Popen[bytes], str]:
    port, temporal, temporal_ui = free_port(), free_port(), free_port()
    env = {
        **os.environ,
        "PLAYBOOK_HOME": str(home),
        "PLAYBOOK_ENV": "development",
        "SIGNING_SECRET": secrets.token_urlsafe(32),
        "TEMPORAL_ADDRESS": f"127.0.0.1:{temporal}",
        "SENDGRID_API_KEY": "",
    }
    command = [
        str(Path(sys.executable).parent / "playbook"),
        *("up", "--demo", "--port", str(port)),
        *("--temporal-port", str(temporal), "--temporal-ui-port", str(temporal_ui)),
    ]
    log = (home / "up.log").open("wb")
    process = subprocess.Popen(command, cwd=REPO, env=env, stdout=log, stderr=log)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"playbook up exited; see {home / 'up.log'}")
        try:
            if httpx.get(f"{url}/login", timeout=2).status_code == 200:
                return process, url
        except httpx.HTTPError:
            pass
        time.sleep(1)
    process.send_signal(signal.SIGINT)
    raise SystemExit(f"playbook up did not serve within 2 minutes; see {home / 'up.log'}")


def chromium() -> WebDriver:
    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    for argument in ("--headless=new", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                     "--disable-dev-shm-usage", f"--window-size={WIDE[0]},{WIDE[1]}"):  # fmt: skip
        options.add_argument(argument)
    driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)
    # Times in the docs read as a viewer in New York would see them.
    driver.execute_cdp_cmd("Emulation.setTimezoneOverride", {"timezoneId": "America/New_York"})
    return driver


def login(driver: WebDriver, url: str, email: str) -> None:
    driver.delete_all_cookies()
    driver.get(f"{url}/login")
    driver.find_element(By.NAME, "email").send_keys(email)
    driver.find_element(By.NAME, "password").send_keys(PASSWORD)
    driver.find_element(By.CSS_SELECTOR, "form button[type=submit]").click()
    time.sleep(1)


def shoot(driver: WebDriver, name: str, size: tuple[int, int] = WIDE, full: bool = True) -> None:
    """Save the page as docs/images/<name>.png, as tall as its content (up to 2400 px)."""
    driver.set_window_size(*size)
    if full:
        height = driver.execute_script("return document.documentElement.scrollHeight")
        driver.set_window_size(size[0], min(max(int(height) + 20, size[1]), 2400))
    time.sleep(0.3)
    driver.save_screenshot(str(IMAGES / f"{name}.png"))
    driver.set_window_size(*size)
    print(f"docs/images/{name}.png")


def first_href(driver: WebDriver, css: str) -> str | None:
    links = driver.find_elements(By.CSS_SELECTOR, css)
    return links[0].get_attribute("href") if links else None


def tour(driver: WebDriver, url: str) -> None:
    step: Callable[[str], None] = driver.get  # one page after another
    login(driver, url, ADMIN)
    step(f"{url}/inbox")
    shoot(driver, "ui-inbox")
    step(f"{url}/inbox?playbook=renewal&sort=priority")
    shoot(driver, "ui-inbox-filtered")
    step(f"{url}/customers/globex")
    shoot(driver, "ui-customer")
    step(f"{url}/customers")
    shoot(driver, "ui-customers")
    step(f"{url}/health")
    shoot(driver, "ui-health")
    step(f"{url}/inbox?playbook=qbr")
    qbr = first_href(driver, "table.tasks a.task-title")
    if qbr:
        step(qbr)
        shoot(driver, "ui-brief")
    step(f"{url}/enrollments")
    shoot(driver, "ui-enrollments")
    step(f"{url}/outbox")
    shoot(driver, "ui-outbox")
    step(f"{url}/customers/northwind")
    pause = driver.find_elements(By.CSS_SELECTOR, ".controls button[value=pause]")
    if pause:
        pause[0].click()
        shoot(driver, "ui-confirm", full=False)
    login(driver, url, CSM)
    step(f"{url}/inbox")
    task = first_href(driver, "table.tasks a.task-title")
    if task:
        step(task)
        comment = driver.find_element(By.CSS_SELECTOR, "form.comment textarea[name=body]")
        comment.send_keys("Left a voicemail; they call back Thursday.")
        driver.find_element(By.CSS_SELECTOR, "form.comment button[type=submit]").click()
        shoot(driver, "ui-task")
    step(f"{url}/inbox")
    boxes = driver.find_elements(By.CSS_SELECTOR, "table.tasks input[name=task_ids]")
    if boxes:  # complete the first from the inbox (its first outcome): the flash offers Undo
        boxes[0].click()
        driver.find_element(By.CSS_SELECTOR, "button.complete-checked").click()
        shoot(driver, "ui-undo", full=False)
    step(f"{url}/inbox")
    driver.set_window_size(*PHONE)
    shoot(driver, "ui-phone", PHONE, full=False)
    driver.find_element(By.CSS_SELECTOR, "label.menu-button").click()
    shoot(driver, "ui-phone-menu", PHONE, full=False)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--wait", type=float, default=80, help="seconds of demo before shooting")
    args = parser.parse_args()
    IMAGES.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="playbook-screenshots-") as folder:
        process, url = start_demo(Path(folder))
        try:
            time.sleep(args.wait)
            driver = chromium()
            try:
                tour(driver, url)
            finally:
                driver.quit()
        finally:
            process.send_signal(signal.SIGINT)
            try:
                process.wait(60)
            except subprocess.TimeoutExpired:
                process.kill()


if __name__ == "__main__":
    main()
