"""The micro-batcher: order, per-item errors, max delay on a virtual clock, bounded queue."""

from __future__ import annotations

import threading
from collections.abc import Sequence

import pytest
from prometheus_client import REGISTRY

from rapport.inference.batcher import (
    BatcherClosed,
    Dropped,
    MicroBatcher,
    VirtualClock,
    due_at,
)
from tests.fakes.wait import wait_until


def test_due_at() -> None:
    assert due_at(10.0, 3, 4, 0.005) == pytest.approx(10.005)
    assert due_at(10.0, 4, 4, 0.005) == float("-inf")
    assert due_at(10.0, 1, 1, 0.0) == float("-inf")


def test_results_in_order_from_many_threads_and_batches_bounded() -> None:
    batches: list[list[int]] = []

    def run(items: list[int]) -> list[int]:
        batches.append(list(items))
        return [i * i for i in items]

    with MicroBatcher(run, name="sq", max_batch=8, max_delay_ms=2) as b:
        futures: dict[int, object] = {}
        lock = threading.Lock()

        def client(offset: int) -> None:
            for i in range(offset, 100, 4):
                f = b.submit(i)
                with lock:
                    futures[i] = f

        threads = [threading.Thread(target=client, args=(k,)) for k in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert {i: f.result(5) for i, f in futures.items()} == {i: i * i for i in range(100)}  # type: ignore[attr-defined]
    assert all(1 <= len(x) <= 8 for x in batches)
    assert sorted(i for x in batches for i in x) == list(range(100))
    # Within a batch, submission order per client thread is kept.
    for x in batches:
        for k in range(4):
            mine = [i for i in x if i % 4 == k]
            assert mine == sorted(mine)
    assert b.stats().items_run == 100 and b.stats().submitted == 100


def test_an_error_for_one_item_fails_only_that_item() -> None:
    def run(items: list[int]) -> Sequence[int | BaseException]:
        return [ValueError(f"bad {i}") if i == 3 else i for i in items]

    clock = VirtualClock()
    with MicroBatcher(run, name="e", max_batch=5, max_delay_ms=50, clock=clock) as b:
        futures = [b.submit(i) for i in range(5)]  # a full batch: runs without the clock
        assert [f.result(5) for i, f in enumerate(futures) if i != 3] == [0, 1, 2, 4]
        with pytest.raises(ValueError, match="bad 3"):
            futures[3].result(5)
        assert b.stats().errors == 1


def test_a_failing_batch_fails_its_items_and_the_batcher_goes_on() -> None:
    calls = []

    def run(items: list[int]) -> list[int]:
        calls.append(items)
        if len(calls) == 1:
            raise RuntimeError("model crashed")
        return items

    with MicroBatcher(run, name="f", max_batch=2, max_delay_ms=1) as b:
        first = [b.submit(1), b.submit(2)]
        for f in first:
            with pytest.raises(RuntimeError, match="model crashed"):
                f.result(5)
        assert b.submit(7).result(5) == 7


def test_a_wrong_result_count_fails_every_item_clearly() -> None:
    with MicroBatcher(lambda items: items[:-1], name="short", max_batch=2, max_delay_ms=1) as b:
        futures = [b.submit(1), b.submit(2)]
        for f in futures:
            with pytest.raises(ValueError, match="short: 1 results for 2 items"):
                f.result(5)


def test_a_lone_item_waits_exactly_max_delay_on_the_virtual_clock() -> None:
    clock = VirtualClock()
    ran = threading.Event()

    def run(items: list[str]) -> list[str]:
        ran.set()
        return items

    with MicroBatcher(run, name="v", max_batch=4, max_delay_ms=10, clock=clock) as b:
        f = b.submit("x")
        clock.advance(0.009)
        assert not ran.wait(0.2), "ran before max_delay_ms"
        clock.advance(0.001)
        assert f.result(5) == "x"


def test_newest_video_wins_and_a_full_queue_drops_the_stalest() -> None:
    clock = VirtualClock()
    gate = threading.Event()

    def run(items: list[str]) -> list[str]:
        gate.wait(5)
        return items

    b: MicroBatcher[str, str] = MicroBatcher(
        run, name="q", max_batch=1, max_delay_ms=0, max_queue=3, clock=clock
    )
    try:
        busy = b.submit("busy")  # taken by the worker, which blocks in run
        wait_until(
            lambda: b.stats().submitted == 1 and len(b._queue) == 0, 5, "the worker to take 1"
        )
        old = b.submit("cam-a 1", stream="a")
        new = b.submit("cam-a 2", stream="a")
        with pytest.raises(Dropped) as stale:
            old.result(5)
        assert stale.value.reason == "stale"
        b2 = b.submit("cam-b 1", stream="b")
        audio = b.submit("audio 1")
        b3 = b.submit("cam-c 1", stream="c")  # full: the stalest keyed item ("cam-a 2") goes
        with pytest.raises(Dropped) as full:
            new.result(5)
        assert full.value.reason == "full"
        gate.set()
        assert [busy.result(5), b2.result(5), audio.result(5), b3.result(5)] == [
            "busy",
            "cam-b 1",
            "audio 1",
            "cam-c 1",
        ]
        s = b.stats()
        assert (s.dropped_stale, s.dropped_full) == (1, 1)
    finally:
        gate.set()
        b.close()


def test_unkeyed_items_wait_for_room_and_are_never_dropped() -> None:
    gate = threading.Event()

    def run(items: list[int]) -> list[int]:
        gate.wait(5)
        return items

    with MicroBatcher(run, name="w", max_batch=1, max_delay_ms=0, max_queue=2) as b:
        first = b.submit(0)
        wait_until(lambda: len(b._queue) == 0, 5, "the worker to take the queued item")
        queued = [b.submit(1), b.submit(2)]
        done = threading.Event()
        extra: list[object] = []

        def blocked() -> None:
            extra.append(b.submit(3))
            done.set()

        t = threading.Thread(target=blocked)
        t.start()
        assert not done.wait(0.2), "submit did not wait for room"
        gate.set()
        assert done.wait(5)
        assert [first.result(5), *(f.result(5) for f in queued)] == [0, 1, 2]
        assert extra[0].result(5) == 3  # type: ignore[attr-defined]
        assert b.stats().dropped_full == 0


def test_close_fails_pending_items_and_refuses_new_ones() -> None:
    clock = VirtualClock()
    b: MicroBatcher[int, int] = MicroBatcher(
        lambda items: items, name="c", max_batch=10, max_delay_ms=1000, clock=clock
    )
    pending = b.submit(1)
    b.close()
    with pytest.raises(BatcherClosed):
        pending.result(5)
    with pytest.raises(BatcherClosed):
        b.submit(2)
    assert not b._worker.is_alive()


def test_a_cancelled_item_is_skipped_and_the_batcher_goes_on() -> None:
    clock = VirtualClock()
    seen: list[list[int]] = []

    def run(items: list[int]) -> list[int]:
        seen.append(items)
        return items

    with MicroBatcher(run, name="x", max_batch=3, max_delay_ms=10, clock=clock) as b:
        a, c = b.submit(1), b.submit(2)
        assert c.cancel()
        d = b.submit(3)  # the batch is full: it runs, without the cancelled item
        assert (a.result(5), d.result(5)) == (1, 3)
        assert seen == [[1, 3]]
        # Alone in the queue, 4 waits for its max delay on the virtual clock, which has not
        # moved: it cannot have started, so cancelling it must succeed.
        e = b.submit(4)
        assert e.cancel()
        clock.advance(0.02)  # 4 is due now, and skipped
        f = b.submit(5, stream="s")
        clock.advance(0.02)
        assert f.result(5) == 5
        assert e.cancelled() and seen == [[1, 3], [5]]


def test_video_older_than_max_age_is_dropped_audio_is_not() -> None:
    clock = VirtualClock()
    gate = threading.Event()

    def run(items: list[str]) -> list[str]:
        gate.wait(5)
        return items

    b: MicroBatcher[str, str] = MicroBatcher(
        run, name="age", max_batch=4, max_delay_ms=0, max_age_ms=500, clock=clock
    )
    try:
        busy = b.submit("busy")
        wait_until(lambda: len(b._queue) == 0, 5, "the worker to hold it, blocked in run")
        old_video = b.submit("frame", stream="cam")
        audio = b.submit("audio")
        clock.advance(0.6)  # both waited past max_age while the model was busy
        gate.set()
        with pytest.raises(Dropped) as dropped:
            old_video.result(5)
        assert dropped.value.reason == "stale"
        assert (busy.result(5), audio.result(5)) == ("busy", "audio")
    finally:
        gate.set()
        b.close()


def test_batches_queue_depth_and_drops_are_metrics() -> None:
    def sample(name: str, **labels: str) -> float:
        return REGISTRY.get_sample_value(name, labels) or 0.0

    model = {"model": "metrics-test"}
    stale = {"stage": "engine", "reason": "stale"}
    before = sample("rapport_items_dropped_total", **stale)
    clock = VirtualClock()
    with MicroBatcher(
        lambda xs: xs, name="metrics-test", max_batch=8, max_delay_ms=10, clock=clock
    ) as b:
        b.submit(1, stream="cam")
        last = b.submit(2, stream="cam")  # the first is stale now
        b.submit(3)
        assert sample("rapport_engine_queue_items", **model) == 2
        clock.advance(0.01)
        assert last.result(5) == 2
        wait_until(lambda: b.stats().batches == 1, 5, "the batch to be counted")
    assert sample("rapport_items_dropped_total", **stale) - before == 1
    assert sample("rapport_engine_queue_items", **model) == 0
    assert sample("rapport_engine_batch_size_count", **model) == 1
    assert sample("rapport_engine_batch_size_sum", **model) == 2
    assert sample("rapport_engine_batch_seconds_count", **model) == 1
