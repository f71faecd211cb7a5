"""Acceptance: `playbook simulate` from the command line (JSON, HTML, errors, isolation)."""

from __future__ import annotations

import html
import json
import re
import shutil
import sqlite3
import subprocess
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner

from engine.cli import main
from engine.simulation import KINDS, Simulator, Timeline
from tests.helpers.paths import EXAMPLES, PLAYBOOKS

HOSHINO = EXAMPLES / "hoshino-logistics.yaml"
THORNBURY = EXAMPLES / "thornbury-capital.yaml"
FRIDAY_LATE_UTC = "2026-11-20T15:00:00+0000"  # Saturday 00:00 in Tokyo
DOCUMENTED = {"playbook", "version", "customer", "start", "end", "outcome", "timeline"}
FIELDS = {
    "email": {"to", "subject"},
    "task": {"title", "assignee", "due", "priority"},
    "task_completed": {"outcome"},
    "end": {"outcome"},
    "event": {"name"},
    "milestone": {"name"},
    "wait": {"until"},
}


def simulate(*args: str, **env: str):
    return CliRunner().invoke(
        main, ["simulate", *args, "--root", str(PLAYBOOKS)], env=env or None, catch_exceptions=False
    )


def hoshino_onboarding(*extra: str):
    return simulate(
        "onboarding",
        "--customer",
        str(HOSHINO),
        "--start",
        FRIDAY_LATE_UTC,
        "--event",
        "4@10:00 integration.connected source=salesforce",
        "--complete-task",
        "kickoff@3:held",
        *extra,
    )


@pytest.fixture
def captured(monkeypatch) -> list[Timeline]:
    """The timelines the CLI computed (the real Simulator.run, recorded)."""
    timelines: list[Timeline] = []
    original = Simulator.run

    async def run(self, *args, **kwargs):
        timeline = await original(self, *args, **kwargs)
        timelines.append(timeline)
        return timeline

    monkeypatch.setattr(Simulator, "run", run)
    return timelines


