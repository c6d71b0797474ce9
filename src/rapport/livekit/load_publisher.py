"""Runs the Go load publisher (tools/loadpub, built into build/loadpub by `scripts/setup --dev`):
N participants in one process publishing pre-encoded media (rapport.livekit.preencoded) as-is.

A participant costs the publisher almost nothing (no decoding, no encoding), so the benchmark
measures the bot. Its participants publish a simulcast camera and a microphone only: no transcript
and no chat (the Python SimulatedParticipant does those, and the consent tests use it).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
import time
from pathlib import Path
from types import TracebackType
from typing import Any

from rapport.errors import RapportError
from rapport.livekit.local_server import LocalServer
from rapport.livekit.preencoded import PreEncoded

_REPO_BINARY = Path(__file__).resolve().parents[3] / "build" / "loadpub"


class LoadPublisherError(RapportError):
    """The load publisher is missing, or it failed to publish."""


def find_load_publisher() -> Path:
    """$RAPPORT_LOADPUB, else <repo>/build/loadpub."""
    env = os.environ.get("RAPPORT_LOADPUB")
    path = Path(env) if env else _REPO_BINARY
    if path.is_file() and os.access(path, os.X_OK):
        return path
    where = f"RAPPORT_LOADPUB={env} is not an executable file" if env else f"{path} not found"
    raise LoadPublisherError(f"load publisher: {where}: run `scripts/setup --dev`")


class LoadPublisher:
    """`count` participants, identities `<prefix>00`, `<prefix>01`, ..., in `room` on `server`,
    each publishing `media` looped (the microphone too unless `audio=False`; with `turn_s`, the
    participants speak in turn, `turn_s` each, and are silent between their turns).

    start() returns once every participant has published its tracks (or raises); stop() sends
    SIGINT and returns the publisher's stats: per identity the LOW-layer video and audio samples
    it sent since start() returned, and the seconds since then. A context manager too.
    """

    def __init__(
        self,
        server: LocalServer,
        room: str,
        count: int,
        media: PreEncoded,
        *,
        prefix: str = "p",
        audio: bool = True,
        turn_s: float = 0.0,
        binary: Path | None = None,
        log_path: Path | None = None,
    ) -> None:
        self.binary = binary or find_load_publisher()
        self.identities = [f"{prefix}{i:02d}" for i in range(count)]
        self.args = [
            str(self.binary),
            f"--url={server.url}",
            f"--api-key={server.api_key}",
            f"--api-secret={server.api_secret}",
            f"--room={room}",
            f"--count={count}",
            f"--identity-prefix={prefix}",
            f"--video-dir={media.folder}",
            f"--audio={media.audio if audio else ''}",
        ]
        if turn_s > 0 and audio:  # one speaks at a time, the others send silence
            self.args += [f"--turn={turn_s:g}s", f"--silence={media.silence}"]
        self.log_path = log_path
        self.stats: dict[str, Any] | None = None
        self._proc: subprocess.Popen[str] | None = None
        self._ready = threading.Event()
        self._lines: list[str] = []
        self._reader: threading.Thread | None = None

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    def start(self, timeout_s: float = 60.0) -> LoadPublisher:
        log = self.log_path.open("ab") if self.log_path is not None else None
        try:
            self._proc = subprocess.Popen(
                self.args,
                stdout=subprocess.PIPE,
                stderr=log if log is not None else subprocess.DEVNULL,
                text=True,
                bufsize=1,
            )
        finally:
            if log is not None:
                log.close()
        self._reader = threading.Thread(target=self._read, name="loadpub-stdout", daemon=True)
        self._reader.start()
        deadline = time.monotonic() + timeout_s
        while not self._ready.wait(0.1):
            if self._proc.poll() is not None or time.monotonic() > deadline:
                code = self._proc.poll()
                self.stop()
                why = f"exited {code}" if code is not None else f"not ready in {timeout_s:g} s"
                see = f" (log: {self.log_path})" if self.log_path else ""
                raise LoadPublisherError(f"load publisher {why}{see}")
        return self

    def _read(self) -> None:
        assert self._proc is not None and self._proc.stdout is not None
        for line in self._proc.stdout:
            line = line.strip()
            self._lines.append(line)
            if line.startswith("ready "):
                self._ready.set()
            elif line.startswith("stats "):
                self.stats = json.loads(line[len("stats ") :])

    def stop(self, timeout_s: float = 15.0) -> dict[str, Any] | None:
        """Every participant leaves; the stats, or None when it died before printing them."""
        proc, self._proc = self._proc, None
        if proc is None:
            return self.stats
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(timeout_s)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if self._reader is not None:
            self._reader.join(5)
        return self.stats

    def __enter__(self) -> LoadPublisher:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
