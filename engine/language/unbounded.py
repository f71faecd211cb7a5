"""Constructs in templates and expressions whose cost has no bound `playbook validate` can see.

Every render runs under a budget (see `jinja_env.render_budget`), so none of these can take
a worker down; but a template that will always hit the budget is a bug best found before it
sends. From the parsed tree alone we flag, as warnings:

- ``range(n)`` where ``n`` is not a literal, or is a literal above `MAX_LITERAL_RANGE`;
- a loop over ``range`` inside another loop over ``range``, unless both are small literals
  whose product stays within `MAX_LITERAL_RANGE`;
- a macro that calls itself, directly or through other macros of the same file;
- size arguments (``center``, ``indent``, ``ljust``/``rjust``/``zfill`` widths, also through
  ``map('center', n)``) and format widths that are not literals or exceed `MAX_FORMAT_WIDTH`;
- a string or list literal repeated (``*``) by a count that is not a literal or exceeds
  `MAX_LITERAL_RANGE`.

Names are only known by what they look like: a macro or variable called ``range`` shadows
the global, and the checks would still flag it. That is rare, and a warning never blocks.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from typing import Any

from jinja2 import nodes
from jinja2.exceptions import TemplateError

from engine.language.jinja_env import (
    MAX_FORMAT_WIDTH,
    SIZED_FILTERS,
    SIZED_STR_METHODS,
    OutputTooLarge,
    check_format,
    shared_environment,
)

MAX_LITERAL_RANGE = 10_000
# A text or expression without any of these cannot hold a flagged construct: skip parsing it.
_SUSPECT = re.compile(r"range|macro|\*|center|indent|just|zfill|format|%")
_UNKNOWN = object()


def unbounded_constructs(tree: nodes.Template) -> list[tuple[int, str]]:
    """(line, message) for every unbounded construct in a parsed template, in source order."""
    found = [*_ranges(tree), *_recursive_macros(tree), *_sizes(tree)]
    return sorted(found, key=lambda item: item[0])


def unbounded_in_text(source: str) -> list[tuple[int, str]]:
    """`unbounded_constructs` of a text template; nothing if it does not parse (the
    compiler reports that as an error on its own)."""
    if not _SUSPECT.search(source):
        return []
    try:
        return unbounded_constructs(shared_environment().parse(source))
    except (TemplateError, RecursionError):
        return []


def unbounded_in_expression(source: str) -> list[str]:
    """`unbounded_constructs` of an expression (an ``if:``, a ``to:``), as messages."""
    if "{" in source or not _SUSPECT.search(source):
        return []  # an expression holding '{{' is an error reported elsewhere
    return [message for _, message in unbounded_in_text("{{ (" + source + ") }}")]


# -- range and loops over it ---------------------------------------------------------------
def _const(node: nodes.Node) -> Any:
    """The node's constant value, or `_UNKNOWN` when it depends on data."""
    if not isinstance(node, nodes.Expr):
        return _UNKNOWN
    try:
        return node.as_const()
    except Exception:  # nodes.Impossible, or folding failed (e.g. 1 / 0): not a literal
        return _UNKNOWN


def _is_range(node: nodes.Node) -> bool:
    return (
        isinstance(node, nodes.Call)
        and isinstance(node.node, nodes.Name)
        and node.node.name == "range"
    )


def _range_size(call: nodes.Call) -> int | None:
    """How many items ``range(...)`` yields, or None when that depends on data."""
    if call.kwargs or call.dyn_args or call.dyn_kwargs or not call.args:
        return None
    values = [_const(arg) for arg in call.args]
    if not all(isinstance(v, int) and not isinstance(v, bool) for v in values):
        return None
    try:
        return len(range(*values))
    except (TypeError, ValueError):  # range(1, 2, 0), too many arguments: fails at run time
        return None


def _loop_range(loop: nodes.For) -> nodes.Call | None:
    """The ``range(...)`` a for loop iterates over (possibly through filters), if any."""
    node: nodes.Node = loop.iter
    while isinstance(node, nodes.Filter) and node.node is not None:
        node = node.node
    return node if isinstance(node, nodes.Call) and _is_range(node) else None


def _describe(size: int | None) -> str:
    return "an unknown number of" if size is None else f"{size:,}"


def _ranges(tree: nodes.Template) -> Iterator[tuple[int, str]]:
    for call in tree.find_all(nodes.Call):
        if not _is_range(call):
            continue
        size = _range_size(call)
        if size is None:
            yield (
                call.lineno,
                "range() with a bound that is not a literal loops as often as the data says; "
                "use a small literal bound or loop over the data itself (the render budget "
                "stops a runaway render)",
            )
        elif size > MAX_LITERAL_RANGE:
            yield (
                call.lineno,
                f"range() of {size:,} items (more than {MAX_LITERAL_RANGE:,}) is likely to "
                "exhaust the render budget",
            )
    # Loops over range nested in loops over range: the sizes multiply. Walk the tree keeping
    # the product of the enclosing range loops (None once one of them is unknown).
    stack: list[tuple[nodes.Node, int | None, bool]] = [(tree, 1, False)]
    while stack:
        node, outer, inside = stack.pop()
        if isinstance(node, nodes.For) and (loop_call := _loop_range(node)) is not None:
            size = _range_size(loop_call)
            total = None if outer is None or size is None else outer * size
            if inside and (total is None or total > MAX_LITERAL_RANGE):
                yield (
                    node.lineno,
                    "loop over range() inside another loop over range(): "
                    f"{_describe(total)} iterations in all (keep it within "
                    f"{MAX_LITERAL_RANGE:,}), likely to exhaust the render budget",
                )
            # Only the body repeats; `else` runs once, after the loop.
            stack.extend((child, total, True) for child in node.body)
            stack.extend((child, outer, inside) for child in (node.iter, *node.else_))
            continue
        stack.extend((child, outer, inside) for child in node.iter_child_nodes())


