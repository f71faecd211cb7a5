"""`playbook validate` warns about constructs whose render cost it cannot bound: ``range``
over data or over a huge literal, loops over ``range`` nested in each other, macros calling
themselves, and huge or computed widths and repetitions. Each warning is located (the
template's file and line, or the playbook's path:line:col for inline texts and expressions),
and none blocks the plan: the render budget still stops such a render at run time."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from engine.cli import main
from engine.language.diagnostics import Diagnostic
from engine.language.unbounded import unbounded_in_expression, unbounded_in_text
from engine.project import load_project
from tests.helpers.paths import PLAYBOOKS

# The three payloads of the security review (issue 14, item 6), each with what its warning says.
PAYLOADS = {
    "memory": ("{{ range(100000)|map('center', 200000)|list }}", "center (through map) width"),
    "hang": (
        "{% for a in range(100000) %}{% for b in range(100000) %}x{% endfor %}{% endfor %}",
        "loop over range() inside another loop over range()",
    ),
    "recursion": (
        "{% macro f(n) %}{{ f(n) }}{% endmacro %}{{ f(1) }}",
        "macro 'f' calls itself",
    ),
}

TEMPLATE_PLAYBOOK = """\
playbook: probe
name: Probe
trigger:
  on_event: customer.created
steps:
  - id: hello
    email:
      template: probe/hello
"""

INLINE_PLAYBOOK = """\
playbook: probe
name: Probe
trigger:
  on_event: customer.created
steps:
  - id: call
    task:
      title: "{payload}"
  - id: hello
    email:
      subject: Hello
      body: |
        <p>Hello</p>
        {payload}
  - id: check
    if: "range(customer.health_score)|list|length > 3"
    end: {{}}
"""


def _project(tmp_path: Path, playbook: str, template: str | None = None) -> list[Diagnostic]:
    (tmp_path / "milestones.yaml").write_text("milestones: {}\n")
    (tmp_path / "probe.yaml").write_text(playbook)
    if template is not None:
        (tmp_path / "templates" / "probe").mkdir(parents=True)
        (tmp_path / "templates" / "probe" / "hello.html").write_text(template)
    project = load_project(tmp_path)
    assert project.errors == [], project.errors
    assert "probe" in project.plans  # warnings never block the plan
    return project.warnings


@pytest.mark.parametrize("name", PAYLOADS)
def test_each_payload_in_a_template_file_warns_at_its_line(tmp_path: Path, name: str) -> None:
    payload, says = PAYLOADS[name]
    template = f"---\nsubject: Hello\n---\n<p>Hello</p>\n\n{payload}\n<p>Bye</p>\n"
    warnings = _project(tmp_path, TEMPLATE_PLAYBOOK, template)
    located = [(d.path, d.line, d.severity) for d in warnings if says in d.message]
    assert located, [str(d) for d in warnings]
    assert located[0][0].endswith("templates/probe/hello.html")
    assert located[0][1:] == (6, "warning")


@pytest.mark.parametrize("name", PAYLOADS)
def test_each_payload_inline_warns_at_the_playbook_line(tmp_path: Path, name: str) -> None:
    payload, says = PAYLOADS[name]
    warnings = _project(tmp_path, INLINE_PLAYBOOK.format(payload=payload.replace('"', "'")))
    found = {(d.line, d.column) for d in warnings if says in d.message}
    assert (8, 14) in found, [str(d) for d in warnings]  # the task title's value
    assert (14, 9) in found, [str(d) for d in warnings]  # line 2 of the block scalar body
    expression = [d for d in warnings if d.line == 16]
    assert expression and "range() with a bound that is not a literal" in expression[0].message


def test_validate_prints_the_warnings_and_exits_0(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _project(tmp_path, INLINE_PLAYBOOK.format(payload=PAYLOADS["recursion"][0]))
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(main, ["validate", "probe.yaml"])
    assert result.exit_code == 0, result.output
    assert "probe.yaml:8:14: warning: macro 'f' calls itself" in result.output


@pytest.mark.parametrize(
    "source, says",
    [
        ("{{ range(n) }}", "range() with a bound that is not a literal"),
        ("{{ range(1, 20002, 2) }}", "range() of 10,001 items"),
        (
            "{% for a in range(200) %}{% for b in range(x) %}{% endfor %}{% endfor %}",
            "an unknown number of iterations",
        ),
        (
            "{% for a in range(200) %}{% for b in range(200) %}{% endfor %}{% endfor %}",
            "40,000 iterations in all",
        ),
        (
            "{% macro f() %}{{ g() }}{% endmacro %}{% macro g() %}{{ f() }}{% endmacro %}",
            "macro 'f' calls itself through 'g'",
        ),
        ("{% macro f() %}{% call f() %}{% endcall %}{% endmacro %}", "macro 'f' calls itself"),
        ("{{ x|center(width) }}", "center width is not a literal"),
        ("{{ x|indent(5000) }}", "indent width 5,000"),
        ("{{ x.ljust(n) }}", "ljust width is not a literal"),
        ("{{ x.rjust(width=2000) }}", "rjust width 2,000"),
        ("{{ '%5000s'|format(x) }}", "format width 5000 is larger than 1000"),
        ("{{ '{:>9999}'.format(x) }}", "format width 9999"),
        ("{{ '%*s' % (n, x) }}", "format width *"),
        ("{{ 'ab' * customer.health_score }}", "repeated ('*') by a count that is not a literal"),
        ("{{ [0] * 100000 }}", "repeated 100,000 times"),
    ],
)
def test_each_unbounded_construct_is_flagged(source: str, says: str) -> None:
    messages = [message for _, message in unbounded_in_text(source)]
    assert any(says in message for message in messages), messages


@pytest.mark.parametrize(
    "source",
    [
        "Hello {{ customer.name }}",
        "{% for i in range(3) %}{% for j in range(10) %}{{ i * j }}{% endfor %}{% endfor %}",
        "{% for c in customer.contacts %}{% for i in range(5) %}.{% endfor %}{% endfor %}",
        "{% for i in range(10000) %}{% endfor %}{% for j in range(10000) %}{% endfor %}",
        "{% for i in range(100) %}{% else %}{% for j in range(1000) %}{% endfor %}{% endfor %}",
        "{% macro f(n) %}{{ n }}{% endmacro %}{% macro g() %}{{ f(1) }}{% endmacro %}{{ g() }}",
        "{{ x|center(80) }} {{ x.ljust(20) }} {{ x|indent(4) }} {{ x|indent('  ') }}",
        "{{ '-' * 80 }} {{ customer.health_score * 2 }} {{ '%5.2f'|format(x) }} {{ n % 2 }}",
        "{{ range(-5, 5)|list }} {{ range(0, 100000, 10)|list }}",
    ],
)
def test_bounded_constructs_are_not_flagged(source: str) -> None:
    assert unbounded_in_text(source) == []


def test_expressions_are_checked_too() -> None:
    assert unbounded_in_expression("range(100000)|list|length > 0")
    assert unbounded_in_expression("customer.health_score * 2 > 10") == []


def test_the_shipped_playbooks_have_no_warnings() -> None:
    project = load_project(PLAYBOOKS)
    assert project.warnings == [] and project.errors == []
