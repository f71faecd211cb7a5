"""Reviewing a change to a live playbook: the diff, who it touches, and what it would do.

`review_change` puts together what `playbook diff` and the admin diff page show:

- the change in the playbook's own terms (`engine.language.plandiff`), each changed email
  rendered before and after for an example customer;
- its impact on the live book, from the store: the running enrollments of the playbook at
  each step, and which of them the change touches under each migration policy. Under
  ``stay`` (the default of a deploy) running enrollments keep their version and nothing
  running is touched; under ``same-id`` each one moves to the step of the same id in the
  new version (refused when that step is gone), and it is touched when that step or any
  step it can still reach was added or changed;
- a forecast (old against new over the next days), computed by the book simulator
  (`engine.simulation.forecast`, which sits above this layer) and handed in.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Literal

from pydantic import BaseModel, Field
from sqlalchemy import select
from sqlalchemy.orm import Session

from engine.errors import NotFoundError
from engine.language.durations import format_duration
from engine.language.expressions import helpers
from engine.language.plan import CompiledPlan
from engine.language.plandiff import PlanDiff, RenderedEmail, diff_plans, render_email
from engine.statuses import EnrollmentStatus
from engine.store import deployments, repository
from engine.store.context import contact_dict, customer_snapshot, member_dict
from engine.store.models import Customer, Enrollment, PlaybookVersion

Policy = Literal["stay", "same-id"]
EXAMPLES_SHOWN = 5


class StepImpact(BaseModel):
    """The running enrollments at one step of one version, and what each policy does."""

    step: str
    version: str  # short version
    running: int
    customers: list[str] = Field(default_factory=list)  # the first few
    same_id: Literal["moves", "refused"]  # under same-id mapping
    touched: bool  # under same-id: the step or one it can still reach is new or changed
    reason: str = ""


class Impact(BaseModel):
    """The running enrollments of the playbook and what the change does to them."""

    deployed_version: str | None
    running: int = 0
    on_deployed: int = 0  # of which on the deployed version
    steps: list[StepImpact] = Field(default_factory=list)

    def touched(self, policy: Policy) -> int:
        """How many running enrollments the change reaches under ``policy``."""
        if policy == "stay":
            return 0
        return sum(s.running for s in self.steps if s.touched or s.same_id == "refused")

    def refused(self) -> int:
        return sum(s.running for s in self.steps if s.same_id == "refused")


class ForecastSide(BaseModel):
    """One version's forecast over the book for ``days``."""

    version: str
    days: int
    customers: int
    emails: int
    emails_per_week: float
    tasks: int
    tasks_per_csm_week: float
    enrollments: int
    goal_reached: int
    outcomes: dict[str, int] = Field(default_factory=dict)


class Forecast(BaseModel):
    """The book simulated with the old version and with the new one."""

    source: str  # "store" or the example book's path
    start: datetime
    days: int
    old: ForecastSide
    new: ForecastSide


class EmailPreview(BaseModel):
    """A changed email step rendered for the example customer, before and after."""

    step: str
    before: RenderedEmail | None = None  # None: the step is new
    after: RenderedEmail


class ChangeReview(BaseModel):
    """Everything `playbook diff` reports."""

    playbook: str
    against: str
    diff: PlanDiff
    example_customer: str | None = None
    emails: list[EmailPreview] = Field(default_factory=list)
    impact: Impact
    forecast: Forecast | None = None


def baseline_plan(session: Session, playbook: str, against: str) -> tuple[CompiledPlan, str]:
    """The version to compare the working copy with: ``deployed``, a registered version's
    hash (or unique prefix), or a playbook file; with a label saying which."""
    if against == "deployed":
        plan = deployments.deployed_plan(session, playbook)
        if plan is None:
            raise NotFoundError(f"{playbook} was never deployed: nothing to compare against")
        return plan, f"deployed {plan.short_version}"
    path = Path(against)
    if path.suffix in (".yaml", ".yml") and path.is_file():
        from engine.project import load_plan

        _, plan = load_plan(str(path))
        return plan, f"{against} ({plan.short_version})"
    row: PlaybookVersion = deployments.find_version(session, playbook, against)
    return CompiledPlan.model_validate(row.plan), f"version {row.version[:12]}"


def running_impact(
    session: Session, old: CompiledPlan, new: CompiledPlan, diff: PlanDiff
) -> Impact:
    """The running enrollments of the playbook per (version, step), and the policies' effect."""
    deployed = deployments.deployed_plan(session, new.playbook)
    rows = session.execute(
        select(Enrollment.version, Enrollment.current_step, Enrollment.customer_id)
        .where(
            Enrollment.playbook_id == new.playbook,
            Enrollment.status == EnrollmentStatus.RUNNING.value,
        )
        .order_by(Enrollment.started_at)
    ).all()
    groups: dict[tuple[str, str], list[str]] = defaultdict(list)
    for version, step, customer in rows:
        groups[(version, step or old.start)].append(customer)
    touched = diff.touched | ({new.start} if diff.settings else set())
    new_ids = {s.id for s in new.steps}
    order = {s.id: i for i, s in enumerate(old.steps)}
    impact = Impact(
        deployed_version=deployed.version if deployed else None,
        running=len(rows),
        on_deployed=sum(1 for r in rows if deployed is not None and r[0] == deployed.version),
    )
    for (version, step), customers in sorted(
        groups.items(), key=lambda kv: (kv[0][0] != old.version, order.get(kv[0][1], 999))
    ):
        if step not in new_ids:
            verdict: Literal["moves", "refused"] = "refused"
            hit, reason = True, f"no step {step} in the new version: needs --map {step}=<step>"
        else:
            verdict = "moves"
            ahead = reachable(new, step) & touched
            hit = bool(ahead) or bool(diff.settings)
            reason = _ahead_reason(new, ahead, diff)
        impact.steps.append(
            StepImpact(
                step=step,
                version=version[:12],
                running=len(customers),
                customers=customers[:EXAMPLES_SHOWN],
                same_id=verdict,
                touched=hit,
                reason=reason,
            )
        )
    return impact


