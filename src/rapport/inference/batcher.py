"""A micro-batcher per model, shared by every session in the process (Triton's contract: n items
in, n results out, an error per item, a max batch size and a max queue delay).

One worker thread per model is its executor: ONNX Runtime releases the GIL, so the heads of
different models run at the same time. A batch runs when it holds max_batch items or when its
oldest item has waited max_delay_ms, never later. The queue is bounded: items with a `stream` key
(video) are droppable, the newest of a stream wins and, when the queue is full, the stalest keyed
item makes room; un-keyed items (audio, text: never lost) wait for room instead.

Metrics (rapport/metrics.py), labelled by the batcher's name (a model: a fixed few per process):
batch sizes and times, the queue's depth, and drops.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Generic, Protocol, TypeVar

from rapport.metrics import BATCH_SECONDS, BATCH_SIZE, ENGINE_QUEUE, ITEMS_DROPPED

T = TypeVar("T")
R = TypeVar("R")


class Dropped(Exception):
    """The item was not run: `reason` is "stale" (a newer item of its stream came) or "full"."""

    def __init__(self, reason: str) -> None:
        super().__init__(f"dropped ({reason})")
        self.reason = reason


class BatcherClosed(RuntimeError):
    pass


class Clock(Protocol):
    def now(self) -> float: ...

    def wait(self, cond: threading.Condition, timeout: float | None) -> None: ...


class MonotonicClock:
    def now(self) -> float:
        return time.monotonic()

    def wait(self, cond: threading.Condition, timeout: float | None) -> None:
        cond.wait(timeout)


class VirtualClock:
    """Time moves only when `advance` is called (tests, simulations); waits end on advance."""

    def __init__(self, start: float = 0.0) -> None:
        self._t = start
        self._conds: set[threading.Condition] = set()
        self._lock = threading.Lock()

    def now(self) -> float:
        return self._t

    def wait(self, cond: threading.Condition, timeout: float | None) -> None:
        with self._lock:
            self._conds.add(cond)
        cond.wait(0.05 if timeout is not None else None)  # real time only to re-check

    def advance(self, seconds: float) -> None:
        self._t += seconds
        with self._lock:
            conds = list(self._conds)
        for cond in conds:
            with cond:
                cond.notify_all()


def due_at(oldest_enqueued: float, queued: int, max_batch: int, max_delay_s: float) -> float:
    """When the next batch must run: now-ish if full, else when its oldest item's wait ends."""
    return float("-inf") if queued >= max_batch else oldest_enqueued + max_delay_s


@dataclass(slots=True, frozen=True)
class BatcherStats:
    submitted: int
    batches: int
    items_run: int
    dropped_stale: int
    dropped_full: int
    errors: int

    @property
    def mean_batch(self) -> float:
        return self.items_run / self.batches if self.batches else 0.0


@dataclass(slots=True)
class _Item(Generic[T, R]):
    value: T
    stream: str | None
    at: float
    future: Future[R]


