"""`rapport demo --livekit --api URL`: the demo's participant through a running deployment.

The rapport API (`--api`, with an API key) and its LiveKit server (`--url`, with LiveKit's key and
secret, which sign the participant's token) already run, e.g. the compose stack, where `rapport
serve` dispatches each room session to a `rapport worker`. A room session is created and the
participant's consent recorded through the API; the participant joins and publishes the sample
recording (looped); the events are printed as they arrive on the API's WebSocket until `windows`
engagement windows came; then the session is ended through the API (DELETE /v1/sessions/{id}), the
summary printed, and the events written to `events.jsonl`, the summary to `summary.json`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import httpx
from livekit import api

from rapport.errors import InputError
from rapport.livekit.demo import WHO, DemoError, EventReader, Say, open_session, refusal, sample
from rapport.livekit.publisher import SimulatedParticipant
from rapport.samples import Recording

JOIN_TIMEOUT_S = 30.0
_JWT = re.compile(r"eyJ[\w-]+\.[\w-]+\.[\w-]+")
"""A join token in the SDK's error text: not echoed."""
END_TIMEOUT_S = 60.0


@dataclass(frozen=True)
class Remote:
    api: str
    """The rapport API, http(s)://HOST:PORT."""
    api_key: str
    livekit_url: str
    livekit_api_key: str
    livekit_api_secret: str

    def check(self) -> None:
        if not self.api.startswith(("http://", "https://")):
            raise InputError(f"--api {self.api!r} is not an http(s):// URL")
        if not self.api_key:
            raise InputError("--api-key (or RAPPORT_API_KEY) is required with --api")
        if not self.livekit_url.startswith(("ws://", "wss://", "http://", "https://")):
            raise InputError(f"--url {self.livekit_url!r} is not a ws(s):// or http(s):// URL")
        if not (self.livekit_api_key and self.livekit_api_secret):
            raise InputError(
                "LiveKit's API key and secret are required: --livekit-api-key (or "
                "RAPPORT_LIVEKIT__API_KEY) and RAPPORT_LIVEKIT__API_SECRET"
            )

    def token(self, identity: str, room: str, *, agent: bool = False) -> str:
        grants = api.VideoGrants(room_join=True, room=room, agent=agent or None)
        tok = api.AccessToken(self.livekit_api_key, self.livekit_api_secret)
        tok = tok.with_identity(identity).with_name(identity).with_grants(grants)
        return (tok.with_kind("agent") if agent else tok).to_jwt()


def run_remote_demo(
    remote: Remote,
    directory: Path,
    recording: Path | None,
    say: Say,
    *,
    windows: int = 2,
    timeout_s: float = 120.0,
) -> int:
    remote.check()
    if recording is not None and not recording.is_file():
        raise InputError(f"--recording {str(recording)!r}: no such file")
    directory.mkdir(parents=True, exist_ok=True)
    logging.getLogger("livekit").setLevel(logging.CRITICAL)  # the SDK's teardown races
    rec: Recording | Path = recording if recording is not None else sample(directory, say)
    room = f"demo-{uuid.uuid4().hex[:8]}"
    auth = {"authorization": f"Bearer {remote.api_key}"}
    try:
        with httpx.Client(base_url=remote.api, headers=auth, timeout=30) as http:
            return _run(remote, http, auth, room, directory, rec, say, windows, timeout_s)
    except httpx.HTTPError as e:
        raise DemoError(f"the rapport API at {remote.api}: {e}") from None


def _run(
    remote: Remote,
    http: httpx.Client,
    auth: dict[str, str],
    room: str,
    directory: Path,
    rec: Recording | Path,
    say: Say,
    windows: int,
    timeout_s: float,
) -> int:
    sid = open_session(http, room)
    ended: list[bool] = []

    def end() -> None:  # with the participant still in the room
        say("ending the session through the API; its worker emits the summary...")
        ended.append(_end(http, sid))
        if not reader.wait(lambda: reader.count("session.summary") > 0, END_TIMEOUT_S):
            raise DemoError(f"no session.summary within {END_TIMEOUT_S:g} s of the end")

    try:
        ws = remote.api.replace("http", "ws", 1) + f"/v1/events?session={sid}"
        reader = EventReader(ws, say, headers=auth)
        say(f"session {sid}: {WHO} joins room {room!r} on {remote.livekit_url}...")
        asyncio.run(_participate(remote, room, rec, reader, windows, timeout_s, end, say))
        reader.write(directory, say)
    finally:
        if not ended:  # the first error is the one to report
            with contextlib.suppress(DemoError, httpx.HTTPError):
                _end(http, sid)
    return 0


async def _participate(
    remote: Remote,
    room: str,
    rec: Recording | Path,
    reader: EventReader,
    windows: int,
    timeout_s: float,
    then: Callable[[], None],
    say: Say,
) -> None:
    """Publishes `rec` (looped) until `windows` engagement windows came through the API, then
    calls `then` (in a thread) before leaving."""
    p = SimulatedParticipant(
        remote.livekit_url,
        remote.token(WHO, room),
        rec,
        loop=True,
        transcriber_token=remote.token(f"agent-{WHO}", room, agent=True),
    )
    try:
        await asyncio.wait_for(p.start(), JOIN_TIMEOUT_S)
    except Exception as e:  # the SDK's connect errors have no common base
        detail = _JWT.sub("<token>", " ".join(str(e).split())) or type(e).__name__
        raise DemoError(f"could not join room {room!r} at {remote.livekit_url}: {detail}") from None
    try:
        t0 = time.monotonic()
        say("joined and publishing; waiting for engagement windows...")
        enough = False
        first = await asyncio.to_thread(
            reader.wait, lambda: reader.count("engagement.window") >= 1, timeout_s
        )
        if first:
            say(f"first engagement.window {time.monotonic() - t0:.1f} s after joining")
            left = max(0.0, timeout_s - (time.monotonic() - t0))
            enough = await asyncio.to_thread(
                reader.wait, lambda: reader.count("engagement.window") >= windows, left
            )
        if not first or not enough:
            why = f": {reader.error}" if reader.error else ""
            raise DemoError(
                f"{reader.count('engagement.window')} of {windows} engagement windows within "
                f"{timeout_s:g} s of joining{why} (do workers run under the API's agent name?)"
            )
        await asyncio.to_thread(then)
    finally:
        await p.stop()


def _end(http: httpx.Client, sid: str) -> bool:
    r = http.delete(f"/v1/sessions/{sid}")
    if r.status_code != 200:
        raise DemoError(f"DELETE /v1/sessions/{sid}: {refusal(r)}")
    return True
