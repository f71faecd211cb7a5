"""The hand-written baseline's own event endpoint, for the latency scenario's like-for-like row.

The latency goal compares the engine's ``POST /api/events`` -> email with the hand-written
workflow signalled directly (issue 6): that baseline skips what any product must do with an
event before a workflow hears of it (take it over HTTP from a caller holding a token, and
store it once by its id). `create_baseline_api` is that endpoint as a team writing its own
Temporal workflow would put it in front of `bench.baseline`, with the libraries the engine
uses (FastAPI, SQLAlchemy, the temporalio client):

- the bearer token is checked against the store's hashed API tokens (a read);
- the event is stored in the store's ``events`` table, once per id (a repeated id is
  answered ``duplicate`` and signals nothing), in a thread, as blocking database work is
  usually kept off the event loop, and committed before anything else happens;
- the customer's one workflow, whose id the customer id gives (`baseline_id`), is
  signalled with the same `EventSignal` the engine's router sends.

It does nothing else the engine's route does: no batches, no routing by plan, no
milestones, health or triggers, no per-item answers. So the engine against it is the cost
of the engine's ingestion over a hand-written one; the signal-only baseline stays the goal's
reference (bench/README.md, "latency").
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import FastAPI, Header, HTTPException, status
from pydantic import BaseModel, Field
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session, sessionmaker
from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode

from bench.baseline import BaselineWorkflow, baseline_id
from engine.errors import TokenRefused
from engine.messages import EventSignal
from engine.services import tokens
from engine.statuses import EventStatus
from engine.store.models import Event, utcnow


class EventIn(BaseModel):
    """One product event, as the engine's API takes it."""

    id: str = Field(min_length=1, max_length=255)
    customer_id: str = Field(min_length=1, max_length=255)
    name: str = Field(min_length=1, max_length=255)
    at: datetime | None = None
    properties: dict[str, Any] = Field(default_factory=dict)


class EventOut(BaseModel):
    id: str
    status: str  # accepted | duplicate


def create_baseline_api(sessions: sessionmaker[Session], client: Client) -> FastAPI:
    """The endpoint, ``POST /events``, on the store of ``sessions``; see the module."""
    app = FastAPI(title="hand-written baseline events")

    def store(secret: str, event: EventIn, at: datetime) -> bool:
        """Check the token, then store the event; whether it is new (blocking)."""
        with sessions() as session:
            try:
                tokens.check(session, secret)
            except TokenRefused as exc:
                raise HTTPException(status.HTTP_401_UNAUTHORIZED, str(exc)) from None
        with sessions.begin() as session:
            dialect = session.get_bind().dialect.name
            insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
            stored = session.execute(
                insert(Event)
                .values(
                    id=event.id,
                    customer_id=event.customer_id,
                    name=event.name,
                    at=at,
                    properties=event.properties,
                    received_at=utcnow(),
                    status=EventStatus.ROUTED.value,
                )
                .on_conflict_do_nothing()
                .returning(Event.id)
            ).first()
        return stored is not None

    @app.post("/events", status_code=status.HTTP_202_ACCEPTED)
    async def post_event(event: EventIn, authorization: Annotated[str, Header()] = "") -> EventOut:
        scheme, _, secret = authorization.partition(" ")
        if scheme.lower() != "bearer" or not secret:
            raise HTTPException(status.HTTP_401_UNAUTHORIZED, "Authorization: Bearer <token>")
        at = event.at or datetime.now(UTC)
        if not await asyncio.to_thread(store, secret, event, at):
            return EventOut(id=event.id, status="duplicate")
        handle = client.get_workflow_handle_for(
            BaselineWorkflow.run, baseline_id(event.customer_id)
        )
        signal = EventSignal(id=event.id, name=event.name, at=at, properties=event.properties)
        try:
            await handle.signal(BaselineWorkflow.event, signal)
        except RPCError as exc:
            if exc.status == RPCStatusCode.NOT_FOUND:
                raise HTTPException(
                    status.HTTP_404_NOT_FOUND, f"no workflow for '{event.customer_id}'"
                ) from None
            raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, exc.message) from None
        return EventOut(id=event.id, status="accepted")

    return app