class MicroBatcher(Generic[T, R]):
    def __init__(
        self,
        run_batch: Callable[[list[T]], Sequence[R | BaseException]],
        *,
        name: str,
        max_batch: int = 16,
        max_delay_ms: float = 5.0,
        max_queue: int = 256,
        max_age_ms: float | None = None,
        clock: Clock | None = None,
    ) -> None:
        """`max_age_ms`: a keyed (video) item older than this when a batch is formed is dropped
        as stale rather than run: under overload a late frame is worth less than a fresh one."""
        if max_batch < 1 or max_queue < 1 or max_delay_ms < 0:
            raise ValueError("need max_batch >= 1, max_queue >= 1 and max_delay_ms >= 0")
        self.name = name
        self._run = run_batch
        self._max_batch, self._max_queue = max_batch, max_queue
        self._delay = max_delay_ms / 1000.0
        self._max_age = None if max_age_ms is None else max_age_ms / 1000.0
        self._clock: Clock = clock or MonotonicClock()
        self._cond = threading.Condition()
        self._queue: deque[_Item[T, R]] = deque()
        self._counts = dict.fromkeys(
            ("submitted", "batches", "items_run", "dropped_stale", "dropped_full", "errors"), 0
        )
        self._closed = False
        self._depth = ENGINE_QUEUE.labels(name)
        self._batch_size = BATCH_SIZE.labels(name)
        self._batch_seconds = BATCH_SECONDS.labels(name)
        self._worker = threading.Thread(target=self._loop, name=f"batcher-{name}", daemon=True)
        self._worker.start()

    def submit(self, item: T, *, stream: str | None = None) -> Future[R]:
        future: Future[R] = Future()
        with self._cond:
            if self._closed:
                raise BatcherClosed(f"batcher {self.name} is closed")
            if stream is not None:
                for queued in list(self._queue):
                    if queued.stream == stream:
                        self._drop(queued, "stale")
            while len(self._queue) >= self._max_queue:
                keyed = next((q for q in self._queue if q.stream is not None), None)
                if keyed is not None:
                    self._drop(keyed, "full")
                    continue
                self._clock.wait(self._cond, None)
                if self._closed:
                    raise BatcherClosed(f"batcher {self.name} is closed")
            self._queue.append(_Item(item, stream, self._clock.now(), future))
            self._depth.set(len(self._queue))
            self._counts["submitted"] += 1
            self._cond.notify_all()
        return future

    def stats(self) -> BatcherStats:
        with self._cond:
            return BatcherStats(**self._counts)

    def close(self) -> None:
        with self._cond:
            self._closed = True
            pending, self._queue = list(self._queue), deque()
            self._depth.set(0)
            self._cond.notify_all()
        for item in pending:
            if not item.future.cancelled():
                item.future.set_exception(BatcherClosed(f"batcher {self.name} closed"))
        if threading.current_thread() is not self._worker:
            self._worker.join(5)

    def __enter__(self) -> MicroBatcher[T, R]:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def _drop(self, item: _Item[T, R], reason: str) -> None:
        self._queue.remove(item)
        self._depth.set(len(self._queue))
        self._counts[f"dropped_{reason}"] += 1
        ITEMS_DROPPED.labels("engine", reason).inc()
        if not item.future.cancelled():
            item.future.set_exception(Dropped(reason))
        self._cond.notify_all()

    def _take(self) -> list[_Item[T, R]] | None:
        with self._cond:
            while True:
                if self._closed:
                    return None
                if self._max_age is not None:
                    too_old = self._clock.now() - self._max_age
                    for q in [q for q in self._queue if q.stream is not None and q.at < too_old]:
                        self._drop(q, "stale")
                if self._queue:
                    due = due_at(self._queue[0].at, len(self._queue), self._max_batch, self._delay)
                    wait = due - self._clock.now()
                    if wait <= 1e-9:  # (float sums of clock steps land a hair short)
                        n = min(self._max_batch, len(self._queue))
                        batch = [self._queue.popleft() for _ in range(n)]
                        self._depth.set(len(self._queue))
                        self._cond.notify_all()  # room for blocked submitters
                        return batch
                    self._clock.wait(self._cond, wait)
                else:
                    self._clock.wait(self._cond, None)

    def _loop(self) -> None:
        while (batch := self._take()) is not None:
            # A future its caller cancelled is skipped (completing it would raise and kill us).
            batch = [i for i in batch if i.future.set_running_or_notify_cancel()]
            if not batch:
                continue
            self._batch_size.observe(len(batch))
            began = time.perf_counter()
            try:
                results: Sequence[R | BaseException] = self._run([i.value for i in batch])
                if len(results) != len(batch):
                    raise ValueError(
                        f"batcher {self.name}: {len(results)} results for {len(batch)} items"
                    )
            except Exception as e:  # the batch's own failure: every item in it gets it
                results = [e] * len(batch)
            self._batch_seconds.observe(time.perf_counter() - began)
            errors = 0
            for item, result in zip(batch, results, strict=True):
                if isinstance(result, BaseException):
                    errors += 1
                    item.future.set_exception(result)
                else:
                    item.future.set_result(result)
            with self._cond:
                self._counts["batches"] += 1
                self._counts["items_run"] += len(batch)
                self._counts["errors"] += errors