# -- 6. JSON ------------------------------------------------------------------------------
def test_json_output_has_the_documented_shape():
    result = hoshino_onboarding("--format", "json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)

    assert DOCUMENTED <= set(data) <= DOCUMENTED | {"warnings"}
    assert (data["playbook"], data["customer"], data["outcome"]) == (
        "onboarding",
        "hoshino-logistics",
        "completed",
    )
    assert re.fullmatch(r"[0-9a-f]{12,}", data["version"])
    assert data["start"] == "2026-11-21T00:00:00+09:00"
    assert datetime.fromisoformat(data["end"]).utcoffset() == timedelta(hours=9)

    timeline = data["timeline"]
    kinds = {e["kind"] for e in timeline}
    assert {"wait", "email", "task", "task_completed", "event", "milestone", "end"} <= kinds
    previous = None
    for entry in timeline:
        assert entry["kind"] in KINDS, entry
        assert isinstance(entry["step"], str) and entry["step"], entry
        assert isinstance(entry["day"], int), entry
        assert re.search(r"\+09:00$", entry["at"]), entry
        at = datetime.fromisoformat(entry["at"])
        assert entry["day"] == (at - datetime.fromisoformat(data["start"])).days, entry
        assert previous is None or at >= previous, "time order"
        previous = at
        missing = FIELDS.get(entry["kind"], set()) - set(entry)
        assert not missing, (missing, entry)
        for name in ("due", "until"):
            if name in entry:
                assert datetime.fromisoformat(entry[name]).utcoffset() == timedelta(hours=9)
    email = next(e for e in timeline if e["kind"] == "email")
    assert email["to"] == [
        "takeshi.mori@hoshino-logistics.example",
        "haruka.ito@hoshino-logistics.example",
    ]
    assert email["at"].startswith("2026-11-23T09:00")
    task = next(e for e in timeline if e["kind"] == "task")
    assert task["assignee"] == "aiko.tanaka@acme.example"
    assert task["priority"] == "high"
    event = next(e for e in timeline if e["kind"] == "event")
    assert event["name"] == "integration.connected"
    assert event["at"].startswith("2026-11-25T10:00")
    assert timeline[-1]["kind"] == "end"
    assert timeline[-1]["outcome"] == "completed"
    assert "emails" not in data, "rendered bodies are for --html, not the JSON"


# -- 7. HTML ------------------------------------------------------------------------------
def test_html_page_shows_every_email_and_renders_in_chromium(tmp_path, captured):
    page = tmp_path / "timeline.html"
    result = hoshino_onboarding("--html", str(page))
    assert result.exit_code == 0, result.output
    text = page.read_text(encoding="utf-8")

    [timeline] = captured
    sent = [e for e in timeline.emails if e.status == "captured"]
    assert len(sent) >= 6, "welcome, invite_team and check_in, to two contacts each"
    frames = [html.unescape(raw) for raw in re.findall(r'srcdoc="([^"]*)"', text)]
    texts = [html.unescape(raw).strip() for raw in re.findall(r"<pre>(.*?)</pre>", text, re.S)]
    for email in sent:
        assert html.escape(email.subject, quote=False) in text, email.subject
        assert email.html and "{{" not in email.html
        assert email.html in frames, f"{email.step} to {email.to}: body not in an iframe srcdoc"
        assert email.text and email.text.strip() in texts, f"{email.step}: text body missing"
    assert "Hi Takeshi" in "".join(frames) and "Hi Haruka" in "".join(frames)

    chromium = shutil.which("chromium")
    if chromium is None:
        pytest.skip("Debian chromium is not installed (CI installs it)")
    png = tmp_path / "page.png"
    subprocess.run(
        [
            chromium,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            f"--user-data-dir={tmp_path / 'profile'}",
            f"--screenshot={png}",
            "--window-size=1280,2000",
            page.as_uri(),
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )
    data = png.read_bytes()
    assert data.startswith(b"\x89PNG\r\n\x1a\n") and len(data) > 1000


# -- 8. bad input -------------------------------------------------------------------------
def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "customer.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_wrong_field_type_in_the_customer_file_is_located(tmp_path):
    path = write(tmp_path, "id: globex\nname: Globex\ntimezone: Asia/Tokyo\nhealth_score: high\n")
    result = simulate("onboarding", "--customer", str(path))
    assert result.exit_code == 2
    assert re.search(rf"^{re.escape(str(path))}:4:\d+: .*health_score", result.stderr, re.M), (
        result.stderr
    )
    assert "Traceback" not in result.output


def test_unknown_key_in_the_customer_file_is_located(tmp_path):
    path = write(tmp_path, "id: globex\nname: Globex\nhelth_score: 50\n")
    result = simulate("onboarding", "--customer", str(path))
    assert result.exit_code == 2
    assert re.search(rf"^{re.escape(str(path))}:3:1: .*helth_score", result.stderr, re.M), (
        result.stderr
    )
    assert "health_score" in result.stderr, "suggests the right key"


def test_unknown_time_zone_in_the_customer_file_is_located(tmp_path):
    path = write(tmp_path, "id: globex\nname: Globex\ntimezone: Mars/Olympus\n")
    result = simulate("onboarding", "--customer", str(path))
    assert result.exit_code == 2
    assert re.search(rf"^{re.escape(str(path))}:3:\d+: .*Mars/Olympus", result.stderr, re.M), (
        result.stderr
    )


@pytest.mark.parametrize(
    ("option", "spec"),
    [
        ("--event", "tomorrow integration.connected"),
        ("--event", "3@25:99 integration.connected"),
        ("--event", "3 integration.connected source"),
        ("--complete-task", "kickoff:held"),
    ],
)
def test_malformed_event_or_completion_spec_is_rejected(option, spec):
    result = simulate("onboarding", "--customer", str(HOSHINO), option, spec)
    assert result.exit_code == 2, result.output
    assert option in result.stderr and spec in result.stderr, result.stderr
    assert "Traceback" not in result.output


def test_completing_a_step_without_an_open_task_warns_and_carries_on():
    result = simulate(
        "onboarding",
        "--customer",
        str(HOSHINO),
        "--start",
        FRIDAY_LATE_UTC,
        "--days",
        "3",
        "--complete-task",
        "integration_help@1",
    )
    assert result.exit_code == 0, result.output
    assert re.search(r"warning: .*integration_help.*no open task", result.stdout), result.stdout
    assert "welcome" in result.stdout


@pytest.mark.parametrize("days", ["0", "-3", "401"])
def test_days_out_of_range_is_rejected(days):
    result = simulate("onboarding", "--customer", str(HOSHINO), "--days", days)
    assert result.exit_code == 2
    assert "--days" in result.stderr


# -- 9. isolation -------------------------------------------------------------------------
def test_nothing_leaves_the_process(tmp_path, monkeypatch, sendgrid):
    from activities.mailer import SendGridMailer
    from engine import settings

    real_db = tmp_path / "real.db"
    home = tmp_path / "home"
    for name, value in {
        "SENDGRID_API_KEY": sendgrid.api_key,
        "SENDGRID_HOST": sendgrid.url,
        "DATABASE_URL": f"sqlite:///{real_db}",
        "PLAYBOOK_HOME": str(home),
    }.items():
        monkeypatch.setenv(name, value)
    settings._cached_settings.cache_clear()
    monkeypatch.chdir(tmp_path)  # no .env from the repository, no ./.playbook by accident

    sends: list[object] = []
    monkeypatch.setattr(SendGridMailer, "send", lambda self, email: sends.append(email))
    try:
        result = hoshino_onboarding("--format", "json")
    finally:
        settings._cached_settings.cache_clear()

    assert result.exit_code == 0, result.output
    emails = [e for e in json.loads(result.stdout)["timeline"] if e["kind"] == "email"]
    assert emails and all("(captured)" in e["detail"] for e in emails)
    assert sends == []
    assert sendgrid.requests == [] and sendgrid.rejected == []
    if real_db.exists():
        with sqlite3.connect(real_db) as db:
            tables = [r[0] for r in db.execute("select name from sqlite_master where type='table'")]
            assert all(db.execute(f'select count(*) from "{t}"').fetchone()[0] == 0 for t in tables)


# -- 10. every fixture --------------------------------------------------------------------
def test_all_fixtures_simulates_every_playbook_for_every_example_customer():
    result = simulate("--all-fixtures")  # not a terminal: nothing is cut to fit 80 columns
    assert result.exit_code == 0, result.output
    assert "…" not in result.stdout, result.stdout
    playbooks = sorted(
        p.stem
        for p in PLAYBOOKS.glob("*.yaml")
        if p.stem not in ("milestones", "policies", "health")
    )
    customers = sorted(p.stem for p in EXAMPLES.glob("*.yaml") if p.stem != "team")
    assert playbooks == ["adoption", "onboarding", "qbr", "renewal", "risk"]
    assert len(customers) >= 4
    rows = [line for line in result.stdout.splitlines() if line.startswith("│")]
    assert len(rows) == len(playbooks) * len(customers), result.stdout
    for playbook in playbooks:
        for customer in customers:
            assert any(re.search(rf"│ {playbook}\s+│ {customer}\s+│ \w+", row) for row in rows), (
                playbook,
                customer,
                result.stdout,
            )


def test_all_fixtures_as_json_gives_one_summary_per_run():
    result = simulate("--all-fixtures", "--format", "json")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    customers = sorted(p.stem for p in EXAMPLES.glob("*.yaml") if p.stem != "team")
    assert summary["failed"] is False
    assert len(summary["runs"]) == 5 * len(customers)
    for run in summary["runs"]:
        assert set(run) == {"playbook", "customer", "outcome", "days", "emails", "tasks"} | {
            "problems"
        }
        assert run["customer"] in customers and isinstance(run["problems"], list)
    outcomes = {run["outcome"] for run in summary["runs"]}
    assert all(" " not in outcome and outcome.strip() for outcome in outcomes), outcomes


# -- 11. a year of renewal ----------------------------------------------------------------
def test_a_year_of_renewal_for_a_healthy_customer_completes():
    result = simulate("renewal", "--customer", str(THORNBURY), "--days", "365", "--format", "json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["outcome"] != "running", data.get("warnings")
    assert data["timeline"][-1]["kind"] in ("end", "goal", "exit")
