"""Milestone logic: when a stream of events reaches a milestone.

One implementation serves the live event router, the workflow (which tracks the events it
is signalled since enrollment) and the simulator, so all three agree. Pure and
deterministic: safe to run inside workflow code.

- Event milestones count events with that name whose properties match ``where``; the
  milestone is reached when the count reaches ``count``.
- Metric milestones read the numeric ``value`` property of events named after the metric
  (e.g. ``weekly_active_users`` with ``{"value": 6}``); reached when it is ``>= at_least``.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from engine.language.plan import MilestonePlan


def matches(milestone: MilestonePlan, name: str, properties: dict[str, Any]) -> bool:
    """Whether one event counts towards ``milestone``."""
    if milestone.event is not None:
        if name != milestone.event:
            return False
        return all(properties.get(k) == v for k, v in milestone.where.items())
    if milestone.metric is not None and name == milestone.metric:
        value = properties.get("value")
        return (
            isinstance(value, int | float)
            and not isinstance(value, bool)
            and (milestone.at_least is None or value >= milestone.at_least)
        )
    return False


class MilestoneTracker(BaseModel):
    """Counts matching events per milestone; serialisable so it survives continue-as-new."""

    counts: dict[str, int] = Field(default_factory=dict)
    reached: list[str] = Field(default_factory=list)

    def observe(
        self, milestones: dict[str, MilestonePlan], name: str, properties: dict[str, Any]
    ) -> list[str]:
        """Record one event; return the milestones it made reached just now."""
        newly = []
        for key, milestone in milestones.items():
            if key in self.reached or not matches(milestone, name, properties):
                continue
            self.counts[key] = self.counts.get(key, 0) + 1
            needed = milestone.count if milestone.event is not None else 1
            if self.counts[key] >= needed:
                self.reached.append(key)
                newly.append(key)
        return newly

    def mark(self, name: str) -> None:
        if name not in self.reached:
            self.reached.append(name)

    def is_reached(self, name: str) -> bool:
        return name in self.reached
