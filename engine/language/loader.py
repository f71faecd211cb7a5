"""Load one playbook file: YAML with positions, then the schema, errors mapped to lines.

The result is either a validated `Playbook` or a list of diagnostics, each at the line and
column of the key or value at fault, with the valid alternatives named.
"""

from __future__ import annotations

import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from engine.errors import YamlSourceError
from engine.language.diagnostics import Diagnostic, did_you_mean, one_of
from engine.language.partial import PartialPlaybook, partial_playbook
from engine.language.schema import ACTIONS, MilestoneFile, Playbook, step_action
from engine.language.yaml_source import SourceDocument, load_yaml

MODEL_NAMES = {
    "Playbook": "playbook",
    "Trigger": "trigger",
    "Exit": "exit",
    "Goal": "goal",
    "Defaults": "defaults",
    "SendWindow": "send_window",
    "Sender": "sender",
    "Schedule": "schedule",
    "EmailAction": "email",
    "TaskAction": "task",
    "WaitAction": "wait",
    "WaitForAction": "wait_for",
    "BranchAction": "branch",
    "BranchCase": "branch case",
    "UpdateAction": "update",
    "EnrollAction": "enroll",
    "NotifyAction": "notify",
    "WebhookAction": "webhook",
    "EndAction": "end",
    "MilestoneDefinition": "milestone",
    "MilestoneFile": "milestones file",
}


@dataclass
class LoadedFile:
    """A parsed file: the document (when YAML parsed), the model (when valid), diagnostics.

    A playbook the schema rejected keeps the parts that did validate in ``partial``, so the
    compiler can still check them and one run reports every problem."""

    path: str
    document: SourceDocument | None
    model: Any = None
    diagnostics: list[Diagnostic] = field(default_factory=list)
    partial: PartialPlaybook | None = None

    @property
    def playbook_id(self) -> str | None:
        """The playbook id the file declares, when that id is valid (even if the rest is not)."""
        if isinstance(self.model, Playbook):
            return self.model.playbook
        return (self.partial.playbook.playbook or None) if self.partial else None


def _unwrap(annotation: Any, data: Any) -> type[BaseModel] | None:
    """The model class an annotation stands for, given the data found there."""
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return _unwrap(typing.get_args(annotation)[0], data)
    if origin in (typing.Union, types.UnionType):
        members = typing.get_args(annotation)
        action = step_action(data) if isinstance(data, dict) else None
        for member in members:
            model = _unwrap(member, data)
            if model is None:
                continue
            if action is None or action in model.model_fields:
                return model
        return None
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    return None


def _container_item(annotation: Any) -> Any:
    """For list[X] / dict[str, X] / tuple, the item annotation; else None."""
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return _container_item(typing.get_args(annotation)[0])
    if origin in (typing.Union, types.UnionType):
        for member in typing.get_args(annotation):
            item = _container_item(member)
            if item is not None:
                return item
        return None
    if origin in (list, tuple):
        return typing.get_args(annotation)[0]
    if origin is dict:
        return typing.get_args(annotation)[1]
    return None


def _field(model: type[BaseModel], key: str) -> Any:
    for name, info in model.model_fields.items():
        if key in (name, info.alias):
            return info.annotation
    return None


def keys_of(model: type[BaseModel]) -> list[str]:
    return [info.alias or name for name, info in model.model_fields.items()]


def model_at(root: type[BaseModel], data: Any, path: tuple[Any, ...]) -> type[BaseModel] | None:
    """Which model governs the mapping at ``path`` in ``data`` (None if not a model)."""
    annotation: Any = root
    for element in path:
        model = _unwrap(annotation, data)
        if model is not None and isinstance(element, str):
            annotation = _field(model, element)
        else:
            annotation = _container_item(annotation)
        if annotation is None:
            return None
        data = data[element] if isinstance(data, dict | list) else None
    return _unwrap(annotation, data)


