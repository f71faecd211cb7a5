"""The delivery policy file, ``playbooks/policies.yaml``: the contact budget and days off.

One file per project, because a budget is only a budget across every playbook::

    caps:                      # counted per contact, in the contact's own calendar
      - {max: 1, days: 1}      # at most one email a day
      - {max: 3, days: 7}      # and three in any seven days
    on_cap: defer              # or skip; default defer (the email keeps its send window)
    playbooks:
      renewal: {priority: 30}
      adoption: {priority: 10, on_cap: skip}
    steps:
      renewal.final_30: {priority: 40}
      onboarding.welcome: {exempt: true}
    holidays:
      public: true             # the recipient's country (contact, else customer)
      company:
        "2027-12-24": Company holiday

Loaded with the playbooks (`engine.project.load_project`), checked with `path:line:col`
diagnostics, and resolved per playbook into the `DeliveryPlan` its compiled plan carries.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, field_validator

from engine.language.diagnostics import Diagnostic, did_you_mean
from engine.language.loader import LoadedFile, parse_text, read_source
from engine.language.plan import CapPlan, CompiledPlan, DeliveryPlan, StepDeliveryPlan
from engine.language.schema import Model

POLICY_FILE = "policies.yaml"
OnCap = Literal["defer", "skip"]


class Cap(Model):
    """At most ``max`` emails to one contact in ``days`` consecutive days of their calendar."""

    max: Annotated[int, Field(ge=1, le=1000)]
    days: Annotated[int, Field(ge=1, le=366)]


class Rule(Model):
    """How a playbook's or a step's emails stand under the caps."""

    priority: Annotated[int, Field(ge=0, le=1000)] | None = Field(
        default=None, description="Higher goes first when emails wait for the same slot."
    )
    on_cap: OnCap | None = Field(
        default=None,
        description="When a cap is reached: defer to the next allowed moment, or skip.",
    )
    exempt: bool | None = Field(
        default=None, description="Operational mail: always goes, and is not counted."
    )


class Holidays(Model):
    """Days no email goes out: public holidays of the recipient's country, company days off."""

    public: bool = Field(
        default=False,
        description="Skip public holidays of the contact's (else customer's) country.",
    )
    company: dict[str, str] = Field(
        default_factory=dict, description="ISO date -> name of a company day off."
    )

    @field_validator("company")
    @classmethod
    def _iso_dates(cls, value: dict[str, str]) -> dict[str, str]:
        for key in value:
            try:
                date.fromisoformat(key)
            except ValueError:
                raise ValueError(f"'{key}' is not a date like 2027-12-24") from None
        return value


class PolicyFile(Model):
    """``playbooks/policies.yaml``: the contact budget shared by every playbook."""

    caps: list[Cap] = Field(default_factory=list)
    on_cap: OnCap = "defer"
    playbooks: dict[str, Rule] = Field(default_factory=dict)
    steps: dict[str, Rule] = Field(
        default_factory=dict, description="Per step, keyed 'playbook.step'."
    )
    holidays: Holidays = Holidays()


def load_policy(path: Path, display: str | None = None) -> LoadedFile:
    """Parse and validate a policy file; never raises for bad input."""
    text, diags = read_source(path, display)
    if text is None:
        return LoadedFile(display or str(path), None, None, diags)
    return parse_text(text, display or str(path), PolicyFile)


def check_references(loaded: LoadedFile, plans: dict[str, CompiledPlan]) -> list[Diagnostic]:
    """Diagnostics for playbooks and steps the policy names that do not exist."""
    policy: PolicyFile | None = loaded.model
    if policy is None or loaded.document is None or not plans:
        return []
    doc = loaded.document
    diags: list[Diagnostic] = []
    for name in policy.playbooks:
        if name not in plans:
            diags.append(
                doc.diagnostic(
                    ("playbooks", name),
                    f"no playbook '{name}'{did_you_mean(name, list(plans))}",
                    key=True,
                )
            )
    for key in policy.steps:
        playbook, _, step = key.partition(".")
        plan = plans.get(playbook)
        if plan is None:
            hint = did_you_mean(playbook, list(plans))
            message = f"'{key}' names no playbook; write 'playbook.step'{hint}"
        elif step not in {s.id for s in plan.steps}:
            ids = [s.id for s in plan.steps]
            message = f"no step '{step}' in {playbook}{did_you_mean(step, ids)}"
        else:
            continue
        diags.append(doc.diagnostic(("steps", key), message, key=True))
    return diags


def delivery_for(policy: PolicyFile, plan: CompiledPlan) -> DeliveryPlan:
    """The policy as it applies to ``plan``: its own rule and its steps' overrides."""
    base = _merge(
        StepDeliveryPlan(on_cap=policy.on_cap), policy.playbooks.get(plan.playbook, Rule())
    )
    steps = {
        step.id: _merge(base, policy.steps[f"{plan.playbook}.{step.id}"])
        for step in plan.steps
        if f"{plan.playbook}.{step.id}" in policy.steps
    }
    return DeliveryPlan(
        caps=[CapPlan(max=cap.max, days=cap.days) for cap in policy.caps],
        playbook=base,
        steps=steps,
        holidays=policy.holidays.public,
        company_days=dict(sorted(policy.holidays.company.items())),
    )


def _merge(base: StepDeliveryPlan, rule: Rule) -> StepDeliveryPlan:
    return StepDeliveryPlan(
        priority=base.priority if rule.priority is None else rule.priority,
        on_cap=base.on_cap if rule.on_cap is None else rule.on_cap,
        exempt=base.exempt if rule.exempt is None else rule.exempt,
    )
