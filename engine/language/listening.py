"""The events a compiled plan can react to, so the router signals only enrollments that listen.

An enrollment's interpreter (`workflows/interpreter.py`, `Interpreter._drain`) acts on an
event only when its name is one of: the plan's ``exit`` events, its ``goal`` event, the
event or metric of a milestone the plan tracks (which also ends a ``goal: {milestone}``
and a ``wait_for: {milestone}``), or the event of a ``wait_for: {event}`` step (also when
it arrives before the wait begins). Any other event would only be written to the
enrollment's own record, so it costs Temporal work (a signal, a workflow task) for nothing.

The set depends only on the plan, and a plan's version is the hash of its content, so it
is computed once per (playbook, version) and kept.
"""

from __future__ import annotations

from engine.language.plan import CompiledPlan

_KNOWN: dict[tuple[str, str], frozenset[str]] = {}


def _compute(plan: CompiledPlan) -> frozenset[str]:
    names: set[str] = set()
    if plan.exit is not None:
        names.update(plan.exit.on_events)
    if plan.goal is not None and plan.goal.event:
        names.add(plan.goal.event)
    for milestone in plan.milestones.values():
        names.update(n for n in (milestone.event, milestone.metric) if n)
    names.update(s.wait_for.event for s in plan.steps if s.wait_for and s.wait_for.event)
    return frozenset(names)


def listened_events(plan: CompiledPlan) -> frozenset[str]:
    """The event names an enrollment running ``plan`` reacts to."""
    if not plan.version:  # an unversioned plan (built by hand): its content may change
        return _compute(plan)
    key = (plan.playbook, plan.version)
    names = _KNOWN.get(key)
    if names is None:
        names = _KNOWN[key] = _compute(plan)
    return names
