"""Names for people: playbooks, steps, segments and outcomes as words, not snake_case ids.

A playbook is shown by its `name:`, a step by its `label:` (or its id in words), a segment
or outcome by its value in words. Ids stay in tooltips and URLs, where support needs them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from engine.language.plan import CompiledPlan

# Words that read wrong capitalised as a sentence ("Smb", "Qbr").
ACRONYMS = frozenset({"smb", "qbr", "csm", "crm", "api", "vp", "ceo", "cto", "sso", "nps", "id"})


def in_words(identifier: str | None) -> str:
    """``await_integration`` -> "Await integration", ``smb`` -> "SMB", ``mid-market`` ->
    "Mid market"; an empty value stays empty."""
    if not identifier:
        return ""
    parts = identifier.replace("-", " ").replace("_", " ").replace(".", " ").split()
    words = [p.upper() if p.lower() in ACRONYMS else p.lower() for p in parts]
    if words and words[0] not in ACRONYMS and not words[0].isupper():
        words[0] = words[0][:1].upper() + words[0][1:]
    return " ".join(words)


@dataclass(frozen=True)
class Words:
    """The project's playbooks, for naming their steps in the UI."""

    plans: Mapping[str, CompiledPlan]

    def playbook(self, playbook_id: str | None) -> str:
        """A playbook's `name:`, or its id in words for a playbook no longer loaded."""
        if not playbook_id:
            return "—"
        plan = self.plans.get(playbook_id)
        return plan.name if plan is not None else in_words(playbook_id)

    def step(self, playbook_id: str | None, step_id: str | None) -> str:
        """A step's `label:`, else its id in words."""
        if not step_id:
            return ""
        plan = self.plans.get(playbook_id or "")
        if plan is not None:
            for step in plan.steps:
                if step.id == step_id and step.label:
                    return step.label
        return in_words(step_id)
