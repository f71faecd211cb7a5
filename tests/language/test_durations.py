"""Durations as playbooks write them: short units, compounds and ISO 8601, to whole seconds."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.durations import format_duration, parse_duration
from engine.errors import DurationError

DAY = 86_400


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("30s", 30),
        ("30m", 1_800),
        ("12h", 43_200),
        ("3d", 3 * DAY),
        ("2w", 14 * DAY),
        (" 3d ", 3 * DAY),
        ("3 d", 3 * DAY),
        ("1d12h", DAY + 43_200),
        ("1w 2d", 9 * DAY),
        ("0s", 0),
        ("P14D", 14 * DAY),
        ("p14d", 14 * DAY),
        ("P2W", 14 * DAY),
        ("PT12H", 43_200),
        ("P1DT12H", DAY + 43_200),
        ("PT1H30M15S", 5_415),
    ],
)
def test_parses(text: str, seconds: int) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("3 days", "is not a duration such as '30m'"),
        ("1 fortnight", "is not a duration"),
        ("3x", "is not a duration"),
        ("-3d", "is not a duration"),
        ("d3", "is not a duration"),
        ("", "is not a duration"),
        ("P", "is not a duration"),
        ("PT", "is not a duration"),
        ("P1Y", "is not a duration"),  # years and months have no fixed length
        ("P1M", "is not a duration"),
        ("3.5d", "is not a duration"),
        (3, "a bare number is ambiguous; write a unit, e.g. '3d'"),
        (True, "expected a duration"),
        (None, "expected a duration"),
        (1.5, "expected a duration"),
    ],
)
def test_rejects_with_a_helpful_message(value: object, message: str) -> None:
    with pytest.raises(DurationError) as info:
        parse_duration(value)  # type: ignore[arg-type]
    assert message in str(info.value)


def test_error_names_the_accepted_forms() -> None:
    with pytest.raises(DurationError) as info:
        parse_duration("soon")
    assert str(info.value) == (
        "'soon' is not a duration such as '30m', '12h', '3d', '2w', '1d12h' or ISO 8601 'P14D'"
    )


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(0, "0s"), (45, "45s"), (3 * DAY, "3d"), (DAY + 43_200, "1d12h"), (15 * DAY + 61, "2w1d1m1s")],
)
def test_formats_as_authors_write(seconds: int, text: str) -> None:
    assert format_duration(seconds) == text


@settings(max_examples=200, deadline=None)
@given(st.integers(min_value=0, max_value=10**9))
def test_format_then_parse_round_trips(seconds: int) -> None:
    assert parse_duration(format_duration(seconds)) == seconds


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=20))
def test_any_text_is_seconds_or_a_duration_error(text: str) -> None:
    try:
        seconds = parse_duration(text)
    except DurationError as exc:
        assert str(exc)
    else:
        assert isinstance(seconds, int) and seconds >= 0
