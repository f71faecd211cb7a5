"""Where the tests find the repository and the shipped playbooks."""

from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PLAYBOOKS = REPO / "playbooks"
EXAMPLES = PLAYBOOKS / "examples"
FIXTURES = REPO / "tests" / "fixtures"
