"""Bad input 8: fuzz the loader and compiler; no traceback, no hang, no memory blow-up.

The fuzzing runs in child processes (tests/reliability/fuzz_loader.py) under RLIMIT_AS
(2 GiB) and a per-input alarm (10 s), so a blow-up fails the test instead of the machine.
Default: 2,000 inputs; RELIABILITY_LONG=1: 100,000 (two processes of 50,000, one per core).
tests/language/test_loader_fuzz.py keeps a small, fast version in the ordinary suite.
"""

from __future__ import annotations

import json
import subprocess
import sys

from tests.helpers.paths import REPO
from tests.helpers.reliability import LONG

INPUTS = 100_000 if LONG else 2_000
PROCESSES = 2 if LONG else 1


def test_loader_fuzz_no_traceback_no_hang_no_blow_up(figures):
    share = INPUTS // PROCESSES
    children = [
        subprocess.Popen(
            [sys.executable, "-m", "tests.reliability.fuzz_loader", str(share), str(1000 + seed)],
            cwd=str(REPO),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for seed in range(PROCESSES)
    ]
    reports = []
    for child in children:
        out, err = child.communicate(timeout=1500)
        lines = out.strip().splitlines()
        report = json.loads(lines[-1]) if lines else {"failed": "no output"}
        assert child.returncode == 0 and "failed" not in report, (report, err[-3000:])
        reports.append(report)

    fuzzed = sum(r["inputs"] for r in reports)
    assert fuzzed >= INPUTS
    figures.update(
        inputs_fuzzed=fuzzed,
        compiled=sum(r["plans"] for r in reports),
        rejected_with_diagnostics=sum(r["rejected"] for r in reports),
        tracebacks=0,
        slowest_input_seconds=max(r["slowest_seconds"] for r in reports),
        peak_rss_mb=max(r["peak_rss_mb"] for r in reports),
        largest_input_bytes=max(r["largest_input"] for r in reports),
    )
