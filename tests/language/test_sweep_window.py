"""The date window a sweep's query narrows a date trigger to (`due_field_window`): which
`on_date` expressions it reads as a stored date plus a constant, and that no customer whose
cycle `due_cycle` finds due falls outside it, whatever the late policy and time zone."""

from __future__ import annotations

from datetime import date, timedelta

import pytest

from engine.language.calendar import due_cycle, due_field_window, field_date
from engine.language.plan import LatePlan, TriggerPlan

UTC_TODAY = date(2026, 12, 3)


@pytest.mark.parametrize(
    ("expression", "parsed"),
    [
        ("customer.renewal_date", ("renewal_date", 0)),
        ("customer.renewal_date - days(120)", ("renewal_date", -120)),
        (" customer.renewal_date+weeks(2) ", ("renewal_date", 14)),
        ("date(customer.attributes.started) + days(10)", ("attributes.started", 10)),
        ("customer.attributes.go_live", ("attributes.go_live", 0)),
        ("customer.renewal_date - days(customer.attributes.lead)", None),
        ("customer.renewal_date - months(1)", None),
        ("date(customer.renewal_date - days(3)", None),
        ("customer.renewal_date) - days(3)", None),
        ("customer.created_at", None),
    ],
)
def test_field_date_reads_a_stored_date_plus_a_constant(
    expression: str, parsed: tuple[str, int] | None
) -> None:
    assert field_date(expression) == parsed


LATE = [
    None,
    LatePlan(policy="skip"),
    LatePlan(policy="catch_up", catch_up_seconds=3 * 86_400 + 1),
    LatePlan(policy="enroll_until", until="customer.renewal_date"),
    LatePlan(policy="enroll_until", until="customer.renewal_date + days(5)"),
]


@pytest.mark.parametrize("late", LATE)
@pytest.mark.parametrize("offset", [-120, -1, 0, 7])
def test_every_customer_due_in_any_zone_is_inside_the_window(
    late: LatePlan | None, offset: int
) -> None:
    sign = "-" if offset < 0 else "+"
    trigger = TriggerPlan(
        kind="date", date=f"customer.renewal_date {sign} days({abs(offset)})", late=late
    )
    window = due_field_window(trigger, UTC_TODAY)
    assert window is not None
    field, first, last = window
    assert field == "renewal_date"
    anchor_offset = 0
    if late is not None and late.until:
        parsed = field_date(late.until)
        assert parsed is not None
        anchor_offset = parsed[1]
    due_outside = []
    for shift in range(-400, 400):
        renewal = UTC_TODAY + timedelta(days=shift)
        for zone_day in (-1, 0, 1):  # the customer's own day, in any time zone
            today = UTC_TODAY + timedelta(days=zone_day)
            anchor = renewal + timedelta(days=anchor_offset)
            due = due_cycle(trigger, today, renewal + timedelta(days=offset), anchor)
            if due and not first <= renewal <= last:
                due_outside.append((renewal, today))
    assert not due_outside
    assert (last - first).days < 200, "the window narrows the book"


def test_an_anchor_on_another_date_or_a_computed_date_gets_no_window() -> None:
    other = LatePlan(policy="enroll_until", until="customer.attributes.contract_end")
    on_other = TriggerPlan(kind="date", date="customer.renewal_date", late=other)
    assert due_field_window(on_other, UTC_TODAY) is None
    computed = "customer.renewal_date - days(customer.health_score)"
    assert due_field_window(TriggerPlan(kind="date", date=computed), UTC_TODAY) is None
    assert due_field_window(TriggerPlan(kind="schedule", every="week"), UTC_TODAY) is None
