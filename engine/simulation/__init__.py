"""Simulation: run the real interpreter on Temporal's time-skipping server and print the
customer's future, day by day, before anything ships.

Where things live:

- `engine.simulation.inputs`: the customer and team fixtures (`load_customer`, `load_team`)
  the scheduled events and task completions (`parse_event`, `parse_completion`) and the
  trigger event of an ``on_event`` playbook (`parse_trigger`);
  bad input raises `SimulationInputError`.
- `engine.simulation.timeline`: the result, a `Timeline` of `TimelineEntry` rows built from
  the interpreter's step records, the captured outbox and the tasks.
- `engine.simulation.runner`: the `Simulator` (time-skipping server, worker, a throwaway
  store per run) that drives one enrollment through its schedule; `simulate` for one run.
- `engine.simulation.view`: the timeline as a terminal table, JSON or an HTML page.
- `engine.simulation.book`: `simulate_book`, every playbook and its real triggers over a
  whole book of customers (`book_inputs` reads the book and its events, `book_view` prints
  the result, `sample_book` makes a synthetic one).

This module re-exports the API (everything but the view)::

    async with Simulator() as sim:
        timeline = await sim.run(plan, customer, events=[...], completions=[...])
"""

from engine.errors import SimulationInputError
from engine.simulation.inputs import (
    ScheduledCompletion,
    ScheduledEvent,
    SimContact,
    SimCustomer,
    SimTeamMember,
    TriggerEvent,
    load_customer,
    load_team,
    parse_completion,
    parse_event,
    parse_trigger,
)
from engine.simulation.runner import MAX_DAYS, Simulator, simulate
from engine.simulation.timeline import KINDS, SimEmail, Timeline, TimelineEntry, Waiting

__all__ = [
    "KINDS",
    "MAX_DAYS",
    "ScheduledCompletion",
    "ScheduledEvent",
    "SimContact",
    "SimCustomer",
    "SimEmail",
    "SimTeamMember",
    "SimulationInputError",
    "Simulator",
    "Timeline",
    "TimelineEntry",
    "TriggerEvent",
    "Waiting",
    "load_customer",
    "load_team",
    "parse_completion",
    "parse_event",
    "parse_trigger",
    "simulate",
]
