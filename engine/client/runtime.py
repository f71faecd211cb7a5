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
    """Wait until no native (non-`threading`) thread is running Python code.

    Such a thread is the core completing a request; sleeping releases the GIL so it can
    finish. Returns False if one was still in Python after `timeout` seconds.
    """
    deadline = time.monotonic() + timeout
    while True:
        ours = {t.ident for t in threading.enumerate()}
        if not set(sys._current_frames()) - ours:
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.001)
