"""What the loader fuzzers share: YAML-looking tokens and project contexts.

`tests/language/test_loader_fuzz.py` (the ordinary suite's quick version) and
`tests/reliability/fuzz_loader.py` (the bounded child-process run) build their YAML-shaped
inputs from `YAML_TOKENS` and compile them against `project_context` of a project folder.
"""

from __future__ import annotations

from pathlib import Path

from engine.language.compiler import ProjectContext
from engine.language.loader import load_playbook
from engine.project import load_context, playbook_files

# YAML's own syntax, hostile tags and scalars, and the playbook language's words.
YAML_TOKENS = [
    ":",
    ": ",
    "-",
    "- ",
    "&a ",
    "*a",
    "&b ",
    "*b",
    "{",
    "}",
    "[",
    "]",
    ",",
    "!!",
    "!!str ",
    "!!python/object:os.system ",
    "!custom ",
    "'",
    '"',
    "\n",
    "\n  ",
    "\n    ",
    "\t",
    "#",
    "? ",
    "|",
    ">",
    "---\n",
    "...\n",
    "<<: ",
    "%YAML 1.2\n",
    "playbook",
    "name",
    "steps",
    "id",
    "email",
    "task",
    "wait_for",
    "branch",
    "template",
    "onboarding/welcome",
    "broken/syntax_error",
    "next",
    "goto",
    "if",
    "customer.segment",
    "{{ customer.name }}",
    "3d",
    "09:00",
    "end",
    "x",
    "0",
    "null",
    "true",
    "no",
    ", ",
    "!!binary ",
    "!!python/object/apply:os.system ",
    "# ",
    "%YAML 1.1\n",
    "%TAG ! tag:x:\n",
    "wait",
    "P1D",
    "{{ ''.__class__ }}",
    "~",
    "0x1F",
    "1e999",
    ".inf",
    "\u2028",
    "\ufeff",
    "\x00",
]


def project_context(root: Path) -> ProjectContext:
    """The milestones, templates and playbook ids of the project in ``root``."""
    milestones, templates, _ = load_context(root)
    ids = {
        loaded.model.playbook
        for loaded in map(load_playbook, playbook_files(root))
        if loaded.model is not None
    }
    return ProjectContext(milestones, templates, ids)
