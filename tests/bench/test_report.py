"""The benchmark's interval for a ratio of percentiles (`bench.report.ratio_interval`)."""

from __future__ import annotations

import random

import pytest

from bench.report import percentile, ratio_interval


def seconds_of(samples: list[float], per_block: int = 25) -> list[list[float]]:
    return [samples[i : i + per_block] for i in range(0, len(samples), per_block)]


def latencies(seed: int, n: int = 450, scale: float = 1.0) -> list[float]:
    rng = random.Random(seed)
    return [scale * rng.lognormvariate(4.0, 0.35) for _ in range(n)]


def test_the_same_distribution_gives_an_interval_around_one() -> None:
    low, high = ratio_interval(seconds_of(latencies(1)), seconds_of(latencies(2)), 99)
    assert low < 1.0 < high
    assert high - low < 1.0


def test_a_slower_engine_is_told_apart() -> None:
    low, high = ratio_interval(seconds_of(latencies(1, scale=2.0)), seconds_of(latencies(2)), 99)
    assert 1.2 < low < 2.0 < high


def test_one_slow_second_widens_the_interval() -> None:
    """A burst of slow events (a collector pause) sets the point figure; resampling whole
    seconds shows how much of it was that one burst."""
    steady = latencies(1)
    burst = steady[:200] + [400.0] * 10 + steady[210:]
    calm = ratio_interval(seconds_of(steady), seconds_of(latencies(2)), 99)
    spiky = ratio_interval(seconds_of(burst), seconds_of(latencies(2)), 99)
    assert percentile(burst, 99) / percentile(latencies(2), 99) > 2
    assert spiky[1] - spiky[0] > 3 * (calm[1] - calm[0])
    assert spiky[0] < 1.5  # drawn without the burst's second, the ratio is ordinary


def test_the_interval_is_reproducible() -> None:
    engine, baseline = seconds_of(latencies(3)), seconds_of(latencies(4))
    assert ratio_interval(engine, baseline, 99) == ratio_interval(engine, baseline, 99)


def test_an_empty_side_is_refused() -> None:
    with pytest.raises(ValueError, match="at least one block"):
        ratio_interval([], seconds_of(latencies(1)), 99)


def test_a_slow_second_both_sides_shared_does_not_widen_a_paired_interval() -> None:
    """Variants that took turns were slowed together: drawn as pairs, the shared burst is in
    both sides of a draw or in neither, so the ratio stays near one."""
    burst = [400.0] * 10

    def slowed(samples: list[float]) -> list[list[float]]:
        return seconds_of(samples[:200] + burst + samples[210:])

    engine, baseline = slowed(latencies(1)), slowed(latencies(2))
    apart = ratio_interval(engine, baseline, 99)
    paired = ratio_interval(engine, baseline, 99, paired=True)
    assert apart[0] < 0.5 and apart[1] > 2  # drawn apart, the burst lands on one side only
    assert 0.7 < paired[0] < 1.0 < paired[1] < 1.4
    assert paired[1] - paired[0] < (apart[1] - apart[0]) / 3


def test_paired_sides_need_as_many_blocks() -> None:
    with pytest.raises(ValueError, match="differ in number: 18 and 17"):
        ratio_interval(seconds_of(latencies(1)), seconds_of(latencies(2, n=425)), 99, paired=True)
