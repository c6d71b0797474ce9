"""`rapport demo --livekit`: the production path on one laptop.

A local livekit-server (127.0.0.1 only), `rapport serve` pointed at it (LiveKit's webhooks
included), a room session with one consenting participant, who publishes the sample recording
(simulcast camera, microphone, the transcript as a voice agent sends it); the events are printed
as they arrive on a dashboard's WebSocket and written to `events.jsonl`, the summary to
`summary.json`. Everything is stopped at the end, also on Ctrl-C.

The same participant through a running deployment (`--api`): rapport.livekit.remote_demo, which
shares the session, consent and event-reading steps below.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import yaml
from websockets.sync.client import connect

from rapport.errors import RapportError
from rapport.events.bus import write_atomically
from rapport.livekit.local_server import LocalServer
from rapport.livekit.publisher import SimulatedParticipant
from rapport.samples import Recording, make_recording

ROOM = "demo"
WHO = "presenter"
Say = Callable[[str], None]


class DemoError(RapportError):
    """The demo's service did not start or the session did not finish."""


@contextmanager
def _service(directory: Path, lk: LocalServer, models_dir: Path) -> Iterator[tuple[str, str]]:
    """`rapport serve` on a free port, configured for `lk`; yields (its URL, an API key)."""
    config = directory / "rapport.yaml"
    settings: dict[str, Any] = {
        "models_dir": str(models_dir),
        "window": {"seconds": 5},
        "service": {"data_dir": str(directory / "data")},
        "livekit": {"url": lk.url, "api_key": lk.api_key, "reconcile_s": 5},
    }
    config.write_text(yaml.safe_dump(settings))
    env = {**os.environ, "RAPPORT_LIVEKIT__API_SECRET": lk.api_secret}
    cli = [sys.executable, "-m", "rapport.cli", "--config", str(config)]
    made = subprocess.run(
        [*cli, "keys", "create", "demo"], capture_output=True, text=True, env=env, timeout=120
    )
    if made.returncode != 0:
        raise DemoError(f"could not create an API key: {made.stderr.strip()}")
    key = made.stdout.strip().splitlines()[-1]
    with (directory / "serve.log").open("a") as log:
        proc = subprocess.Popen(
            [*cli, "serve", "--port", "0"], stdout=subprocess.PIPE, stderr=log, text=True, env=env
        )
        try:
            assert proc.stdout is not None
            line = proc.stdout.readline()
            if not line.startswith("rapport: listening on "):
                raise DemoError(f"rapport serve did not start (see {directory / 'serve.log'})")
            yield line.split()[-1], key
        finally:
            proc.terminate()
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()


def _describe(e: dict[str, Any]) -> str:
    t = e["media_time"]
    d = e["data"]
    head = f"{t['start']:6.1f}-{t['end']:5.1f} s  {e['type']:<18}"
    if e["type"] == "engagement.window":
        room = d["room"]
        return head + f" engagement {_num(room['engagement'])}  valence {_num(room['valence'])}"
    if e["type"] == "turns.window":
        shares = ", ".join(f"{k} {v:.0%}" for k, v in d["speaking_shares"].items())
        return head + f" speaking: {shares or 'no one'}"
    if e["type"] == "sentiment.shift":
        return head + f" {d['direction']} {d['from_valence']:+.2f} -> {d['to_valence']:+.2f}"
    if e["type"] == "session.summary":
        return head + f" engagement {_num(d['engagement'])} over {d['windows']} windows"
    return head


def _num(x: float | None) -> str:
    return "  -  " if x is None else f"{x:.2f}"


def sample(directory: Path, say: Say) -> Recording:
    """The demo's 20 s recording at 1280x720 (speech needs flite or espeak-ng)."""
    say("generating a 20 s sample recording at 1280x720 (a face, speech, a transcript)...")
    return make_recording(
        directory / "sample-720p.mp4",
        size=(1280, 720),
        fps=15,
        transcript=directory / "sample-720p.vtt",
        speaker=WHO,
    )


def run_demo(directory: Path, models_dir: Path, say: Say) -> int:
    directory.mkdir(parents=True, exist_ok=True)
    # The SDK logs the publisher's teardown races at ERROR; the service's own log keeps the bot's.
    logging.getLogger("livekit").setLevel(logging.CRITICAL)
    rec = sample(directory, say)
    lk = LocalServer(log_path=directory / "livekit-server.log", departure_timeout_s=1)
    with _service(directory, lk, models_dir) as (url, key):
        lk.webhook_url = f"{url}/v1/livekit/webhook"
        with lk:
            say(f"livekit-server on {lk.url}, rapport on {url}")
            return _call(directory, lk, url, key, rec, say)