def _ahead_reason(plan: CompiledPlan, ahead: set[str], diff: PlanDiff) -> str:
    if ahead:
        return "changed ahead: " + ", ".join(s.id for s in plan.steps if s.id in ahead)
    return "playbook settings changed" if diff.settings else "nothing ahead changed"


def successors(plan: CompiledPlan, step_id: str) -> list[str]:
    """Every step a step can go to next (its `next`, branches, timeouts, outcomes)."""
    step = plan.step(step_id)
    if step.kind == "end":
        return []
    out = [step.next]
    if step.branch:
        out += [c.goto for c in step.branch.cases] + [step.branch.otherwise]
    if step.wait_for and step.wait_for.on_timeout:
        out.append(step.wait_for.on_timeout)
    if step.wait and step.wait.on_passed:
        out.append(step.wait.on_passed)
    if step.task:
        out += list(step.task.on_outcome.values())
        out += [s for s in (step.task.on_timeout,) if s]
    ids = {s.id for s in plan.steps}
    return [s for s in out if s in ids]


def reachable(plan: CompiledPlan, step_id: str) -> set[str]:
    """The step and every step reachable from it in ``plan``."""
    seen: set[str] = set()
    todo = [step_id]
    while todo:
        current = todo.pop()
        if current in seen:
            continue
        seen.add(current)
        todo += successors(plan, current)
    return seen


def example_customer(session: Session, playbook: str) -> Customer | None:
    """A customer to render emails for: one running the playbook, else any customer."""
    running = session.scalars(
        select(Enrollment.customer_id)
        .where(
            Enrollment.playbook_id == playbook,
            Enrollment.status == EnrollmentStatus.RUNNING.value,
        )
        .order_by(Enrollment.started_at)
        .limit(1)
    ).first()
    if running is not None:
        return session.get(Customer, running)
    return session.scalars(select(Customer).order_by(Customer.id).limit(1)).first()


def store_context(session: Session, customer: Customer, playbook: str) -> dict[str, Any]:
    """What an email of ``playbook`` renders with for ``customer`` (its first contact)."""
    snapshot = customer_snapshot(session, customer)
    return _with_contact(snapshot, playbook)


def data_context(data: repository.CustomerData, playbook: str) -> dict[str, Any]:
    """The same for a customer that is not in the store (an example file's)."""
    contacts = [
        contact_dict(SimpleNamespace(**c.model_dump(), unsubscribed=False))
        for c in data.contacts or []
    ]
    snapshot = {
        "customer": {
            "id": data.id,
            "name": data.name,
            "segment": data.segment or "",
            "timezone": data.timezone,
            "owner": data.owner_email or "",
            "renewal_date": data.renewal_date,
            "health_score": data.health_score,
            "attributes": dict(data.attributes or {}),
            "tags": list(data.tags or []),
            "contacts": contacts,
            "created_at": None,
        },
        "owner": member_dict(None, data.owner_email),
        "milestones": [],
    }
    return _with_contact(snapshot, playbook)


def _with_contact(snapshot: dict[str, Any], playbook: str) -> dict[str, Any]:
    contacts = snapshot["customer"]["contacts"]
    contact = contacts[0] if contacts else {"email": "", "first_name": "", "name": "", "role": ""}
    return {**snapshot, **helpers(datetime.now(UTC)), "playbook": playbook, "contact": contact}


def email_previews(
    old: CompiledPlan, new: CompiledPlan, diff: PlanDiff, context: dict[str, Any]
) -> list[EmailPreview]:
    """Each changed or new email step rendered with ``context``, before and after."""
    old_ids = {s.id for s in old.steps}
    return [
        EmailPreview(
            step=step,
            before=render_email(old, step, context) if step in old_ids else None,
            after=render_email(new, step, context),
        )
        for step in diff.emails
    ]


def review_change(
    session: Session,
    old: CompiledPlan,
    new: CompiledPlan,
    *,
    against: str,
    context: dict[str, Any] | None = None,
    example: str | None = None,
    forecast: Forecast | None = None,
) -> ChangeReview:
    """The review of changing ``old`` into ``new``; see the module doc."""
    diff = diff_plans(old, new)
    return ChangeReview(
        playbook=new.playbook,
        against=against,
        diff=diff,
        example_customer=example,
        emails=email_previews(old, new, diff, context) if context is not None else [],
        impact=running_impact(session, old, new, diff),
        forecast=forecast,
    )


def show_value(path: str, value: Any) -> str:
    """A changed value for people: durations as ``3d``, missing as ``-``."""
    if value is None:
        return "-"
    if path.endswith("seconds") and isinstance(value, int):
        return format_duration(value)
    if isinstance(value, list):
        return ", ".join(str(v) for v in value)
    return str(value)
