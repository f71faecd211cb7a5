"""Polling until a condition holds: the one way the tests wait for real-time effects.

`eventually` is for async tests (its check may be sync or async); `wait_until` is its twin
for the synchronous browser tests, which cannot await. Both return the first truthy value
and fail with ``what`` (and, when given, what ``context()`` says) once ``timeout`` passes.
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

T = TypeVar("T")


def _timed_out(timeout: float, what: str, context: Callable[[], object] | None) -> AssertionError:
    extra = f"; {context()}" if context else ""
    return AssertionError(f"timed out after {timeout} s waiting for {what}{extra}")


async def eventually(
    check: Callable[[], Any | Awaitable[Any]],
    timeout: float = 15.0,
    *,
    what: str = "condition",
    interval: float = 0.1,
    context: Callable[[], object] | None = None,
) -> Any:
    """Poll ``check()`` (sync or async) until it returns something truthy; return that."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if inspect.isawaitable(value):
            value = await value
        if value:
            return value
        if time.monotonic() > deadline:
            raise _timed_out(timeout, what, context)
        await asyncio.sleep(interval)


def wait_until(
    check: Callable[[], T],
    timeout: float = 45,
    what: str = "condition",
    context: Callable[[], object] | None = None,
    interval: float = 0.2,
) -> T:
    """Poll ``check`` until it returns something truthy; fail after ``timeout`` seconds.

    ``context`` is called on failure and its result added to the message (e.g. the
    enrollment's status), so a timeout says where things stood.
    """
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise _timed_out(timeout, what, context)
        time.sleep(interval)
