"""What an API token may do: its scopes, shared by the store, services, API and CLI.

A token holds one or more scopes, and each /api route names the scope it needs:

- ``ingest``: send events, create, update and read customers (a product or CRM sync);
- ``operate``: read and complete tasks, read, start and steer enrollments, read customers
  (scripts and tools a CS team runs);
- ``admin``: manage the team (including UI passwords and admin rights) and API tokens.

``admin`` implies the other two: a holder of ``admin`` can mint itself any token, so
withholding them would protect nothing and only make admin tokens awkward to use.
"""

from __future__ import annotations

from collections.abc import Iterable
from enum import StrEnum


class Scope(StrEnum):
    """A permission an API token carries (stored by value in `ApiToken.scopes`)."""

    INGEST = "ingest"
    OPERATE = "operate"
    ADMIN = "admin"


def grants(held: Iterable[str], needed: Scope) -> bool:
    """Whether scopes ``held`` (stored values; unknown ones count for nothing) allow ``needed``."""
    have = set(held)
    return needed.value in have or Scope.ADMIN.value in have


def parse_scopes(values: Iterable[str]) -> list[Scope]:
    """The scopes named by ``values``, deduplicated in a stable order; ValueError names an
    unknown one and lists the known ones."""
    found: set[Scope] = set()
    for value in values:
        try:
            found.add(Scope(value.strip().lower()))
        except ValueError:
            known = ", ".join(s.value for s in Scope)
            raise ValueError(f"unknown scope '{value}' (known: {known})") from None
    if not found:
        raise ValueError("a token needs at least one scope: " + ", ".join(s.value for s in Scope))
    return [s for s in Scope if s in found]
