"""Working calendars: when a team member works, and deadlines counted on their working days.

A task due "in 2d" for someone who works Monday to Friday is due two working days later, in
their own time zone, skipping their time off; a deadline that would fall on a day off moves
to the start of their next working day. Pure and deterministic (it only reads the IANA
database), so activities decide with it and the result is recorded in history.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta

from engine.language.sendwindow import zone

DAY = 86_400
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


@dataclass(frozen=True)
class WorkCalendar:
    """A member's working week: zone, weekdays (Monday=0), hours [start, end) and time off."""

    timezone: str = "UTC"
    days: tuple[int, ...] = (0, 1, 2, 3, 4)
    start_minute: int = 9 * 60
    end_minute: int = 17 * 60
    time_off: tuple[tuple[date, date], ...] = field(default_factory=tuple)

    def works_on(self, day: date) -> bool:
        """Whether ``day`` (a local date) is a working day and not time off."""
        if day.weekday() not in self.days:
            return False
        return not any(first <= day <= last for first, last in self.time_off)

    def next_working_day(self, day: date) -> date:
        """The first working day strictly after ``day`` (``day`` itself never counts)."""
        for offset in range(1, 367):
            candidate = day + timedelta(days=offset)
            if self.works_on(candidate):
                return candidate
        return day + timedelta(days=1)  # nobody works: count calendar days

    def add(self, start: datetime, seconds: int) -> datetime:
        """``start`` plus ``seconds``, whole days counted as working days, in UTC.

        The remainder under a day is added as clock time; a result on a day off moves to
        the opening of the next working day.
        """
        tz = zone(self.timezone)
        local = start.astimezone(tz)
        days, rest = divmod(max(seconds, 0), DAY)
        day = local.date()
        for _ in range(days):
            day = self.next_working_day(day)
        result = datetime.combine(day, local.timetz().replace(tzinfo=None), tzinfo=tz)
        result += timedelta(seconds=rest)
        if not self.works_on(result.date()):
            opening = self.next_working_day(result.date())
            result = datetime.combine(opening, _at(self.start_minute), tzinfo=tz)
        return result.astimezone(start.tzinfo)


def parse_time_off(ranges: list[list[str]]) -> tuple[tuple[date, date], ...]:
    """Stored `[first, last]` ISO date pairs as dates (a single date is a one-day range)."""
    parsed: list[tuple[date, date]] = []
    for item in ranges:
        first = date.fromisoformat(item[0])
        last = date.fromisoformat(item[-1])
        parsed.append((first, last))
    return tuple(parsed)


def parse_days(text: str) -> list[int]:
    """``mon-fri`` or ``mon,tue,thu`` as weekday numbers (Monday=0)."""
    days: list[int] = []
    for part in text.lower().replace(" ", "").split(","):
        if "-" in part:
            first, last = (WEEKDAYS.index(p[:3]) for p in part.split("-", 1))
            days.extend(range(first, last + 1))
        elif part:
            days.append(WEEKDAYS.index(part[:3]))
    return sorted(set(days))


def parse_hours(text: str) -> tuple[int, int]:
    """``09:00-17:30`` as minutes since midnight [start, end)."""
    start, end = text.split("-", 1)
    return _minutes(start), _minutes(end)


def _minutes(text: str) -> int:
    hours, _, minutes = text.strip().partition(":")
    value = int(hours) * 60 + int(minutes or 0)
    if not 0 <= value <= 24 * 60:
        raise ValueError(f"'{text}' is not a time of day")
    return value


def _at(minute: int) -> time:
    return time(min(minute, 24 * 60 - 1) // 60, minute % 60)
