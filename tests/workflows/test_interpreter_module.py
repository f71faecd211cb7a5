"""The interpreter stays workflow-safe even though the sandbox no longer checks it.

`workflows/interpreter.py` is imported with `workflow.unsafe.imports_passed_through()`, so
one copy of its code serves every workflow instance (docs/architecture.md). The price is
that Temporal's sandbox neither re-imports it nor applies its import restrictions to it: a
`datetime.now()` or an `import random` there would run unnoticed and break replay later.
These tests put that guarantee back, statically:

- the interpreter, and every project module it pulls in at import time, imports only an
  allow-list of modules (typing and date/time types, pydantic, temporalio, the plan and
  message models, the status enums and error tree, the send-window helpers);
- the interpreter calls no clock, random number, uuid or I/O function;
- importing the workflow modules loads no jinja2, yaml, database or HTTP code;
- `workflows/playbook.py` keeps importing the interpreter passed through, and keeps the
  workflow's public interface (signals, updates with validators, query).

The replay tests (test_replay.py) check the other half: the commands it issues.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest
from temporalio.workflow import _Definition

from engine.client.sandbox import workflow_runner
from workflows.playbook import PlaybookWorkflow

REPO = Path(__file__).resolve().parents[2]
INTERPRETER = REPO / "workflows" / "interpreter.py"
WORKFLOW = REPO / "workflows" / "playbook.py"

# Project modules the interpreter may import, directly or through each other. Each is pure
# data or pure functions of its arguments; adding one here means reading it first.
PROJECT_MODULES = {
    # engine.messages: the workflow's and activities' pydantic messages and their names.
    "engine.messages",
    # engine.errors: the exception tree and ApplicationError type names (standard library).
    "engine.errors",
    "engine.language.milestones",
    "engine.language.plan",
    "engine.language.sendwindow",
    # engine.statuses: the status enums (standard library only).
    "engine.statuses",
}
PROJECT_PACKAGES = ("activities", "engine", "workflows")
# Third-party and standard-library modules (and their submodules) allowed at import time.
# hashlib and json: `engine.language.plan` hashes the plan for its version (deterministic).
# zoneinfo: `engine.language.sendwindow` converts workflow time to the customer's time zone.
# enum: `engine.statuses` defines the status vocabulary as StrEnums.
EXTERNAL_MODULES = {
    "__future__",
    "collections.abc",
    "contextlib",
    "dataclasses",
    "datetime",
    "enum",
    "hashlib",
    "json",
    "pydantic",
    "temporalio",
    "typing",
    "zoneinfo",
}
# Calls that read the wall clock, random state or the outside world. Workflow code uses
# `workflow.now()`, `workflow.random()` and `workflow.uuid4()` instead.
FORBIDDEN_ATTRIBUTE_CALLS = {
    ("datetime", "now"),
    ("datetime", "utcnow"),
    ("datetime", "today"),
    ("date", "today"),
    ("time", "time"),
    ("time", "monotonic"),
    ("time", "perf_counter"),
    ("time", "sleep"),
}
FORBIDDEN_MODULES_USED = {"random", "uuid", "secrets", "os", "time", "socket", "threading"}
FORBIDDEN_BUILTINS = {"open", "input", "print", "exec", "eval", "__import__", "hash", "id"}
# What a worker process must not load just by importing the workflow modules.
HEAVY_MODULES = (
    "jinja2",
    "yaml",
    "sqlalchemy",
    "alembic",
    "httpx",
    "fastapi",
    "sendgrid",
    "engine.language.expressions",
    "engine.language.templates",
    "engine.store",
)


def _module_file(module: str) -> Path:
    return REPO.joinpath(*module.split(".")).with_suffix(".py")


def _imports_of(node: ast.Import | ast.ImportFrom) -> list[tuple[str, int]]:
    """The modules one import statement names, with its line."""
    if isinstance(node, ast.Import):
        return [(alias.name, node.lineno) for alias in node.names]
    assert node.level == 0, f"line {node.lineno}: use absolute imports"
    return [(node.module or "", node.lineno)]


def _imports(path: Path) -> list[tuple[str, int]]:
    """Every module ``path`` imports (anywhere in the file, not only at the top), except
    under ``if TYPE_CHECKING:``, which never runs."""
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    type_checking_only = {
        id(inner)
        for node in ast.walk(tree)
        if isinstance(node, ast.If) and ast.unparse(node.test).endswith("TYPE_CHECKING")
        for statement in node.body
        for inner in ast.walk(statement)
    }
    return [
        found
        for node in ast.walk(tree)
        if isinstance(node, ast.Import | ast.ImportFrom) and id(node) not in type_checking_only
        for found in _imports_of(node)
    ]


def _allowed_external(module: str) -> bool:
    return any(module == ok or module.startswith(f"{ok}.") for ok in EXTERNAL_MODULES)


def test_interpreter_imports_only_the_allow_list():
    """Walk the interpreter's imports through the project modules it loads."""
    problems: list[str] = []
    seen: set[str] = set()
    todo = [("workflows.interpreter", INTERPRETER)]
    while todo:
        name, path = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        for module, line in _imports(path):
            where = f"{path.relative_to(REPO)}:{line}: {module}"
            if module.split(".")[0] in PROJECT_PACKAGES:
                if module not in PROJECT_MODULES:
                    problems.append(f"{where} is not an allowed project module")
                else:
                    todo.append((module, _module_file(module)))
            elif not _allowed_external(module):
                problems.append(f"{where} is not allowed")
    assert not problems, "\n".join(problems)
    # The walk did reach the modules it allows (the allow-list has no stale entries).
    assert seen - {"workflows.interpreter"} == PROJECT_MODULES


