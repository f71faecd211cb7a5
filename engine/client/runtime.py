"""The Temporal core runtime in a short-lived process (a CLI command), and leaving it cleanly.

The SDK's core runs on native (Rust/tokio) threads that call back into Python to complete
each request: with the GIL they schedule the result on the event loop, and writing to the
loop's wake-up socket releases the GIL for a moment. If the main thread takes it then, it
can finish the command and start finalizing the interpreter before the native thread is
back; that thread then cannot re-take the GIL and the process aborts with "Fatal Python
error: PyGILState_Release: thread state ... must be current when releasing" (exit 134).
Under load this hit one run in a few (temporalio/sdk-python#300).

So a command waits for the core's threads to leave Python (`settle_core_threads`) before
it returns, and a client that lives for one command gets a runtime of its own
(`short_lived_runtime`) that is dropped, and its threads joined, once the client is gone.
"""

from __future__ import annotations

import os
import sys
import threading
import time

from temporalio.runtime import LoggingConfig, Runtime, TelemetryConfig, TelemetryFilter


def short_lived_runtime() -> Runtime:
    """A runtime for one command's client: errors-only logs, no metrics, no heartbeats.

    Drop every reference to it (and to clients made on it) once done: the runtime then
    shuts down and joins its threads, so none is left running at interpreter exit. Call
    `settle_core_threads` first, or the join can wait on a thread that waits for the GIL.
    """
    return Runtime(
        telemetry=TelemetryConfig(
            logging=LoggingConfig(filter=TelemetryFilter(core_level="ERROR", other_level="ERROR"))
        ),
        worker_heartbeat_interval=None,
    )


def settle_core_threads(timeout: float = 2.0) -> bool:
    """Wait until no native (non-`threading`) thread is running the core's Python callbacks.

    Such a thread is the core completing a request; sleeping releases the GIL so it can
    finish. Returns False if one was still in Python after `timeout` seconds.
    """
    deadline = time.monotonic() + timeout
    while True:
        if not _core_threads_in_python():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.001)


def _core_threads_in_python() -> bool:
    """Whether a thread that `threading` does not know is inside a core callback.

    Only a thread whose outermost frame is asyncio's or the SDK's counts: the core enters
    Python only to hand a result to the event loop. Threads a library started with
    `_thread` (pytest-xdist's execnet, a debugger) also escape `threading.enumerate()` but
    sit in Python for good: counting them made every command in such a process wait the
    whole timeout (2 s a command under `pytest -n 2`).
    """
    ours = {t.ident for t in threading.enumerate()}
    for ident, frame in sys._current_frames().items():
        if ident in ours:
            continue
        while frame.f_back is not None:
            frame = frame.f_back
        if any(part in frame.f_code.co_filename for part in _CORE_CALLBACK_PACKAGES):
            return True
    return False


_CORE_CALLBACK_PACKAGES = (f"{os.sep}asyncio{os.sep}", f"{os.sep}temporalio{os.sep}")
