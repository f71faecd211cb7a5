"""What every activity class shares: the store's session factory and the customer lookup."""

from __future__ import annotations

from sqlalchemy.orm import Session, sessionmaker
from temporalio.client import Client
from temporalio.exceptions import ApplicationError

from engine.client.changes import ChangeTarget
from engine.errors import ErrorType
from engine.store import repository
from engine.store.models import Customer


class StoreActivities:
    """Base of the activity classes: each reads and writes the store through ``sessions``.

    Activities are bound methods, so the worker registers the callables of one instance;
    the simulator points that instance at a fresh store per run by replacing ``sessions``.
    """

    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self.sessions = sessions


class EnrollingActivities(StoreActivities):
    """Base of the activity classes that start enrollments (the trigger sweep, the health
    recompute): they also need the Temporal client and the task queue to start them on."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        client: Client,
        task_queue: str,
        use_search_attributes: bool = True,
    ) -> None:
        super().__init__(sessions)
        self.client = client
        self.task_queue = task_queue
        self.use_search_attributes = use_search_attributes

    @property
    def change_target(self) -> ChangeTarget:
        """Where the changes these activities make go; built on each use, since the
        simulator replaces ``sessions`` between runs."""
        return ChangeTarget(self.client, self.sessions, self.task_queue, self.use_search_attributes)


def require_customer(session: Session, customer_id: str) -> Customer:
    """The customer, or a non-retryable failure: no retry makes a missing customer appear."""
    customer = repository.get_customer(session, customer_id)
    if customer is None:
        raise ApplicationError(
            f"customer {customer_id} not found",
            type=ErrorType.CUSTOMER_NOT_FOUND,
            non_retryable=True,
        )
    return customer
