"""The Jinja2 sandbox every expression and template runs in.

Playbook authors write Jinja2; customers' data flows through it. The sandbox is
immutable (no ``.append`` on context data), undefined names are errors, operators that
could build huge values are bounded, and rendered output is capped. Customer-supplied
strings are only ever context values, never template source.
"""

from __future__ import annotations

import operator
from typing import Any

from jinja2 import StrictUndefined
from jinja2.sandbox import ImmutableSandboxedEnvironment, SecurityError

MAX_OUTPUT_CHARS = 200_000
MAX_SEQUENCE = 100_000
MAX_EXPONENT = 100


class OutputTooLarge(SecurityError):
    """A template or expression tried to produce more than the cap allows."""


class PlaybookSandbox(ImmutableSandboxedEnvironment):
    """Immutable sandbox with bounded arithmetic on strings, lists and powers."""

    intercepted_binops = frozenset({"*", "**", "+"})

    def call_binop(self, context: Any, operator_name: str, left: Any, right: Any) -> Any:
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
