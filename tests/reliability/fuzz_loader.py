"""Fuzz the playbook loader and compiler in a child process with hard limits.

    python -m tests.reliability.fuzz_loader EXAMPLES [SEED]     (from the repository root)

Each input goes through `parse_text` and `compile_loaded`, exactly what `playbook validate`
does. The property: a plan, or located diagnostics; never an exception, never more than
PER_INPUT_SECONDS for one input (SIGALRM), never more address space than MEMORY_LIMIT
(RLIMIT_AS: a blow-up is a MemoryError, caught as a failure). Inputs come from several
strategies in turn: arbitrary text, YAML-token soup, mutated real playbooks, and hostile
documents (alias bombs, huge scalars, deep nesting, many keys). Prints one JSON line with
the figures; exits 1 with the failing input on a failure.
"""

from __future__ import annotations

import json
import resource
import signal
import sys
import time

MEMORY_LIMIT = 2 * 1024**3
PER_INPUT_SECONDS = 10.0

resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT, MEMORY_LIMIT))

from hypothesis import HealthCheck, Phase, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from engine.language.compiler import ProjectContext, compile_loaded  # noqa: E402
from engine.language.loader import parse_text  # noqa: E402
from engine.language.schema import Playbook  # noqa: E402
from engine.language.yaml_source import MAX_DEPTH, MAX_FILE_BYTES, MAX_NODES  # noqa: E402
from engine.project import playbook_files  # noqa: E402
from tests.helpers.fuzz import YAML_TOKENS, project_context  # noqa: E402
from tests.helpers.paths import FIXTURES, PLAYBOOKS  # noqa: E402


class Hang(Exception):
    pass


def _alarm(signum: int, frame: object) -> None:
    raise Hang(f"one input took longer than {PER_INPUT_SECONDS} s")


signal.signal(signal.SIGALRM, _alarm)


CONTEXT = project_context(FIXTURES / "invalid")
SHIPPED_CONTEXT = project_context(PLAYBOOKS)  # mutated shipped playbooks compile against it
SEEDS = [p.read_text(encoding="utf-8") for p in playbook_files(PLAYBOOKS)]
STATS = {"inputs": 0, "plans": 0, "rejected": 0, "slowest_seconds": 0.0, "largest_input": 0}


def check(text: str, context: ProjectContext = CONTEXT) -> None:
    STATS["inputs"] += 1
    STATS["largest_input"] = max(STATS["largest_input"], len(text))
    started = time.perf_counter()
    signal.setitimer(signal.ITIMER_REAL, PER_INPUT_SECONDS)
    try:
        loaded = parse_text(text, "fuzz.yaml", Playbook)
        plan, diagnostics = compile_loaded(loaded, context)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
    STATS["slowest_seconds"] = max(STATS["slowest_seconds"], time.perf_counter() - started)
    errors = [d for d in diagnostics if d.severity == "error"]
    assert (plan is None) == bool(errors), [str(d) for d in diagnostics]
    for diag in errors:
        assert diag.message.strip() and diag.line >= 1 and diag.column >= 1, str(diag)
    STATS["plans" if plan is not None else "rejected"] += 1


# -- strategies ------------------------------------------------------------------------------
yaml_soup = st.lists(st.sampled_from(YAML_TOKENS), max_size=80).map("".join)


@st.composite
def mutated_playbook(draw: st.DrawFn) -> str:
    text = draw(st.sampled_from(SEEDS))
    for _ in range(draw(st.integers(1, 6))):
        at = draw(st.integers(0, len(text)))
        end = min(len(text), at + draw(st.integers(0, 40)))
        insert = draw(st.one_of(st.sampled_from(YAML_TOKENS), st.text(max_size=20)))
        text = text[:at] + insert + text[end:]
    return text


@st.composite
def alias_bomb(draw: st.DrawFn) -> str:
    fan_out = draw(st.integers(2, 12))
    depth = draw(st.integers(2, 12))
    lines = ["a0: &a0 [" + ", ".join(["lol"] * fan_out) + "]"]
    for level in range(1, depth):
        refs = ", ".join([f"*a{level - 1}"] * fan_out)
        lines.append(f"a{level}: &a{level} [{refs}]")
    lines.append(f"playbook: *a{depth - 1}")
    return "\n".join(lines) + "\n"


