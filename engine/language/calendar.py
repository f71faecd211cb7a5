"""Calendar math for date and schedule triggers: periods, cycle keys and when a cycle is due.

Pure functions of a trigger and a day in the customer's own calendar (the caller converts
"now" to the customer's time zone). The sweep (`engine.client.sweeps`) asks `due_cycle`
for every customer; the cycle key becomes part of the enrollment ID, so a cycle enrolls a
customer once however often the sweep runs.
"""

from __future__ import annotations

import re
from datetime import date, timedelta

from engine.language.plan import TriggerPlan

# How long after its day a date trigger stays due when its plan has no late policy (compiled
# before there were any), or its anchor has no value: sweeps missed during downtime.
CATCH_UP = timedelta(days=7)


def period(every: str, today: date) -> tuple[date, date, str]:
    """(first day, last day, cycle key) of the period of ``every`` containing ``today``."""
    if every == "day":
        return today, today, today.isoformat()
    if every == "week":
        start = today - timedelta(days=today.weekday())
        iso = today.isocalendar()
        return start, start + timedelta(days=6), f"{iso.year}-W{iso.week:02d}"
    if every == "month":
        start = today.replace(day=1)
        nxt = (start + timedelta(days=32)).replace(day=1)
        return start, nxt - timedelta(days=1), f"{today:%Y-%m}"
    if every == "quarter":
        q = (today.month - 1) // 3
        start = date(today.year, 3 * q + 1, 1)
        nxt = date(today.year + (q == 3), (3 * q + 3) % 12 + 1, 1)
        return start, nxt - timedelta(days=1), f"{today.year}-Q{q + 1}"
    start = date(today.year, 1, 1)
    return start, date(today.year, 12, 31), str(today.year)


def last_due_day(trigger: TriggerPlan, date_value: date, anchor: date | None = None) -> date:
    """The last day a customer whose trigger date is ``date_value`` may still be enrolled.

    The trigger's late policy (`LatePlan`) decides: ``enroll_until`` while the anchor date is
    still ahead (its eve at the latest), ``catch_up`` for a while, ``skip`` on the day only.
    A plan compiled before late policies existed keeps `CATCH_UP`.
    """
    late = trigger.late
    if late is None:
        return date_value + CATCH_UP
    if late.policy == "skip":
        return date_value
    if late.policy == "catch_up":
        return date_value + timedelta(seconds=late.catch_up_seconds or 0)
    if anchor is None:
        return date_value + CATCH_UP
    return max(date_value, anchor - timedelta(days=1))


def due_cycle(
    trigger: TriggerPlan, today: date, date_value: date | None = None, anchor: date | None = None
) -> str | None:
    """The cycle key if a date or schedule trigger is due on ``today`` (customer's calendar).

    A date trigger is due from its day to `last_due_day` (its late policy; ``anchor`` is the
    value of an ``enroll_until`` expression); a schedule for the rest of its period, so a
    sweep missed during downtime still enrolls. A date cycle's key is its trigger date.
    """
    if trigger.kind == "date":
        if date_value is None:
            return None
        due = date_value <= today <= last_due_day(trigger, date_value, anchor)
        return date_value.isoformat() if due else None
    if trigger.kind == "schedule" and trigger.every:
        first, last, key = period(trigger.every, today)
        if trigger.before_end_seconds is not None:
            opens = last - timedelta(seconds=trigger.before_end_seconds) + timedelta(days=1)
        else:
            opens = first + timedelta(seconds=trigger.after_start_seconds or 0)
        return key if max(first, opens) <= today <= last else None
    return None


# `on_date` / `enroll_until` expressions a sweep can turn into a date range on one stored
# field: ``customer.renewal_date`` or ``customer.attributes.NAME`` (bare or in ``date(...)``),
# optionally plus or minus ``days(N)`` / ``weeks(N)``.
_FIELD_DATE = re.compile(
    r"^\s*(?:date\(\s*)?customer\.(renewal_date|attributes\.[A-Za-z_][A-Za-z0-9_]*)\s*\)?"
    r"\s*(?:([+-])\s*(days|weeks)\(\s*(\d+)\s*\))?\s*$"
)


def field_date(expression: str) -> tuple[str, int] | None:
    """(field, offset in days) when ``expression`` is a stored date field plus or minus a
    constant, e.g. ``customer.renewal_date - days(120)`` -> ("renewal_date", -120); else
    None. The field is "renewal_date" or "attributes.NAME"."""
    match = _FIELD_DATE.match(expression)
    if match is None or (expression.count("(") != expression.count(")")):
        return None
    field, sign, unit, count = match.groups()
    offset = 0
    if sign:
        offset = int(count) * (7 if unit == "weeks" else 1) * (-1 if sign == "-" else 1)
    return field, offset


def due_field_window(trigger: TriggerPlan, utc_today: date) -> tuple[str, date, date] | None:
    """(field, first, last): every customer whose date ``trigger`` may be due on
    ``utc_today`` has the stored field between first and last (inclusive), or None when the
    trigger is not of that simple form.

    A coarse prefilter for the sweep's query, never the decision: a customer's own day is
    within a day of UTC's, and how late a cycle stays due comes from `last_due_day`
    (bounded for every late policy once the anchor is the same field). The sweep still runs
    `due_cycle` on each customer the query returns.
    """
    if trigger.kind != "date" or not trigger.date:
        return None
    parsed = field_date(trigger.date)
    if parsed is None:
        return None
    field, offset = parsed
    late = trigger.late
    most_late = CATCH_UP.days  # no policy, or an anchor without a value
    if late is not None and late.policy == "skip":
        most_late = 0
    elif late is not None and late.policy == "catch_up":
        most_late = -(-(late.catch_up_seconds or 0) // 86_400)
    elif late is not None and late.policy == "enroll_until":
        anchor = field_date(late.until or "")
        if anchor is None or anchor[0] != field:
            return None  # the anchor is another value: lateness is not bounded by this field
        most_late = max(most_late, anchor[1] - offset - 1)
    # date value = field + offset; due while date value <= customer's day <= date value + late
    first = utc_today - timedelta(days=1 + most_late + offset)
    last = utc_today + timedelta(days=1 - offset)
    return field, first, last
