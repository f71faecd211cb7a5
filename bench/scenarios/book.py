"""Scenario 6, book: the shipped playbooks over a synthetic book of customers for a year.

`engine.simulation.book.simulate_book` over `sample_book` (100 customers, 365 days by
default): one time-skipping server and worker, the real daily sweeps and event routing.
The goal is issue 13's: under 60 s on 2 cores. Not in the default run (it is long on a
loaded machine): ``python -m bench --only book``.
"""

from __future__ import annotations

import time
from collections import Counter
from datetime import date

from bench.report import Metric
from bench.scenarios.spec import SHIPPED, BenchFailure, Progress, Sizes
from engine.project import load_project

START = date(2026, 12, 1)
GOAL_SECONDS = 60.0


async def book(sizes: Sizes, progress: Progress) -> list[Metric]:
    """One run; the figure is its wall time, with what it did in the note."""
    from engine.simulation.book import simulate_book
    from engine.simulation.sample_book import sample_book

    sample = sample_book(sizes.book_customers, sizes.book_days, START)
    report = progress.phase(
        f"book: {sizes.book_customers} customers, {sizes.book_days} days", sizes.book_days
    )
    began = time.perf_counter()
    result = await simulate_book(
        load_project(SHIPPED),
        sample.book,
        sample.events,
        days=sizes.book_days,
        start=START,
        progress=lambda day, _: report(day),
    )
    seconds = time.perf_counter() - began
    sent = Counter(
        (a.enrollment, a.step, contact)
        for a in result.actions
        if a.kind == "email"
        for contact in a.to
    )
    twice = [key for key, n in sent.items() if n > 1]
    if twice:
        raise BenchFailure(f"book: {len(twice)} emails sent twice, e.g. {twice[0]}")
    if result.over_caps:
        raise BenchFailure(f"book: contacts over the caps, e.g. {result.over_caps[0]}")
    s = result.summary
    return [
        Metric(
            "book",
            f"{sizes.book_customers} customers over {sizes.book_days} days",
            "s",
            seconds,
            goal=f"< {GOAL_SECONDS:.0f} s",
            met=seconds < GOAL_SECONDS,
            note=f"{len(sample.events)} events, {s.enrollments} enrollments, "
            f"{s.emails} emails, {s.tasks} tasks",
        )
    ]
