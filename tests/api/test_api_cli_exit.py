"""Operator commands leave the process cleanly: run as real processes against the session's
dev server, `playbook status` (which asks the workflow) exits 0 every time and leaves no
Temporal core thread running when the interpreter finalizes.

A native thread still running Python code at exit aborted the process with "Fatal Python
error: PyGILState_Release" (exit 134) in about one run in fifteen under load.
"""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

import pytest

from engine.services import Services
from tests.api.test_api_cli import playbook

# Runs the CLI, then reports how many threads the process still has (Linux: /proc).
THREADS_AFTER = """
import os, sys
from engine.cli import main
try:
    main(sys.argv[1:], standalone_mode=False)
finally:
    print(f"threads={len(os.listdir('/proc/self/task'))}", file=sys.stderr)
"""


def _env(services: Services) -> dict[str, str]:
    settings = services.settings
    secret = settings.signing_secret.get_secret_value()
    return {
        **os.environ,
        "PLAYBOOK_HOME": str(settings.playbook_home),
        "DATABASE_URL": settings.database_url,
        "TEMPORAL_ADDRESS": settings.temporal_address,
        "TEMPORAL_NAMESPACE": settings.temporal_namespace,
        "TEMPORAL_TASK_QUEUE": settings.temporal_task_queue,
        "SIGNING_SECRET": secret,
    }


async def _run(env: dict[str, str], *args: str) -> tuple[int, str, str]:
    """Run a process; the event loop keeps the session's worker answering meanwhile."""
    proc = await asyncio.create_subprocess_exec(
        *args,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        cwd=Path(__file__).parent,
    )
    out, err = await proc.communicate()
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="counts threads in /proc")
async def test_status_exits_cleanly_every_time(services: Services, customer: str) -> None:
    root = str(services.project.root)
    enrolled = await playbook(
        services, "enroll", "probe_twice", "--customer", customer, "--root", root
    )
    assert enrolled.exit_code == 0, enrolled.output
    env = _env(services)
    status = ("status", "--playbook", "probe_twice", "--customer", customer)

    code, out, err = await _run(env, sys.executable, "-c", THREADS_AFTER, *status)
    assert code == 0, err
    assert "(asked Temporal)" in out
    assert "threads=1" in err, f"Temporal core threads left running at exit: {err}"

    # Several at once, as a loaded machine runs them: each exits 0 without a fatal error.
    playbook_bin = str(Path(sys.executable).with_name("playbook"))
    for _ in range(3):
        runs = await asyncio.gather(*(_run(env, playbook_bin, *status) for _ in range(3)))
        for code, out, err in runs:
            assert "Fatal Python error" not in err, err
            assert code == 0, err
            assert f"probe_twice/{customer}" in out
