"""Migrating running enrollments to a newly deployed version (`playbook deploy --migrate`).

`plan_migration` decides, from the store, where each running enrollment of a playbook on
another version would go: the step ``mapping`` names for its current step, by default the
step of the same id; an enrollment whose step has no such step in the new version is
``refused`` (never guessed), as is a mapping that names a step the new version lacks. The
caller reports that before anything moves. `migrate` then sends each one the workflow's
`migrate` update (`EnrollmentHandle.migrate`), applied at the enrollment's next step
boundary; the workflow's own validator has the last word (the step may have moved since the
store saw it), and its refusal is reported too.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel
from sqlalchemy import select
from sqlalchemy.orm import Session
from temporalio.client import Client, WorkflowUpdateFailedError
from temporalio.service import RPCError

from engine.client.playbook import EnrollmentHandle
from engine.errors import Invalid
from engine.language.plan import END, CompiledPlan
from engine.messages import MigrateRequest
from engine.statuses import EnrollmentStatus
from engine.store.models import Enrollment

Outcome = Literal["migrate", "migrated", "stayed", "refused"]


class MigrationItem(BaseModel):
    """One running enrollment: where it is, where it would go, and what happened."""

    enrollment: str  # the workflow id
    customer: str
    version: str  # short version it runs
    step: str
    to_step: str
    outcome: Outcome
    reason: str = ""


def parse_mapping(pairs: tuple[str, ...] | list[str]) -> dict[str, str]:
    """``old=new`` pairs as a mapping; Invalid on a malformed pair."""
    mapping: dict[str, str] = {}
    for pair in pairs:
        old, sep, new = pair.partition("=")
        if not sep or not old.strip() or not new.strip():
            raise Invalid(f"--map {pair!r}: write it as old_step=new_step")
        mapping[old.strip()] = new.strip()
    return mapping


def mapping_problems(new: CompiledPlan, mapping: dict[str, str]) -> list[str]:
    """Mapping targets the new version does not have."""
    ids = {s.id for s in new.steps} | {END}
    return [
        f"--map {old}={target}: no step '{target}' in version {new.short_version}"
        for old, target in mapping.items()
        if target not in ids
    ]


def plan_migration(
    session: Session, new: CompiledPlan, mapping: dict[str, str]
) -> list[MigrationItem]:
    """Every running enrollment of ``new.playbook`` on another version, and where it goes."""
    ids = {s.id for s in new.steps}
    rows = session.execute(
        select(
            Enrollment.workflow_id,
            Enrollment.customer_id,
            Enrollment.version,
            Enrollment.current_step,
        )
        .where(
            Enrollment.playbook_id == new.playbook,
            Enrollment.status == EnrollmentStatus.RUNNING.value,
        )
        .order_by(Enrollment.started_at)
    ).all()
    items = []
    for workflow_id, customer, version, step in rows:
        current = step or new.start
        target = mapping.get(current, current)
        if version == new.version:
            outcome: Outcome = "stayed"
            reason = "already on this version"
        elif target != END and target not in ids:
            outcome = "refused"
            reason = (
                f"no step '{target}' in version {new.short_version}: add --map {current}=<step>"
            )
        else:
            outcome, reason = "migrate", ""
        items.append(
            MigrationItem(
                enrollment=workflow_id,
                customer=customer,
                version=version[:12],
                step=current,
                to_step=target,
                outcome=outcome,
                reason=reason,
            )
        )
    return items


async def migrate(
    client: Client,
    items: list[MigrationItem],
    new: CompiledPlan,
    mapping: dict[str, str],
    reason: str | None = None,
) -> list[MigrationItem]:
    """Send the `migrate` update to each item marked ``migrate``; the items, with outcomes."""
    done = []
    request = MigrateRequest(plan=new, mapping=mapping, reason=reason)
    for item in items:
        if item.outcome != "migrate":
            done.append(item)
            continue
        try:
            await EnrollmentHandle.get(client, item.enrollment).migrate(request)
        except WorkflowUpdateFailedError as exc:
            cause = str(exc.cause) if exc.cause is not None else str(exc)
            done.append(item.model_copy(update={"outcome": "refused", "reason": cause}))
            continue
        except RPCError as exc:
            done.append(
                item.model_copy(update={"outcome": "stayed", "reason": f"not reached: {exc}"})
            )
            continue
        done.append(item.model_copy(update={"outcome": "migrated"}))
    return done
