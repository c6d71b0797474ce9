"""Stamps events (id, per-session gap-free seq, wall time) and hands them to sinks in order."""

from __future__ import annotations

import os
import threading
import uuid
from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path
from types import TracebackType
from typing import IO

from rapport.errors import OutputError
from rapport.events.schema import Event, EventType, MediaTime, now

Sink = Callable[[Event], None]


class EventBus:
    def __init__(
        self, session_id: str, models: dict[str, str], sinks: list[Sink], first_seq: int = 0
    ) -> None:
        """`first_seq`: where a session resumed on another worker goes on (its next seq)."""
        self._session_id = session_id
        self._models = dict(models)
        self._sinks = list(sinks)
        self._seq = first_seq
        # A session emits from its worker thread, the service (consent.revoked) from another.
        self._lock = threading.RLock()

    @property
    def session_id(self) -> str:
        return self._session_id

    def together(self) -> AbstractContextManager[bool]:
        """Events emitted inside this block get consecutive seqs: no other thread emits between
        them (a window's engagement.window and turns.window, stored as one)."""
        return self._lock

    def emit(self, type_: EventType, start: float, end: float, data: object) -> Event:
        with self._lock:
            event = Event.model_validate(
                {
                    "id": f"evt_{uuid.uuid4().hex}",
                    "type": type_,
                    "session_id": self._session_id,
                    "seq": self._seq,
                    "emitted_at": now(),
                    "media_time": MediaTime(start=start, end=end),
                    "data": data,
                    "models": self._models,
                }
            )
            self._seq += 1
            for sink in self._sinks:
                sink(event)
            return event


class JsonlFile:
    """Writes events to `path`, visible there only once complete (written to a temp file, then
    renamed), so an interrupted run never leaves a half-written file that looks whole."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self._tmp = path.with_name(f".{path.name}.{os.getpid()}.partial")
        self._fh: IO[str] | None = None

    def __enter__(self) -> JsonlFile:
        self._fh = _open_for_writing(self._tmp, self._path)
        return self

    def __call__(self, event: Event) -> None:
        assert self._fh is not None, "JsonlFile used outside its context"
        self._fh.write(event.to_json() + "\n")

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        assert self._fh is not None
        self._fh.close()
        if exc_type is None:
            os.replace(self._tmp, self._path)
        else:
            self._tmp.unlink(missing_ok=True)


def write_atomically(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.partial")
    with _open_for_writing(tmp, path) as fh:
        fh.write(text)
    os.replace(tmp, path)


def check_writable(path: Path) -> None:
    """Fail before any work when `path` could not be written at the end."""
    _open_for_writing(path.with_name(f".{path.name}.{os.getpid()}.check"), path).close()
    path.with_name(f".{path.name}.{os.getpid()}.check").unlink()


def _open_for_writing(tmp: Path, path: Path) -> IO[str]:
    try:
        if path.is_dir():
            raise IsADirectoryError(f"{path} is a directory")
        path.parent.mkdir(parents=True, exist_ok=True)
        return tmp.open("w", encoding="utf-8")
    except OSError as e:
        raise OutputError(f"cannot write {path}: {e.strerror or e}") from e