def open_session(http: httpx.Client, room: str) -> str:
    """A room session and WHO's consent to it, through the API; returns the session id."""
    made = http.post(
        "/v1/sessions",
        json={
            "room": room,
            "purpose": "self_coaching",
            "jurisdiction": "DE",
            "setting": "consumer",
            "reporting": "participant",
        },
    )
    if made.status_code != 201:
        raise DemoError(f"POST /v1/sessions: {refusal(made)}")
    sid = str(made.json()["id"])
    now = datetime.now(UTC)
    consent = http.post(
        "/v1/consents",
        json={
            "user_id": WHO,
            "session_id": sid,
            "purpose": "self_coaching",
            "purpose_text": "rapport shows you how engaged you came across, for your eyes only.",
            "notice_version": "demo",
            "jurisdiction": "DE",
            "modalities": ["face", "voice", "text"],
            "granted_at": now.isoformat(),
            "expires_at": (now + timedelta(hours=1)).isoformat(),
        },
    )
    if consent.status_code != 201:
        raise DemoError(f"consent refused: {refusal(consent)}")
    return sid


def refusal(r: httpx.Response) -> str:
    """One line for an API error answer: status, code and message."""
    try:
        e = r.json()["error"]
        return f"{r.status_code} {e['code']}: {e['message']}"
    except (ValueError, KeyError, TypeError):
        return f"{r.status_code} {' '.join(r.text.split())[:200]}"


class EventReader:
    """A session's events from the API's WebSocket, in a thread: each is said as it arrives
    (heartbeats and stream resets left out) until the session's summary."""

    def __init__(self, ws_url: str, say: Say, headers: dict[str, str] | None = None) -> None:
        self.events: list[dict[str, Any]] = []
        self.error: BaseException | None = None
        self.changed = threading.Condition()
        self._stopped = False
        self._ws_url, self._say, self._headers = ws_url, say, headers
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        try:
            with connect(self._ws_url, additional_headers=self._headers) as ws:
                for message in ws:
                    e = json.loads(message)
                    if e.get("type") in ("heartbeat", "stream.reset"):
                        continue
                    self._say(_describe(e))
                    with self.changed:
                        self.events.append(e)
                        self.changed.notify_all()
                    if e["type"] == "session.summary":
                        return
        except Exception as e:  # reported by whoever waits (self.error)
            self.error = e
        finally:
            with self.changed:
                self._stopped = True
                self.changed.notify_all()

    def count(self, kind: str) -> int:
        with self.changed:
            return sum(e["type"] == kind for e in self.events)

    def wait(self, predicate: Callable[[], bool], timeout: float) -> bool:
        """Until `predicate()` holds (True), or the reading stopped or `timeout` passed (False)."""
        with self.changed:
            self.changed.wait_for(lambda: predicate() or self._stopped, timeout)
            return predicate()

    def join(self, timeout: float) -> None:
        self._thread.join(timeout)

    def write(self, directory: Path, say: Say) -> None:
        if not self.events or self.events[-1]["type"] != "session.summary":
            raise DemoError("the session did not end with a summary")
        write_atomically(
            directory / "events.jsonl", "".join(json.dumps(e) + "\n" for e in self.events)
        )
        write_atomically(directory / "summary.json", json.dumps(self.events[-1], indent=2) + "\n")
        say(f"{len(self.events)} events -> {directory / 'events.jsonl'}, summary -> summary.json")


def _call(directory: Path, lk: LocalServer, url: str, key: str, rec: Recording, say: Say) -> int:
    http = httpx.Client(base_url=url, headers={"authorization": f"Bearer {key}"}, timeout=30)
    sid = open_session(http, ROOM)
    token = http.post(f"/v1/sessions/{sid}/tokens").json()["token"]
    ws_url = url.replace("http://", "ws://") + f"/v1/events?session={sid}&token={token}"
    reader = EventReader(ws_url, say)
    say(f"session {sid}: {WHO} joins room {ROOM!r} and publishes the recording...")

    async def publish() -> None:
        p = SimulatedParticipant(
            lk.url,
            lk.token(WHO, room=ROOM),
            rec,
            transcriber_token=lk.token(f"agent-{WHO}", room=ROOM, agent=True),
        )
        async with p:
            await p.finished.wait()

    asyncio.run(publish())
    say("the participant left; the room closes and the session ends with its summary...")
    reader.join(60)
    try:
        reader.write(directory, say)
    except DemoError as e:
        raise DemoError(f"{e} (see serve.log)") from None
    return 0
