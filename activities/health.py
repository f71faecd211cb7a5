"""The `recompute_health` activity: every customer's score recomputed and recorded, page by
page, then the deployed ``on_change`` playbooks judged for each customer whose score, band
or risk signals moved (`engine.client.changes.rescore_pages`)."""

from __future__ import annotations

from datetime import UTC, datetime

from temporalio import activity

from activities.base import EnrollingActivities
from engine.client.changes import rescore_pages
from engine.language.health import Scorecard
from engine.messages import ActivityName, HealthRecomputeInput, HealthRecomputeResult
from engine.store import deployments


class HealthActivities(EnrollingActivities):
    @activity.defn(name=ActivityName.RECOMPUTE_HEALTH)
    async def recompute_health(self, input: HealthRecomputeInput) -> HealthRecomputeResult:
        card = Scorecard.model_validate(input.scorecard)
        now = datetime.now(UTC)
        with self.sessions() as session:
            plans = deployments.deployed_plans(session)
        result = HealthRecomputeResult()
        # A page at a time (one transaction each), its changes told and fired before the next
        # page is read, so memory stays bounded by a page.
        async for page in rescore_pages(self.change_target, card, plans, now):
            result.customers += len(page)
            for recorded, started in page:
                if recorded.moved:
                    result.changed += 1
                result.enrolled += started
            activity.heartbeat(result.customers)
        activity.logger.info(
            "health: %d customers, %d changed, %d enrolled",
            result.customers,
            result.changed,
            len(result.enrolled),
        )
        return result
