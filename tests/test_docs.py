"""The Python examples in README.md and docs/*.md run as written.

Blocks fenced as plain ```python run; a fence with attributes (```python {.illustration})
marks a fragment that needs something outside the test (a running server, a real key).
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
DOCS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
BLOCK = re.compile(r"^```python\n(.*?)^```", re.DOTALL | re.MULTILINE)


def examples() -> list[tuple[str, str]]:
    found = []
    for doc in DOCS:
        for n, match in enumerate(BLOCK.finditer(doc.read_text(encoding="utf-8")), start=1):
            found.append((f"{doc.name}#{n}", match.group(1)))
    return found


def test_docs_have_python_examples() -> None:
    assert examples(), "the docs should show the Python API with runnable examples"


@pytest.mark.parametrize(("name", "code"), examples(), ids=[n for n, _ in examples()])
def test_example_runs(name: str, code: str, tmp_path: Path) -> None:
    script = tmp_path / "example.py"
    script.write_text(code, encoding="utf-8")
    done = subprocess.run(
        [sys.executable, str(script)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        env={"PATH": "", "PLAYBOOK_HOME": str(tmp_path / "home")},
    )
    assert done.returncode == 0, f"{name} failed:\n{done.stdout}\n{done.stderr}"
