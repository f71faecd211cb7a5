"""The Jinja2 sandbox every expression and template runs in.

Playbook authors write Jinja2; customers' data flows through it. The sandbox is
immutable (no ``.append`` on context data), undefined names are errors, operators that
could build huge values are bounded, and rendered output is capped. Customer-supplied
strings are only ever context values, never template source.
"""

from __future__ import annotations

import functools
import operator
import re
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any, TypeVar

from jinja2 import StrictUndefined
from jinja2.compiler import CodeGenerator, Frame
from jinja2.nodes import Call, Concat, EnvironmentAttribute, For
from jinja2.sandbox import ImmutableSandboxedEnvironment, SecurityError

from engine.errors import RenderBudgetExceeded
from engine.language.formatting import FILTERS as LOCALE_FILTERS

MAX_OUTPUT_CHARS = 200_000
MAX_SEQUENCE = 100_000
MAX_EXPONENT = 100

_T = TypeVar("_T")


class OutputTooLarge(SecurityError):
    """A template or expression tried to produce more than the cap allows."""


# Calls whose integer arguments are output sizes ("x".center(10**9) allocates a gigabyte
# before any output cap could see it).
SIZED_STR_METHODS = frozenset({"center", "ljust", "rjust", "zfill", "expandtabs"})
SIZED_FILTERS = ("center", "indent")