def data_path(data: Any, loc: tuple[Any, ...]) -> tuple[tuple[Any, ...], Any]:
    """Map a pydantic ``loc`` to a path in the data, dropping union tags; and the leftover."""
    path: list[Any] = []
    current = data
    leftover = None
    for n, element in enumerate(loc):
        if n == 2 and loc[0] == "steps" and element in ACTIONS:
            # ('steps', 1, 'task', 'id'): the step union's tag, not the step's 'task' key.
            continue
        if (isinstance(current, dict) and element in current) or (
            isinstance(current, list) and isinstance(element, int) and element < len(current)
        ):
            current = current[element]
            path.append(element)
        elif isinstance(element, str) and (element in ACTIONS or "[" in element):
            continue
        else:
            leftover = element
            break
    return tuple(path), leftover


def _step_problem(doc: SourceDocument, step_path: tuple[Any, ...], step: Any) -> Diagnostic:
    if not isinstance(step, dict):
        return doc.diagnostic(step_path, "a step must be a mapping with 'id' and one action")
    found = [a for a in ACTIONS if a in step]
    if len(found) > 1:
        return doc.diagnostic(
            (*step_path, found[1]),
            f"a step has one action, this one has {one_of(found)}; split it into separate steps",
            key=True,
        )
    known = {"id", "if", "next", "description"}
    for key in step:
        if key not in known:
            return doc.diagnostic(
                (*step_path, key),
                f"unknown step type '{key}'{did_you_mean(key, ACTIONS)}; "
                f"a step's action is one of {one_of(ACTIONS)}",
                key=True,
            )
    label = f"step '{step['id']}'" if isinstance(step.get("id"), str) else "this step"
    return doc.diagnostic(step_path, f"{label} has no action; add one of {one_of(ACTIONS)}")


def _message(error: ErrorDetails, model: type[BaseModel] | None, field_name: Any) -> str:
    kind = error["type"]
    where = MODEL_NAMES.get(model.__name__, model.__name__) if model else "here"
    msg = str(error["msg"])
    if kind == "extra_forbidden":
        valid = keys_of(model) if model else []
        return (
            f"unknown key '{field_name}' in {where}{did_you_mean(str(field_name), valid)}; "
            f"valid keys: {', '.join(valid)}"
        )
    if kind == "missing":
        return f"missing required key '{field_name}' in {where}"
    if kind == "string_pattern_mismatch":
        return (
            f"'{field_name}' value {error['input']!r} is not valid: use letters, digits, "
            "'-' and '_' (ids are lowercase)"
        )
    if kind == "literal_error":
        expected = error.get("ctx", {}).get("expected", "")
        return f"'{field_name}' must be {expected}, got {error['input']!r}"
    if kind in ("value_error", "assertion_error"):
        text = msg.removeprefix("Value error, ").removeprefix("Assertion failed, ")
        scalar = not isinstance(error.get("input"), dict | list)
        return f"'{field_name}': {text}" if scalar and isinstance(field_name, str) else text
    label = f"'{field_name}'" if isinstance(field_name, str) else where
    return f"{label}: {msg[0].lower()}{msg[1:]}"


MAX_EXPLAINED_ERRORS = 200


def validation_diagnostics(
    doc: SourceDocument, root: type[BaseModel], exc: ValidationError
) -> list[Diagnostic]:
    """Turn pydantic's errors into located, readable diagnostics (one per problem)."""
    diags: dict[tuple[int, int, str], Diagnostic] = {}
    errors = exc.errors()
    # A hostile file can hold tens of thousands of problems (50,000 unknown keys took 10 s
    # to explain, found by the reliability fuzzer): explain the first ones, count the rest.
    hidden = max(0, len(errors) - MAX_EXPLAINED_ERRORS)
    errors = errors[:MAX_EXPLAINED_ERRORS]
    for error in errors:
        if _other_union_member_explains(error, errors):
            continue
        path, leftover = data_path(doc.data, tuple(error["loc"]))
        if error["type"] == "step_action":
            diag = _step_problem(doc, path, _get(doc.data, path))
        elif error["type"] == "extra_forbidden":
            parent, key = path[:-1], path[-1] if path else leftover
            model = model_at(root, doc.data, parent)
            diag = doc.diagnostic(path, _message(error, model, key), key=True)
        elif error["type"] == "missing":
            model = model_at(root, doc.data, path)
            diag = doc.diagnostic(path, _message(error, model, leftover), key=True)
        else:
            model = model_at(root, doc.data, path[:-1]) if path else root
            named = [p for p in path if isinstance(p, str)]
            name = named[-1] if named else None
            diag = doc.diagnostic(path, _message(error, model, name))
        diags.setdefault((diag.line, diag.column, diag.message), diag)
    if hidden:
        more = doc.diagnostic((), f"... and {hidden} more problem(s) like these, not shown")
        diags.setdefault((more.line, more.column, more.message), more)
    return list(diags.values())


