"""The fast paths of `playbook validate` agree with the slow ones they stand in for.

YAML is read with libyaml's parser when PyYAML has it, and plain Jinja expressions and texts
are checked from one parse instead of Jinja's code generator. Both must give the same data,
positions and messages as PyYAML's own parser and Jinja's own analysis.
"""

from __future__ import annotations

import gc
from collections.abc import Iterable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from jinja2 import meta, nodes
from jinja2.exceptions import TemplateError, TemplateSyntaxError

from engine import yaml_source
from engine.diagnostics import did_you_mean
from engine.errors import YamlSourceError
from engine.expressions import (
    BASE_NAMES,
    FIELDS,
    SourceTree,
    check_expression,
    check_names,
    uses_variable,
)
from engine.sandbox import shared_sandbox
from engine.templates import EMAIL_NAMES, check_text
from engine.yaml_source import load_yaml

needs_libyaml = pytest.mark.skipif(not yaml_source.HAVE_LIBYAML, reason="PyYAML without libyaml")


def _loaded(text: str) -> object:
    """What `load_yaml` makes of ``text``: data and positions, or the diagnostics."""
    try:
        doc = load_yaml(text, "f.yaml")
    except YamlSourceError as exc:
        return [str(d) for d in exc.diagnostics]
    return repr(doc.data), doc.keys, doc.values


def _loaded_by_pyyaml(text: str, monkeypatch: pytest.MonkeyPatch) -> object:
    with monkeypatch.context() as patch:
        patch.setattr(yaml_source, "HAVE_LIBYAML", False)
        return _loaded(text)


SAMPLES = [
    "playbook: p\nsteps:\n  - id: a\n    wait: {for: 2d}\n  - id: b\n    end:\n",
    "a: {b: }\n",  # an empty value in a flow mapping: libyaml places it elsewhere
    "a: [x, {y: }]\n",
    "? k",  # an empty value at the end of a file without a final line break
    "a:",
    "x: 1\nx: 2\n",
    "a: &x [1, *x]\n",
    "a: *nope\n",
    "a: !!python/object:os.system x\n",
    "<<: {a: 1}\n",
    "a: 1\n---\nb: 2\n",
    "a: b\n  c: d\n",
    "a:\tb\n",  # tabs take PyYAML's path
    "a: 1\r\nb: 2\r\n",
    "name: café 😀\nsteps: [é, {k: 日本}]\n",
    "steps: " + "[" * 70 + "]" * 70 + "\n",
    "".join(f"k{i}: {i}\n" for i in range(50_001)),
]


@needs_libyaml
@pytest.mark.parametrize("text", SAMPLES, ids=range(len(SAMPLES)))
def test_libyaml_and_pyyaml_read_the_same(text: str, monkeypatch: pytest.MonkeyPatch) -> None:
    assert _loaded(text) == _loaded_by_pyyaml(text, monkeypatch)


YAML_BITS = [
    "a",
    "b: ",
    ": ",
    "- ",
    "\n",
    "\n  ",
    "{",
    "}",
    "[",
    "]",
    ", ",
    "? ",
    "&x ",
    "*x",
    "!!str ",
    "'q'",
    '"d"',
    "|\n  t\n",
    "# c\n",
    "é",
]


@needs_libyaml
@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(YAML_BITS), max_size=40).map("".join))
def test_libyaml_and_pyyaml_read_yaml_shaped_text_the_same(text: str) -> None:
    with pytest.MonkeyPatch.context() as patch:
        assert _loaded(text) == _loaded_by_pyyaml(text, patch)


def test_loading_leaves_the_garbage_collector_as_it_found_it() -> None:
    assert gc.isenabled()
    load_yaml("a: 1\n", "f.yaml")
    assert gc.isenabled()
    gc.disable()
    try:
        with pytest.raises(YamlSourceError):
            load_yaml("a: [\n", "f.yaml")
        assert not gc.isenabled()
    finally:
        gc.enable()


TEXTS = [
    "Hi {{ contact.first_name }}",
    "{{ self }} {{ range(3) }} {{ lipsum }} {{ loop }} {{ caller }} {{ super() }}",
    "{{ customer.name | upper if customer else x }}",
    "{{ (a, b) }} {{ [c, {'k': d}] }} {{ e[1:2] }} {{ f(g, h=i) }} {{ j ~ k }}",
    "{% set y = 1 %}{{ y }} {{ z }}",
    "{% for c in customer.contacts %}{{ c.email }}{{ loop.index }}{% endfor %}",
    "{% if a %}{{ b | no_such_filter }}{% endif %}",
    "{{ a is no_such_test }}",
    "{{ " + "(" * 30 + "a" + ")" * 30 + " }}",
    "{{ a" + " | abs" * 40 + " }}",
]


@pytest.mark.parametrize("text", TEXTS)
def test_names_read_are_jinjas(text: str) -> None:
    tree = shared_sandbox().parse(text)
    try:
        expected: object = meta.find_undeclared_variables(tree)
    except Exception as exc:  # an unknown filter or test fails Jinja's analysis
        expected = type(exc)
    try:
        found: object = set(SourceTree.walk(tree, text).undeclared)
    except Exception as exc:
        found = type(exc)
    assert found == expected


def test_unknown_filters_and_tests_are_still_reported_when_checking() -> None:
    [problem] = check_expression("customer.name | no_such_filter", BASE_NAMES)
    assert problem.endswith("No filter named 'no_such_filter'.")
    [problem] = check_text("{{ customer.name is no_such_test }}", EMAIL_NAMES)
    assert problem == "text does not parse: No test named 'no_such_test'."
    # inside an `if`, Jinja defers an unknown filter to rendering: so does the check
    assert check_text("{% if customer %}{{ customer.name | nope }}{% endif %}", EMAIL_NAMES) == []


