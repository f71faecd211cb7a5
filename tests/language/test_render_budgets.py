"""Render budgets: a template or expression that would eat memory, spin, or recurse fails
cleanly (a `TemplateRenderError` naming the file and line), in bounded time."""

from __future__ import annotations

import time

import pytest

from engine.errors import ExpressionError, TemplateRenderError
from engine.language.expressions import evaluate
from engine.language.jinja_env import RenderLimits, render_budget
from engine.language.templates import render, render_text

# The three payloads of the security review (issue 14, item 6).
PAYLOADS = {
    "memory": ("{{ range(100000)|map('center', 200000)|list|length }}", "produced more than"),
    "hang": (
        "{% for a in range(100000) %}{% for b in range(100000) %}{% endfor %}{% endfor %}",
        "CPU time",
    ),
    "recursion": ("{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}", "recursion"),
}


@pytest.mark.parametrize("name", PAYLOADS)
def test_each_payload_fails_cleanly_with_the_template_and_line(name: str) -> None:
    payload, reason = PAYLOADS[name]
    source = "<p>Hello</p>\n\n" + payload + "\n<p>Bye</p>\n"
    started = time.perf_counter()
    with pytest.raises(TemplateRenderError) as failed:
        render({"probe/hello.html": source}, "probe/hello.html", {})
    assert time.perf_counter() - started < 15
    assert str(failed.value).startswith("probe/hello.html: line 3: ")
    assert reason in str(failed.value)


@pytest.mark.parametrize("name", PAYLOADS)
def test_each_payload_fails_cleanly_in_a_text(name: str) -> None:
    payload, reason = PAYLOADS[name]
    with pytest.raises(TemplateRenderError, match=reason):
        render_text(payload, {})


def test_the_line_of_an_included_file_is_named() -> None:
    sources = {
        "a.html": "one\n{% include '_part.html' %}\n",
        "_part.html": "x\n" + PAYLOADS["recursion"][0],
    }
    with pytest.raises(TemplateRenderError, match=r"^a\.html: _part\.html line 2: .*recursion"):
        render(sources, "a.html", {})


def test_an_expression_is_budgeted_too() -> None:
    with pytest.raises(ExpressionError, match="produced more than"):
        evaluate("range(100000)|map('center', 200000)|list|length", {})


def test_budgets_are_configurable_and_normal_renders_fit() -> None:
    loop = "{% for a in range(300) %}{% for b in range(300) %}{% endfor %}{% endfor %}ok"
    assert render_text(loop, {}) == "ok"
    with (
        render_budget(RenderLimits(cpu_seconds=10, max_produced=1_000)),
        pytest.raises(TemplateRenderError, match="more than 1,000"),
    ):
        render_text("{{ range(2000)|map('string')|join(',') }}", {})