# -- macros calling themselves --------------------------------------------------------------
def _recursive_macros(tree: nodes.Template) -> Iterator[tuple[int, str]]:
    macros: dict[str, nodes.Macro] = {}
    for macro in tree.find_all(nodes.Macro):
        macros.setdefault(macro.name, macro)
    calls: dict[str, list[tuple[str, int]]] = {
        name: [
            (call.node.name, call.lineno)
            for call in macro.find_all(nodes.Call)
            if isinstance(call.node, nodes.Name) and call.node.name in macros
        ]
        for name, macro in macros.items()
    }
    reported: set[frozenset[str]] = set()
    for name in macros:
        path = _cycle(name, calls)
        if path is None or frozenset(path) in reported:
            continue
        reported.add(frozenset(path))
        line = next(line for callee, line in calls[path[-1]] if callee == name)
        how = (
            "itself"
            if len(path) == 1
            else "itself through " + " -> ".join(f"'{m}'" for m in path[1:])
        )
        yield (
            line,
            f"macro '{name}' calls {how}: with no depth limit it recurses until the render "
            "budget stops it",
        )


def _cycle(start: str, calls: dict[str, list[tuple[str, int]]]) -> list[str] | None:
    """Macros ``[start, ..., last]`` where ``last`` calls ``start``, or None."""
    stack: list[list[str]] = [[start]]
    seen = {start}
    while stack:
        path = stack.pop()
        for callee, _ in calls[path[-1]]:
            if callee == start:
                return path
            if callee not in seen:
                seen.add(callee)
                stack.append([*path, callee])
    return None


# -- sizes: widths and repetition -----------------------------------------------------------
def _width_problem(what: str, width: nodes.Node | None) -> str | None:
    if width is None:
        return None
    value = _const(width)
    if value is _UNKNOWN:
        return (
            f"{what} width is not a literal: a large value builds a huge string; "
            f"use a literal up to {MAX_FORMAT_WIDTH:,}"
        )
    if isinstance(value, int) and value > MAX_FORMAT_WIDTH:
        return (
            f"{what} width {value:,} builds a huge string: keep widths within {MAX_FORMAT_WIDTH:,}"
        )
    return None


def _width_argument(args: Sequence[nodes.Node], kwargs: Sequence[nodes.Node]) -> nodes.Node | None:
    if args:
        return args[0]
    # Jinja's stubs type a filter's keywords as pairs; the parser makes them `Keyword` nodes.
    keywords = (kw for kw in kwargs if isinstance(kw, nodes.Keyword))
    return next((kw.value for kw in keywords if kw.key == "width"), None)


def _format_problem(fmt: nodes.Node) -> str | None:
    if not isinstance(fmt, nodes.Const):
        return None
    try:
        check_format(fmt.value)
    except OutputTooLarge as exc:
        return f"{exc}: the sandbox refuses it when rendering"
    return None


def _repeat_problem(node: nodes.Mul) -> str | None:
    for seq, count in ((node.left, node.right), (node.right, node.left)):
        literal = isinstance(seq, nodes.List | nodes.Tuple) or (
            isinstance(seq, nodes.Const) and isinstance(seq.value, str | list | tuple)
        )
        if not literal:
            continue
        value = _const(count)
        if value is _UNKNOWN:
            return (
                "a string or list repeated ('*') by a count that is not a literal can build a "
                f"huge value; use a literal up to {MAX_LITERAL_RANGE:,}"
            )
        if isinstance(value, int) and value > MAX_LITERAL_RANGE:
            return (
                f"a string or list repeated {value:,} times (more than "
                f"{MAX_LITERAL_RANGE:,}) builds a huge value"
            )
    return None


def _sizes(tree: nodes.Template) -> Iterator[tuple[int, str]]:
    for node in tree.find_all((nodes.Filter, nodes.Call, nodes.Mul, nodes.Mod)):
        problem: str | None = None
        if isinstance(node, nodes.Filter):
            if node.name in SIZED_FILTERS:
                problem = _width_problem(node.name, _width_argument(node.args, node.kwargs))
            elif node.name == "map" and node.args:
                named = _const(node.args[0])
                if named in SIZED_FILTERS:
                    problem = _width_problem(
                        f"{named} (through map)", _width_argument(node.args[1:], node.kwargs)
                    )
            elif node.name == "format" and node.node is not None:
                problem = _format_problem(node.node)
        elif isinstance(node, nodes.Call) and isinstance(node.node, nodes.Getattr):
            method = node.node.attr
            if method in SIZED_STR_METHODS:
                problem = _width_problem(method, _width_argument(node.args, node.kwargs))
            elif method == "format":
                problem = _format_problem(node.node.node)
        elif isinstance(node, nodes.Mul):
            problem = _repeat_problem(node)
        elif isinstance(node, nodes.Mod):
            problem = _format_problem(node.left)
        if problem:
            yield node.lineno, problem
