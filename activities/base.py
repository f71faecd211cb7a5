"""What every activity class shares: the store's session factory and the customer lookup."""

from __future__ import annotations

from sqlalchemy.orm import Session, sessionmaker
from temporalio.exceptions import ApplicationError

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
