"""Health in the book simulation (docs/health.md): the project's scorecard scores the events
it is given and recomputes daily, and the risk play starts on the day usage drops."""

from __future__ import annotations

from datetime import date

from engine.project import load_project
from engine.simulation.book import simulate_book
from engine.simulation.book_inputs import load_book, load_events
from tests.helpers.paths import PLAYBOOKS

EXAMPLES = PLAYBOOKS / "examples" / "book"


async def test_the_usage_drop_starts_the_risk_play_on_its_day() -> None:
    book = load_book(EXAMPLES / "customers.yaml")
    book.customers = [c for c in book.customers if c.id == "cust-003"]
    result = await simulate_book(
        load_project(PLAYBOOKS),
        book,
        load_events(EXAMPLES / "risk-events.yaml"),
        days=20,
        start=date(2027, 3, 1),
    )
    moves = [(h.day, h.describe()) for h in result.health]
    assert moves == [
        (1, "health 91 -> 71 (green)"),
        (8, "health 71 -> 66 (yellow)"),
        (15, "health 66 -> 60 (yellow)"),
        (
            17,
            "Weekly active users fell 63.6% (11 -> 4) over 14d; health 60 -> 36 (red); "
            "risk started",
        ),
    ], moves
    risk = [e for e in result.enrollments if e.playbook == "risk"]
    assert [(e.customer, e.started_at.day) for e in risk] == [("cust-003", 18)]
    steps = [(a.step, a.kind) for a in result.actions if a.playbook == "risk"]
    assert steps == [("investigate", "task"), ("check_in", "email")], steps
