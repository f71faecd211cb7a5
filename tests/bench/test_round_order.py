"""The order the variants run in, round by round (`bench.scenarios.driver.round_order`): a
run's later rounds are slower than its first, so the variants a goal compares must share
the early and the late places."""

from __future__ import annotations

from statistics import mean

import pytest

from bench.scenarios.driver import round_order
from bench.scenarios.spec import BASELINE, BASELINE_API, ENGINE, ENGINE_SIGNAL

LATENCY = [ENGINE, BASELINE, ENGINE_SIGNAL, BASELINE_API]


def places(variants: list[str], rounds: int) -> dict[str, list[int]]:
    """Each variant's places in the whole run (0: the run's first), round after round."""
    out: dict[str, list[int]] = {v: [] for v in variants}
    for round_no in range(1, rounds + 1):
        for index, variant in enumerate(round_order(variants, round_no)):
            out[variant].append((round_no - 1) * len(variants) + index)
    return out


def test_every_round_runs_every_variant_once() -> None:
    for round_no in range(1, 9):
        assert sorted(round_order(LATENCY, round_no)) == sorted(LATENCY)


def test_two_variants_alternate_who_goes_first() -> None:
    assert [round_order([ENGINE, BASELINE], r) for r in (1, 2, 3)] == [
        [ENGINE, BASELINE],
        [BASELINE, ENGINE],
        [ENGINE, BASELINE],
    ]


@pytest.mark.parametrize("rounds", [2, 4, 6, 12])
def test_the_engine_and_the_baseline_run_back_to_back_with_the_same_mean_place(
    rounds: int,
) -> None:
    run = places(LATENCY, rounds)
    assert all(abs(e - b) == 1 for e, b in zip(run[ENGINE], run[BASELINE], strict=True))
    assert mean(run[ENGINE]) == mean(run[BASELINE])
    assert mean(run[ENGINE_SIGNAL]) == mean(run[BASELINE_API])


@pytest.mark.parametrize("rounds", [4, 8])
def test_over_a_full_cycle_every_variant_has_the_same_mean_place(rounds: int) -> None:
    assert len({mean(p) for p in places(LATENCY, rounds).values()}) == 1
