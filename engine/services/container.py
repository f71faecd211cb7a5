"""What every operation works with: settings, the store, Temporal, the project and the
deployed playbooks.

The API, the web UI and the CLI each build one `Services` and hand it to the operations in
`engine.services`. Enrollments start from the deployed versions (`deployed`), never from
the project on disk; the project gives the milestone definitions and templates folder.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property

from sqlalchemy.orm import Session, sessionmaker
from temporalio.client import Client

from engine.client.changes import ChangeTarget
from engine.client.routing import EventRouter
from engine.language.plan import CompiledPlan, MilestonePlan
from engine.project import Project
from engine.settings import Settings
from engine.store.deployments import DeployedPlans


@dataclass
class Services:
    settings: Settings
    sessions: sessionmaker[Session]
    client: Client
    project: Project
    use_search_attributes: bool = True
    _deployed: DeployedPlans | None = field(default=None, repr=False)
    _milestones: tuple[Mapping[str, CompiledPlan], dict[str, MilestonePlan]] | None = field(
        default=None, repr=False
    )

    @property
    def deployed(self) -> DeployedPlans:
        """The deployed plans, re-read when a deploy is recorded (one per `Services`)."""
        if self._deployed is None:
            self._deployed = DeployedPlans(self.sessions)
        return self._deployed

    def milestones_for(self, plans: Mapping[str, CompiledPlan]) -> Mapping[str, MilestonePlan]:
        """The milestones to record events against, given the deployed plans (the router
        reads them once a batch): the project's definitions, with those the plans carry
        taking precedence (they are what the enrollments run). Merged once per deployed
        set, not per event."""
        merged = self._milestones
        if merged is None or merged[0] is not plans:
            own = {name: m for plan in plans.values() for name, m in plan.milestones.items()}
            merged = self._milestones = (plans, {**self.project.milestones, **own})
        return merged[1]

    @property
    def change_target(self) -> ChangeTarget:
        """Where a save's changes go: this process's client, store and task queue."""
        return ChangeTarget(
            self.client,
            self.sessions,
            self.settings.temporal_task_queue,
            self.use_search_attributes,
        )

    @cached_property
    def router(self) -> EventRouter:
        """The event router, one per `Services`: its `EventRouter.storing` lock is what
        keeps this process storing one batch at a time."""
        return EventRouter(
            self.sessions,
            self.client,
            self.deployed.plans,
            self.milestones_for,
            self.settings.temporal_task_queue,
            self.use_search_attributes,
            scorecard=self.project.scorecard,
        )
