"""``playbook report``: a table per section, ``--format json`` and ``--csv``."""

from __future__ import annotations

import csv
import io
import json

from click.testing import CliRunner, Result

from engine.cli import main
from engine.settings import settings_override


def playbook(url: str, *args: str) -> Result:
    with settings_override(database_url=url):
        return CliRunner().invoke(main, list(args), catch_exceptions=False)


def test_report_in_the_terminal_as_table_json_and_csv(known_url: str) -> None:
    table = playbook(known_url, "report", "tasks", "--segment", "tasks")
    assert table.exit_code == 0, table.output
    assert "Task performance: Per CSM" in table.output
    assert "x@cs.example" in table.output and "50.0%" in table.output

    as_json = playbook(known_url, "report", "funnel", "--playbook", "onb", "--since",
                       "2026-04-01", "--format", "json")  # fmt: skip
    assert as_json.exit_code == 0, as_json.output
    [funnel] = json.loads(as_json.output)["tables"]
    assert [r["reached"]["value"] for r in funnel["rows"]] == [6, 5, 3, 2]

    as_csv = playbook(known_url, "report", "portfolio", "--segment", "pf-red", "--csv")
    rows = list(csv.DictReader(io.StringIO(as_csv.output)))
    assert [(r["table"], r["segment"], r["red"], r["yellow"]) for r in rows][:2] == [
        ("bands", "pf-red", "1", "1"),
        ("bands", "all segments", "1", "1"),
    ]


def test_report_mistakes_are_one_line_errors(known_url: str) -> None:
    wrong = playbook(known_url, "report", "funnel", "--since", "2026-05-01", "--until",
                     "2026-04-01")  # fmt: skip
    assert wrong.exit_code == 1 and "since must not be after until" in wrong.output
    unknown = playbook(known_url, "report", "nonsense")
    assert unknown.exit_code == 2 and "nonsense" in unknown.output


def test_report_page_option_reaches_the_portfolio(known_url: str) -> None:
    # The known renewals fall in June 2026, not within 90 days of today: one empty page,
    # which page 2 falls back to.
    paged = playbook(known_url, "report", "portfolio", "--page", "2", "--format", "json")
    assert paged.exit_code == 0, paged.output
    renewals = next(t for t in json.loads(paged.output)["tables"] if t["key"] == "renewals")
    assert renewals["rows"] == [] and renewals["pager"] is None
    assert json.loads(paged.output)["filters"]["page"] == 2
    assert playbook(known_url, "report", "portfolio", "--page", "0").exit_code == 2
