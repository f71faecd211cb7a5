"""Render a compiled plan as a Mermaid flowchart, for pull requests and docs."""

from __future__ import annotations

from engine.language.durations import format_duration
from engine.language.plan import END, CompiledPlan, StepPlan


def _label(step: StepPlan) -> str:
    if step.email:
        what = f"email: {step.email.template or step.email.subject}"
    elif step.task:
        what = f"task: {step.task.title}"
        if step.task.wait:
            what += " (waits)"
    elif step.wait:
        what = (
            f"wait {format_duration(step.wait.seconds)}"
            if step.wait.seconds is not None
            else f"wait until {step.wait.until}"
        )
    elif step.wait_for:
        target = step.wait_for.milestone or step.wait_for.event or step.wait_for.when
        what = f"wait for {target}"
        if step.wait_for.timeout_seconds:
            what += f" (max {format_duration(step.wait_for.timeout_seconds)})"
    elif step.branch:
        what = "branch"
    elif step.update:
        what = "update customer"
    elif step.enroll:
        what = f"enroll in {step.enroll.playbook}"
    elif step.notify:
        what = f"{step.kind} {step.notify.endpoint}"
    else:
        what = f"end: {step.end.outcome if step.end else 'completed'}"
    text = f"{step.id}<br/>{what}".replace('"', "'")
    return text


def _shape(step: StepPlan, text: str) -> str:
    if step.kind == "branch":
        return '{"' + text + '"}'
    if step.kind in ("wait", "wait_for"):
        return '(["' + text + '"])'
    if step.kind == "end":
        return '((("' + text + '")))'
    return '["' + text + '"]'


def _node(ref: str) -> str:
    return "END" if ref == END else "s_" + ref.replace("-", "_")


def _edge_label(text: str) -> str:
    cleaned = text.replace('"', "'").replace("|", "/")
    return cleaned if len(cleaned) <= 40 else cleaned[:37] + "..."


def to_mermaid(plan: CompiledPlan) -> str:
    """A ``flowchart TD`` with a node per step and an edge per way out of it."""
    lines = ["flowchart TD", f'    START(("{plan.name}")) --> {_node(plan.start)}']
    for step in plan.steps:
        node = _node(step.id)
        lines.append(f"    {node}{_shape(step, _label(step))}")
        if step.condition:
            lines.append(
                f'    {node} -. "if not {_edge_label(step.condition)}" .-> {_node(step.next)}'
            )
        if step.branch:
            for case in step.branch.cases:
                lines.append(
                    f'    {node} -- "{_edge_label(case.condition)}" --> {_node(case.goto)}'
                )
            lines.append(f'    {node} -- "otherwise" --> {_node(step.branch.otherwise)}')
        elif step.wait_for:
            label = step.wait_for.milestone or step.wait_for.event or step.wait_for.when or ""
            lines.append(f'    {node} -- "{_edge_label(label)}" --> {_node(step.next)}')
            if step.wait_for.timeout_seconds:
                lines.append(
                    f'    {node} -- "timeout" --> {_node(step.wait_for.on_timeout or END)}'
                )
        elif step.task and step.task.on_outcome:
            routed = set()
            for outcome, target in step.task.on_outcome.items():
                routed.add(outcome)
                lines.append(f'    {node} -- "{outcome}" --> {_node(target)}')
            if set(step.task.outcomes) - routed:
                lines.append(f"    {node} --> {_node(step.next)}")
        elif step.kind != "end":
            lines.append(f"    {node} --> {_node(step.next)}")
    lines.append('    END((("end")))')
    if plan.goal:
        goal = (plan.goal.milestone or plan.goal.event or plan.goal.when or "").replace('"', "'")
        lines.append(f'    GOAL{{{{"goal: {goal}"}}}} -. "any time" .-> END')
    return "\n".join(lines) + "\n"
