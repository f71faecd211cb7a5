"""Fuzzing the loader and compiler: any text gives a plan or located diagnostics, never a crash.

Inputs are arbitrary text, YAML-looking text built from YAML's own tokens, and mutations of
real playbooks (the shipped ones under playbooks/, and the valid fixtures), each compiled
against its own project's milestones and templates.
"""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine.language.compiler import ProjectContext, compile_loaded
from engine.language.loader import load_playbook, parse_text
from engine.language.schema import Playbook
from engine.language.yaml_source import MAX_DEPTH, MAX_FILE_BYTES, MAX_NODES
from engine.project import playbook_files
from tests.helpers.fuzz import YAML_TOKENS, project_context
from tests.helpers.paths import FIXTURES, PLAYBOOKS

INVALID = FIXTURES / "invalid"
VALID = FIXTURES / "valid"
SHIPPED = PLAYBOOKS
DIAGNOSTIC = re.compile(r"^fuzz\.yaml:(\d+):(\d+): ")
FUZZ = settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


INVALID_CONTEXT = project_context(INVALID)
SEED_ROOTS = [root for root in (SHIPPED, VALID) if root.is_dir() and playbook_files(root)]
SEEDS = [
    (path.read_text(encoding="utf-8"), context)
    for root, context in ((root, project_context(root)) for root in SEED_ROOTS)
    for path in playbook_files(root)
]


def check(text: str, context: ProjectContext) -> None:
    """The property: a plan, or at least one error; every diagnostic located in the input."""
    loaded = parse_text(text, "fuzz.yaml", Playbook)
    plan, diagnostics = compile_loaded(loaded, context)
    errors = [d for d in diagnostics if d.severity == "error"]
    assert (plan is None) == bool(errors), [str(d) for d in diagnostics]
    templates_root = context.templates.display_root.rstrip("/") + "/"
    lines = max(1, len(text.splitlines()) + 1)
    for diag in diagnostics:
        shown = str(diag)
        if diag.path.startswith(templates_root):
            continue  # a problem in a template the input refers to (reported at that file)
        match = DIAGNOSTIC.match(shown)
        assert match, f"not 'fuzz.yaml:line:col: ...': {shown!r}"
        assert 1 <= int(match[1]) <= lines, shown
        assert int(match[2]) >= 1, shown
        assert diag.message.strip(), shown


# -- arbitrary and YAML-shaped text ------------------------------------------------------

yaml_like = st.lists(st.sampled_from(YAML_TOKENS), max_size=60).map("".join)


@FUZZ
@given(st.text(max_size=300))
def test_arbitrary_text_never_crashes(text: str) -> None:
    check(text, INVALID_CONTEXT)


@FUZZ
@given(yaml_like)
def test_yaml_looking_text_never_crashes(text: str) -> None:
    check(text, INVALID_CONTEXT)


PREFIX = "playbook: fuzzed\nname: Fuzzed\nsteps:\n"


@FUZZ
@given(yaml_like)
def test_yaml_looking_steps_never_crash(text: str) -> None:
    """Past the header, so the step and compiler paths see the garbage too."""
    check(PREFIX + "  - " + text, INVALID_CONTEXT)


# -- mutations of real playbooks ---------------------------------------------------------


@st.composite
def mutated(draw: st.DrawFn) -> tuple[str, ProjectContext]:
    seed, context = draw(st.sampled_from(SEEDS))
    lines = seed.splitlines(keepends=True)
    for _ in range(draw(st.integers(1, 3))):
        if not lines:
            break
        i = draw(st.integers(0, len(lines) - 1))
        kind = draw(
            st.sampled_from(["delete", "duplicate", "swap", "indent", "dedent", "char", "token"])
        )
        if kind == "delete":
            del lines[i]
        elif kind == "duplicate":
            lines.insert(i, lines[i])
        elif kind == "swap":
            j = draw(st.integers(0, len(lines) - 1))
            lines[i], lines[j] = lines[j], lines[i]
        elif kind == "indent":
            lines[i] = " " * draw(st.integers(1, 4)) + lines[i]
        elif kind == "dedent":
            lines[i] = lines[i].lstrip(" ")
        elif kind == "char" and lines[i]:
            k = draw(st.integers(0, len(lines[i]) - 1))
            lines[i] = lines[i][:k] + draw(st.characters()) + lines[i][k + 1 :]
        else:
            words = re.findall(r"[\w./:-]+", lines[i])
            if words:
                old = draw(st.sampled_from(words))
                lines[i] = lines[i].replace(old, draw(st.sampled_from(YAML_TOKENS)), 1)
    return "".join(lines), context


