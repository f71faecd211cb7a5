"""`playbook simulate` on a playbook whose templates blow their render budget: no traceback,
each failed email names its step, its template and the line."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

from click.testing import CliRunner

from engine.cli import main
from tests.helpers.paths import EXAMPLES
from tests.language.test_render_budgets import PAYLOADS


def test_simulate_reports_each_payload_cleanly(tmp_path: Path) -> None:
    (tmp_path / "examples").mkdir()
    shutil.copy(EXAMPLES / "hoshino-logistics.yaml", tmp_path / "examples")
    steps = "".join(
        f"""\
  - id: {name}
    email:
      to: contact.role == "admin"
      subject: "Hello"
      body: |
        <p>Hi</p>
        {payload.replace('"', "'")}
      send_window: anytime
"""
        for name, (payload, _) in PAYLOADS.items()
    )
    (tmp_path / "probe.yaml").write_text(
        f"playbook: probe\nname: Probe\ntrigger: {{manual: true}}\nsteps:\n{steps}"
        "  - id: done\n    end: {outcome: ok}\n"
    )
    started = time.perf_counter()
    result = CliRunner().invoke(
        main,
        [
            "simulate",
            "probe",
            "--root",
            str(tmp_path),
            "--format",
            "json",
            "--customer",
            str(tmp_path / "examples" / "hoshino-logistics.yaml"),
        ],
    )
    assert time.perf_counter() - started < 120
    assert result.exception is None, result.output
    assert result.exit_code == 0, result.output
    assert "Traceback" not in result.output
    for name, (_, reason) in PAYLOADS.items():
        assert f"inline/{name}.html: line 2: " in result.output, name
        assert reason in result.output, name
