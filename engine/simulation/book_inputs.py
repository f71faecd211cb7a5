"""A book simulation's inputs: the customers (and team) and what happens to them when.

A book is a customers file (YAML or JSON: a list of customers, or ``{customers: [...],
team: [...]}``) or a folder of such files (``team.yaml`` in it is the team; every other
``*.yaml``/``*.yml``/``*.json`` holds one customer or a list). Each customer is a
`SimCustomer` plus ``added_day``: the day it enters the store (0, the start, unless it is
imported mid-way).

The events file (YAML or JSON list, or CSV with a header row) holds `BookEvent` rows: a
customer, a day (from the start) and optionally a local time, and exactly one of

- ``name`` (+ ``properties``): a product event, posted as the live API would;
- ``update``: customer fields set as a CRM would (``renewal_date``, ``health_score``,
  ``segment``, ``attributes``, ``tags``, ...);
- ``unsubscribe``: a contact's address (or ``true``: every contact) clicks unsubscribe.

Bad input raises `SimulationInputError` naming the file, the row and the field.
"""

from __future__ import annotations

import csv
import io
import json
from datetime import time
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field, ValidationError, model_validator

from engine.errors import SimulationInputError, YamlSourceError
from engine.language.yaml_source import load_yaml
from engine.simulation.inputs import SimCustomer, SimTeamMember

# The customer fields an ``update`` row may set (the store's customer columns).
UPDATABLE = ("name", "segment", "timezone", "owner", "renewal_date", "health_score")
UPDATABLE_MERGED = ("attributes", "tags")


class BookCustomer(SimCustomer):
    """A customer of the book; ``added_day`` > 0: imported that day, not there at the start."""

    added_day: int = Field(default=0, ge=0)


class Book(BaseModel):
    """The customers and the team of a book simulation."""

    customers: list[BookCustomer]
    team: list[SimTeamMember] = Field(default_factory=list)