def test_seeds_compile_cleanly() -> None:
    """The mutations start from playbooks that compile, so they probe near-valid input."""
    assert len(SEEDS) >= 2
    for text, context in SEEDS:
        loaded = parse_text(text, "fuzz.yaml", Playbook)
        plan, diagnostics = compile_loaded(loaded, context)
        assert plan is not None, [str(d) for d in diagnostics]


@FUZZ
@given(mutated())
def test_mutated_playbooks_never_crash(case: tuple[str, ProjectContext]) -> None:
    check(*case)


# -- resource limits ---------------------------------------------------------------------


def _bomb(levels: int, width: int = 10) -> str:
    out = ["playbook: bomb", "name: Bomb", f"l0: &l0 [{', '.join(['lol'] * width)}]"]
    for n in range(1, levels):
        refs = ", ".join([f"*l{n - 1}"] * width)
        out.append(f"l{n}: &l{n} [{refs}]")
    out += ["steps:", "  - id: s", "    end:"]
    return "\n".join(out) + "\n"


@pytest.mark.parametrize("levels", [9, 30])
def test_billion_laughs_is_refused_quickly(levels: int) -> None:
    text = _bomb(levels)
    start = time.process_time()
    loaded = parse_text(text, "fuzz.yaml", Playbook)
    spent = time.process_time() - start
    assert loaded.model is None
    assert any(f"more than {MAX_NODES} nodes" in d.message for d in loaded.diagnostics), [
        str(d) for d in loaded.diagnostics
    ]
    # a DoS guard, not a benchmark: 10**30 nodes would never finish
    assert spent < 2.0, f"took {spent:.2f}s of CPU"


def test_billion_laughs_fixture_is_refused_quickly() -> None:
    start = time.process_time()
    loaded = load_playbook(INVALID / "billion_laughs.yaml")
    assert time.process_time() - start < 2.0
    assert loaded.model is None and loaded.diagnostics


def test_recursive_alias_is_refused() -> None:
    loaded = parse_text("playbook: &a [*a]\n", "fuzz.yaml", Playbook)
    assert loaded.model is None
    assert [str(d) for d in loaded.diagnostics] == [
        f"fuzz.yaml:1:11: nesting is deeper than {MAX_DEPTH} levels"
    ]


@pytest.mark.parametrize("depth", [65, 5000, 200_000])
def test_deep_nesting_is_refused_quickly(depth: int) -> None:
    start = time.process_time()
    loaded = parse_text("a: " + "[" * depth + "]" * depth + "\n", "fuzz.yaml", Playbook)
    assert time.process_time() - start < 2.0
    assert loaded.model is None
    assert [str(d) for d in loaded.diagnostics] == [
        f"fuzz.yaml:1:68: nesting is deeper than {MAX_DEPTH} levels"
    ]


def test_nesting_up_to_the_limit_is_allowed() -> None:
    loaded = parse_text("a: " + "[" * MAX_DEPTH + "]" * MAX_DEPTH + "\n", "fuzz.yaml", Playbook)
    assert not any("nesting" in d.message for d in loaded.diagnostics)
    assert any("unknown key 'a'" in d.message for d in loaded.diagnostics)


def test_two_megabyte_file_is_refused_with_the_size_message(tmp_path: Path) -> None:
    big = tmp_path / "big.yaml"
    line = "# " + "x" * 98 + "\n"
    big.write_text("playbook: big\nname: Big\n" + line * (2 * 1024 * 1024 // len(line)))
    assert big.stat().st_size > 2_000_000
    loaded = load_playbook(big, "big.yaml")
    assert loaded.model is None
    assert [str(d) for d in loaded.diagnostics] == [
        f"big.yaml:1:1: file is larger than {MAX_FILE_BYTES} bytes; split it into several playbooks"
    ]