def _other_union_member_explains(error: ErrorDetails, errors: list[ErrorDetails]) -> bool:
    """A mapping or list given where a union allows ``X | Literal[...]``: the literal's
    "must be 'anytime'" is noise next to the real error from the model member."""
    loc = tuple(error["loc"])
    if error["type"] != "literal_error" or not isinstance(error.get("input"), dict | list):
        return False
    if not loc or not str(loc[-1]).startswith("literal["):
        return False
    prefix = loc[:-1]
    return any(
        other is not error
        and len(other["loc"]) > len(prefix)
        and other["loc"][: len(prefix)] == prefix
        for other in errors
    )


def _get(data: Any, path: tuple[Any, ...]) -> Any:
    for element in path:
        data = data[element]
    return data


def _normalise(data: Any) -> Any:
    """Small conveniences before validation: ``end:`` with no value means ``end: {}``."""
    if isinstance(data, dict) and isinstance(data.get("steps"), list):
        for step in data["steps"]:
            if isinstance(step, dict) and "end" in step and step["end"] is None:
                step["end"] = {}
    return data


def read_source(path: Path, display: str | None = None) -> tuple[str | None, list[Diagnostic]]:
    shown = display or str(path)
    try:
        return path.read_text(encoding="utf-8"), []
    except UnicodeDecodeError as exc:
        return None, [Diagnostic(shown, 1, 1, f"file is not UTF-8 text ({exc.reason})")]
    except OSError as exc:
        return None, [Diagnostic(shown, 1, 1, f"cannot read file: {exc.strerror}")]


def parse_text(text: str, display: str, root: type[BaseModel]) -> LoadedFile:
    """Parse and validate YAML text as ``root``; never raises for bad input."""
    try:
        doc = load_yaml(text, display)
    except YamlSourceError as exc:
        return LoadedFile(display, None, None, exc.diagnostics)
    if not isinstance(doc.data, dict):
        what = "empty" if doc.data is None else f"a {type(doc.data).__name__}"
        return LoadedFile(
            display,
            doc,
            None,
            [
                Diagnostic(
                    display,
                    1,
                    1,
                    f"the file is {what}; expected a mapping with {one_of(keys_of(root)[:3])}, ...",
                )
            ],
        )
    try:
        model = root.model_validate(_normalise(doc.data))
    except ValidationError as exc:
        diagnostics = validation_diagnostics(doc, root, exc)
        # A hostile file with hundreds of problems gets its schema errors only.
        partial = (
            partial_playbook(doc.data, exc.errors())
            if root is Playbook and exc.error_count() <= MAX_EXPLAINED_ERRORS
            else None
        )
        return LoadedFile(display, doc, None, diagnostics, partial)
    return LoadedFile(display, doc, model, [])


def load_playbook(path: Path, display: str | None = None) -> LoadedFile:
    text, diags = read_source(path, display)
    if text is None:
        return LoadedFile(display or str(path), None, None, diags)
    return parse_text(text, display or str(path), Playbook)


def load_milestones(path: Path, display: str | None = None) -> LoadedFile:
    text, diags = read_source(path, display)
    if text is None:
        return LoadedFile(display or str(path), None, None, diags)
    return parse_text(text, display or str(path), MilestoneFile)