@pytest.mark.parametrize("module", [INTERPRETER, WORKFLOW], ids=lambda path: path.name)
def test_the_passed_through_modules_call_no_clock_randomness_or_io(module: Path):
    """Both are passed through the sandbox (`engine/client/sandbox.py`), so it checks neither."""
    tree = ast.parse(module.read_text(encoding="utf-8"), str(module))
    problems: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
            if (node.value.id, node.attr) in FORBIDDEN_ATTRIBUTE_CALLS:
                problems.append(f"line {node.lineno}: {node.value.id}.{node.attr}")
            if node.value.id in FORBIDDEN_MODULES_USED:
                problems.append(f"line {node.lineno}: uses {node.value.id}.{node.attr}")
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name)
            and node.func.id in FORBIDDEN_BUILTINS
        ):
            problems.append(f"line {node.lineno}: calls {node.func.id}()")
    assert not problems, f"workflows/{module.name} must stay deterministic:\n" + "\n".join(problems)


@pytest.mark.parametrize("source", ["datetime.now()", "time.time()", "print(1)", "random.random()"])
def test_the_call_check_catches_what_it_should(source: str):
    """The check above is not vacuous: each of these would fail it."""
    node = ast.parse(source).body[0]
    assert isinstance(node, ast.Expr) and isinstance(node.value, ast.Call)
    func = node.value.func
    if isinstance(func, ast.Attribute):
        assert isinstance(func.value, ast.Name)
        pair = (func.value.id, func.attr)
        assert pair in FORBIDDEN_ATTRIBUTE_CALLS or func.value.id in FORBIDDEN_MODULES_USED
    else:
        assert isinstance(func, ast.Name) and func.id in FORBIDDEN_BUILTINS


def test_workflow_modules_load_no_heavy_or_io_modules():
    """A fresh interpreter importing the workflow modules loads none of HEAVY_MODULES."""
    code = (
        "import sys, workflows.playbook, workflows.sweep, workflows.interpreter\n"
        f"heavy = {HEAVY_MODULES!r}\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in heavy or m.startswith(heavy)))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]", f"workflow modules load {done.stdout.strip()}"


def test_the_workflow_imports_the_interpreter_passed_through():
    """Imported inside `imports_passed_through`, the interpreter is shared by all instances
    instead of re-imported by the sandbox for each one."""
    tree = ast.parse(WORKFLOW.read_text(encoding="utf-8"), str(WORKFLOW))
    passed: set[str] = set()
    for node in tree.body:
        if isinstance(node, ast.With) and "imports_passed_through" in ast.unparse(node.items[0]):
            passed |= {n.module or "" for n in node.body if isinstance(n, ast.ImportFrom)}
    assert "workflows.interpreter" in passed
    # Everything else the workflow module imports at its top level is temporalio itself.
    others = {
        module
        for node in tree.body
        if isinstance(node, ast.Import | ast.ImportFrom)
        for module, _ in _imports_of(node)
    }
    assert others <= {"__future__", "temporalio"}, others


def test_the_workflow_interface_is_unchanged():
    """Names clients and the event router use: signals, updates (all validated), query."""
    definition = _Definition.from_class(PlaybookWorkflow)
    assert definition is not None
    assert definition.name == "PlaybookWorkflow"
    assert set(definition.signals) == {"event", "task_completed", "customer_changed"}
    assert set(definition.queries) == {"status"}
    # reopen_task: undo a task completion within its window (docs/tasks.md); migrate: continue
    # in a new version of the playbook (docs/change-safety.md).
    assert set(definition.updates) == {
        *("pause", "resume", "skip_to_step", "cancel", "reopen_task", "migrate"),
    }
    assert all(update.validator is not None for update in definition.updates.values())


def test_every_worker_of_the_playbook_workflow_passes_it_through():
    """Each Worker or Replayer that registers `PlaybookWorkflow` uses `workflow_runner()`:
    one that does not would build the workflow's class again for every instance."""
    assert {"workflows.playbook", "workflows.interpreter"} <= set(
        workflow_runner().restrictions.passthrough_modules
    )
    sources = [
        REPO / "worker.py",
        *(REPO / "engine").rglob("*.py"),
        *(REPO / "tests").rglob("*.py"),
    ]
    found: list[str] = []
    for path in sources:
        tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
        for node in ast.walk(tree):
            if not (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Name)
                and node.func.id in ("Worker", "Replayer")
            ):
                continue
            keywords = {k.arg: ast.unparse(k.value) for k in node.keywords}
            if "PlaybookWorkflow" not in keywords.get("workflows", ""):
                continue
            where = f"{path.relative_to(REPO)}:{node.lineno}"
            found.append(where)
            assert keywords.get("workflow_runner") == "workflow_runner()", where
    assert any(f.startswith("worker.py:") for f in found)
    assert any(f.startswith("engine/simulation/") for f in found)
