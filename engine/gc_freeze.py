"""Keep a long-running process's start-up objects out of Python's garbage collector.

A worker or API process imports temporalio, pydantic, SQLAlchemy, FastAPI and the engine,
and builds their schemas and validators: about 190,000 objects that live as long as the
process. Python's oldest-generation collection walks every one of them each time it runs,
and while it runs no thread of the process moves. Measured in a benchmark worker, each such
collection stopped the process for 88 to 125 ms, three times in a 20-second run: an event
that arrived just then waited that long for its email, which alone could set the p99 of
event -> email latency (bench/RESULTS.md, "Eager starts and collector pauses").

`freeze_startup_objects`, called once a process has finished starting, collects what is
garbage by then and moves everything left into the collector's permanent generation
(`gc.freeze`), which later collections skip. Frozen objects are never freed by the cyclic
collector (reference counting still frees them); that is what start-up objects are. Work
done later (workflow instances, requests) is collected as before.
"""

from __future__ import annotations

import gc
import logging

log = logging.getLogger(__name__)


def freeze_startup_objects() -> int:
    """Collect, then freeze every object alive now; returns how many are frozen in all."""
    gc.collect()
    gc.freeze()
    frozen = gc.get_freeze_count()
    log.debug("froze %d start-up objects out of the garbage collector's scans", frozen)
    return frozen
