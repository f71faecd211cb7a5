"""Deploying playbooks: the working copy (or an older registered version) made current.

`deploy_working_copy` registers the compiled versions of the playbooks asked for and
records a deployment for each one whose deployed version differs; it refuses the whole
deploy, recording nothing, when one of them fails validation. `deploy_version` makes any
registered version current again (a rollback). `deploy_new_playbooks` is `playbook up`'s
first-run step: it deploys only playbooks that were never deployed. The store side lives in
`engine.store.deployments`; Schedules follow deployments through `sync_schedules`.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.orm import Session, sessionmaker
from temporalio.client import Client

from engine.client.registration import ensure_schedules
from engine.errors import PlaybookError
from engine.language.diagnostics import Diagnostic
from engine.language.plan import CompiledPlan
from engine.project import Project
from engine.store import deployments, repository


@dataclass(frozen=True)
class DeployResult:
    """What a deploy did for one playbook: ``deployed`` or ``unchanged`` (already current)."""

    playbook: str
    version: str
    status: str
    previous: str | None = None
    rollback: bool = False

    @property
    def short_version(self) -> str:
        return self.version[:12]


def git_commit(root: Path) -> str | None:
    """The commit of the git checkout holding ``root`` (``+dirty`` when the playbooks
    have uncommitted changes), or None outside git."""
    try:
        head = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(root), "status", "--porcelain", "--", "."],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return f"{head}+dirty" if dirty else head or None


def refusals(project: Project, playbooks: Iterable[str] | None) -> list[Diagnostic]:
    """The errors that refuse a deploy of ``playbooks`` (every playbook when None).

    A named playbook that did not compile is refused with the errors of its file (or all
    of the project's errors when its file cannot be told apart, e.g. a broken
    milestones.yaml); deploying everything is refused by any error.
    """
    if playbooks is None:
        return project.errors
    problems: list[Diagnostic] = []
    for pid in playbooks:
        if pid in project.plans:
            continue
        own = [d for d in project.errors if Path(d.path).stem == pid]
        problems += (
            own
            or project.errors
            or [Diagnostic(str(project.root), 1, 1, f"no playbook '{pid}' in {project.root}")]
        )
    return sorted(set(problems))


def _record(
    session: Session,
    plan: CompiledPlan,
    source: str,
    *,
    by: str,
    commit: str | None,
    message: str | None,
) -> DeployResult:
    repository.register_playbook_version(
        session,
        playbook_id=plan.playbook,
        version=plan.version,
        name=plan.name,
        source=source,
        plan=plan.model_dump(mode="json"),
    )
    return _deploy_registered(session, plan.playbook, plan.version, by, commit, message)


def _deploy_registered(
    session: Session,
    playbook: str,
    version: str,
    by: str,
    commit: str | None,
    message: str | None,
) -> DeployResult:
    current = deployments.current_deployments(session).get(playbook)
    previous = current.version if current else None
    if previous == version:
        status = "unchanged"
    else:
        deployments.record_deployment(
            session,
            playbook_id=playbook,
            version=version,
            deployed_by=by,
            git_commit=commit,
            message=message,
        )
        status = "deployed"
    rollback = deployments.newer_than(session, playbook, version) is not None
    return DeployResult(playbook, version, status, previous, rollback)


def deploy_working_copy(
    sessions: sessionmaker[Session],
    project: Project,
    playbooks: Iterable[str] | None = None,
    *,
    by: str,
    message: str | None = None,
    commit: str | None = None,
) -> list[DeployResult]:
    """Deploy the compiled working copy of ``playbooks`` (all when None), in one transaction.

    Raises `PlaybookError` with the problems, recording nothing, if any of them fails
    validation.
    """
    chosen = None if playbooks is None else list(dict.fromkeys(playbooks))
    problems = refusals(project, chosen)
    if problems:
        raise PlaybookError(problems)
    ids = sorted(project.plans) if chosen is None else chosen
    with sessions.begin() as session:
        return [
            _record(
                session,
                project.plans[pid],
                project.sources.get(pid, ""),
                by=by,
                commit=commit,
                message=message,
            )
            for pid in ids
        ]


def deploy_version(
    sessions: sessionmaker[Session],
    playbook: str,
    version_prefix: str,
    *,
    by: str,
    message: str | None = None,
    commit: str | None = None,
) -> DeployResult:
    """Make a registered version (a hash or a unique prefix of one) the deployed one.

    Raises `NotFoundError` for an unknown version, `ConflictError` for an ambiguous prefix.
    """
    with sessions.begin() as session:
        row = deployments.find_version(session, playbook, version_prefix)
        return _deploy_registered(session, playbook, row.version, by, commit, message)


def deploy_new_playbooks(
    sessions: sessionmaker[Session], project: Project, *, by: str, commit: str | None = None
) -> list[DeployResult]:
    """Deploy the working copy of each compiled playbook that was never deployed."""
    with sessions.begin() as session:
        known = set(deployments.current_deployments(session))
        return [
            _record(
                session,
                plan,
                project.sources.get(pid, ""),
                by=by,
                commit=commit,
                message="first deploy",
            )
            for pid, plan in sorted(project.plans.items())
            if pid not in known
        ]


async def sync_schedules(
    client: Client, sessions: sessionmaker[Session], task_queue: str, trigger_now: bool = True
) -> list[str]:
    """The sweep Schedules of the deployed date- and schedule-triggered playbooks."""
    with sessions() as session:
        plans = deployments.deployed_plans(session)
    return await ensure_schedules(client, plans, task_queue, trigger_now)


__all__ = [
    "DeployResult",
    "deploy_new_playbooks",
    "deploy_version",
    "deploy_working_copy",
    "git_commit",
    "refusals",
    "sync_schedules",
]