def test_one_parse_gives_problems_and_variables() -> None:
    assert uses_variable('contact.role == "admin" and customer.segment == "smb"', "contact")
    assert not uses_variable("customer.segment", "contact")


# Few atoms, many of them constants, and the shapes Jinja folds at compile time: the traps
# of the fast path (a folded ``[] and x`` hides ``x``; ``'a'.b ~ x`` fails to compile).
ATOMS = ["customer.segmnt", "contact.role", "x", "self", "[]", "0", "1", "'a'", "'a'.b", "[1]"]
SHAPES = ["{a} and {b}", "{a} or {b}", "{a} if {b} else {c}", "{a} if {b}", "{a} < {b} < {c}"]
SHAPES += ["{a} ~ {b}", "{{{a}: {b}}}", "{a}.attr", "{a}[{b}]", "{a}[1:{b}]", "{a} | first"]
SHAPES += ["{a} | nosuch", "{a} is defined", "{a} is nosuch", "not {a}", "({a}, {b})", "f({a})"]
SHAPES += ["{a} + {b}", "{a} | join({b})", "{a} in {b}"]
TRAPS = [
    "[] and customer.segmnt",
    "1 or customer.segmnt",
    "customer.segmnt if 0 else 1",
    "1 if 1 else customer.segmnt",
    "1 > 2 < customer.segmnt",
    "'a'.b ~ customer.segmnt",
    "customer.segmnt if 'a'.b else 1",
    "{[1]: 2} ~ customer.segmnt",
    "1[1:customer.segmnt]",
    "([] | first) and customer.segmnt",
    "([] | first) ~ customer.segmnt",
]


@st.composite
def expressions(draw: st.DrawFn, depth: int = 0) -> str:
    if depth > 3 or draw(st.integers(0, 2)) == 0:
        return draw(st.sampled_from(ATOMS))
    parts = [draw(expressions(depth + 1)) for _ in range(3)]
    return draw(st.sampled_from(SHAPES)).format(a=parts[0], b=parts[1], c=parts[2])


def _outcome(check: object, *args: object) -> object:
    try:
        return check(*args)  # type: ignore[operator]
    except Exception as exc:
        return type(exc).__name__, str(exc)


def _reference_check_names(tree: nodes.Template, allowed: Iterable[str]) -> list[str]:
    """`check_names` as it was before `SourceTree`: Jinja's analysis, then ``find_all``.

    Jinja's analysis folds constants in ``tree`` as it goes (``x ~ ([] and y.z)`` loses
    ``y.z``), and the field checks then read the folded tree.
    """
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
            problems.append(
                f"undefined variable '{name}'{hint}; available here: {', '.join(allowed)}"
            )
    seen = set()
    for node in tree.find_all((nodes.Getattr, nodes.Getitem)):
        if not isinstance(node.node, nodes.Name):
            continue
        var = node.node.name
        if isinstance(node, nodes.Getattr):
            field = node.attr
        elif isinstance(node.arg, nodes.Const) and isinstance(node.arg.value, str):
            field = node.arg.value
        else:
            continue
        fields = FIELDS.get(var)
        if fields is None or var not in allowed or field in fields or (var, field) in seen:
            continue
        seen.add((var, field))
        problems.append(
            f"'{var}' has no field '{field}'{did_you_mean(field, fields)}; "
            f"its fields are: {', '.join(fields)}"
        )
    return problems


def _as_jinja_checks_expression(source: str) -> object:
    """`check_expression` the way it was before the fast path: compile, then analyse."""
    if "{{" in source or "{%" in source:
        return _outcome(check_expression, source, BASE_NAMES)  # refused before parsing
    env = shared_sandbox()
    try:
        env.compile_expression(source)
        tree = env.parse("{{ (" + source + ") }}")
        # An error found while Jinja folds constants is now reported, like a syntax error.
        return _reference_check_names(tree, BASE_NAMES)
    except TemplateError as exc:
        return [f"invalid expression {source!r}: {exc.message}"]


def _agrees_with_jinja(expression: str) -> None:
    assert _outcome(check_expression, expression, BASE_NAMES) == _outcome(
        _as_jinja_checks_expression, expression
    )
    text = "Hi {{ " + expression + " }}"
    env = shared_sandbox()
    try:
        walked = SourceTree.walk(env.parse(text), text)
    except TemplateSyntaxError:
        return  # the shapes can combine into text that does not parse
    assert _outcome(check_names, walked, EMAIL_NAMES) == _outcome(
        _reference_check_names, env.parse(text), EMAIL_NAMES
    )
    if walked.plain:  # not compiled when checked: it must compile
        env.from_string(text)


@pytest.mark.filterwarnings("ignore::SyntaxWarning")  # Python compiling ``1[1:x]``
@pytest.mark.parametrize("trap", TRAPS)
@pytest.mark.parametrize("around", ["{}", "x ~ ({})", "({}) if x else 2"])
def test_what_jinja_folds_is_left_to_jinja(trap: str, around: str) -> None:
    # Jinja folds the tree it analyses only below an expression it cannot fold whole.
    _agrees_with_jinja(around.format(trap))


@pytest.mark.filterwarnings("ignore::SyntaxWarning")
@settings(max_examples=500, deadline=None)
@given(expressions())
def test_plain_trees_compile_and_check_as_jinja_does(expression: str) -> None:
    _agrees_with_jinja(expression)