def _check_sizes(name: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    for value in (*args, *kwargs.values()):
        if isinstance(value, int) and value > MAX_OUTPUT_CHARS:
            raise OutputTooLarge(
                f"{name}({value}) would be longer than {MAX_OUTPUT_CHARS} characters"
            )


def _sized_filter(name: str, func: Any) -> Any:
    def bounded(value: Any, *args: Any, **kwargs: Any) -> Any:
        _check_sizes(name, args, kwargs)
        return func(value, *args, **kwargs)

    return functools.update_wrapper(bounded, func)


MAX_FORMAT_WIDTH = 1_000
_PERCENT_SPEC = re.compile(r"%[#0 +\-]*(\*|\d+)?(?:\.(\*|\d+))?")
_BRACE_SPEC = re.compile(r"\{[^{}]*:((?:[^{}]|\{[^{}]*\})*)\}")


def check_format(fmt: Any) -> None:
    """Refuse %-style and str.format widths/precisions that would allocate huge strings."""
    if not isinstance(fmt, str):
        return
    for match in _PERCENT_SPEC.finditer(fmt):
        for part in match.groups():
            if part == "*" or (part and int(part) > MAX_FORMAT_WIDTH):
                raise OutputTooLarge(f"format width {part} is larger than {MAX_FORMAT_WIDTH}")
    for match in _BRACE_SPEC.finditer(fmt):
        spec = match.group(1)
        if "{" in spec:
            raise OutputTooLarge("computed format widths are not allowed")
        for number in re.findall(r"\d+", spec):
            if int(number) > MAX_FORMAT_WIDTH:
                raise OutputTooLarge(f"format width {number} is larger than {MAX_FORMAT_WIDTH}")


# -- values that share parts ---------------------------------------------------------------
# Found by the reliability suite: each bound above looks at one operation, but values can
# share parts, and writing them out repeats every part. ``['x' * 100000] * 100000`` is a list
# of 100,000 items (allowed), ``|join`` of it is 10 GB; so are ``('x'*100000)|replace('x',
# 'x'*100000)`` and ``(10**100)**100**...`` in CPU. `written_size` measures what a value would
# amount to written out, shared parts counted each time, and stops counting past a budget.
MAX_INT_BITS = 16_384  # about 4,900 digits; Python will not even print more than 4,300


def written_size(value: Any, budget: int = MAX_OUTPUT_CHARS) -> int:
    """Characters/items of ``value`` written out (exact up to ``budget``, then > budget)."""
    total, stack = 0, [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str | bytes):
            total += len(item)
        elif isinstance(item, dict):
            total += len(item)
            if total <= budget:
                stack.extend(item.keys())
                stack.extend(item.values())
        elif isinstance(item, list | tuple | set | frozenset):
            total += len(item)
            if total <= budget:
                stack.extend(item)
        elif isinstance(item, range):
            total += len(item)
        else:
            total += 1
        if total > budget:
            return total
    return total


def check_size(value: _T, what: str = "value") -> _T:
    """``value`` unchanged, or OutputTooLarge if writing it out would pass the output cap."""
    if written_size(value) > MAX_OUTPUT_CHARS:
        raise OutputTooLarge(f"{what} would be longer than {MAX_OUTPUT_CHARS} characters")
    return value


def _check_replace(text: Any, old: Any, new: Any, count: Any = -1) -> None:
    if not (isinstance(text, str) and isinstance(old, str) and isinstance(new, str)):
        return
    hits = text.count(old) if old else len(text) + 1
    if isinstance(count, int) and count >= 0:
        hits = min(hits, count)
    if len(text) + hits * max(0, len(new) - len(old)) > MAX_OUTPUT_CHARS:
        raise OutputTooLarge(f"replace() would make more than {MAX_OUTPUT_CHARS} characters")


def _checked_items(items: Any, separator: Any) -> list[Any]:
    """The items of a join, materialised and checked (with separators) against the cap."""
    listed = list(items)
    gaps = len(separator) * max(0, len(listed) - 1) if isinstance(separator, str) else 0
    if written_size(listed) + gaps > MAX_OUTPUT_CHARS:
        raise OutputTooLarge(f"join() would make more than {MAX_OUTPUT_CHARS} characters")
    return listed


def _check_translate(text: Any, table: Any) -> None:
    if isinstance(text, str) and isinstance(table, dict):
        longest = max((len(v) for v in table.values() if isinstance(v, str)), default=1)
        if len(text) * longest > MAX_OUTPUT_CHARS:
            raise OutputTooLarge(f"translate() could make more than {MAX_OUTPUT_CHARS} characters")


def _guarded_filter(func: Any, guard: Any) -> Any:
    """Wrap a filter so ``guard(value, args, kwargs)`` checks (and may replace) its value."""
    first = 1 if getattr(func, "jinja_pass_arg", None) is not None else 0

    def guarded(*args: Any, **kwargs: Any) -> Any:
        args_ = list(args)
        args_[first] = guard(args_[first], args_[first + 1 :], kwargs)
        return func(*args_, **kwargs)

    return functools.update_wrapper(guarded, func)


def _replace_guard(value: Any, args: list[Any], kwargs: dict[str, Any]) -> Any:
    old = args[0] if args else kwargs.get("old")
    new = args[1] if len(args) > 1 else kwargs.get("new")
    count = args[2] if len(args) > 2 else kwargs.get("count")
    _check_replace(str(value), str(old), str(new), -1 if count is None else count)
    return value


def _join_guard(value: Any, args: list[Any], kwargs: dict[str, Any]) -> Any:
    return _checked_items(value, args[0] if args else kwargs.get("d", ""))


def _sum_guard(value: Any, args: list[Any], kwargs: dict[str, Any]) -> Any:
    listed = list(value)
    start = args[1] if len(args) > 1 else kwargs.get("start", 0)
    check_size([listed, start], "sum()")
    return listed


def _whole_guard(value: Any, args: list[Any], kwargs: dict[str, Any]) -> Any:
    return check_size(value)


GUARDED_FILTERS = {
    "replace": _replace_guard,
    "join": _join_guard,
    "sum": _sum_guard,
    "string": _whole_guard,
    "tojson": _whole_guard,
    "pprint": _whole_guard,
}


# -- a budget per render ---------------------------------------------------------------------
# The bounds above look at one operation each; a loop or a filter chain repeats them. Every
# render and expression runs under a `RenderBudget`: CPU time of its thread, and a running
# count of what it produced (characters of strings, items of lists). Loops, calls, filters
# and operators report to it. Memory is bounded through that count, not measured: the
# process's RSS cannot be attributed to one render running among others.
@dataclass(frozen=True)
class RenderLimits:
    """The budget of one render or expression evaluation."""

    cpu_seconds: float = 1.0
    max_produced: int = 10_000_000


DEFAULT_LIMITS = RenderLimits()
_limits = DEFAULT_LIMITS
_CHECK_CLOCK_EVERY = 64  # ticks between two reads of the thread's CPU clock


def set_render_limits(limits: RenderLimits) -> None:
    """Set the budget of every render in this process (the worker applies its settings)."""
    global _limits
    _limits = limits


class RenderBudget:
    """What one render may still spend; `tick` and `charge` raise `RenderBudgetExceeded`."""

    __slots__ = ("_ticks", "deadline", "limits", "produced")

    def __init__(self, limits: RenderLimits) -> None:
        self.limits = limits
        self.deadline = time.thread_time() + limits.cpu_seconds
        self.produced = 0
        self._ticks = 0

    def tick(self) -> None:
        self._ticks += 1
        if self._ticks % _CHECK_CLOCK_EVERY == 0 and time.thread_time() > self.deadline:
            raise RenderBudgetExceeded(
                f"took more than {self.limits.cpu_seconds:g} s of CPU time (render budget)"
            )

    def charge(self, value: Any) -> None:
        if isinstance(value, str | bytes | list | tuple | dict | set | frozenset):
            self.produced += len(value)
        else:
            self.produced += 1
        if self.produced > self.limits.max_produced:
            raise RenderBudgetExceeded(
                f"produced more than {self.limits.max_produced:,} characters or items "
                "(render budget)"
            )
        self.tick()


_budget: ContextVar[RenderBudget | None] = ContextVar("render_budget", default=None)


@contextmanager
def render_budget(limits: RenderLimits | None = None) -> Iterator[RenderBudget]:
    """Run the block under one budget (an enclosing budget, if any, is shared)."""
    current = _budget.get()
    if current is not None:
        yield current
        return
    budget = RenderBudget(limits or _limits)
    token = _budget.set(budget)
    try:
        yield budget
    finally:
        _budget.reset(token)


def charged(value: _T) -> _T:
    """``value``, counted against the running budget (none outside a render: no-op)."""
    budget = _budget.get()
    if budget is not None:
        budget.charge(value)
    return value


def _ticking(items: Iterable[Any], budget: RenderBudget) -> Iterator[Any]:
    for item in items:
        budget.tick()
        yield item


def _budgeted_filter(func: Any) -> Any:
    def budgeted(*args: Any, **kwargs: Any) -> Any:
        return charged(func(*args, **kwargs))

    return functools.update_wrapper(budgeted, func)


class _SizedConcat(CodeGenerator):
    """``a ~ b`` writes each part with str(), past the filters: check the parts first."""

    def visit_Concat(self, node: Concat, frame: Frame) -> None:
        if frame.eval_ctx.volatile:
            func_name = "(markup_join if context.eval_ctx.volatile else str_join)"
        elif frame.eval_ctx.autoescape:
            func_name = "markup_join"
        else:
            func_name = "str_join"
        self.write(f"{func_name}(environment.checked_parts((")
        for arg in node.nodes:
            self.visit(arg, frame)
            self.write(", ")
        self.write(")))")

    def visit_For(self, node: For, frame: Frame) -> None:
        """Loop over ``environment.budgeted_iter(<iterable>)``: each iteration ticks."""
        wrapped = (
            isinstance(node.iter, Call)
            and isinstance(node.iter.node, EnvironmentAttribute)
            and node.iter.node.name == "budgeted_iter"
        )
        if not wrapped:
            line = node.iter.lineno
            hook = EnvironmentAttribute("budgeted_iter", lineno=line)
            node.iter = Call(hook, [node.iter], [], None, None, lineno=line)
        super().visit_For(node, frame)


class PlaybookSandbox(ImmutableSandboxedEnvironment):
    """Immutable sandbox with bounded arithmetic on strings, lists and powers."""

    intercepted_binops = frozenset({"*", "**", "+", "%"})
    code_generator_class = _SizedConcat

    @staticmethod
    def checked_parts(parts: tuple[Any, ...]) -> tuple[Any, ...]:
        return charged(check_size(parts, "joined text"))

    @staticmethod
    def budgeted_iter(items: Any) -> Any:
        budget = _budget.get()
        return items if budget is None else _ticking(items, budget)

    def wrap_str_format(self, value: Any) -> Any:
        """``str.format`` / ``format_map`` with their widths bounded (Jinja wraps them here)."""
        wrapped = super().wrap_str_format(value)
        if wrapped is None:
            return None
        check_format(getattr(value, "__self__", None))
        return wrapped

    def call(__self, __context: Any, __obj: Any, *args: Any, **kwargs: Any) -> Any:
        if isinstance(getattr(__obj, "__self__", None), str) and (
            getattr(__obj, "__name__", None) in SIZED_STR_METHODS
        ):
            _check_sizes(__obj.__name__, args, kwargs)
        if isinstance(getattr(__obj, "__self__", None), str):
            name = getattr(__obj, "__name__", None)
            if name == "replace" and len(args) >= 2:
                _check_replace(__obj.__self__, *args[:3])
            elif name == "join" and args:
                args = (_checked_items(args[0], __obj.__self__), *args[1:])
            elif name == "translate" and args:
                _check_translate(__obj.__self__, args[0])
        return charged(super().call(__context, __obj, *args, **kwargs))

    def call_binop(self, context: Any, operator_name: str, left: Any, right: Any) -> Any:
        return charged(self._bounded_binop(operator_name, left, right))

    def _bounded_binop(self, operator_name: str, left: Any, right: Any) -> Any:
        if operator_name == "%":
            check_format(left)
            return operator.mod(left, right)
        if operator_name == "**":
            if isinstance(right, int | float) and abs(right) > MAX_EXPONENT:
                raise OutputTooLarge(f"exponent {right} is larger than {MAX_EXPONENT}")
            if (
                isinstance(left, int)
                and isinstance(right, int)
                and right > 0
                and abs(left).bit_length() * right > MAX_INT_BITS
            ):
                raise OutputTooLarge(f"the power has more than {MAX_INT_BITS} bits")
            return operator.pow(left, right)
        if operator_name == "*":
            if (
                isinstance(left, int)
                and isinstance(right, int)
                and abs(left).bit_length() + abs(right).bit_length() > MAX_INT_BITS
            ):
                raise OutputTooLarge(f"the product has more than {MAX_INT_BITS} bits")
            for seq, times in ((left, right), (right, left)):
                if (
                    isinstance(seq, str | list | tuple)
                    and isinstance(times, int)
                    and written_size(seq, MAX_SEQUENCE) * times > MAX_SEQUENCE
                ):
                    raise OutputTooLarge(
                        f"repeating a value {times} times exceeds {MAX_SEQUENCE} items"
                    )
            return operator.mul(left, right)
        result = operator.add(left, right)
        if isinstance(result, str | list | tuple) and written_size(result) > MAX_OUTPUT_CHARS:
            raise OutputTooLarge(f"value is longer than {MAX_OUTPUT_CHARS} characters")
        return result


def make_environment(*, autoescape: bool = False, loader: Any = None) -> PlaybookSandbox:
    """A fresh sandbox; ``autoescape`` for HTML email bodies."""
    env = PlaybookSandbox(
        undefined=StrictUndefined,
        autoescape=autoescape,
        loader=loader,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        finalize=check_size,  # `{{ value }}` writes it out: check before str() does
    )
    # lipsum(n=10**7) spins for minutes; emails have no use for placeholder text.
    env.globals.pop("lipsum", None)
    plain_format = env.filters["format"]

    def bounded_format(value: Any, *args: Any, **kwargs: Any) -> Any:
        check_format(value)
        return plain_format(value, *args, **kwargs)

    env.filters["format"] = bounded_format
    env.filters.update(LOCALE_FILTERS)  # dates and numbers in the recipient's locale
    for name in SIZED_FILTERS:
        env.filters[name] = _sized_filter(name, env.filters[name])
    for name, guard in GUARDED_FILTERS.items():
        env.filters[name] = _guarded_filter(env.filters[name], guard)
    for name, func in env.filters.items():
        env.filters[name] = _budgeted_filter(func)
    return env


@functools.cache
def shared_environment(*, autoescape: bool = False) -> PlaybookSandbox:
    """One sandbox per escaping mode, shared by everything that only parses and checks.

    Checking a large playbook parses a thousand texts; a new environment for each cost
    more than the parse. Callers must not change the returned environment.
    """
    return make_environment(autoescape=autoescape)


def render_capped(template: Any, context: dict[str, Any]) -> str:
    """Render under a budget, with the output cap enforced while streaming."""
    chunks: list[str] = []
    size = 0
    with render_budget():
        for chunk in template.generate(context):
            size += len(chunk)
            if size > MAX_OUTPUT_CHARS:
                raise OutputTooLarge(
                    f"rendered output is longer than {MAX_OUTPUT_CHARS} characters"
                )
            chunks.append(chunk)
    return "".join(chunks)


def failing_line(exc: BaseException, files: Iterable[str]) -> tuple[str, int] | None:
    """(template file, line) of the innermost template frame of ``exc``'s traceback.

    Jinja rewrites a render's traceback so template frames carry the template's file name
    and line; a frame of another file (the engine, Python) is skipped.
    """
    names = set(files)
    found = None
    tb = exc.__traceback__
    while tb is not None:
        filename = tb.tb_frame.f_code.co_filename
        if filename in names:
            found = (filename, tb.tb_lineno)
        tb = tb.tb_next
    return found
