"""Run a producer in a background thread, ahead of its consumer, through a bounded queue."""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TypeVar, cast

T = TypeVar("T")


@dataclass(slots=True, frozen=True)
class _Failed:
    error: BaseException


_END = object()


def prefetch(produce: Callable[[], Iterator[T]], *, maxsize: int, name: str) -> Iterator[T]:
    """Yield what `produce()` yields, computed in a thread up to `maxsize` items ahead.

    The thread starts at the first `next()`. Closing the returned iterator (or dropping it) stops
    the thread and closes the producer; an exception in the producer is raised here.
    """
    if maxsize < 1:
        raise ValueError("maxsize must be at least 1")
    q: queue.Queue[object] = queue.Queue(maxsize)
    stop = threading.Event()

    def run() -> None:
        items = produce()
        try:
            for item in items:
                if stop.is_set():
                    return
                q.put(item)  # after stop, at most one more put; the consumer drains for it
            q.put(_END)
        except BaseException as e:  # handed to the consumer, which raises it
            q.put(_Failed(e))
        finally:
            close = getattr(items, "close", None)
            if close is not None:
                close()

    thread = threading.Thread(target=run, name=name, daemon=True)
    thread.start()
    try:
        while True:
            item = q.get()
            if item is _END:
                return
            if isinstance(item, _Failed):
                raise item.error
            yield cast(T, item)
    finally:
        stop.set()
        while thread.is_alive():
            _drain(q)
            thread.join(timeout=0.05)


def _drain(q: queue.Queue[object]) -> None:
    try:
        while True:
            q.get_nowait()
    except queue.Empty:
        pass
