"""The uvicorn server for the app, with the connection limits of the settings.

uvicorn's defaults leave a server open to slow and greedy clients: no limit on concurrent
connections, and no deadline for a request's head, so a client sending one header byte
every few seconds keeps its connection for ever (uvicorn's keep-alive timer is cancelled
by every byte received). `server_config` sets:

- ``limit_concurrency`` (``HTTP_LIMIT_CONCURRENCY``): connections plus requests in
  flight; past it a request is answered 503 at once;
- ``timeout_keep_alive`` (``HTTP_KEEP_ALIVE_TIMEOUT``): how long an idle connection stays;
- ``h11_max_incomplete_event_size`` (``HTTP_MAX_HEADER_BYTES``): the largest request line
  plus headers (400 past it);
- a request-head deadline (``HTTP_HEADER_TIMEOUT``), which uvicorn lacks: the h11 protocol
  below closes a connection whose request line and headers are not complete in time.

Body size and body time are the app's (`engine.api.limits`). Behind a proxy, the proxy's
own limits apply first: see docs/deploy.md, "Limits".
"""

from __future__ import annotations

import asyncio
from typing import Any

import h11
import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol

from engine.settings import Settings


class HeadTimeoutH11Protocol(H11Protocol):
    """uvicorn's h11 protocol, closing connections whose request head comes too slowly.

    The deadline starts when the connection opens and again when a response completes
    (the next request on a keep-alive connection); it is cancelled once h11 has parsed a
    whole request head.
    """

    head_timeout: float = 10.0

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._head_deadline: asyncio.TimerHandle | None = None
        self._arm_head_deadline()

    def _arm_head_deadline(self) -> None:
        self._cancel_head_deadline()
        self._head_deadline = self.loop.call_later(self.head_timeout, self._head_too_slow)

    def _cancel_head_deadline(self) -> None:
        deadline = getattr(self, "_head_deadline", None)
        if deadline is not None:
            deadline.cancel()
            self._head_deadline = None

    def _head_too_slow(self) -> None:
        self._head_deadline = None
        if self.conn.their_state is h11.IDLE and not self.transport.is_closing():
            self.logger.info("closing a connection: no complete request head in time")
            self.transport.close()

    def handle_events(self) -> None:
        super().handle_events()
        if self.conn.their_state is not h11.IDLE:
            self._cancel_head_deadline()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing() and self.conn.their_state is h11.IDLE:
            self._arm_head_deadline()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_head_deadline()
        super().connection_lost(exc)


def protocol_class(head_timeout: float) -> type[HeadTimeoutH11Protocol]:
    """The h11 protocol with this request-head deadline, in seconds."""
    return type("HeadTimeoutH11Protocol", (HeadTimeoutH11Protocol,), {"head_timeout": head_timeout})


def server_config(
    app: Any, settings: Settings, host: str, port: int, **extra: Any
) -> uvicorn.Config:
    """A uvicorn config for ``app`` with the limits of ``settings``; ``extra`` goes to uvicorn."""
    return uvicorn.Config(
        app,
        host=host,
        port=port,
        http=protocol_class(settings.http_header_timeout),
        limit_concurrency=settings.http_limit_concurrency,
        timeout_keep_alive=settings.http_keep_alive_timeout,
        h11_max_incomplete_event_size=settings.http_max_header_bytes,
        **extra,
    )
