"""Scenario 4, simulation: a year of the shipped renewal playbook on the simulator."""

from __future__ import annotations

import time
from collections import Counter
from datetime import datetime, timedelta
from datetime import time as clock
from typing import Any

from bench.report import Metric, median_time
from bench.scenarios.spec import SHIPPED, BenchFailure, Progress, Sizes
from engine.project import load_project

RENEWAL_CUSTOMER = SHIPPED / "examples" / "thornbury-capital.yaml"  # health 88: a healthy one
SIM_DAYS = 365


async def simulation(sizes: Sizes, progress: Progress) -> list[Metric]:
    """A year of the shipped renewal playbook for a healthy customer, on the simulator.

    The enrollment starts 363 days before the renewal date, so the simulated clock really
    covers a year: triage, 273 days of waiting, the 90/60/30-day emails, the renewal call and
    the overdue escalation, and the end as not_renewed the day after the renewal date.
    """
    from engine.sendwindow import zone
    from engine.simulation import Simulator, load_customer, load_team

    plan = load_project(SHIPPED).plan("renewal")
    customer = load_customer(RENEWAL_CUSTOMER)
    team = load_team(SHIPPED / "examples" / "team.yaml")
    assert customer.renewal_date is not None
    start = datetime.combine(
        customer.renewal_date - timedelta(days=363), clock(9, 0), tzinfo=zone(customer.timezone)
    )
    report = progress.phase("simulation: 365 days of renewal", sizes.sim_runs + 1)
    began = time.perf_counter()
    runs: list[float] = []
    async with Simulator() as sim:
        startup = time.perf_counter() - began
        report(1)
        for index in range(sizes.sim_runs):
            began = time.perf_counter()
            timeline = await sim.run(plan, customer, team=team, start=start, days=SIM_DAYS)
            runs.append(time.perf_counter() - began)
            report(index + 2)
            _check_renewal(timeline)
    run = median_time(
        "simulation", f"{SIM_DAYS}-day renewal run", runs, 1, f"{len(runs)}, {customer.id}"
    )
    return [
        Metric("simulation", "Simulator startup (time-skipping server, worker)", "s", startup),
        run,
    ]


def _check_renewal(timeline: Any) -> None:
    sent = Counter((e.step, e.to) for e in timeline.emails)
    steps = {step for step, _ in sent}
    problems = []
    if timeline.outcome != "not_renewed":
        problems.append(f"outcome {timeline.outcome} ({timeline.warnings})")
    if steps != {"email_90", "email_60", "email_30"}:
        problems.append(f"emails for {sorted(steps)}")
    problems += [f"{n} emails for {key}" for key, n in sent.items() if n != 1]
    if problems:
        raise BenchFailure("renewal simulation: " + "; ".join(problems))
