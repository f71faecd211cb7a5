"""Heartbeats for the sync effect activities, sent from a side thread while they run.

Effect activities heartbeat every `HEARTBEAT_EVERY` seconds; the workflow gives them a
heartbeat timeout of a few times that. (Reliability suite: a SIGKILLed worker sends no
failure, so without heartbeats its in-flight emails and tasks were retried only when their
start-to-close timeout of 1-2 minutes ran out; now within seconds.)
"""

from __future__ import annotations

import contextvars
import functools
import threading
from collections.abc import Callable
from typing import ParamSpec, TypeVar

from temporalio import activity

HEARTBEAT_EVERY = 2.0
_P = ParamSpec("_P")
_R = TypeVar("_R")


def heartbeating(func: Callable[_P, _R]) -> Callable[_P, _R]:
    """Run a sync activity while a side thread heartbeats, however long a call blocks."""

    @functools.wraps(func)
    def wrapper(*args: _P.args, **kwargs: _P.kwargs) -> _R:
        if not activity.in_activity():
            return func(*args, **kwargs)
        stop = threading.Event()
        context = contextvars.copy_context()  # the activity context, for activity.heartbeat

        def beat() -> None:
            while not stop.wait(HEARTBEAT_EVERY):
                try:
                    context.run(activity.heartbeat)
                except Exception:  # the activity is ending; nothing left to keep alive
                    return

        thread = threading.Thread(target=beat, name="activity-heartbeat", daemon=True)
        thread.start()
        try:
            return func(*args, **kwargs)
        finally:
            stop.set()
            thread.join()

    return wrapper
