"""Compile a validated playbook into a `CompiledPlan`, checking everything that needs context.

The schema checks each field on its own; here we check the playbook as a whole: step ids
and references, loops that could spin with no time passing, expressions and templates
(syntax and every name they use), milestones, recipients and assignees. Every problem is a
located diagnostic; a playbook with errors produces no plan. A playbook the schema
rejected is still checked here, over the parts that validated (`partial`), so one run
reports every problem.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, TypedDict

from jinja2.exceptions import TemplateSyntaxError

from engine.language.diagnostics import Diagnostic, did_you_mean
from engine.language.durations import parse_duration
from engine.language.expressions import (
    BASE_NAMES,
    SourceTree,
    analyse_expression,
    check_expression,
    check_names,
)
from engine.language.jinja_env import shared_environment
from engine.language.loader import LoadedFile
from engine.language.partial import PartialPlaybook
from engine.language.plan import (
    END,
    BranchCasePlan,
    BranchPlan,
    CompiledPlan,
    ContentPlan,
    EmailPlan,
    EndPlan,
    EnrollPlan,
    EscalationPlan,
    ExitPlan,
    GoalPlan,
    LatePlan,
    MilestonePlan,
    NotifyPlan,
    RecipientKind,
    SenderPlan,
    StepPlan,
    TaskPlan,
    TriggerPlan,
    UpdatePlan,
    VariantPlan,
    WaitForPlan,
    WaitPlan,
    WindowPlan,
)
from engine.language.schema import (
    WEEKDAYS,
    BranchStep,
    EmailAction,
    EmailStep,
    EndStep,
    EnrollStep,
    Late,
    MilestoneDefinition,
    NotifyStep,
    Playbook,
    Sender,
    SendWindow,
    TaskAction,
    TaskStep,
    UpdateStep,
    WaitForStep,
    WaitStep,
    WebhookStep,
    step_action,
)
from engine.language.templates import EMAIL_NAMES, TemplateLibrary, check_text
from engine.language.unbounded import (
    unbounded_constructs,
    unbounded_in_expression,
    unbounded_in_text,
)
from engine.language.yaml_source import SourceDocument

EMAIL_ADDRESS = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
DEFAULT_WINDOW = SendWindow()
# `on_date: <anchor> - <duration>` (e.g. `customer.renewal_date - days(120)`): by default a
# late customer enrolls while <anchor> is still ahead.
ANCHORED_DATE = re.compile(r"\s*(?P<anchor>\S.*?)\s*-\s*(?:days|weeks|hours)\(\s*\d+\s*\)\s*", re.S)
# The late window of a date trigger with no anchor: sweeps missed during a week's downtime.
DEFAULT_CATCH_UP = 7 * 24 * 3600
Loc = tuple[str | int, ...]


@dataclass
class ProjectContext:
    """What a playbook may refer to outside itself."""

    milestones: dict[str, MilestoneDefinition]
    templates: TemplateLibrary
    playbook_ids: set[str] | None = None


class _Delivery(TypedDict):
    """The `EmailPlan` fields a template email and an inline one fill alike."""

    to: str | None
    recipient: RecipientKind
    recipient_value: str | None
    window: WindowPlan | None
    sender: SenderPlan | None
    reply_to: str | None


@dataclass
class _Edge:
    source: int
    target: str
    loc: Loc


@dataclass
class _Compiler:
    playbook: Playbook
    doc: SourceDocument
    project: ProjectContext
    partial: PartialPlaybook | None = None
    diagnostics: list[Diagnostic] = field(default_factory=list)
    templates: dict[str, str] = field(default_factory=dict)

    # -- where steps are in the file -------------------------------------------------
    @property
    def written_ids(self) -> tuple[str | None, ...]:
        """The id on every step of the file, including steps the schema rejected."""
        if self.partial:
            return self.partial.step_ids
        return tuple(step.id for step in self.playbook.steps)

    def _at(self, index: int) -> Loc:
        """The location of ``playbook.steps[index]`` in the file."""
        return ("steps", self.partial.positions[index] if self.partial else index)

    def _following(self, index: int) -> str:
        """The id of the step written after ``playbook.steps[index]``, or 'end'."""
        position = self.partial.positions[index] if self.partial else index
        ids = self.written_ids
        return (ids[position + 1] or END) if position + 1 < len(ids) else END

    # -- reporting -------------------------------------------------------------------
    def error(self, loc: Loc, message: str, *, key: bool = False) -> None:
        self.diagnostics.append(self.doc.diagnostic(loc, message, key=key))

    def warning(self, loc: Loc, message: str) -> None:
        self.diagnostics.append(self.doc.diagnostic(loc, message, severity="warning"))

    def expression(self, loc: Loc, source: str | None, names: Iterable[str]) -> None:
        if source is None:
            return
        for problem in check_expression(source, names):
            self.error(loc, problem)
        for problem in unbounded_in_expression(source):
            self.warning(loc, problem)

    def text(self, loc: Loc, source: str | None, names: Iterable[str]) -> None:
        if source is None:
            return
        for problem in check_text(source, tuple(names)):
            self.error(loc, problem)
        for _, problem in unbounded_in_text(source):
            self.warning(loc, problem)

    # -- names -----------------------------------------------------------------------
    @property
    def step_names(self) -> tuple[str, ...]:
        event = ("event",) if self._on_event else ()
        return (*BASE_NAMES, *event)

    @property
    def step_expression_names(self) -> tuple[str, ...]:
        """Names a step's expressions see (`if:`, branch cases, `wait: until`): templates' names
        plus ``enrollment`` (how late a date trigger enrolled the customer)."""
        return (*self.step_names, "enrollment")

    @property
    def _on_event(self) -> bool:
        if self.playbook.trigger:
            return self.playbook.trigger.on_event is not None
        # A trigger the schema rejected may still be an event trigger: do not report every
        # use of 'event' as undefined on top of the trigger's own error.
        raw = self.doc.data.get("trigger") if self.partial and self.doc.data else None
        return isinstance(raw, dict) and "on_event" in raw

    # -- whole playbook --------------------------------------------------------------
    def compile(self) -> CompiledPlan | None:
        pb = self.playbook
        steps = pb.steps
        ids = self._step_ids()
        plans = [self._step(i, step, ids) for i, step in enumerate(steps)]
        self._check_loops_and_reachability(plans)
        trigger, exit_, goal = self._trigger(), self._exit(), self._goal()
        self._check_late_touches(trigger, plans)
        if self.partial:
            return None
        plan_kwargs: dict[str, Any] = {
            "playbook": pb.playbook,
            "name": pb.name,
            "description": pb.description,
            "trigger": trigger,
            "exit": exit_,
            "goal": goal,
            "window": self._window(pb.defaults.send_window),
            "sender": self._sender(pb.defaults.from_),
            "reply_to": pb.defaults.reply_to,
            "start": steps[0].id,
            "milestones": self._milestones_used(),
            "templates": dict(sorted(self.templates.items())),
        }
        if pb.reenroll in ("never", "always"):
            plan_kwargs["reenroll"] = pb.reenroll
        else:
            plan_kwargs["reenroll"] = "after"
            plan_kwargs["reenroll_after_seconds"] = parse_duration(pb.reenroll)
        compiled = [plan for plan in plans if plan is not None]
        if any(d.severity == "error" for d in self.diagnostics) or len(compiled) < len(plans):
            return None
        return CompiledPlan(steps=compiled, **plan_kwargs).with_version()

    def _step_ids(self) -> set[str]:
        seen: dict[str, int] = {}
        for index, step_id in enumerate(self.written_ids):
            if step_id is None:
                continue
            if step_id == END:
                self.error(("steps", index, "id"), "'end' is reserved; name the step otherwise")
            if step_id in seen:
                first = self.doc.where(("steps", seen[step_id], "id")).line
                self.error(
                    ("steps", index, "id"),
                    f"duplicate step id '{step_id}' (first used at line {first})",
                )
            else:
                seen[step_id] = index
        return set(seen)

    def _ref(self, loc: Loc, target: str | None, ids: set[str]) -> None:
        if target is None or target == END or target in ids:
            return
        self.error(
            loc,
            f"no step '{target}' in this playbook"
            f"{did_you_mean(target, [*ids, END])}; "
            "refer to a step id or 'end'",
        )

    # -- header sections -------------------------------------------------------------
    def _trigger(self) -> TriggerPlan | None:
        trig = self.playbook.trigger
        if trig is None:
            return None
        loc: Loc = ("trigger",)
        names = (*BASE_NAMES, "event") if trig.on_event else BASE_NAMES
        self.expression((*loc, "if"), trig.if_, names)
        self.expression((*loc, "on_date"), trig.on_date, BASE_NAMES)
        self.expression((*loc, "on_change"), trig.on_change, BASE_NAMES)
        if trig.on_change:
            cooldown = parse_duration(trig.cooldown) if trig.cooldown else None
            return TriggerPlan(
                kind="change", change=trig.on_change, condition=trig.if_, cooldown_seconds=cooldown
            )
        if trig.on_event:
            return TriggerPlan(kind="event", event=trig.on_event, condition=trig.if_)
        if trig.on_date:
            late = self._late(loc, trig.on_date, trig.late)
            return TriggerPlan(kind="date", date=trig.on_date, condition=trig.if_, late=late)
        if trig.schedule:
            sched = trig.schedule
            return TriggerPlan(
                kind="schedule",
                every=sched.every,
                before_end_seconds=parse_duration(sched.before_end) if sched.before_end else None,
                after_start_seconds=(
                    parse_duration(sched.after_start) if sched.after_start else None
                ),
                condition=trig.if_,
            )
        return TriggerPlan(kind="manual", condition=trig.if_)

    def _late(self, loc: Loc, on_date: str, late: Late | str | None) -> LatePlan:
        """The late policy as written, or the default: enroll until the anchor of
        ``<anchor> - <duration>`` is reached, else catch up for `DEFAULT_CATCH_UP`."""
        if late == "skip":
            return LatePlan(policy="skip")
        if isinstance(late, Late) and late.catch_up is not None:
            return LatePlan(policy="catch_up", catch_up_seconds=parse_duration(late.catch_up))
        if isinstance(late, Late) and late.enroll_until is not None:
            self.expression((*loc, "late", "enroll_until"), late.enroll_until, BASE_NAMES)
            return LatePlan(policy="enroll_until", until=late.enroll_until)
        anchored = ANCHORED_DATE.fullmatch(on_date)
        if anchored:
            return LatePlan(policy="enroll_until", until=anchored["anchor"])
        return LatePlan(policy="catch_up", catch_up_seconds=DEFAULT_CATCH_UP)

    def _check_late_touches(
        self, trigger: TriggerPlan | None, plans: list[StepPlan | None]
    ) -> None:
        """Warn at each `wait: until` a late enrollment may find past, so that the email after
        it, meant for that date, would go out at once."""
        if trigger is None or trigger.late is None or trigger.late.policy == "skip":
            return
        by_id = {p.id: p for p in plans if p is not None}
        for i, plan in enumerate(plans):
            if plan is None or plan.wait is None or plan.wait.until is None:
                continue
            following = _email_after(by_id, plan.next)
            if plan.wait.on_passed is not None or following is None:
                continue
            self.warning(
                (*self._at(i), "wait", "until"),
                f"a customer enrolled late (after the trigger date) may find this date already "
                f"past and get email '{following.id}', meant for it, at once; add 'on_passed: "
                f"<step>' to go past it, or guard it with 'if:' on enrollment.late_days",
            )

    def _exit(self) -> ExitPlan | None:
        ex = self.playbook.exit
        if ex is None:
            return None
        self.expression(("exit", "if"), ex.if_, BASE_NAMES)
        return ExitPlan(on_events=ex.on_events, condition=ex.if_)

    def _goal(self) -> GoalPlan | None:
        goal = self.playbook.goal
        if goal is None:
            return None
        self._milestone(("goal", "milestone"), goal.milestone)
        self.expression(("goal", "if"), goal.if_, (*BASE_NAMES, "event"))
        self.expression(("goal", "when"), goal.when, BASE_NAMES)
        return GoalPlan(
            milestone=goal.milestone, event=goal.event, when=goal.when, condition=goal.if_
        )

    def _milestone(self, loc: Loc, name: str | None) -> None:
        if name is not None and name not in self.project.milestones:
            known = sorted(self.project.milestones)
            self.error(
                loc,
                f"unknown milestone '{name}'{did_you_mean(name, known)}; define it "
                f"in milestones.yaml (known: {', '.join(known) or 'none'})",
            )

    def _milestones_used(self) -> dict[str, MilestonePlan]:
        names = set()
        if self.playbook.goal and self.playbook.goal.milestone:
            names.add(self.playbook.goal.milestone)
        for step in self.playbook.steps:
            if isinstance(step, WaitForStep) and step.wait_for.milestone:
                names.add(step.wait_for.milestone)
        out = {}
        for name in sorted(names & set(self.project.milestones)):
            m = self.project.milestones[name]
            out[name] = MilestonePlan(
                name=name,
                event=m.event,
                count=m.count,
                where=m.where,
                metric=m.metric,
                at_least=m.at_least,
            )
        return out

    @staticmethod
    def _window(window: SendWindow | str | None) -> WindowPlan | None:
        if window is None or window == "anytime" or not isinstance(window, SendWindow):
            return None

        def minutes(hhmm: str) -> int:
            hours, mins = hhmm.split(":")
            return int(hours) * 60 + int(mins)

        return WindowPlan(
            days=sorted(WEEKDAYS.index(d) for d in set(window.days)),
            start_minute=minutes(window.between[0]),
            end_minute=minutes(window.between[1]),
        )

    @staticmethod
    def _sender(sender: Sender | None) -> SenderPlan | None:
        return SenderPlan(email=sender.email, name=sender.name) if sender else None

    # -- steps -----------------------------------------------------------------------
    def _step(self, index: int, step: Any, ids: set[str]) -> StepPlan | None:
        loc = self._at(index)
        following = self._following(index)
        self._ref((*loc, "next"), step.next, ids)
        self.expression((*loc, "if"), step.if_, self.step_expression_names)
        kind = step_action(step)
        common: dict[str, Any] = {
            "id": step.id,
            "kind": kind,
            "line": self.doc.where(loc).line,
            "condition": step.if_,
            "next": step.next or following,
            "label": step.label,
        }
        action_loc: Loc = (*loc, kind or "")
        if isinstance(step, EmailStep):
            email = self._email(action_loc, step)
            return StepPlan(email=email, **common) if email else None
        if isinstance(step, TaskStep):
            return StepPlan(task=self._task(action_loc, step, ids), **common)
        if isinstance(step, WaitStep):
            wait = step.wait
            self.expression((*action_loc, "until"), wait.until, self.step_expression_names)
            self._ref((*action_loc, "on_passed"), wait.on_passed, ids)
            at = None
            if wait.at:
                hours, mins = wait.at.split(":")
                at = int(hours) * 60 + int(mins)
            seconds = parse_duration(wait.for_) if wait.for_ else None
            return StepPlan(
                wait=WaitPlan(
                    seconds=seconds, until=wait.until, at_minute=at, on_passed=wait.on_passed
                ),
                **common,
            )
        if isinstance(step, WaitForStep):
            return StepPlan(
                wait_for=self._wait_for(action_loc, step, ids, common["next"]), **common
            )
        if isinstance(step, BranchStep):
            cases = []
            for n, case in enumerate(step.branch.cases):
                case_loc = (*action_loc, "cases", n)
                self.expression((*case_loc, "if"), case.if_, self.step_expression_names)
                self._ref((*case_loc, "goto"), case.goto, ids)
                cases.append(BranchCasePlan(condition=case.if_, goto=case.goto))
            self._ref((*action_loc, "otherwise"), step.branch.otherwise, ids)
            branch = BranchPlan(cases=cases, otherwise=step.branch.otherwise or common["next"])
            return StepPlan(branch=branch, **common)
        if isinstance(step, UpdateStep):
            for key, value in step.update.set.items():
                if isinstance(value, str):
                    self.text((*action_loc, "set", key), value, self.step_names)
            up = step.update
            return StepPlan(
                update=UpdatePlan(set=up.set, add_tags=up.add_tags, remove_tags=up.remove_tags),
                **common,
            )
        if isinstance(step, NotifyStep):
            self.text((*action_loc, "text"), step.notify.text, self.step_names)
            channel = step.notify.channel
            body: dict[str, Any] = {"text": step.notify.text}
            return StepPlan(
                notify=NotifyPlan(channel=channel, endpoint=channel, body=body), **common
            )
        if isinstance(step, WebhookStep):
            self._json_templates((*action_loc, "body"), step.webhook.body)
            return StepPlan(
                notify=NotifyPlan(
                    channel="webhook", endpoint=step.webhook.endpoint, body=step.webhook.body
                ),
                **common,
            )
        if isinstance(step, EnrollStep):
            target = step.enroll.playbook
            known = self.project.playbook_ids
            if target == self.playbook.playbook:
                self.error(
                    (*action_loc, "playbook"),
                    "a playbook cannot enroll a customer in itself; use 'next' to loop",
                )
            elif known is not None and target not in known:
                self.error(
                    (*action_loc, "playbook"),
                    f"no playbook '{target}'{did_you_mean(target, known)}; "
                    f"known: {', '.join(sorted(known))}",
                )
            return StepPlan(enroll=EnrollPlan(playbook=target), **common)
        if isinstance(step, EndStep):
            return StepPlan(end=EndPlan(outcome=step.end.outcome), **common)
        return None

    def _recipient(self, loc: Loc, to: str | None) -> tuple[RecipientKind, str | None] | None:
        if to is None:
            return "contacts", None
        value = to.strip()
        if value == "owner":
            return "owner", None
        if value == "manager":
            return "manager", None
        if value.startswith("role:"):
            return "role", value.removeprefix("role:").strip()
        if EMAIL_ADDRESS.match(value):
            return "address", value
        checked = analyse_expression(value, (*self.step_names, "contact"))
        for problem in unbounded_in_expression(value):
            self.warning(loc, problem)
        if checked.problems:
            for problem in checked.problems:
                self.error(loc, problem)
            return None
        if "contact" not in checked.variables:
            self.error(
                loc,
                f"'to: {value}' never looks at 'contact', so it picks every contact "
                'or none; filter contacts (e.g. contact.role == "admin") or use '
                "'owner', 'manager', 'role:<name>' or an email address",
            )
            return None
        return "contacts", value

    def _email(self, loc: Loc, step: EmailStep) -> EmailPlan | None:
        email: EmailAction = step.email
        recipient = self._recipient((*loc, "to"), email.to)
        window_src = (
            email.send_window
            if email.send_window is not None
            else (self.playbook.defaults.send_window or DEFAULT_WINDOW)
        )
        common: _Delivery = {
            "to": email.to if recipient and recipient[0] == "contacts" else None,
            "recipient": recipient[0] if recipient else "contacts",
            "recipient_value": recipient[1] if recipient else None,
            "window": self._window(window_src),
            "sender": self._sender(email.from_),
            "reply_to": email.reply_to,
        }
        content = self._content(
            loc, email.template, email.subject, email.body, email.text, f"inline/{step.id}"
        )
        if content is None:
            return None
        base, locales, files = content
        variants: list[VariantPlan] = []
        for index, variant in enumerate(email.variants):
            vloc = (*loc, "variants", index)
            if variant.template or variant.subject:
                found = self._content(
                    vloc,
                    variant.template,
                    variant.subject,
                    variant.body,
                    variant.text,
                    f"inline/{step.id}.{variant.name}",
                )
                if found is None:
                    continue
                own, own_locales, own_files = found
                files = sorted({*files, *own_files})
            else:  # the step's own content, under this name and weight
                own, own_locales = base, locales
            variants.append(
                VariantPlan(
                    name=variant.name,
                    weight=variant.weight,
                    locales=own_locales,
                    **own.model_dump(),
                )
            )
        return EmailPlan(
            template=email.template,
            **base.model_dump(),
            files=files,
            locales=locales,
            variants=variants,
            **common,
        )

    def _content(
        self,
        loc: Loc,
        template_name: str | None,
        subject: str | None,
        body: str | None,
        text: str | None,
        inline_key: str,
    ) -> tuple[ContentPlan, dict[str, ContentPlan], list[str]] | None:
        """An email's (or variant's) content, its locale versions and the files it renders."""
        if template_name:
            template, diags = self.project.templates.load(template_name)
            if template is None:
                available = self.project.templates.available()
                self.error(
                    (*loc, "template"),
                    f"template '{template_name}' not found: expected "
                    f"{self.project.templates.display(template_name + '.html')}"
                    f"{did_you_mean(template_name, available)}",
                )
                return None
            self.diagnostics.extend(diags)
            self.templates.update(template.sources)
            locales = {
                tag: ContentPlan(
                    subject=version.subject,
                    preheader=version.preheader,
                    html_template=version.html_file,
                    text_template=version.text_file,
                )
                for tag, version in template.locales.items()
            }
            content = ContentPlan(
                subject=template.subject,
                preheader=template.preheader,
                html_template=template.html_file,
                text_template=template.text_file,
            )
            return content, locales, sorted(template.sources)
        assert subject is not None and body is not None
        self.text((*loc, "subject"), subject, EMAIL_NAMES)
        html_key = f"{inline_key}.html"
        self._inline((*loc, "body"), body, html_key, autoescape=True)
        text_key = None
        if text:
            text_key = f"{inline_key}.txt"
            self._inline((*loc, "text"), text, text_key, autoescape=False)
        content = ContentPlan(subject=subject, html_template=html_key, text_template=text_key)
        return content, {}, [k for k in (html_key, text_key) if k]

    def _inline(self, loc: Loc, source: str, key: str, *, autoescape: bool) -> None:
        env = shared_environment(autoescape=autoescape)
        try:
            tree = SourceTree.walk(env.parse(source), source)
        except TemplateSyntaxError as exc:
            line, column = self._inline_position(loc, exc.lineno or 1)
            self.diagnostics.append(
                Diagnostic(self.doc.path, line, column, f"body does not parse: {exc.message}")
            )
            return
        for body_line, problem in unbounded_constructs(tree.tree):
            line, column = self._inline_position(loc, body_line)
            self.diagnostics.append(
                Diagnostic(self.doc.path, line, column, problem, severity="warning")
            )
        for problem in check_names(tree, EMAIL_NAMES):
            self.error(loc, problem)
        self.templates[key] = source

    def _inline_position(self, loc: Loc, body_line: int) -> tuple[int, int]:
        """The file line and column of line ``body_line`` of the inline text at ``loc``.

        A block scalar (``body: |``) starts on the line after its indicator."""
        pos = self.doc.where(loc)
        lines = self.doc.text.splitlines()
        start = lines[pos.line - 1][pos.column - 1 :] if pos.line <= len(lines) else ""
        if not start.startswith(("|", ">")):
            return pos.line + body_line - 1, pos.column
        line = pos.line + body_line
        text = lines[line - 1] if line <= len(lines) else ""
        return line, len(text) - len(text.lstrip()) + 1

    def _assignee(self, loc: Loc, value: str, allowed: tuple[str, ...]) -> None:
        if value in allowed or value.startswith("role:") or EMAIL_ADDRESS.match(value):
            return
        options = ", ".join(allowed)
        self.error(
            loc, f"'{value}' is not an assignee: use {options}, 'role:<name>' or an email address"
        )

    def _task(self, loc: Loc, step: TaskStep, ids: set[str]) -> TaskPlan:
        task = step.task
        names = self.step_names
        self.text((*loc, "title"), task.title, names)
        self.text((*loc, "description"), task.description, names)
        self._assignee((*loc, "assignee"), task.assignee, ("owner", "manager"))
        self._assignee((*loc, "escalate_to"), task.escalate_to, ("owner", "manager"))
        if len(set(task.outcomes)) != len(task.outcomes):
            self.error((*loc, "outcomes"), "outcomes must be unique")
        for outcome, target in task.on_outcome.items():
            if outcome not in task.outcomes:
                self.error(
                    (*loc, "on_outcome", outcome),
                    f"'{outcome}' is not one of this task's outcomes"
                    f"{did_you_mean(outcome, task.outcomes)}; outcomes: "
                    f"{', '.join(task.outcomes)}",
                    key=True,
                )
            self._ref((*loc, "on_outcome", outcome), target, ids)
        if task.on_outcome and not task.wait:
            self.error(
                (*loc, "on_outcome"),
                "'on_outcome' needs 'wait: true' (the playbook must wait for the outcome)",
                key=True,
            )
        if task.escalate_after and not task.wait:
            self.warning(
                (*loc, "escalate_after"),
                "'escalate_after' without 'wait: true' escalates only while the "
                "playbook waits; it has no effect here",
            )
        chain = self._escalations(loc, task)
        timeout_outcome, on_timeout = self._task_timeout(loc, step, ids)
        return TaskPlan(
            title=task.title,
            description=task.description,
            assignee=task.assignee,
            due_seconds=parse_duration(task.due) if task.due else None,
            priority=task.priority,
            outcomes=task.outcomes,
            wait=task.wait,
            escalate_after_seconds=(
                parse_duration(task.escalate_after) if task.escalate_after else None
            ),
            escalate_to=task.escalate_to,
            on_outcome=task.on_outcome,
            escalations=chain,
            timeout_seconds=parse_duration(task.timeout) if task.timeout else None,
            on_timeout=on_timeout,
            timeout_outcome=timeout_outcome,
            assign=task.assign,
        )

    def _json_templates(self, loc: Loc, value: Any) -> None:
        """Check every string of a webhook body as a template."""
        if isinstance(value, str):
            self.text(loc, value, self.step_names)
        elif isinstance(value, dict):
            for key, item in value.items():
                self._json_templates((*loc, key), item)
        elif isinstance(value, list):
            for i, item in enumerate(value):
                self._json_templates((*loc, i), item)

    def _escalations(self, loc: Loc, task: TaskAction) -> list[EscalationPlan]:
        """The chain, each link's delay in seconds (counted on working days when it runs)."""
        for i, link in enumerate(task.escalate or []):
            self._assignee((*loc, "escalate", i, "to"), link.to, ("owner", "manager"))
        if task.escalate and not task.wait:
            self.warning(
                (*loc, "escalate"),
                "'escalate' without 'wait: true' escalates only while the playbook waits; "
                "it has no effect here",
            )
        if task.escalate is None and task.escalate_after:
            # The one-link form: the same chain, so it too counts working days.
            return [
                EscalationPlan(
                    to=task.escalate_to, after_seconds=parse_duration(task.escalate_after)
                )
            ]
        return [
            EscalationPlan(to=link.to, after_seconds=parse_duration(link.after))
            for link in task.escalate or []
        ]

    def _task_timeout(
        self, loc: Loc, step: TaskStep, ids: set[str]
    ) -> tuple[str | None, str | None]:
        """(outcome assumed, step to go to) on timeout; warns when a wait has no timeout."""
        task = step.task
        if task.wait and task.timeout is None:
            self.warning(
                loc,
                f"task step '{step.id}' waits with no timeout: a task nobody completes holds "
                "the enrollment forever; add 'timeout' and 'on_timeout'",
            )
        if task.timeout and not task.wait:
            self.warning((*loc, "timeout"), "'timeout' without 'wait: true' has no effect here")
        if task.on_timeout is None or task.on_timeout in task.outcomes:
            return task.on_timeout, None
        self._ref((*loc, "on_timeout"), task.on_timeout, ids)
        return None, task.on_timeout

    def _wait_for(self, loc: Loc, step: WaitForStep, ids: set[str], following: str) -> WaitForPlan:
        wf = step.wait_for
        self._milestone((*loc, "milestone"), wf.milestone)
        self.expression((*loc, "if"), wf.if_, (*BASE_NAMES, "event"))
        self.expression((*loc, "when"), wf.when, BASE_NAMES)
        self._ref((*loc, "on_timeout"), wf.on_timeout, ids)
        if wf.timeout is None:
            what = "milestone" if wf.milestone else "event" if wf.event else "condition"
            self.warning(
                loc,
                f"step '{step.id}' waits for {what} "
                f"'{wf.milestone or wf.event or wf.when}' with no timeout; it may wait forever",
            )
        return WaitForPlan(
            milestone=wf.milestone,
            event=wf.event,
            when=wf.when,
            condition=wf.if_,
            timeout_seconds=parse_duration(wf.timeout) if wf.timeout else None,
            on_timeout=wf.on_timeout or following,
        )

    # -- graph checks ----------------------------------------------------------------
    def _edges(self, plans: list[StepPlan | None]) -> list[_Edge]:
        edges: list[_Edge] = []
        for i, (step, plan) in enumerate(zip(self.playbook.steps, plans, strict=True)):
            if plan is None:
                continue
            loc = self._at(i)
            next_loc = (*loc, "next") if step.next else loc
            # End and branch steps only fall through to `next` when their `if:` is false.
            all_routed = plan.task is not None and set(plan.task.outcomes) <= set(
                plan.task.on_outcome
            )
            if (plan.kind not in ("end", "branch") and not all_routed) or plan.condition:
                edges.append(_Edge(i, plan.next, next_loc))
            if plan.branch:
                for n, case in enumerate(plan.branch.cases):
                    edges.append(_Edge(i, case.goto, (*loc, "branch", "cases", n, "goto")))
                edges.append(_Edge(i, plan.branch.otherwise, (*loc, "branch", "otherwise")))
            if plan.wait and plan.wait.on_passed:
                edges.append(_Edge(i, plan.wait.on_passed, (*loc, "wait", "on_passed")))
            if plan.wait_for and plan.wait_for.on_timeout:
                edges.append(_Edge(i, plan.wait_for.on_timeout, (*loc, "wait_for", "on_timeout")))
            if plan.task:
                for outcome, target in plan.task.on_outcome.items():
                    edges.append(_Edge(i, target, (*loc, "task", "on_outcome", outcome)))
        return edges

    def _check_loops_and_reachability(self, plans: list[StepPlan | None]) -> None:
        index = {s.id: i for i, s in enumerate(self.playbook.steps)}
        edges = [e for e in self._edges(plans) if e.target in index]
        passes_time = [p is not None and _passes_time(p) for p in plans]
        graph: dict[int, list[_Edge]] = {}
        for e in edges:
            if not passes_time[e.source]:
                graph.setdefault(e.source, []).append(e)
        reported: set[int] = set()
        for start in range(len(plans)):
            if passes_time[start] or start in reported:
                continue
            cycle = _find_cycle(start, graph, index, passes_time)
            if cycle and not reported.intersection(e.source for e in cycle):
                reported.update(e.source for e in cycle)
                closing = max(cycle, key=lambda e: (e.source >= index[e.target], e.source))
                names = " -> ".join(
                    [self.playbook.steps[e.source].id for e in cycle] + [cycle[-1].target]
                )
                self.error(
                    closing.loc,
                    f"loop with no wait: {names} can repeat without time "
                    "passing; add a wait, a wait_for or a task with "
                    "'wait: true' inside the loop",
                )
        if self.partial or None in plans:
            # A step that was rejected or failed to compile may lead anywhere: which steps
            # are reachable is unknown, and guessing reports every step after it.
            return
        successors: dict[int, list[int]] = {}
        for e in edges:
            successors.setdefault(e.source, []).append(index[e.target])
        reachable = {0}
        frontier = [0]
        while frontier:
            for target in successors.get(frontier.pop(), []):
                if target not in reachable:
                    reachable.add(target)
                    frontier.append(target)
        for i, step in enumerate(self.playbook.steps):
            if i not in reachable:
                self.warning(
                    ("steps", i, "id"), f"step '{step.id}' is unreachable: no step leads to it"
                )


