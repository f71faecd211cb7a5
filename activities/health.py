"""The `recompute_health` activity: every customer's score recomputed and recorded, then
the running enrollments told and the deployed ``on_change`` playbooks judged for each
customer whose score or band moved."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from temporalio import activity

from activities.base import EnrollingActivities
from engine.client.changes import change_plans, fire_changes, snapshot_before, tell_running
from engine.language.health import Scorecard
from engine.messages import ActivityName, HealthRecomputeInput, HealthRecomputeResult
from engine.store import deployments, health
from engine.store.models import Customer


class HealthActivities(EnrollingActivities):
    @activity.defn(name=ActivityName.RECOMPUTE_HEALTH)
    async def recompute_health(self, input: HealthRecomputeInput) -> HealthRecomputeResult:
        card = Scorecard.model_validate(input.scorecard)
        now = datetime.now(UTC)
        with self.sessions() as session:
            plans = change_plans(deployments.deployed_plans(session))
        befores = await asyncio.to_thread(self._before, bool(plans), now)
        recorded = await asyncio.to_thread(self._recompute, card, now)
        result = HealthRecomputeResult(customers=len(recorded))
        for r in recorded:
            if not r.changed:
                continue
            result.changed += 1
            # A `goal: when`, `exit: if` or `wait_for: when` over health is judged again.
            await tell_running(self.client, self.sessions, r.customer_id, ["health"])
            if plans:
                started, _ = await fire_changes(
                    self.client,
                    self.sessions,
                    {p.playbook: p for p in plans},
                    r.customer_id,
                    befores.get(r.customer_id),
                    now,
                    self.task_queue,
                    self.use_search_attributes,
                )
                result.enrolled += started
        activity.logger.info(
            "health: %d customers, %d changed, %d enrolled",
            result.customers,
            result.changed,
            len(result.enrolled),
        )
        return result

    def _before(self, needed: bool, now: datetime) -> dict[str, dict[str, Any] | None]:
        """Every customer's data before the recompute, when an on_change playbook needs it."""
        if not needed:
            return {}
        with self.sessions() as session:
            ids = list(session.scalars(select(Customer.id)))
        return {cid: snapshot_before(self.sessions, cid, now) for cid in ids}

    def _recompute(self, card: Scorecard, now: datetime) -> list[health.Recorded]:
        with self.sessions.begin() as session:
            return health.recompute_all(session, card, now)
