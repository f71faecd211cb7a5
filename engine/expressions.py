"""Expressions (``if:``, ``to:``, ``on_date:``, branch cases) and their evaluation context.

Expressions are Jinja2 expressions. At compile time we parse each one, and check every
name and every field of ``customer``, ``contact``, ``owner`` and ``event`` it uses, so a
typo fails `playbook validate` with a line number instead of a failed step weeks later.
At run time (in activities, never in workflow code) they are evaluated in the sandbox
over a snapshot of the customer.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import date, datetime, timedelta
from typing import Any

from jinja2 import Undefined, nodes
from jinja2.exceptions import TemplateError, UndefinedError
from jinja2.sandbox import SecurityError

from engine.diagnostics import did_you_mean
from engine.sandbox import check_size, make_sandbox

CUSTOMER_FIELDS = (
    "id",
    "name",
    "segment",
    "timezone",
    "owner",
    "renewal_date",
    "health_score",
    "attributes",
    "tags",
    "contacts",
    "created_at",
)
CONTACT_FIELDS = ("email", "first_name", "last_name", "name", "role", "unsubscribed")
OWNER_FIELDS = ("email", "name", "first_name", "manager")
EVENT_FIELDS = ("id", "name", "at", "properties")
FIELDS: dict[str, tuple[str, ...]] = {
    "customer": CUSTOMER_FIELDS,
    "contact": CONTACT_FIELDS,
    "owner": OWNER_FIELDS,
    "event": EVENT_FIELDS,
}
HELPERS = ("days", "hours", "weeks", "days_until", "days_since", "date")
BASE_NAMES = ("customer", "owner", "milestones", "now", "today", "playbook", *HELPERS)

_env = make_sandbox()


class ExpressionError(ValueError):
    """An expression that does not parse, names something unknown, or fails to evaluate."""


def _dotted_uses(tree: nodes.Node) -> Iterable[tuple[str, str, int]]:
    """(variable, field, line) for ``var.field`` and ``var["field"]`` in the tree."""
    for node in tree.find_all((nodes.Getattr, nodes.Getitem)):
        target = node.node
        if not isinstance(target, nodes.Name):
            continue
        if isinstance(node, nodes.Getattr):
            yield target.name, node.attr, node.lineno
        elif isinstance(node.arg, nodes.Const) and isinstance(node.arg.value, str):
            yield target.name, node.arg.value, node.lineno


def check_names(tree: nodes.Template, allowed: Iterable[str]) -> list[str]:
    """Messages for every unknown variable or field the parsed tree uses."""
    return [message for _, message in check_names_located(tree, allowed)]


def check_names_located(tree: nodes.Template, allowed: Iterable[str]) -> list[tuple[int, str]]:
    """Like `check_names`, with the (1-based) source line of each problem's first use."""
    from jinja2 import meta

    # Names bound anywhere in the template (imports, set, macros) count as defined:
    # Jinja's analysis treats each block as its own scope and would miss them.
    bound = {n.target for n in tree.find_all(nodes.Import)}
    bound |= {n.name for n in tree.find_all(nodes.Macro)}
    for node in tree.find_all(nodes.FromImport):
        bound |= {name[1] if isinstance(name, tuple) else name for name in node.names}
    for node in tree.find_all((nodes.Assign, nodes.AssignBlock)):
        bound |= {n.name for n in node.target.find_all(nodes.Name)}
        if isinstance(node.target, nodes.Name):
            bound.add(node.target.name)
    allowed = (*allowed, *bound)
    problems = []
    for name in sorted(meta.find_undeclared_variables(tree)):
        if name not in allowed:
            hint = did_you_mean(name, allowed)
            line = min((n.lineno for n in tree.find_all(nodes.Name) if n.name == name), default=1)
            problems.append(
                (line, f"undefined variable '{name}'{hint}; available here: {', '.join(allowed)}")
            )
    seen = set()
    for var, field, line in _dotted_uses(tree):
        fields = FIELDS.get(var)
        if fields is None or var not in allowed or field in fields or (var, field) in seen:
            continue
        seen.add((var, field))
        problems.append(
            (
                line,
                f"'{var}' has no field '{field}'{did_you_mean(field, fields)}; "
                f"its fields are: {', '.join(fields)}",
            )
        )
    return problems


def parse_expression(source: str) -> nodes.Template:
    """Parse an expression; raise `ExpressionError` with Jinja's message if it does not."""
    if "{{" in source or "{%" in source:
        raise ExpressionError(
            "write the expression without '{{ }}' (it is already an expression), "
            f"e.g. {source.replace('{{', '').replace('}}', '').strip()!r}"
        )
    try:
        _env.compile_expression(source)
        return _env.parse("{{ (" + source + ") }}")
    except TemplateError as exc:
        raise ExpressionError(f"invalid expression {source!r}: {exc.message}") from None


def check_expression(source: str, allowed: Iterable[str]) -> list[str]:
    """All problems with an expression, as messages (empty when it is fine)."""
    try:
        tree = parse_expression(source)
    except ExpressionError as exc:
        return [str(exc)]
    return check_names(tree, allowed)


def uses_variable(source: str, name: str) -> bool:
    from jinja2 import meta

    return name in meta.find_undeclared_variables(parse_expression(source))


def helpers(now: datetime) -> dict[str, Any]:
    """Date helpers bound to ``now`` (workflow time), so results replay identically."""
    today = now.date()

    def as_date(value: date | datetime | str) -> date:
        if isinstance(value, datetime):
            return value.date()
        if isinstance(value, date):
            return value
        return date.fromisoformat(str(value))

    return {
        "days": lambda n: timedelta(days=n),
        "hours": lambda n: timedelta(hours=n),
        "weeks": lambda n: timedelta(weeks=n),
        "days_until": lambda d: (as_date(d) - today).days,
        "days_since": lambda d: (today - as_date(d)).days,
        "date": as_date,
        "now": now,
        "today": today,
    }


def evaluate(source: str, context: Mapping[str, Any]) -> Any:
    """Evaluate an expression in the sandbox; raise `ExpressionError` with the reason."""
    try:
        compiled = _env.compile_expression(source, undefined_to_none=False)
        result = compiled(**context)
        if isinstance(result, Undefined):
            # a bare undefined name or blocked attribute: fail here, not later in bool()
            result._fail_with_undefined_error()
        # The result travels on (recorded in workflow history): bounded like rendered text.
        return check_size(result, "the result")
    except UndefinedError as exc:
        raise ExpressionError(f"{source!r}: {exc.message}") from None
    except SecurityError as exc:
        raise ExpressionError(f"{source!r} was blocked by the sandbox: {exc}") from None
    except (TemplateError, TypeError, ValueError, ArithmeticError, AttributeError) as exc:
        raise ExpressionError(f"{source!r} failed: {exc}") from None
