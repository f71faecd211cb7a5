"""Operator commands leave the process cleanly: run as real processes against the session's
dev server, `playbook status` (which asks the workflow) exits 0 every time and leaves no
Temporal core thread running when the interpreter finalizes.

A native thread still running Python code at exit aborted the process with "Fatal Python
error: PyGILState_Release" (exit 134) in about one run in fifteen under load; each command
waits for the core's threads to leave Python (`settle_core_threads`), and only for them.
"""

from __future__ import annotations

import _thread
import asyncio
import os
import sys
import time
from pathlib import Path

import pytest

from engine.client.runtime import settle_core_threads
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


def test_settling_waits_for_core_callbacks_not_for_other_untracked_threads() -> None:
    """A thread `threading` does not know that is inside event-loop code (as a core thread
    handing back a result is) holds `settle_core_threads`; one that other code started with
    `_thread` and that stays in Python (pytest-xdist's execnet does) does not: each in-process
    command under `pytest -n 2` used to wait the whole 2 s timeout for it."""
    entered, release = _thread.allocate_lock(), _thread.allocate_lock()
    entered.acquire()
    release.acquire()

    def park() -> None:
        entered.release()
        release.acquire()  # in Python, in this module, until the test ends
        release.release()

    _thread.start_new_thread(park, ())
    entered.acquire()
    began = time.monotonic()
    assert settle_core_threads(timeout=2.0)
    assert time.monotonic() - began < 1.0

    # An event loop run by a thread `threading` never hears of (the outermost frame is
    # asyncio's, as in a core callback); `asyncio.run` would register the thread.
    loop = asyncio.new_event_loop()
    release.release()
    _thread.start_new_thread(loop.run_forever, ())
    loop.call_soon_threadsafe(entered.release)
    entered.acquire()
    try:
        assert not settle_core_threads(timeout=0.3)
    finally:
        loop.call_soon_threadsafe(loop.stop)
    assert settle_core_threads(timeout=2.0)  # once the loop has stopped
    loop.close()
