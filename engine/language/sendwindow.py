"""Send windows: when an email may go out, in the customer's own time zone.

Pure and deterministic (it only reads the IANA database), so the workflow can call it
with workflow time and replay gives the same answer.
"""

from __future__ import annotations

from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from engine.language.plan import WindowPlan


def zone(name: str | None) -> ZoneInfo:
    """The customer's zone; an unknown or empty name falls back to UTC."""
    try:
        return ZoneInfo(name or "UTC")
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("UTC")


def next_opening(now: datetime, timezone: str | None, window: WindowPlan | None) -> datetime:
    """The first moment at or after ``now`` inside ``window``, as an aware UTC datetime.

    ``now`` must be timezone-aware. Returns ``now`` itself when already inside the window.
    DST gaps are handled by going through local wall-clock times and back.
    """
    if window is None or not window.days:
        return now
    tz = zone(timezone)
    local = now.astimezone(tz)
    for offset in range(8):
        day = (local + timedelta(days=offset)).date()
        if day.weekday() not in window.days:
            continue
        opens = datetime.combine(day, _at(window.start_minute), tzinfo=tz)
        closes = datetime.combine(day, _at(window.end_minute), tzinfo=tz)
        if offset == 0 and opens <= local < closes:
            return now
        if local < opens:
            return opens.astimezone(now.tzinfo)
    return now  # unreachable for a non-empty window; never block forever


def local_datetime(
    day: datetime | str, minute_of_day: int | None, timezone: str | None
) -> datetime:
    """A calendar date at a local time in the customer's zone, as an aware datetime."""
    tz = zone(timezone)
    parsed = datetime.fromisoformat(day) if isinstance(day, str) else day
    if parsed.tzinfo is not None and minute_of_day is None:
        return parsed
    return datetime.combine(parsed.date(), _at(minute_of_day or 0), tzinfo=tz)


def _at(minute_of_day: int) -> time:
    return time(minute_of_day // 60, minute_of_day % 60)
