"""A real `rapport serve` process (uvicorn, SQLite in a temp folder) and clients for it."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from rapport.samples import Recording, make_recording
from tests.fakes.receiver import Receiver, webhook_receiver
from tests.fakes.wait import wait_until

BASE_CONFIG: dict[str, Any] = {
    "window": {"seconds": 2},
    "webhooks": {
        "allowed_networks": ["127.0.0.0/8"],
        "retry_schedule_s": [0, 0.3, 0.6, 1.0],
        "jitter": 0.0,
        "lease_s": 2,
        "poll_s": 0.1,
        "timeout_s": 5,
    },
    "websocket": {"heartbeat_s": 1.0},
}


def _merge(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    out = dict(a)
    for k, v in b.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


class Service:
    def __init__(self, root: Path, models_dir: Path, media: Path, overrides: dict[str, Any]):
        self.root = root
        root.mkdir(parents=True, exist_ok=True)
        self.config = root / "rapport.yaml"
        settings = _merge(BASE_CONFIG, overrides)
        settings = _merge(
            settings,
            {
                "models_dir": str(models_dir),
                "service": {"data_dir": str(root / "data"), "media_roots": [str(media)]},
            },
        )
        self.config.write_text(yaml.safe_dump(settings))
        self.proc: subprocess.Popen[str] | None = None
        self.url = ""
        out = self._cli("keys", "create", "tests", "--scope", "admin")
        self.key = out.strip().splitlines()[-1]
        self.http = httpx.Client(headers={"authorization": f"Bearer {self.key}"}, timeout=30)
        self._clients: list[httpx.Client] = []

    def new_key(self, project: str = "default", scope: str = "admin") -> tuple[str, str]:
        """(key id, key) of a new API key; the id is read from `rapport keys list`."""
        key = self._cli(
            "keys", "create", f"{project}-{scope}", "--project", project, "--scope", scope
        )
        listed = self._cli("keys", "list", "--project", project).strip().splitlines()
        key_id = listed[-1].split("\t")[0]
        return key_id, key.strip().splitlines()[-1]

    def client(self, key: str) -> httpx.Client:
        """A client of this server that sends `key`; closed with the service's own."""
        base = self.url or "http://127.0.0.1"
        c = httpx.Client(base_url=base, headers={"authorization": f"Bearer {key}"}, timeout=30)
        self._clients.append(c)
        return c

    def _cli(self, *args: str) -> str:
        p = subprocess.run(
            [sys.executable, "-m", "rapport.cli", "--config", str(self.config), *args],
            capture_output=True,
            text=True,
            timeout=120,
            env=os.environ.copy(),
        )
        assert p.returncode == 0, p.stderr
        return p.stdout

    def start(self) -> None:
        self.log = (self.root / "serve.log").open("a")
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "rapport.cli",
                "--config",
                str(self.config),
                "serve",
                "--port",
                "0",
            ],
            stdout=subprocess.PIPE,
            stderr=self.log,
            text=True,
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        assert line.startswith("rapport: listening on "), f"server did not start: {line!r}"
        self.url = line.split()[-1]
        self.http.base_url = httpx.URL(self.url)

    def kill(self) -> None:
        """kill -9: no shutdown of any kind."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> None:
        for c in self._clients:
            c.close()
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)

    def health(self) -> dict[str, Any]:
        r = self.http.get("/healthz")
        assert r.status_code == 200, r.text
        return dict(r.json())

    @property
    def ws_url(self) -> str:
        return self.url.replace("http://", "ws://")

    # -- API helpers -------------------------------------------------------------------------

    def session(self, recording: Recording, **fields: Any) -> dict[str, Any]:
        body = {
            "recording": str(recording.path),
            "transcript": str(recording.transcript) if recording.transcript else None,
            "purpose": "self_coaching",
            "jurisdiction": "DE",
            "setting": "consumer",
            "reporting": "participant",
            **fields,
        }
        r = self.http.post("/v1/sessions", json=body)
        assert r.status_code == 201, r.text
        return dict(r.json())

    def consent(self, session_id: str, user_id: str, **fields: Any) -> dict[str, Any]:
        now = datetime.now(UTC)
        body = {
            "user_id": user_id,
            "session_id": session_id,
            "purpose": "self_coaching",
            "purpose_text": "rapport shows you how engaged you came across, for your eyes only.",
            "notice_version": "2026-11",
            "jurisdiction": "DE",
            "modalities": ["face", "voice", "text"],
            "granted_at": now.isoformat(),
            "expires_at": (now + timedelta(hours=1)).isoformat(),
            **fields,
        }
        r = self.http.post("/v1/consents", json=body)
        assert r.status_code == 201, r.text
        return dict(r.json())

    def wait_status(self, session_id: str, status: str, timeout: float = 60) -> dict[str, Any]:
        last: dict[str, Any] = {}

        def reached() -> dict[str, Any] | None:
            last.update(self.http.get(f"/v1/sessions/{session_id}").json())
            return dict(last) if last["status"] == status else None

        return wait_until(
            reached, timeout, lambda: f"session {session_id} to be {status} (is {last['status']})"
        )

    def wait_event(
        self,
        session_id: str,
        predicate: Callable[[dict[str, Any]], bool],
        what: str,
        timeout: float = 30.0,
    ) -> dict[str, Any]:
        """The first of the session's events (replayed, then live) that satisfies `predicate`,
        read from a WebSocket of its own; AssertionError naming `what` past `timeout` s."""
        from websockets.exceptions import ConnectionClosed
        from websockets.sync.client import connect

        deadline = time.monotonic() + timeout
        with connect(
            f"{self.ws_url}/v1/events?session={session_id}",
            additional_headers={"authorization": f"Bearer {self.key}"},
        ) as ws:
            while (left := deadline - time.monotonic()) > 0:
                try:
                    m = json.loads(ws.recv(timeout=left))
                except TimeoutError:
                    break
                except ConnectionClosed:
                    raise AssertionError(f"the session's events ended before {what}") from None
                if m.get("type") not in ("heartbeat", "stream.reset") and predicate(m):
                    return dict(m)
        raise AssertionError(f"timed out after {timeout} s waiting for {what}")

    def events(self, session_id: str) -> list[dict[str, Any]]:
        """Every stored event, read back over the WebSocket (the only way events leave)."""
        from websockets.sync.client import connect

        out = []
        with connect(
            f"{self.ws_url}/v1/events?session={session_id}",
            additional_headers={"authorization": f"Bearer {self.key}"},
        ) as ws:
            for message in ws:
                m = json.loads(message)
                if m.get("type") not in ("heartbeat", "stream.reset"):
                    out.append(m)
        return out


@pytest.fixture
def make_service(tmp_path: Path, models_dir: Path, media_dir: Path) -> Iterator[Any]:
    started: list[Service] = []

    def make(overrides: dict[str, Any] | None = None, *, name: str = "svc") -> Service:
        svc = Service(tmp_path / name, models_dir, media_dir, overrides or {})
        svc.start()
        started.append(svc)
        return svc

    yield make
    for svc in started:
        svc.stop()


@pytest.fixture
def service(make_service: Any) -> Service:
    svc: Service = make_service()
    return svc


@pytest.fixture(scope="session")
def short_talk(media_dir: Path) -> Recording:
    """8 s, one face, two sentences, a transcript naming one speaker ("presenter")."""
    return make_recording(
        media_dir / "short.mp4",
        duration_s=8.0,
        speech=(
            (0.3, "Good morning everyone, thank you for joining."),
            (3.6, "I am excited to share our wonderful progress."),
        ),
        transcript=media_dir / "short.vtt",
    )


def postgres_bin() -> Path:
    """The PostgreSQL server binaries; the test is skipped without them (failed where CI
    requires them: RAPPORT_REQUIRE_POSTGRES)."""
    from tests.fakes.postgres import server_bin

    bin_dir = server_bin()
    if bin_dir is None:
        why = "PostgreSQL server binaries not found (scripts/setup --dev installs them)"
        if os.environ.get("RAPPORT_REQUIRE_POSTGRES"):
            pytest.fail(why)
        pytest.skip(why)
    return bin_dir


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    from tests.fakes.postgres import postgres_server

    with postgres_server(postgres_bin()) as url:
        yield url


@pytest.fixture(scope="session")
def call_small(media_dir: Path) -> Recording:
    return make_recording(
        media_dir / "call360.mp4",
        duration_s=12.0,
        size=(640, 360),
        fps=10,
        speech=((1.0, "I would rather not be analysed, thank you."),),
        transcript=media_dir / "call360.vtt",
    )


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with webhook_receiver() as r:
        yield r
