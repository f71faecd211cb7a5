"""A local stand-in for webhook receivers (Slack incoming webhooks, a CRM, a ticketing tool).

It records every POST (path, headers, body) and answers 200, or, queued with `fail_next`,
an error status first, so tests see retries. Usage::

    with WebhookStandIn() as hooks:
        post_something(f"{hooks.url}/slack")
        [request] = hooks.requests
"""

from __future__ import annotations

import json
import threading
from collections import deque
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any


@dataclass(frozen=True)
class Received:
    path: str
    headers: dict[str, str]
    body: bytes

    @property
    def json(self) -> Any:
        return json.loads(self.body)


class WebhookStandIn:
    """An HTTP server on 127.0.0.1 with a free port, in a background thread."""

    def __init__(self) -> None:
        self.requests: list[Received] = []
        self.failures: deque[int] = deque()
        self.attempts = 0
        standin = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                standin.attempts += 1
                if standin.failures:
                    self.send_response(standin.failures.popleft())
                    self.end_headers()
                    return
                standin.requests.append(Received(self.path, dict(self.headers), body))
                self.send_response(200)
                self.send_header("Content-Type", "text/plain")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, format: str, *args: Any) -> None:
                return None

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def fail_next(self, *statuses: int) -> None:
        """Answer the next requests with these statuses (and record nothing for them)."""
        self.failures.extend(statuses)

    def at(self, path: str) -> list[Received]:
        return [r for r in self.requests if r.path == path]

    def __enter__(self) -> WebhookStandIn:
        self.thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.server.shutdown()
        self.server.server_close()
