"""Working calendars: deadlines counted on a member's working days, in their zone."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from engine.language.workdays import WorkCalendar, parse_days, parse_hours

DAY = 86_400
# Thursday 2027-01-07, 15:00 in Berlin (14:00 UTC).
THURSDAY = datetime(2027, 1, 7, 14, 0, tzinfo=UTC)
BERLIN = WorkCalendar(timezone="Europe/Berlin")


def test_whole_days_skip_the_weekend() -> None:
    assert BERLIN.add(THURSDAY, 1 * DAY) == datetime(2027, 1, 8, 14, 0, tzinfo=UTC)  # Fri
    assert BERLIN.add(THURSDAY, 2 * DAY) == datetime(2027, 1, 11, 14, 0, tzinfo=UTC)  # Mon
    assert BERLIN.add(THURSDAY, 5 * DAY) == datetime(2027, 1, 14, 14, 0, tzinfo=UTC)


def test_time_off_is_not_worked_and_a_deadline_on_a_day_off_moves_to_the_next_opening() -> None:
    away = WorkCalendar(timezone="Europe/Berlin", time_off=((date(2027, 1, 8), date(2027, 1, 12)),))
    assert away.add(THURSDAY, 1 * DAY) == datetime(2027, 1, 13, 14, 0, tzinfo=UTC)
    # 12 hours from Friday 21:00 Berlin lands on Saturday: Monday 09:00 Berlin instead.
    friday_night = datetime(2027, 1, 8, 20, 0, tzinfo=UTC)
    assert BERLIN.add(friday_night, 12 * 3600) == datetime(2027, 1, 11, 8, 0, tzinfo=UTC)


def test_someone_who_works_every_day_counts_calendar_days() -> None:
    always = WorkCalendar(days=tuple(range(7)))
    assert always.add(THURSDAY, 3 * DAY) == datetime(2027, 1, 10, 14, 0, tzinfo=UTC)


def test_days_and_hours_parse() -> None:
    assert parse_days("mon-fri") == [0, 1, 2, 3, 4]
    assert parse_days("Mon, wed,sun") == [0, 2, 6]
    assert parse_hours("09:00-17:30") == (540, 1050)
    with pytest.raises(ValueError):
        parse_days("someday")
