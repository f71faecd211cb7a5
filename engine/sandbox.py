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
from typing import Any

from jinja2 import StrictUndefined
from jinja2.sandbox import ImmutableSandboxedEnvironment, SecurityError

MAX_OUTPUT_CHARS = 200_000
MAX_SEQUENCE = 100_000
MAX_EXPONENT = 100


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


class PlaybookSandbox(ImmutableSandboxedEnvironment):
    """Immutable sandbox with bounded arithmetic on strings, lists and powers."""

    intercepted_binops = frozenset({"*", "**", "+", "%"})

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
        return super().call(__context, __obj, *args, **kwargs)

    def call_binop(self, context: Any, operator_name: str, left: Any, right: Any) -> Any:
        if operator_name == "%":
            check_format(left)
            return operator.mod(left, right)
        if operator_name == "**":
            if isinstance(right, int | float) and abs(right) > MAX_EXPONENT:
                raise OutputTooLarge(f"exponent {right} is larger than {MAX_EXPONENT}")
            return operator.pow(left, right)
        if operator_name == "*":
            for seq, times in ((left, right), (right, left)):
                if (
                    isinstance(seq, str | list | tuple)
                    and isinstance(times, int)
                    and len(seq) * times > MAX_SEQUENCE
                ):
                    raise OutputTooLarge(
                        f"repeating a value {times} times exceeds {MAX_SEQUENCE} items"
                    )
            return operator.mul(left, right)
        result = operator.add(left, right)
        if isinstance(result, str | list | tuple) and len(result) > MAX_OUTPUT_CHARS:
            raise OutputTooLarge(f"value is longer than {MAX_OUTPUT_CHARS} characters")
        return result


def make_sandbox(*, autoescape: bool = False, loader: Any = None) -> PlaybookSandbox:
    """A fresh sandbox; ``autoescape`` for HTML email bodies."""
    env = PlaybookSandbox(
        undefined=StrictUndefined,
        autoescape=autoescape,
        loader=loader,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    # lipsum(n=10**7) spins for minutes; emails have no use for placeholder text.
    env.globals.pop("lipsum", None)
    plain_format = env.filters["format"]

    def bounded_format(value: Any, *args: Any, **kwargs: Any) -> Any:
        check_format(value)
        return plain_format(value, *args, **kwargs)

    env.filters["format"] = bounded_format
    for name in SIZED_FILTERS:
        env.filters[name] = _sized_filter(name, env.filters[name])
    return env


def render_capped(template: Any, context: dict[str, Any]) -> str:
    """Render with the output cap enforced while streaming, not after the fact."""
    chunks: list[str] = []
    size = 0
    for chunk in template.generate(context):
        size += len(chunk)
        if size > MAX_OUTPUT_CHARS:
            raise OutputTooLarge(f"rendered output is longer than {MAX_OUTPUT_CHARS} characters")
        chunks.append(chunk)
    return "".join(chunks)