class BookEvent(BaseModel):
    """Something that happens to one customer on ``day`` of the customer's own calendar
    (day 0 is the start date), at ``at`` their time (midnight if not given)."""

    model_config = {"extra": "forbid"}

    customer: str = Field(min_length=1)
    day: int = Field(ge=0)
    at: time | None = None
    name: str | None = Field(default=None, min_length=1)
    properties: dict[str, Any] = Field(default_factory=dict)
    update: dict[str, Any] | None = None
    unsubscribe: str | bool | None = None

    @model_validator(mode="after")
    def _one_kind(self) -> BookEvent:
        given = [k for k in ("name", "update", "unsubscribe") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError("give exactly one of name, update, unsubscribe")
        if self.update is not None:
            unknown = set(self.update) - {*UPDATABLE, *UPDATABLE_MERGED}
            if unknown:
                raise ValueError(
                    f"update cannot set {', '.join(sorted(unknown))} "
                    f"(it sets {', '.join(UPDATABLE + UPDATABLE_MERGED)})"
                )
        return self

    @property
    def kind(self) -> Literal["event", "update", "unsubscribe"]:
        if self.name is not None:
            return "event"
        return "update" if self.update is not None else "unsubscribe"

    def describe(self) -> str:
        if self.kind == "event":
            return f"{self.customer}: event {self.name} on day {self.day}"
        if self.kind == "update":
            return f"{self.customer}: update {self.update} on day {self.day}"
        return f"{self.customer}: unsubscribe {self.unsubscribe} on day {self.day}"


def _read(path: Path) -> Any:
    """The data of a YAML or JSON file."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise SimulationInputError(f"{path}: cannot read: {exc.strerror}") from None
    if path.suffix == ".json":
        try:
            return json.loads(text)
        except ValueError as exc:
            raise SimulationInputError(f"{path}: not JSON: {exc}") from None
    try:
        return load_yaml(text, str(path)).data
    except YamlSourceError as exc:
        raise SimulationInputError(str(exc)) from None


def _problems(exc: ValidationError) -> str:
    return "; ".join(f"{'.'.join(map(str, e['loc'])) or '-'}: {e['msg']}" for e in exc.errors())


def _customers(path: Path, data: Any) -> list[BookCustomer]:
    items = data if isinstance(data, list) else [data]
    out = []
    for index, item in enumerate(items):
        try:
            out.append(BookCustomer.model_validate(item))
        except ValidationError as exc:
            raise SimulationInputError(f"{path}: customer {index + 1}: {_problems(exc)}") from None
    return out


def _team(path: Path, data: Any) -> list[SimTeamMember]:
    if not isinstance(data, list):
        raise SimulationInputError(f"{path}: a team is a list of people")
    try:
        return [SimTeamMember.model_validate(item) for item in data]
    except ValidationError as exc:
        raise SimulationInputError(f"{path}: team: {_problems(exc)}") from None


def load_book(path: Path) -> Book:
    """Read a customers file, or a folder of customer files and ``team.yaml``."""
    customers: list[BookCustomer] = []
    team: list[SimTeamMember] = []
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.suffix in (".yaml", ".yml", ".json"))
        for file in files:
            data = _read(file)
            if file.stem == "team":
                team += _team(file, data)
            elif isinstance(data, dict) and "customers" in data:
                customers += _customers(file, data["customers"])
                team += _team(file, data.get("team") or [])
            else:
                customers += _customers(file, data)
    elif path.is_file():
        data = _read(path)
        if isinstance(data, dict) and "customers" in data:
            customers = _customers(path, data["customers"])
            team = _team(path, data.get("team") or [])
        else:
            customers = _customers(path, data)
    else:
        raise SimulationInputError(f"{path}: no such file or folder")
    seen: set[str] = set()
    for customer in customers:
        if customer.id in seen:
            raise SimulationInputError(f"{path}: customer '{customer.id}' appears twice")
        seen.add(customer.id)
    if not customers:
        raise SimulationInputError(f"{path}: no customers")
    return Book(customers=customers, team=team)


def _csv_rows(path: Path, text: str) -> list[dict[str, Any]]:
    """CSV columns: customer, day, at, name, properties, update, unsubscribe (the last
    three JSON; empty cells are absent)."""
    rows = []
    for number, row in enumerate(csv.DictReader(io.StringIO(text)), start=2):
        item: dict[str, Any] = {}
        for key, value in row.items():
            if key is None or value is None or value.strip() == "":
                continue
            value = value.strip()
            if key in ("properties", "update"):
                try:
                    item[key] = json.loads(value)
                except ValueError:
                    raise SimulationInputError(
                        f"{path}:{number}: {key} is not JSON: {value!r}"
                    ) from None
            elif key == "unsubscribe":
                item[key] = True if value.lower() == "true" else value
            else:
                item[key] = value
        item["_line"] = number
        rows.append(item)
    return rows


def load_events(path: Path) -> list[BookEvent]:
    """Read the events file (YAML, JSON or CSV), in day order (stable for equal days)."""
    if path.suffix == ".csv":
        try:
            items = _csv_rows(path, path.read_text(encoding="utf-8"))
        except OSError as exc:
            raise SimulationInputError(f"{path}: cannot read: {exc.strerror}") from None
    else:
        data = _read(path)
        if isinstance(data, dict) and "events" in data:
            data = data["events"]
        if not isinstance(data, list):
            raise SimulationInputError(f"{path}: an events file is a list of events")
        items = data
    events = []
    for index, item in enumerate(items):
        where = f"row {index + 1}"
        if isinstance(item, dict) and "_line" in item:
            where = f"line {item.pop('_line')}"
        try:
            events.append(BookEvent.model_validate(item))
        except ValidationError as exc:
            raise SimulationInputError(f"{path}: {where}: {_problems(exc)}") from None
    return sorted(events, key=lambda e: e.day)