def _email_after(by_id: dict[str, StepPlan], step_id: str) -> StepPlan | None:
    """The unconditional email reached from ``step_id`` with no time passing, if any."""
    seen: set[str] = set()
    step = by_id.get(step_id)
    while step is not None and step.id not in seen:
        seen.add(step.id)
        if step.email is not None:
            return step if step.condition is None else None
        if step.kind in ("branch", "end") or _passes_time(step):
            return None
        step = by_id.get(step.next)
    return None


def _passes_time(plan: StepPlan) -> bool:
    if plan.kind in ("wait", "wait_for"):
        return True
    return plan.kind == "task" and plan.task is not None and plan.task.wait


def _find_cycle(
    start: int, graph: dict[int, list[_Edge]], index: dict[str, int], passes_time: list[bool]
) -> list[_Edge] | None:
    """A cycle through ``start`` made only of steps where no time passes, or None."""
    stack: list[tuple[int, list[_Edge]]] = [(start, [])]
    visited: set[int] = set()
    while stack:
        node, path = stack.pop()
        for edge in graph.get(node, []):
            target = index[edge.target]
            if target == start:
                return [*path, edge]
            if target not in visited and not passes_time[target]:
                visited.add(target)
                stack.append((target, [*path, edge]))
    return None


def compile_loaded(
    loaded: LoadedFile, project: ProjectContext
) -> tuple[CompiledPlan | None, list[Diagnostic]]:
    """Compile a loaded playbook file; returns (plan or None, all diagnostics).

    A file the schema rejected gives no plan, but the parts that validated are still
    checked, so its diagnostics hold every problem the file's structure allows."""
    if loaded.document is None:
        return None, list(loaded.diagnostics)
    if loaded.model is not None:
        compiler = _Compiler(loaded.model, loaded.document, project)
    elif loaded.partial is not None:
        compiler = _Compiler(loaded.partial.playbook, loaded.document, project, loaded.partial)
    else:
        return None, list(loaded.diagnostics)
    plan = compiler.compile()
    return plan, [*loaded.diagnostics, *compiler.diagnostics]
