"""The `recompute_health` activity: every customer's score recomputed and recorded, page by
page, then the deployed ``on_change`` playbooks judged for each customer whose score or band
moved."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.orm import Session
from temporalio import activity

from activities.base import EnrollingActivities
from engine.client.changes import change_plans, fire_changes
from engine.language.health import Scorecard
from engine.messages import ActivityName, HealthRecomputeInput, HealthRecomputeResult
from engine.store import deployments, health, repository
from engine.store.context import customer_snapshot


class HealthActivities(EnrollingActivities):
    @activity.defn(name=ActivityName.RECOMPUTE_HEALTH)
    async def recompute_health(self, input: HealthRecomputeInput) -> HealthRecomputeResult:
        card = Scorecard.model_validate(input.scorecard)
        now = datetime.now(UTC)
        with self.sessions() as session:
            plans = change_plans(deployments.deployed_plans(session))
        result = HealthRecomputeResult()
        # A page at a time (one transaction each, `health.recompute_book`), and its changes
        # fired before the next page is read, so memory stays bounded by a page.
        pages = health.recompute_book(
            self.sessions, card, now, before=_snapshot(now) if plans else None
        )
        while (recorded := await asyncio.to_thread(next, pages, None)) is not None:
            result.customers += len(recorded)
            for r in recorded:
                if not r.changed:
                    continue
                result.changed += 1
                if plans:
                    started, _ = await fire_changes(
                        self.client,
                        self.sessions,
                        {p.playbook: p for p in plans},
                        r.customer_id,
                        r.before,
                        now,
                        self.task_queue,
                        self.use_search_attributes,
                    )
                    result.enrolled += started
            activity.heartbeat(result.customers)
        activity.logger.info(
            "health: %d customers, %d changed, %d enrolled",
            result.customers,
            result.changed,
            len(result.enrolled),
        )
        return result


def _snapshot(now: datetime) -> health.Snapshot:
    """What a customer whose score moved was before (`snapshot_before`, in the page's
    transaction): the only customers ``on_change`` triggers are judged for."""

    def before(session: Session, customer_id: str) -> dict[str, Any] | None:
        customer = repository.get_customer(session, customer_id)
        return None if customer is None else customer_snapshot(session, customer, now.date())

    return before
