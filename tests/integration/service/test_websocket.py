"""The WebSocket: resume after a dropped connection with no gap and no duplicate, an explicit
reset when events were already purged, heartbeats, and a slow consumer cut off while a fast one
keeps its latency."""

from __future__ import annotations

import base64
import json
import os
import socket
import threading
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

from rapport.events.websocket import CLOSE_TOO_SLOW
from rapport.samples import Recording, make_recording
from tests.fakes.wait import wait_until
from tests.integration.service.conftest import Service


def _ws(svc: Service, session_id: str, query: str = "", **kw: Any) -> Any:
    return connect(
        f"{svc.ws_url}/v1/events?session={session_id}{query}",
        additional_headers={"authorization": f"Bearer {svc.key}"},
        **kw,
    )


def _started(svc: Service, rec: Recording, **fields: Any) -> str:
    s = svc.session(rec, **fields)
    svc.consent(s["id"], "presenter")
    assert svc.http.post(f"/v1/sessions/{s['id']}/start").status_code == 200
    return str(s["id"])


def test_resume_after_a_dropped_connection(service: Service, short_talk: Recording) -> None:
    sid = _started(service, short_talk, speed=1.0)
    seen: list[dict[str, Any]] = []
    heartbeats = 0
    with _ws(service, sid) as ws:
        while len(seen) < 3:
            m = json.loads(ws.recv(timeout=10))
            if m["type"] == "heartbeat":
                heartbeats += 1
            else:
                seen.append(m)
    # Dropped mid-session; wait (on another connection) until events were emitted meanwhile.
    missed = service.wait_event(
        sid, lambda e: e["seq"] > seen[-1]["seq"], "an event emitted while disconnected"
    )
    assert missed["type"] != "session.summary", "the session ended: nothing resumes live"
    with _ws(service, sid, f"&after={seen[-1]['seq']}") as ws:
        for message in ws:
            m = json.loads(message)
            if m["type"] == "heartbeat":
                heartbeats += 1
                continue
            seen.append(m)
        assert ws.close_code == 1000
    assert [m["seq"] for m in seen] == list(range(len(seen)))
    assert seen[-1]["type"] == "session.summary"
    assert heartbeats >= 1  # 1 s heartbeat in the test config; the session paces at 1x
    assert [m["id"] for m in seen] == [m["id"] for m in service.events(sid)]


def test_retention_purges_events_and_sessions(make_service: Any, short_talk: Recording) -> None:
    import sqlite3

    # Retention of ~1 s, purged every 0.3 s: everything goes soon after the session ends.
    svc: Service = make_service({"retention": {"days": 1.2e-5, "purge_interval_s": 0.3}})
    sid = _started(svc, short_talk)
    svc.wait_status(sid, "ended")
    wait_until(
        lambda: svc.http.get(f"/v1/sessions/{sid}").status_code == 404,
        10,
        "the ended session to be purged",
    )
    db = sqlite3.connect(svc.root / "data" / "rapport.db")
    events = db.execute("SELECT count(*) FROM events WHERE session_id = ?", (sid,)).fetchone()
    db.close()
    assert events == (0,)
    with pytest.raises(InvalidStatus, match="403"), _ws(svc, sid, "&after=3"):
        pass


def test_reset_message_when_resuming_before_the_oldest_kept_event(
    service: Service, short_talk: Recording
) -> None:
    import sqlite3

    sid = _started(service, short_talk)
    service.wait_status(sid, "ended")
    n = len(service.events(sid))
    db = sqlite3.connect(service.root / "data" / "rapport.db")
    with db:
        db.execute("DELETE FROM events WHERE session_id = ? AND seq < 4", (sid,))
    db.close()
    with _ws(service, sid, "&after=1") as ws:
        messages = [json.loads(m) for m in ws]
    assert messages[0] == {"type": "stream.reset", "session_id": sid, "from_seq": 4}
    assert [m["seq"] for m in messages[1:]] == list(range(4, n))


