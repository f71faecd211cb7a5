"""The `notify_team` activity: one run of the team's task notifications, at the time it
runs. What a run does (`engine.services.notifications.notify_team`) is handed in by the
worker, as the enroller is: activities sit below the services layer."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

from temporalio import activity

from engine.messages import ActivityName, TeamNotifyInput, TeamNotifyResult

TeamNotifier = Callable[[datetime], TeamNotifyResult]


def _now() -> datetime:
    return datetime.now(UTC)


class TeamNotifyActivities:
    """Runs ``notify`` (deliveries and digests as of a time) at ``clock()``."""

    def __init__(self, notify: TeamNotifier, clock: Callable[[], datetime] = _now) -> None:
        self.notify = notify
        self.clock = clock

    @activity.defn(name=ActivityName.NOTIFY_TEAM)
    def notify_team(self, input: TeamNotifyInput) -> TeamNotifyResult:
        result = self.notify(self.clock())
        activity.logger.info(
            "team notifications: %s; digests %d; %d failing",
            result.deliveries,
            result.digests,
            len(result.failed),
        )
        return result
