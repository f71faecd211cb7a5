"""The difference between two compiled versions of a playbook, in the playbook's own terms.

`diff_plans(old, new)` compares two `CompiledPlan`s of one playbook: steps added, removed
and reordered; for each step kept, what changed, sorted into the aspects a reviewer reads
(condition, wait, recipients, task, email content, flow); and the playbook-level settings
(trigger, exit, goal, re-enrollment, send window, sender). Line numbers are ignored: moving
a step in the file is not a change. An email step whose subject or any template file it
renders from changed is listed in `PlanDiff.emails`, so it can be rendered before and after
(`render_email`).

Pure: no store, no Temporal, no files; the caller brings the plans and the example data.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

from engine.errors import LanguageError
from engine.language.plan import CompiledPlan, StepPlan
from engine.language.templates import html_to_text, render, render_text

Aspect = Literal["condition", "wait", "recipients", "task", "email", "flow", "kind", "other"]
# Plan fields of a playbook that are not its steps, compared as settings.
SETTINGS: tuple[str, ...] = (
    *("name", "trigger", "exit", "goal", "reenroll", "reenroll_after_seconds", "window"),
    *("sender", "reply_to", "start", "delivery", "milestones"),
)
RECIPIENT_FIELDS = {"to", "recipient", "recipient_value"}
IGNORED_STEP_FIELDS = {"line", "id"}


class FieldChange(BaseModel):
    """One value that changed: where (a dotted path), its aspect, before and after."""

    path: str
    aspect: Aspect
    before: Any = None
    after: Any = None


class StepChange(BaseModel):
    """A step kept under the same id whose definition changed."""

    step: str
    kind: str
    changes: list[FieldChange]

    @property
    def aspects(self) -> list[str]:
        return sorted({c.aspect for c in self.changes})


class PlanDiff(BaseModel):
    """What changes from ``old`` to ``new`` (two versions of one playbook)."""

    playbook: str
    old_version: str
    new_version: str
    added: list[str] = Field(default_factory=list)
    removed: list[str] = Field(default_factory=list)
    reordered: bool = False
    old_order: list[str] = Field(default_factory=list)
    new_order: list[str] = Field(default_factory=list)
    steps: list[StepChange] = Field(default_factory=list)
    settings: list[FieldChange] = Field(default_factory=list)
    emails: list[str] = Field(default_factory=list)  # email steps whose content changed

    @property
    def empty(self) -> bool:
        return not (self.added or self.removed or self.reordered or self.steps or self.settings)

    @property
    def touched(self) -> set[str]:
        """The step ids of the new version that are new or changed."""
        return set(self.added) | {c.step for c in self.steps}


def diff_plans(old: CompiledPlan, new: CompiledPlan) -> PlanDiff:
    """The change from ``old`` to ``new``; see the module doc."""
    old_ids = [s.id for s in old.steps]
    new_ids = [s.id for s in new.steps]
    kept = [i for i in old_ids if i in new_ids]
    diff = PlanDiff(
        playbook=new.playbook,
        old_version=old.version,
        new_version=new.version,
        added=[i for i in new_ids if i not in old_ids],
        removed=[i for i in old_ids if i not in new_ids],
        reordered=kept != [i for i in new_ids if i in old_ids],
        old_order=old_ids,
        new_order=new_ids,
    )
    for step_id in new_ids:
        if step_id not in old_ids:
            continue
        before, after = old.step(step_id), new.step(step_id)
        changes = _step_changes(before, after)
        files = _changed_templates(old, new, before, after)
        if files:
            changes.append(FieldChange(path="email.templates", aspect="email", after=files))
        if changes:
            diff.steps.append(StepChange(step=step_id, kind=after.kind, changes=changes))
    diff.emails = [
        s.id
        for s in new.steps
        if s.email is not None
        and (s.id not in old_ids or any(c.aspect == "email" for c in _changes_of(diff, s.id)))
    ]
    old_data = old.model_dump(mode="json", include=set(SETTINGS))
    new_data = new.model_dump(mode="json", include=set(SETTINGS))
    for name in SETTINGS:
        for path, a, b in _leaves(old_data.get(name), new_data.get(name), name):
            diff.settings.append(
                FieldChange(path=path, aspect=_setting_aspect(path), before=a, after=b)
            )
    return diff


def _changes_of(diff: PlanDiff, step_id: str) -> list[FieldChange]:
    return next((c.changes for c in diff.steps if c.step == step_id), [])


def _step_changes(before: StepPlan, after: StepPlan) -> list[FieldChange]:
    a = before.model_dump(mode="json", exclude=IGNORED_STEP_FIELDS)
    b = after.model_dump(mode="json", exclude=IGNORED_STEP_FIELDS)
    return [
        FieldChange(path=path, aspect=_step_aspect(path), before=x, after=y)
        for path, x, y in _leaves(a, b, "")
    ]


def _leaves(a: Any, b: Any, prefix: str) -> list[tuple[str, Any, Any]]:
    """Every differing leaf of two JSON values, with its dotted path (lists compared whole)."""
    if a == b:
        return []
    if isinstance(a, dict) and isinstance(b, dict):
        out: list[tuple[str, Any, Any]] = []
        for key in [*a, *(k for k in b if k not in a)]:
            path = f"{prefix}.{key}" if prefix else str(key)
            out += _leaves(a.get(key), b.get(key), path)
        return out
    return [(prefix, a, b)]


def _step_aspect(path: str) -> Aspect:
    head, _, rest = path.partition(".")
    field = rest.split(".", 1)[0]
    if head == "condition":
        return "condition"
    if head in ("wait", "wait_for"):
        return "wait"
    if head == "task":
        return "task"
    if head == "email":
        return "recipients" if field in RECIPIENT_FIELDS else "email"
    if head in ("next", "branch"):
        return "flow"
    if head == "kind":
        return "kind"
    return "other"


def _setting_aspect(path: str) -> Aspect:
    head = path.split(".", 1)[0]
    if head in ("trigger", "exit", "goal"):
        return "condition"
    if head in ("window", "sender", "reply_to", "delivery"):
        return "email"
    if head == "start":
        return "flow"
    return "other"


def _email_sources(plan: CompiledPlan, step: StepPlan) -> dict[str, str | None]:
    assert step.email is not None
    files = step.email.files or [step.email.html_template]
    return {name: plan.templates.get(name) for name in files}


def _changed_templates(
    old: CompiledPlan, new: CompiledPlan, before: StepPlan, after: StepPlan
) -> list[str]:
    """The template files of an email step whose source changed (or that came or went)."""
    if before.email is None or after.email is None:
        return []
    a, b = _email_sources(old, before), _email_sources(new, after)
    return sorted(name for name in {*a, *b} if a.get(name) != b.get(name))


class RenderedEmail(BaseModel):
    """An email step rendered for one example recipient: its subject and plain text."""

    step: str
    subject: str = ""
    text: str = ""
    error: str | None = None


def render_email(plan: CompiledPlan, step_id: str, context: dict[str, Any]) -> RenderedEmail:
    """The email of ``step_id`` rendered with ``context`` (a customer snapshot with a
    ``contact``, as the send activity builds it); a render failure is reported, not raised."""
    step = plan.step(step_id)
    if step.email is None:
        return RenderedEmail(step=step_id, error="not an email step")
    email = step.email
    data = {"unsubscribe_url": "https://example.invalid/unsubscribe", "locale": "en", **context}
    try:
        subject = render_text(email.subject, data)
        data["preheader"] = render_text(email.preheader, data) if email.preheader else ""
        html = render(plan.templates, email.html_template, data)
        text = (
            render(plan.templates, email.text_template, data)
            if email.text_template
            else html_to_text(html)
        )
    except LanguageError as exc:
        return RenderedEmail(step=step_id, error=str(exc))
    return RenderedEmail(step=step_id, subject=" ".join(subject.split()), text=text.strip())


__all__ = ["FieldChange", "PlanDiff", "RenderedEmail", "StepChange", "diff_plans", "render_email"]
