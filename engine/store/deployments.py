"""Deployments: which registered version of each playbook is current, and how it got there.

A playbook's deployed version is the version of its latest deployment (highest id), not
its most recently registered version: registration is idempotent, so deploying an older
version again (a rollback) would never make it "latest" by registration. Every path that
starts enrollments reads `deployed_plans` / `deployed_plan`; a long-running process checks
`latest_deployment_id` (one indexed query) to notice a deploy made by another process.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from engine.errors import ConflictError, NotFoundError
from engine.language.plan import CompiledPlan
from engine.store.models import Deployment, PlaybookVersion, utcnow


def record_deployment(
    session: Session,
    *,
    playbook_id: str,
    version: str,
    deployed_by: str,
    git_commit: str | None = None,
    message: str | None = None,
    at: datetime | None = None,
) -> Deployment:
    """Make a registered version the deployed one; NotFoundError if it is not registered."""
    if session.get(PlaybookVersion, (playbook_id, version)) is None:
        raise NotFoundError(f"playbook {playbook_id} has no registered version {version[:12]}")
    row = Deployment(
        playbook_id=playbook_id,
        version=version,
        deployed_by=deployed_by,
        git_commit=git_commit,
        message=message,
        deployed_at=at or utcnow(),
    )
    session.add(row)
    session.flush()
    return row


_LATEST = select(func.max(Deployment.id))


def latest_deployment_id(session: Session) -> int:
    """The id of the newest deployment of any playbook (0 if none): a cheap change check.

    Run on the session's connection, past the ORM: it is read for every event batch, and
    the ORM's statement handling cost more than the query."""
    return int(session.connection().execute(_LATEST).scalar() or 0)


def current_deployments(session: Session) -> dict[str, Deployment]:
    """Each deployed playbook's latest deployment, by playbook id."""
    latest = select(func.max(Deployment.id)).group_by(Deployment.playbook_id)
    rows = session.scalars(select(Deployment).where(Deployment.id.in_(latest)))
    return {row.playbook_id: row for row in rows}


def deployed_plans(session: Session) -> dict[str, CompiledPlan]:
    """The compiled plan of every deployed playbook's deployed version, by playbook id."""
    current = current_deployments(session)
    plans: dict[str, CompiledPlan] = {}
    for pid, deployment in sorted(current.items()):
        row = session.get(PlaybookVersion, (pid, deployment.version))
        if row is not None:
            plans[pid] = CompiledPlan.model_validate(row.plan)
    return plans


def deployed_plan(session: Session, playbook_id: str) -> CompiledPlan | None:
    """The deployed plan of one playbook, or None if it was never deployed."""
    version = session.scalars(
        select(Deployment.version)
        .where(Deployment.playbook_id == playbook_id)
        .order_by(Deployment.id.desc())
        .limit(1)
    ).first()
    if version is None:
        return None
    row = session.get(PlaybookVersion, (playbook_id, version))
    return None if row is None else CompiledPlan.model_validate(row.plan)


def history(session: Session, playbook_id: str) -> list[Deployment]:
    """A playbook's deployments, newest first."""
    return list(
        session.scalars(
            select(Deployment)
            .where(Deployment.playbook_id == playbook_id)
            .order_by(Deployment.id.desc())
        )
    )


def registered_versions(session: Session, playbook_id: str) -> list[PlaybookVersion]:
    """A playbook's registered versions, oldest first (by first registration)."""
    return list(
        session.scalars(
            select(PlaybookVersion)
            .where(PlaybookVersion.playbook_id == playbook_id)
            .order_by(PlaybookVersion.created_at, PlaybookVersion.version)
        )
    )


def find_version(session: Session, playbook_id: str, prefix: str) -> PlaybookVersion:
    """The registered version whose hash starts with ``prefix``.

    NotFoundError when none does; ConflictError when the prefix names more than one.
    """
    prefix = prefix.strip().lower()
    matches = [v for v in registered_versions(session, playbook_id) if v.version.startswith(prefix)]
    if not prefix or not matches:
        known = ", ".join(v.version[:12] for v in registered_versions(session, playbook_id))
        raise NotFoundError(
            f"playbook {playbook_id} has no registered version {prefix!r}"
            f" (registered: {known or 'none'})"
        )
    if len(matches) > 1:
        raise ConflictError(
            f"{prefix!r} names {len(matches)} versions of {playbook_id}: "
            + ", ".join(v.version[:12] for v in matches)
        )
    return matches[0]


def newer_than(session: Session, playbook_id: str, version: str) -> PlaybookVersion | None:
    """The newest registered version first registered after ``version``, if any.

    When the deployed version has one, the deployment is a rollback.
    """
    versions = registered_versions(session, playbook_id)
    index = next((i for i, v in enumerate(versions) if v.version == version), None)
    if index is None or index == len(versions) - 1:
        return None
    return versions[-1]


class DeployedPlans:
    """The deployed plans, reloaded from the store when a deployment has been recorded.

    Each `plans()` call costs one indexed query (`latest_deployment_id`); the plans are
    read again only when it changed, so a running API or worker picks up a deploy made by
    another process (``playbook deploy``) on its next call, without a restart. Safe to
    share between threads: a reload replaces the whole mapping at once.
    """

    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self.sessions = sessions
        self._seen = -1
        self._plans: dict[str, CompiledPlan] = {}

    def plans(self, session: Session | None = None) -> dict[str, CompiledPlan]:
        """Every deployed playbook's plan, by playbook id (blocking: the store is); read
        in ``session`` when given (the event router's batch transaction), else in a
        session of its own."""
        if session is None:
            with self.sessions() as own:
                return self.plans(own)
        latest = latest_deployment_id(session)
        if latest != self._seen:
            self._plans = deployed_plans(session)
            self._seen = latest
        return self._plans

    def plan(self, playbook_id: str) -> CompiledPlan | None:
        """One playbook's deployed plan, or None if it was never deployed."""
        return self.plans().get(playbook_id)
