"""The latency scenario's turns (`bench.scenarios.latency.in_turns`): the variants' events
go out as one stream, a few seconds of each variant's at a time, so a slow spell of the
machine falls on all of them."""

from __future__ import annotations

from bench.scenarios.latency import in_turns


def test_each_queue_takes_its_turn_in_order() -> None:
    engine = [f"e{i}" for i in range(5)]
    baseline = [f"b{i}" for i in range(5)]
    assert in_turns([engine, baseline], 2) == [
        *("e0", "e1", "b0", "b1"),
        *("e2", "e3", "b2", "b3"),
        *("e4", "b4"),
    ]


def test_every_item_goes_out_once_whatever_the_lengths() -> None:
    queues = [list(range(7)), list(range(100, 103)), [], list(range(200, 210))]
    stream = in_turns(queues, 3)
    assert sorted(stream) == sorted(x for q in queues for x in q)
    for queue in queues:  # each queue's own order is kept
        assert [x for x in stream if x in queue] == queue
    assert stream[:9] == [0, 1, 2, 100, 101, 102, 200, 201, 202]


def test_a_turn_longer_than_the_queues_sends_each_whole_in_turn() -> None:
    assert in_turns([["a", "b"], ["c"]], 50) == ["a", "b", "c"]
