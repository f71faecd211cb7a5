"""Expressions (``if:``, ``to:``, ``on_date:``, branch cases) and their evaluation context.

Expressions are Jinja2 expressions. At compile time we parse each one, and check every
name and every field of ``customer``, ``contact``, ``owner`` and ``event`` it uses, so a
typo fails `playbook validate` with a line number instead of a failed step weeks later.
At run time (in activities, never in workflow code) they are evaluated in the sandbox
over a snapshot of the customer.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from functools import cached_property, lru_cache
from typing import Any

from jinja2 import Undefined, nodes
from jinja2.environment import TemplateExpression
from jinja2.exceptions import TemplateError, TemplateSyntaxError, UndefinedError
from jinja2.parser import Parser
from jinja2.sandbox import SecurityError

from engine.errors import ExpressionError, RenderBudgetExceeded
from engine.language.diagnostics import did_you_mean
from engine.language.jinja_env import check_size, render_budget, shared_environment

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
# How late a date-triggered enrollment started (0 and None for any other enrollment); seen by
# step expressions (`if:`, branch cases, `wait: until`), not by templates.
ENROLLMENT_FIELDS = ("late_days", "trigger_date", "anchor_date")
# The customer's health (engine/language/health.py): ``health.trend(30)`` is the change in
# score over 30 days; ``measures.<name>`` has value, points and weight; ``raw.<name>`` the
# raw value; ``signals.<name>`` a risk signal's true/false/none and ``details.<name>`` its
# kind, value and text.
HEALTH_FIELDS = ("score", "band", "known", "measures", "raw", "trend", "signals", "details")
FIELDS: dict[str, tuple[str, ...]] = {
    "customer": CUSTOMER_FIELDS,
    "contact": CONTACT_FIELDS,
    "owner": OWNER_FIELDS,
    "event": EVENT_FIELDS,
    "enrollment": ENROLLMENT_FIELDS,
    "health": HEALTH_FIELDS,
}
HELPERS = ("days", "hours", "weeks", "days_until", "days_since", "date")
BASE_NAMES = (
    "customer", "owner", "milestones", "health", "now", "today", "playbook", *HELPERS
)  # fmt: skip

_env = shared_environment()


# -- parsed sources, each walked once ------------------------------------------------------
# Checking a playbook parses a thousand small expressions and texts. Jinja's own analysis
# (`meta.find_undeclared_variables`) runs its code generator over the tree, and checking that
# an expression compiles generates and compiles Python code: together two thirds of the time
# `playbook validate` took on a 1,000-step playbook. For the common shape, output and
# expression nodes only, those steps cannot find anything a parse has not: names are simply
# the `Name` nodes, and code generation can only fail on an unknown filter or test, on a tree
# deep enough for Python's limits, or while folding constants (``'a'.b if x`` tests an
# undefined value, ``{[1]: 2}`` hashes a list: both fail at compile time). Trees with none of
# these are "plain", checked from one walk; every other tree goes through Jinja exactly as
# before, so every message stays the same.

# Expression-level node types (and the output around them) the fast path understands.
_PLAIN_NODES: frozenset[type[nodes.Node]] = frozenset(
    {
        nodes.Output,
        nodes.TemplateData,
        nodes.Name,
        nodes.Const,
        nodes.Tuple,
        nodes.List,
        nodes.Dict,
        nodes.Pair,
        nodes.Getattr,
        nodes.Getitem,
        nodes.Slice,
        nodes.Call,
        nodes.Keyword,
        nodes.Filter,
        nodes.Test,
        nodes.CondExpr,
        nodes.Compare,
        nodes.Operand,
        nodes.Add,
        nodes.Sub,
        nodes.Mul,
        nodes.Div,
        nodes.FloorDiv,
        nodes.Mod,
        nodes.Pow,
        nodes.And,
        nodes.Or,
        nodes.Not,
        nodes.Neg,
        nodes.Pos,
        nodes.Concat,
    }
)
# Far below what Jinja's code generator, Python's parser (200 nested brackets) or the
# recursion limit trip on, with room to spare; deeper sources take Jinja's own path.
MAX_PLAIN_DEPTH = 24
MAX_PLAIN_BRACKETS = 20


@dataclass(frozen=True)
class SourceTree:
    """A parsed expression or template with all its nodes listed by one walk.

    ``all_nodes`` holds every node below the root in the order `nodes.Node.find_all` yields
    them. ``plain`` says the tree has only output and expression nodes (no binding or
    scoping statement), every filter and test it names exists, Jinja would fold none of its
    constants in a way that fails or hides a name, and it (and its source) is shallow: then
    compiling it cannot fail and the variables it reads are its `Name` nodes.
    """

    tree: nodes.Template
    all_nodes: tuple[nodes.Node, ...]
    plain: bool

    @classmethod
    def walk(cls, tree: nodes.Template, source: str | None) -> SourceTree:
        """List the nodes of ``tree``, parsed from ``source``, and classify it.

        Without the source (its brackets unknown) the tree is never plain.
        """
        env = tree.environment
        found: list[nodes.Node] = []
        plain = source is not None and _few_brackets(source)
        stack: list[tuple[nodes.Node, int]] = [(tree, 0)]
        while stack:
            node, depth = stack.pop()
            if depth:
                found.append(node)
                if plain:
                    plain = depth <= MAX_PLAIN_DEPTH and _is_plain_node(node, env)
            # children pushed last field first, last item first: popped in find_all order
            for name in reversed(node.fields):
                item = getattr(node, name, None)
                if isinstance(item, list):
                    for child in reversed(item):
                        if isinstance(child, nodes.Node):
                            stack.append((child, depth + 1))
                elif isinstance(item, nodes.Node):
                    stack.append((item, depth + 1))
        return cls(tree, tuple(found), plain)

    def find(self, *types: type[nodes.Node]) -> list[Any]:
        """The nodes of the given types, in ``find_all`` order."""
        return [node for node in self.all_nodes if isinstance(node, types)]

    @cached_property
    def undeclared(self) -> frozenset[str]:
        """What `jinja2.meta.find_undeclared_variables` returns, without its code generator
        when the tree is plain (there the names read are the `Name` nodes, less the
        environment's globals and ``self``, which Jinja binds to the template itself)."""
        if not self.plain:
            from jinja2 import meta

            return frozenset(meta.find_undeclared_variables(self.tree))
        env = self.tree.environment
        assert env is not None  # parsing sets every node's environment
        bound = env.globals
        return frozenset(
            node.name
            for node in self.all_nodes
            if type(node) is nodes.Name and node.name != "self" and node.name not in bound
        )


def _is_plain_node(node: Any, env: Any) -> bool:
    kind = type(node)
    if kind not in _PLAIN_NODES:
        return False
    if kind is nodes.Name or kind is nodes.Tuple:
        ctx: str = node.ctx
        return ctx == "load"
    # Jinja's code generator folds constants: it looks up attributes and items of constants
    # and runs filters and tests on them, and an undefined result can then fail the compile.
    # Only what reads a variable (or calls something) is never folded. (A slice of a constant
    # is also left to Jinja: Python warns when it compiles ``1[1:x]``.)
    if kind is nodes.Getattr or kind is nodes.Getitem:
        return _reads_something(node.node)
    if kind is nodes.Filter:
        return node.name in env.filters and _reads_something(node)
    if kind is nodes.Test:
        return node.name in env.tests and _reads_something(node)
    if kind is nodes.Dict:  # a folded dict with a list for a key fails to hash it
        return all(
            type(pair.key) is nodes.Const or _reads_something(pair.key) for pair in node.items
        )
    # Folding short-circuits: ``[] and customer.x`` becomes ``[]``, and Jinja's analysis
    # folds the very tree the checks then look at, so what the right side reads goes unseen.
    if kind is nodes.And or kind is nodes.Or:
        return _reads_something(node.left)
    if kind is nodes.CondExpr:
        return _reads_something(node.test)
    if kind is nodes.Compare:
        return len(node.ops) == 1 or _reads_something(node.expr)
    return True


def _reads_something(node: nodes.Node) -> bool:
    """Whether the subtree reads a variable or calls something: then it is never folded."""
    stack = [node]
    while stack:
        current = stack.pop()
        if isinstance(current, nodes.Name | nodes.Call):
            return True
        stack.extend(current.iter_child_nodes())
    return False


def _few_brackets(source: str) -> bool:
    """Few enough brackets that parsing the source again cannot go deep."""
    return source.count("(") + source.count("[") + source.count("{") <= MAX_PLAIN_BRACKETS


def _dotted_uses(tree: SourceTree) -> Iterable[tuple[str, str, int]]:
    """(variable, field, line) for ``var.field`` and ``var["field"]`` in the tree."""
    for node in tree.find(nodes.Getattr, nodes.Getitem):
        target = node.node
        if not isinstance(target, nodes.Name):
            continue
        if isinstance(node, nodes.Getattr):
            yield target.name, node.attr, node.lineno
        elif isinstance(node.arg, nodes.Const) and isinstance(node.arg.value, str):
            yield target.name, node.arg.value, node.lineno


def check_names(tree: nodes.Template | SourceTree, allowed: Iterable[str]) -> list[str]:
    """Messages for every unknown variable or field the parsed tree uses.

    Pass a `SourceTree` (``SourceTree.walk(tree, source)``) for the fast path; a bare
    template is analysed by Jinja, as it always was."""
    return [message for _, message in check_names_located(tree, allowed)]


def check_names_located(
    tree: nodes.Template | SourceTree, allowed: Iterable[str]
) -> list[tuple[int, str]]:
    """Like `check_names`, with the (1-based) source line of each problem's first use."""
    walked = tree if isinstance(tree, SourceTree) else SourceTree.walk(tree, None)
    # Names bound anywhere in the template (imports, set, macros) count as defined:
    # Jinja's analysis treats each block as its own scope and would miss them.
    bound = {n.target for n in walked.find(nodes.Import)}
    bound |= {n.name for n in walked.find(nodes.Macro)}
    for node in walked.find(nodes.FromImport):
        bound |= {name[1] if isinstance(name, tuple) else name for name in node.names}
    for node in walked.find(nodes.Assign, nodes.AssignBlock):
        bound |= {n.name for n in node.target.find_all(nodes.Name)}
        if isinstance(node.target, nodes.Name):
            bound.add(node.target.name)
    allowed = (*allowed, *bound)
    problems = []
    undeclared = walked.undeclared
    if not walked.plain:
        # Jinja's analysis folded constants in the tree as it went (``[] and x`` is now
        # ``[]``): look at the tree as it left it, as these checks always have.
        walked = SourceTree.walk(walked.tree, None)
    names = walked.find(nodes.Name)
    for name in sorted(undeclared):
        if name not in allowed:
            hint = did_you_mean(name, allowed)
            line = min((n.lineno for n in names if n.name == name), default=1)
            problems.append(
                (line, f"undefined variable '{name}'{hint}; available here: {', '.join(allowed)}")
            )
    seen = set()
    for var, field, line in _dotted_uses(walked):
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


def _parse_plain(source: str) -> SourceTree | None:
    """Parse ``source`` as `Environment.compile_expression` does; the tree if it is plain.

    A syntax error raises `ExpressionError` with Jinja's message (the same parse, the same
    message). None means "ask Jinja": the tree is not plain, or parsing ran out of stack.
    """
    try:
        parser = Parser(_env, source, state="variable")
        expr = parser.parse_expression()
        if not parser.stream.eos:
            raise TemplateSyntaxError(
                "chunk after expression", parser.stream.current.lineno, None, None
            )
    except TemplateSyntaxError as exc:
        raise ExpressionError(f"invalid expression {source!r}: {exc.message}") from None
    except RecursionError:  # at the edge of the stack: let Jinja's own path raise it
        return None
    tree = nodes.Template([nodes.Output([expr], lineno=1)], lineno=1)
    tree.set_environment(_env)
    walked = SourceTree.walk(tree, source)
    return walked if walked.plain else None


def _parse(source: str) -> SourceTree:
    if "{{" in source or "{%" in source:
        raise ExpressionError(
            "write the expression without '{{ }}' (it is already an expression), "
            f"e.g. {source.replace('{{', '').replace('}}', '').strip()!r}"
        )
    walked = _parse_plain(source)
    if walked is not None:
        return walked
    try:
        _env.compile_expression(source)
        return SourceTree.walk(_env.parse("{{ (" + source + ") }}"), None)
    except TemplateError as exc:
        raise ExpressionError(f"invalid expression {source!r}: {exc.message}") from None
    except (RecursionError, SyntaxError):
        # Python's own limits, reached by Jinja's code generator on very deep nesting
        # (hundreds of filters or operators in a row): a clear error, not a traceback.
        raise ExpressionError(
            f"expression too deeply nested to check ({len(source)} characters); "
            "split it into smaller ones"
        ) from None


def parse_expression(source: str) -> nodes.Template:
    """Parse an expression; raise `ExpressionError` with Jinja's message if it does not."""
    return _parse(source).tree


@dataclass(frozen=True)
class ExpressionCheck:
    """The outcome of checking one expression: its problems, and (when it parsed) the
    variables it reads, so a caller needing both parses it once."""

    problems: list[str]
    variables: frozenset[str] = frozenset()


def analyse_expression(source: str, allowed: Iterable[str]) -> ExpressionCheck:
    """Check an expression and report the variables it reads, from one parse."""
    try:
        walked = _parse(source)
        return ExpressionCheck(check_names(walked, allowed), walked.undeclared)
    except ExpressionError as exc:
        return ExpressionCheck([str(exc)])
    except TemplateError as exc:  # e.g. an undefined attribute of a constant, found folding
        return ExpressionCheck([f"invalid expression {source!r}: {exc.message}"])


def check_expression(source: str, allowed: Iterable[str]) -> list[str]:
    """All problems with an expression, as messages (empty when it is fine)."""
    try:
        walked = _parse(source)
        return check_names(walked, allowed)
    except ExpressionError as exc:
        return [str(exc)]
    except TemplateError as exc:  # e.g. an undefined attribute of a constant, found folding
        return [f"invalid expression {source!r}: {exc.message}"]


def uses_variable(source: str, name: str) -> bool:
    """Whether the expression reads the variable ``name``."""
    return name in _parse(source).undeclared


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


@lru_cache(maxsize=1024)
def _compiled(source: str) -> TemplateExpression:
    """Jinja compiles an expression to Python each time (a few ms): a sweep evaluates the
    same trigger for every customer, so compile each source once (the environment is
    immutable; a syntax error is not cached and raises again)."""
    return _env.compile_expression(source, undefined_to_none=False)


def evaluate(source: str, context: Mapping[str, Any]) -> Any:
    """Evaluate an expression in the sandbox; raise `ExpressionError` with the reason."""
    try:
        compiled = _compiled(source)
        with render_budget():
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
    except RecursionError:
        raise ExpressionError(f"{source!r} failed: it nests too deep (recursion)") from None
    except (RenderBudgetExceeded, MemoryError) as exc:
        reason = "ran out of memory" if isinstance(exc, MemoryError) else str(exc)
        raise ExpressionError(f"{source!r} failed: {reason}") from None
    except (TemplateError, TypeError, ValueError, ArithmeticError, AttributeError) as exc:
        raise ExpressionError(f"{source!r} failed: {exc}") from None
