"""The engine's layout rules, read from the source (docs/architecture.md draws them).

Layers point one way: language <- store <- client <- services <- api/web/cli. Only the
HTTP layers import FastAPI; the web UI does not reach into the API's routes; the product
does not import its benchmark harness; every call to `PlaybookWorkflow` names its signal,
query or update through the workflow's typed methods. Each rule is checked over every
import in the file, including the lazy ones inside functions, so a rule cannot be dodged
by moving an import into a function body.
"""

from __future__ import annotations

import ast
import importlib
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers.paths import REPO

ENGINE = REPO / "engine"

# The layers from the bottom up; each may import only the layers before it.
LAYERS = (
    "engine.language",
    "engine.store",
    "engine.client",
    "engine.services",
    "engine.api",
    "engine.web",
    "engine.cli",
    "engine.simulation",
)
HTTP = ("fastapi", "starlette")


def above(layer: str) -> tuple[str, ...]:
    return LAYERS[LAYERS.index(layer) + 1 :]


# Each layer and what it must never import (by module prefix). api, web, cli and the
# simulator sit side by side at the top: the web UI may not reach into the API's routes.
LAYER_RULES: dict[str, tuple[str, ...]] = {
    "engine.language": (*above("engine.language"), "sqlalchemy", "temporalio", *HTTP, "httpx"),
    "engine.store": (*above("engine.store"), *HTTP),
    "engine.client": (*above("engine.client"), *HTTP),
    "engine.services": (*above("engine.services"), *HTTP),
    "engine.web": ("engine.api.routes",),
    "engine": ("bench",),
    "workflows": ("engine.store", "engine.client", "engine.services", "sqlalchemy", "jinja2"),
    "activities": ("engine.client.routing", "engine.services", "engine.api", "engine.web"),
}
HTTP_LAYERS = ("engine.api", "engine.web")
TYPED_CALLS = {"signal", "query", "execute_update", "start_update", "signal_with_start"}
WORKFLOW_CLIENT = ENGINE / "client" / "playbook.py"


def module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def sources(*roots: str) -> Iterator[Path]:
    for root in roots:
        base = REPO / root
        yield from [base] if base.suffix == ".py" else sorted(base.rglob("*.py"))


def imports(source: str, module: str, is_package: bool = False) -> Iterator[tuple[int, str]]:
    """Every module the source imports, with its line, resolving relative imports."""
    package = module if is_package else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            yield node.lineno, base
            for alias in node.names:  # `from engine.api import routes` imports a module too
                yield node.lineno, f"{base}.{alias.name}"


def within(module: str, prefix: str) -> bool:
    return module == prefix or module.startswith(prefix + ".")


def layering_problems(module: str, source: str, is_package: bool = False) -> list[str]:
    return [
        f"line {line} imports {imported}"
        for layer, forbidden in LAYER_RULES.items()
        if within(module, layer)
        for line, imported in imports(source, module, is_package)
        if any(within(imported, bad) for bad in forbidden)
    ]


def fastapi_imports(module: str, source: str) -> list[str]:
    if any(within(module, layer) for layer in HTTP_LAYERS):
        return []
    return [
        f"line {line} imports {imported}"
        for line, imported in imports(source, module)
        if within(imported, "fastapi") or within(imported, "starlette")
    ]


def string_named_calls(source: str) -> list[str]:
    return [
        f"line {node.lineno}: {node.func.attr}({node.args[0].value!r})"
        for node in ast.walk(ast.parse(source))
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr in TYPED_CALLS
        and node.args
        and isinstance(node.args[0], ast.Constant)
        and isinstance(node.args[0].value, str)
    ]


def product_modules() -> Iterator[tuple[Path, str, str]]:
    for path in sources("engine", "workflows", "activities", "worker.py"):
        yield path, module_name(path), path.read_text(encoding="utf-8")


def test_every_layer_imports_only_what_is_below_it() -> None:
    problems = [
        f"{path.relative_to(REPO)}: {problem}"
        for path, module, source in product_modules()
        for problem in layering_problems(module, source, path.name == "__init__.py")
    ]
    assert not problems, "layering broken:\n" + "\n".join(problems)


def test_only_the_http_layers_import_fastapi() -> None:
    problems = [
        f"{path.relative_to(REPO)}: {problem}"
        for path, module, source in product_modules()
        for problem in fastapi_imports(module, source)
    ]
    assert not problems, "\n".join(problems)


def test_no_signal_query_or_update_is_named_by_a_string() -> None:
    found = [
        f"{path.relative_to(REPO)}: {call}"
        for path in sources("engine", "activities", "workflows", "bench", "tests", "worker.py")
        if path != WORKFLOW_CLIENT
        for call in string_named_calls(path.read_text(encoding="utf-8"))
    ]
    assert not found, "use the workflow's typed methods (engine.client.playbook):\n" + "\n".join(
        found
    )


def test_the_checks_find_what_they_look_for() -> None:
    """Each check reports a violation written for it: a check that cannot fail proves nothing."""
    lazy_upward = "def f():\n    from engine.services import Services\n"
    assert layering_problems("engine.store.repository", lazy_upward) == [
        "line 2 imports engine.services",
        "line 2 imports engine.services.Services",
    ]
    relative = "from ...api import routes\n"
    assert "line 1 imports engine.api.routes" in layering_problems(
        "engine.web.pages.task", relative
    )
    assert layering_problems("engine.api.routes", lazy_upward) == []
    assert fastapi_imports("engine.services.tasks", "from fastapi import HTTPException\n")
    assert not fastapi_imports("engine.api.routes", "from fastapi import HTTPException\n")
    assert string_named_calls('async def f(h):\n    await h.signal("event", 1)\n') == [
        "line 2: signal('event')"
    ]
    assert string_named_calls("async def f(h):\n    await h.signal(W.event, 1)\n") == []


# The public API each package re-exports, pinned: a change here is a change for users.
EXPORTS = {
    "engine.simulation": {
        "KINDS",
        "MAX_DAYS",
        "ScheduledCompletion",
        "ScheduledEvent",
        "SimContact",
        "SimCustomer",
        "SimEmail",
        "SimTeamMember",
        "SimulationInputError",
        "Simulator",
        "Timeline",
        "TimelineEntry",
        "TriggerEvent",
        "Waiting",
        "load_customer",
        "load_team",
        "parse_completion",
        "parse_event",
        "parse_trigger",
        "simulate",
    },
    "engine.services": {
        "Conflict",
        "Invalid",
        "NotFound",
        "ServiceError",
        "Services",
        "Unavailable",
    },
}


@pytest.mark.parametrize("package", sorted(EXPORTS))
def test_package_exports_are_pinned(package: str) -> None:
    module = importlib.import_module(package)
    assert set(module.__all__) == EXPORTS[package]
    for name in module.__all__:
        assert getattr(module, name) is not None


@pytest.mark.parametrize("package", ["engine.language", "engine.client", "activities"])
def test_packages_that_workflow_code_reaches_re_export_nothing(package: str) -> None:
    """Workflow code imports `engine.language.plan`; a heavy `__init__` would load with it."""
    init = importlib.import_module(package).__file__
    assert init is not None
    tree = ast.parse(Path(init).read_text(encoding="utf-8"))
    assert not [n for n in tree.body if isinstance(n, ast.Import | ast.ImportFrom)]
