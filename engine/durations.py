"""Durations as playbooks write them: ``30m``, ``12h``, ``3d``, ``2w``, or ISO 8601 (``P14D``).

A duration is turned into whole seconds at compile time, so the workflow only ever sees
integers and never parses text.
"""

from __future__ import annotations

import re
from datetime import timedelta

from engine.errors import DurationError

_SHORT = re.compile(r"^\s*(?P<n>\d+)\s*(?P<unit>s|m|h|d|w)\s*$")
_COMPOUND = re.compile(r"^(?:\d+[smhdw])+$")
_ISO = re.compile(
    r"^P(?!$)(?:(?P<w>\d+)W)?(?:(?P<d>\d+)D)?"
    r"(?:T(?=\d)(?:(?P<h>\d+)H)?(?:(?P<m>\d+)M)?(?:(?P<s>\d+)S)?)?$"
)
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}

DURATION_HELP = "a duration such as '30m', '12h', '3d', '2w', '1d12h' or ISO 8601 'P14D'"


def parse_duration(text: str | int) -> int:
    """Return the number of seconds in ``text``; raise `DurationError` if it is not one.

    >>> parse_duration("3d")
    259200
    >>> parse_duration("P1DT12H")
    129600
    """
    if isinstance(text, bool) or not isinstance(text, str | int):
        raise DurationError(f"expected {DURATION_HELP}, got {text!r}")
    if isinstance(text, int):
        raise DurationError(f"a bare number is ambiguous; write a unit, e.g. '{text}d'")
    raw = text.strip()
    match = _SHORT.match(raw)
    if match:
        return int(match["n"]) * _UNIT_SECONDS[match["unit"]]
    compact = raw.replace(" ", "")
    if _COMPOUND.match(compact):
        return sum(int(n) * _UNIT_SECONDS[u] for n, u in re.findall(r"(\d+)([smhdw])", compact))
    match = _ISO.match(raw.upper())
    if match:
        parts = {k: int(v) for k, v in match.groupdict().items() if v}
        return int(
            timedelta(
                weeks=parts.get("w", 0),
                days=parts.get("d", 0),
                hours=parts.get("h", 0),
                minutes=parts.get("m", 0),
                seconds=parts.get("s", 0),
            ).total_seconds()
        )
    raise DurationError(f"'{text}' is not {DURATION_HELP}")


def format_duration(seconds: int) -> str:
    """Render seconds the way a playbook author would write them (``3d``, ``1d12h``)."""
    if seconds == 0:
        return "0s"
    out = []
    for unit in ("w", "d", "h", "m", "s"):
        size = _UNIT_SECONDS[unit]
        if seconds >= size:
            out.append(f"{seconds // size}{unit}")
            seconds %= size
    return "".join(out)
