"""What every operation works with: settings, the store, Temporal and the compiled project.

The API, the web UI and the CLI each build one `Services` and hand it to the operations in
`engine.services`.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.orm import Session, sessionmaker
from temporalio.client import Client

from engine.client.routing import EventRouter
from engine.project import Project
from engine.settings import Settings


@dataclass
class Services:
    settings: Settings
    sessions: sessionmaker[Session]
    client: Client
    project: Project
    use_search_attributes: bool = True

    @property
    def router(self) -> EventRouter:
        return EventRouter(
            self.sessions,
            self.client,
            self.project.plans,
            self.project.milestones,
            self.settings.temporal_task_queue,
            self.use_search_attributes,
        )
