"""The worker process the reliability tests start, SIGKILL and restart.

    python -m tests.reliability.worker_main     (from the repository root)

It is `worker.run_worker` with settings from the environment (``DATABASE_URL``,
``TEMPORAL_ADDRESS``, ``TEMPORAL_TASK_QUEUE``, ``SENDGRID_API_KEY``, ``SENDGRID_HOST``,
``PLAYBOOK_HOME``...), exactly what ``playbook worker`` runs in production.

One test-only hook, honoured by this script and nowhere in the engine:
``RELIABILITY_HOLD_AFTER_SEND=<seconds>`` wraps the mail provider so that, after SendGrid
accepted a message, the worker appends a line to ``RELIABILITY_SENT_MARKER`` and then sleeps
before returning to the activity: the window between "the provider accepted the email" and
"the activity completed" in which the test kills the process.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from pathlib import Path

import worker
from activities.mailer import Mailer, OutgoingEmail
from engine.settings import load_settings

HOLD_ENV = "RELIABILITY_HOLD_AFTER_SEND"
MARKER_ENV = "RELIABILITY_SENT_MARKER"


class HoldAfterSend:
    """The real mailer, then a marker line and a pause: the process is killed in the pause."""

    def __init__(self, inner: Mailer, seconds: float, marker: Path) -> None:
        self.inner = inner
        self.name = inner.name
        self.seconds = seconds
        self.marker = marker

    def send(self, email: OutgoingEmail) -> str | None:
        message_id = self.inner.send(email)
        with self.marker.open("a", encoding="utf-8") as handle:
            handle.write(f"{email.custom_args.get('outbox_key')} {message_id}\n")
        time.sleep(self.seconds)
        return message_id


def main() -> None:
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(message)s")
    hold = float(os.environ.get(HOLD_ENV) or 0)
    if hold:
        marker = Path(os.environ[MARKER_ENV])
        build_mailer = worker.mailer_from_settings

        def held(api_key: str | None, host: str) -> Mailer:
            return HoldAfterSend(build_mailer(api_key, host), hold, marker)

        worker.mailer_from_settings = held  # type: ignore[assignment]
    asyncio.run(worker.run_worker(load_settings()))


if __name__ == "__main__":
    main()