@st.composite
def huge_scalar(draw: st.DrawFn) -> str:
    size = draw(st.sampled_from([MAX_FILE_BYTES - 200, MAX_FILE_BYTES + 1, 3 * MAX_FILE_BYTES]))
    where = draw(st.sampled_from(["name", "subject", "key", "number"]))
    blob = draw(st.sampled_from(["x", "9", "{{", "é"])) * (size // 2)
    if where == "key":
        return f"{blob}: 1\n"
    if where == "number":
        return f"playbook: p\nname: n\nsteps:\n  - id: w\n    wait: {{for: {'9' * (size // 2)}d}}\n"
    return f"playbook: p\nname: {blob}\nsteps: []\n"


@st.composite
def deep_nesting(draw: st.DrawFn) -> str:
    depth = draw(st.integers(MAX_DEPTH - 2, 20_000))
    style = draw(st.sampled_from(["flow_list", "flow_map", "block"]))
    if style == "flow_list":
        return "steps: " + "[" * depth + "]" * depth + "\n"
    if style == "flow_map":
        return "steps: " + "{a: " * depth + "1" + "}" * depth + "\n"
    depth = min(depth, 2_000)
    return "".join(" " * i + "k:\n" for i in range(depth)) + " " * depth + "k: 1\n"


@st.composite
def many_keys(draw: st.DrawFn) -> str:
    count = draw(st.sampled_from([MAX_NODES // 2, MAX_NODES + 1, 3 * MAX_NODES]))
    return "".join(f"k{i}: {i}\n" for i in range(count))


STRATEGIES = {
    "arbitrary_text": st.text(max_size=400),
    "yaml_soup": yaml_soup,
    "mutated_playbook": mutated_playbook(),
    "alias_bomb": alias_bomb(),
    "huge_scalar": huge_scalar(),
    "deep_nesting": deep_nesting(),
    "many_keys": many_keys(),
}
# Hostile documents are big and slow to build (up to ~3 s each at the size limits): a fixed
# number of them; the rest of the examples are split between the three text strategies.
HOSTILE = {"alias_bomb": 0.004, "huge_scalar": 0.0002, "deep_nesting": 0.002, "many_keys": 0.0001}
MINIMUM = {"alias_bomb": 20, "huge_scalar": 4, "deep_nesting": 10, "many_keys": 2}


def budget(name: str, examples: int) -> int:
    if name in HOSTILE:
        return max(MINIMUM[name], int(examples * HOSTILE[name]))
    hostile = sum(budget(other, examples) for other in HOSTILE)
    return max(1, (examples - hostile) // 3)


def _property(strategy: st.SearchStrategy[str], context: ProjectContext, count: int):
    @settings(
        max_examples=count,
        deadline=None,
        database=None,
        derandomize=False,
        phases=[Phase.generate, Phase.shrink],
        suppress_health_check=list(HealthCheck),
    )
    @given(strategy)
    def prop(text: str) -> None:
        check(text, context)

    return prop


def run(examples: int, seed: int) -> dict[str, object]:
    per_strategy: dict[str, int] = {}
    contexts = {
        name: SHIPPED_CONTEXT if name == "mutated_playbook" else CONTEXT for name in STRATEGIES
    }
    # Hostile strategies first: their small search spaces can run out before their budget
    # (hypothesis stops when it has tried everything), and the text strategies make it up.
    order = [n for n in STRATEGIES if n in HOSTILE] + [n for n in STRATEGIES if n not in HOSTILE]
    for index, name in enumerate(order):
        before = STATS["inputs"]
        count = budget(name, examples)
        if name not in HOSTILE:
            left = len(order) - index
            count = max(1, -(-(examples - STATS["inputs"]) // left))
        prop = _property(STRATEGIES[name], contexts[name], count)
        prop._hypothesis_internal_use_seed = seed  # type: ignore[attr-defined]
        prop()
        per_strategy[name] = STATS["inputs"] - before
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {**STATS, "per_strategy": per_strategy, "peak_rss_mb": round(peak_mb, 1), "seed": seed}


if __name__ == "__main__":
    count = int(sys.argv[1])
    seed = int(sys.argv[2]) if len(sys.argv) > 2 else 0
    try:
        figures = run(count, seed)
    except BaseException as exc:  # the falsifying input is printed by hypothesis above
        print(json.dumps({"failed": f"{type(exc).__name__}: {exc}"[:2000], **STATS}))
        sys.exit(1)
    figures["slowest_seconds"] = round(float(figures["slowest_seconds"]), 3)  # type: ignore[arg-type]
    print(json.dumps(figures))
