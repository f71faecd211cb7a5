"""What still validates of a playbook the schema rejected, so the compiler can check it too.

The schema reports every shape error of a file at once, but the whole-playbook checks
(step references, expressions, templates, milestones, loops) need a validated model. With
none, a file with a bad duration and a dangling `on_timeout` reported the first and, once
that was fixed, the second. Here a rejected playbook is cut down to the parts that validate
on their own: each top-level section and each step. A part that failed is left out, never
guessed at, so what the compiler then finds in the rest is a real problem and not an echo
of the schema error already reported.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pydantic import TypeAdapter, ValidationError
from pydantic_core import ErrorDetails

from engine.language.schema import Playbook, Step

# Stand-ins for required header values the schema rejected: they let the rest validate
# and are cleared again before the compiler sees the model.
_STAND_IN_ID = "rejected"
_STAND_IN_STEP = {"id": "rejected", "end": {}}

_STEP: TypeAdapter[Any] = TypeAdapter(Step)


@dataclass(frozen=True)
class PartialPlaybook:
    """The parts of a rejected playbook that validated, and where its steps sit in the file.

    ``playbook`` holds every top-level section and every step that validated; a section
    that did not is at its default (an empty ``playbook`` id when the id was at fault).
    ``positions`` gives the file index of each step in ``playbook.steps``; ``step_ids`` the
    id written on every step of the file, valid or not (None where it is not a string), so
    a reference to a rejected step is not reported a second time as a missing one.
    ``dropped`` names the top-level keys left out.
    """

    playbook: Playbook
    positions: tuple[int, ...]
    step_ids: tuple[str | None, ...]
    dropped: frozenset[str]


def partial_playbook(data: dict[str, Any], errors: list[ErrorDetails]) -> PartialPlaybook | None:
    """The validated parts of ``data``, given the schema's ``errors`` for the whole of it.

    None when nothing useful is left, e.g. an error about the mapping as a whole."""
    dropped: set[str] = set()
    for error in errors:
        loc = tuple(error["loc"])
        if not loc or not isinstance(loc[0], str):
            return None
        if loc[0] != "steps" or len(loc) == 1:
            dropped.add(loc[0])
    raw_steps = data.get("steps")
    if "steps" in dropped or not isinstance(raw_steps, list):
        raw_steps = []
    kept = [(index, step) for index, step in enumerate(raw_steps) if _valid_step(step)]
    header = {key: value for key, value in data.items() if key not in dropped}
    stand_ins: dict[str, Any] = {}
    if "playbook" not in header:
        header["playbook"], stand_ins["playbook"] = _STAND_IN_ID, ""
    header.setdefault("name", _STAND_IN_ID)
    header["steps"] = [step for _, step in kept] or [_STAND_IN_STEP]
    if not kept:
        stand_ins["steps"] = []
    try:
        model = Playbook.model_validate(header)
    except ValidationError:
        return None
    return PartialPlaybook(
        playbook=model.model_copy(update=stand_ins),
        positions=tuple(index for index, _ in kept),
        step_ids=tuple(_written_id(step) for step in raw_steps),
        dropped=frozenset(dropped),
    )


def _valid_step(step: Any) -> bool:
    try:
        _STEP.validate_python(step)
    except ValidationError:
        return False
    return True


def _written_id(step: Any) -> str | None:
    value = step.get("id") if isinstance(step, dict) else None
    return value if isinstance(value, str) else None
