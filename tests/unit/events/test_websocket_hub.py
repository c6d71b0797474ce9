"""The hub's bounded fan-out: a full queue cuts that one consumer, never the others."""

from __future__ import annotations

import asyncio

from rapport.events.websocket import EventHub, Outgoing


def test_a_full_queue_cuts_only_that_consumer() -> None:
    async def run() -> None:
        hub = EventHub(queue_size=3)
        slow = hub.subscribe("ses_1")
        fast = hub.subscribe("ses_1")
        other = hub.subscribe("ses_2")
        for seq in range(5):
            hub.publish("ses_1", Outgoing(seq, f"e{seq}", final=False))
            while not fast.queue.empty():  # the fast consumer keeps up
                fast.queue.get_nowait()
        assert slow.cut.is_set() and slow.queue.qsize() == 3
        assert not fast.cut.is_set()
        assert hub.connections("ses_1") == 1  # the slow one is gone from the fan-out
        assert other.queue.empty() and not other.cut.is_set()

    asyncio.run(run())


def test_events_are_delivered_in_order_and_unsubscribe_cleans_up() -> None:
    async def run() -> None:
        hub = EventHub(queue_size=10)
        sub = hub.subscribe("ses_1")
        for seq in range(4):
            hub.publish("ses_1", Outgoing(seq, f"e{seq}", final=seq == 3))
        got = [sub.queue.get_nowait() for _ in range(4)]
        assert [g.seq for g in got] == [0, 1, 2, 3] and got[-1].final
        hub.unsubscribe(sub)
        assert hub.connections("ses_1") == 0
        hub.publish("ses_1", Outgoing(4, "e4", final=False))  # nobody listening: no error

    asyncio.run(run())
