"""`PlaybookActivities`: every activity `PlaybookWorkflow` calls, built over one store.

The worker, the benchmark's worker, the simulator and the tests all register
``PlaybookActivities(...).all()``, so they run the same set. The trigger sweep
(`activities/sweep.py`) needs a Temporal client and is registered beside it by `worker.py`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Unpack

from sqlalchemy.orm import Session, sessionmaker
from temporalio.client import Client

from activities.base import StoreActivities
from activities.customers import CustomerActivities, Enroller
from activities.decisions import DecisionActivities
from activities.email import EmailActivities, EmailOptions
from activities.mailer import Mailer
from activities.notifications import NotifyActivities
from activities.notifier import Notifier
from activities.tasks import TaskActivities
from engine.language.health import Scorecard


class PlaybookActivities:
    """The activity classes, one per effect, bound to one store, mail provider and enroller."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        mailer: Mailer | None = None,
        *,
        enroller: Enroller | None = None,
        notifier: Notifier | None = None,
        endpoints: dict[str, str] | None = None,
        client: Client | None = None,
        task_queue: str | None = None,
        use_search_attributes: bool = True,
        scorecard: Scorecard | None = None,
        **email: Unpack[EmailOptions],
    ) -> None:
        self.decisions = DecisionActivities(sessions)
        self.email = EmailActivities(sessions, mailer, **email)
        self.tasks = TaskActivities(sessions)
        # With a client, `update` steps emit their changes (engine/client/changes.py); with
        # the scorecard, they recompute health.
        self.customers = CustomerActivities(
            sessions, enroller, client, task_queue, use_search_attributes, scorecard
        )
        # No notifier (the simulator, tests): notify and webhook steps are captured.
        self.notify = NotifyActivities(sessions, notifier, endpoints)

    def _groups(self) -> tuple[StoreActivities, ...]:
        return (self.decisions, self.email, self.tasks, self.customers, self.notify)

    @property
    def sessions(self) -> sessionmaker[Session]:
        """The session factory every group uses."""
        return self.decisions.sessions

    @sessions.setter
    def sessions(self, sessions: sessionmaker[Session]) -> None:
        # The registered callables are bound methods: repointing the groups moves them all.
        for group in self._groups():
            group.sessions = sessions

    def all(self) -> list[Callable[..., Any]]:
        """Every activity, for `Worker(activities=...)`."""
        return [
            self.decisions.decide,
            self.decisions.check_milestone,
            self.decisions.record_enrollment,
            self.email.send_email,
            self.tasks.create_task,
            self.tasks.close_task,
            self.notify.notify,
            self.tasks.escalate_task,
            self.customers.update_customer,
            self.customers.enroll_customer,
        ]