@pytest.fixture(scope="module")
def long_quiet(media_dir: Path) -> Recording:
    """120 s with a face and no speech: many small windows, quickly."""
    return make_recording(media_dir / "long.mp4", duration_s=120.0, size=(320, 180), speech=())


def test_a_slow_consumer_is_cut_off_and_a_fast_one_keeps_its_latency(
    make_service: Any, long_quiet: Recording
) -> None:
    svc: Service = make_service(
        {
            "window": {"seconds": 1},
            "websocket": {"queue_size": 4, "send_timeout_s": 1.0, "heartbeat_s": 5},
            # Bounded kernel buffer per connection, so a stalled reader backs up quickly.
            "service": {"send_buffer_bytes": 8192},
        }
    )
    s = svc.session(long_quiet, transcript=None, participant="presenter")
    svc.consent(s["id"], "presenter")
    # The slow consumer completes the handshake by hand, then never reads its (small) socket.
    raw = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1024)
    host, port = svc.url.removeprefix("http://").split(":")
    raw.connect((host, int(port)))
    raw.sendall(
        (
            f"GET /v1/events?session={s['id']} HTTP/1.1\r\nHost: {host}:{port}\r\n"
            "Upgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {base64.b64encode(os.urandom(16)).decode()}\r\n"
            f"Sec-WebSocket-Version: 13\r\nAuthorization: Bearer {svc.key}\r\n\r\n"
        ).encode()
    )
    handshake = b""
    while b"\r\n\r\n" not in handshake:
        handshake += raw.recv(1)
    assert handshake.startswith(b"HTTP/1.1 101"), handshake
    fast_latency: list[float] = []
    fast_seqs: list[int] = []
    fast_close: list[int | None] = []
    fast_connected = threading.Event()

    def fast() -> None:
        with _ws(svc, s["id"]) as ws:
            fast_connected.set()
            for message in ws:
                m = json.loads(message)
                if "seq" in m:
                    emitted = datetime.fromisoformat(m["emitted_at"]).timestamp()
                    fast_latency.append(time.time() - emitted)
                    fast_seqs.append(m["seq"])
            fast_close.append(ws.close_code)

    reader = threading.Thread(target=fast, daemon=True)
    reader.start()
    # Connected before the start: every event reaches it live (a replay would add latency).
    assert fast_connected.wait(10), "the fast consumer did not connect"
    svc.http.post(f"/v1/sessions/{s['id']}/start")
    svc.wait_status(s["id"], "ended", timeout=120)
    reader.join(30)
    assert fast_close == [1000]
    assert fast_seqs == list(range(len(fast_seqs))) and len(fast_seqs) > 200
    fast_latency.sort()
    p95 = fast_latency[int(0.95 * (len(fast_latency) - 1))]
    # Now read what the slow one was sent: far from everything, then the server hung up. (Its
    # 4408 close frame is sent only if the consumer reads again within CLOSE_WAIT_S: a consumer
    # that never does is simply dropped.)
    reason = b"consumer too slow; resume with after=last seq"
    close_frame = b"\x88" + bytes([2 + len(reason)]) + CLOSE_TOO_SLOW.to_bytes(2, "big") + reason
    raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)  # read it back quickly now
    # This raw client never answers the close frame: the server drops the TCP connection after
    # its WebSocket close timeout (10 s) from when the frame got out, so allow well over that.
    raw.settimeout(30)
    data = b""
    while chunk := raw.recv(65536):  # to the end: the server closed the connection
        data += chunk
    raw.close()
    slow_events = data.count(b'"seq":')
    assert slow_events < len(fast_seqs)
    assert b'"type":"session.summary"' not in data
    how = "close 4408" if close_frame in data else "dropped"
    print(
        f"slow consumer: {slow_events}/{len(fast_seqs)} events, then {how}; "
        f"fast consumer p50 {1000 * fast_latency[len(fast_latency) // 2]:.0f} ms, "
        f"p95 {1000 * p95:.0f} ms"
    )
    assert p95 < 0.5
