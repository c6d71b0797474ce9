#!/usr/bin/env python3
"""`rapport serve` under load, in three modes.

    .venv/bin/python scripts/bench_service.py [events] [--sessions 1,4,8] [--duration 30]
    .venv/bin/python scripts/bench_service.py consents [--clients 50,200] [--writes 4000]
    .venv/bin/python scripts/bench_service.py websockets [--sockets 1000] [--duration 30]

`consents` and `websockets` are described in scripts/bench_capacity.py; the rest of this text
is the `events` mode (the default).

Event delivery latency: WebSocket and webhook, with N live sessions at once.

One generated recording (one face, a transcript naming "presenter") is analysed by N sessions
started together, each paced like a live call (speed 1.0) and each with a consent for "presenter".
A real server (`rapport serve --port 0`, SQLite in a temp folder) and a real webhook receiver
(ThreadingHTTPServer on 127.0.0.1, answering 204) run for the whole benchmark. For every event:

- WS latency: its arrival at a WebSocket client (one per session, connected before the start)
  minus its `emitted_at`;
- webhook latency: its arrival at the receiver (stamped as the request comes in) minus `emitted_at`.

"complete" says whether every event arrived on both channels exactly once (per session: seq gap-free
from 0 to the summary, the same event ids on both, no duplicate delivery). "wall s" is the slowest
session's start-to-ended time (the recording's length when processing keeps pace).

Once, the revocation stop latency: one session, its consent revoked half-way; the time from sending
the revoke request to its response, and the last item of the person admitted to a model (from the
session's gate counters) relative to the request.

The server is stopped with SIGINT and the temp folder removed at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import yaml
from rich.console import Console
from rich.table import Table
from websockets.sync.client import connect

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # tests.fakes: the loopback webhook receiver

from bench_load import consent_body  # noqa: E402  (a script beside this one)

from tests.fakes.receiver import Receiver, webhook_receiver  # noqa: E402

console = Console() if sys.stdout.isatty() else Console(width=100)


def _ts(iso: str) -> float:
    return datetime.fromisoformat(iso).timestamp()


def _pct(values: list[float], q: float) -> float:
    """Nearest-rank percentile."""
    s = sorted(values)
    return s[min(len(s) - 1, max(0, round(q * len(s) + 0.5) - 1))]


# -- webhook receiver --------------------------------------------------------------------------


@dataclass
class Hook:
    at: float
    session_id: str
    seq: int
    event_id: str
    emitted_at: float
    webhook_id: str


def _envelope(body: bytes) -> dict[str, Any] | None:
    try:
        e = json.loads(body)
        return e if all(k in e for k in ("session_id", "seq", "id", "emitted_at")) else None
    except (ValueError, TypeError):
        return None


def hooks_of(rx: Receiver, session_id: str | None = None) -> list[Hook]:
    """The deliveries the receiver took, parsed (for one session, or all)."""
    with rx.lock:
        got = list(rx.received)
    hooks = []
    for g in got:
        e = _envelope(g.body)
        if e is not None and session_id in (None, e["session_id"]):
            hooks.append(
                Hook(
                    g.at,
                    e["session_id"],
                    e["seq"],
                    e["id"],
                    _ts(e["emitted_at"]),
                    g.headers.get("webhook-id", ""),
                )
            )
    return hooks


def bad_bodies(rx: Receiver) -> list[str]:
    """Deliveries that are not an event envelope."""
    with rx.lock:
        return [repr(g.body[:200]) for g in rx.received if _envelope(g.body) is None]


# -- the server --------------------------------------------------------------------------------


class Server:
    def __init__(
        self, root: Path, media: Path, window_s: float, database_url: str | None = None
    ) -> None:
        self.root = root
        self.config = root / "rapport.yaml"
        service: dict[str, Any] = {"data_dir": str(root / "data"), "media_roots": [str(media)]}
        if database_url:
            service["database_url"] = database_url
        settings = {
            "models_dir": str(ROOT / "models"),
            "window": {"seconds": window_s},
            "webhooks": {"allowed_networks": ["127.0.0.0/8"]},
            "service": service,
        }
        self.config.write_text(yaml.safe_dump(settings))
        self._argv = [sys.executable, "-m", "rapport.cli", "--config", str(self.config)]
        out = self._cli("keys", "create", "bench", "--scope", "admin")
        self.key = out.strip().splitlines()[-1]
        self.log_path = root / "serve.log"
        self.proc: subprocess.Popen[str] | None = None
        self.url = ""
        self.http = httpx.Client(headers={"authorization": f"Bearer {self.key}"}, timeout=30)

    def _cli(self, *args: str) -> str:
        p = subprocess.run(
            [*self._argv, *args],
            capture_output=True,
            text=True,
            timeout=120,
        )
        if p.returncode != 0:
            raise RuntimeError(f"rapport {' '.join(args)} failed: {p.stderr}")
        return p.stdout

    def start(self) -> None:
        self._log = self.log_path.open("a")
        self.proc = subprocess.Popen(
            [*self._argv, "serve", "--port", "0"],
            stdout=subprocess.PIPE,
            stderr=self._log,
            text=True,
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line.startswith("rapport: listening on "):
            raise RuntimeError(f"server did not start: {line!r}; see {self.log_path}")
        self.url = line.split()[-1]
        self.http.base_url = httpx.URL(self.url)

    def cpu_s(self) -> float:
        """CPU seconds the server process has used (user + system)."""
        assert self.proc is not None
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def stop(self) -> tuple[int | None, float]:
        """SIGINT; the exit code and how long the shutdown took."""
        if self.proc is None or self.proc.poll() is not None:
            return (self.proc.returncode if self.proc else None), 0.0
        t0 = time.perf_counter()
        self.proc.send_signal(signal.SIGINT)
        try:
            rc: int | None = self.proc.wait(20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)
            rc = None
        self._log.close()
        self.http.close()
        return rc, time.perf_counter() - t0

    def session(self, rec: Path, vtt: Path, speed: float) -> str:
        body = {
            "recording": str(rec),
            "transcript": str(vtt),
            "purpose": "self_coaching",
            "jurisdiction": "DE",
            "setting": "consumer",
            "reporting": "participant",
            "speed": speed,
        }
        r = self.http.post("/v1/sessions", json=body)
        r.raise_for_status()
        return str(r.json()["id"])

    def consent(self, session_id: str, user_id: str) -> str:
        body = consent_body(session_id, user_id)
        r = self.http.post("/v1/consents", json=body)
        r.raise_for_status()
        return str(r.json()["id"])

    def get(self, session_id: str) -> dict[str, Any]:
        r = self.http.get(f"/v1/sessions/{session_id}")
        r.raise_for_status()
        return dict(r.json())

    def wait_done(self, session_id: str, timeout: float) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            s = self.get(session_id)
            if s["status"] in ("ended", "failed", "interrupted") or time.monotonic() > deadline:
                return s
            time.sleep(0.2)


# -- WebSocket clients -------------------------------------------------------------------------


@dataclass
class WsLog:
    events: list[tuple[float, dict[str, Any]]] = field(default_factory=list)
    close: tuple[int | None, str | None] | None = None
    error: str | None = None
    thread: threading.Thread | None = None


def ws_collect(srv: Server, session_id: str) -> WsLog:
    """Read the session's events in a thread until the server closes the connection."""
    log = WsLog()
    opened = threading.Event()

    def run() -> None:
        try:
            with connect(
                f"{srv.url.replace('http://', 'ws://')}/v1/events?session={session_id}",
                additional_headers={"authorization": f"Bearer {srv.key}"},
            ) as ws:
                opened.set()
                try:
                    for message in ws:
                        at = time.time()
                        m = json.loads(message)
                        if "seq" in m:
                            log.events.append((at, m))
                finally:
                    log.close = (ws.close_code, ws.close_reason)
        except Exception as e:
            log.error = f"{type(e).__name__}: {e}"
        finally:
            opened.set()

    log.thread = threading.Thread(target=run, daemon=True)
    log.thread.start()
    opened.wait(10)
    return log


# -- one round: N sessions at once -------------------------------------------------------------


def _check(sid: str, ws: WsLog, hooks: list[Hook]) -> list[str]:
    """What is wrong with the session's delivery (nothing: exact on both channels)."""
    problems = []
    if ws.error:
        problems.append(f"ws error {ws.error}")
    seqs = [m["seq"] for _, m in ws.events]
    if seqs != list(range(len(seqs))):
        problems.append(f"ws seqs not 0..{len(seqs) - 1} in order")
    if not ws.events or ws.events[-1][1]["type"] != "session.summary":
        problems.append("ws: no session.summary last")
    if ws.close is None or ws.close[0] != 1000:
        problems.append(f"ws close {ws.close}")
    by_seq: dict[int, list[Hook]] = {}
    for h in hooks:
        by_seq.setdefault(h.seq, []).append(h)
    dups = sum(len(v) - 1 for v in by_seq.values())
    if dups:
        problems.append(f"{dups} duplicate webhook deliveries")
    if sorted(by_seq) != list(range(len(seqs))):
        missing = sorted(set(range(len(seqs))) - set(by_seq))
        problems.append(f"webhook: {len(by_seq)}/{len(seqs)} seqs, missing {missing[:5]}")
    ids = {m["seq"]: m["id"] for _, m in ws.events}
    if any(ids.get(s) != v[0].event_id for s, v in by_seq.items()):
        problems.append("webhook event ids differ from the WebSocket's")
    return [f"{sid}: {p}" for p in problems]


def run_round(
    srv: Server, receiver: Receiver, rec: Path, vtt: Path, n: int, duration: float
) -> dict[str, Any]:
    sids = [srv.session(rec, vtt, 1.0) for _ in range(n)]
    for sid in sids:
        srv.consent(sid, "presenter")
    logs = {sid: ws_collect(srv, sid) for sid in sids}
    time.sleep(0.3)

    def start(sid: str) -> None:
        srv.http.post(f"/v1/sessions/{sid}/start").raise_for_status()

    with ThreadPoolExecutor(n) as pool:
        list(pool.map(start, sids))
    done = {sid: srv.wait_done(sid, duration * 4 + 60) for sid in sids}
    for log in logs.values():
        assert log.thread is not None
        log.thread.join(30)
    # Webhooks may trail the WebSocket: wait (bounded) for every event to be delivered.
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and any(
        len({h.seq for h in hooks_of(receiver, sid)}) < len(logs[sid].events) for sid in sids
    ):
        time.sleep(0.1)
    time.sleep(0.5)  # late duplicates, if any

    ws_lat, hook_lat, problems = [], [], []
    worst: dict[str, tuple[float, str]] = {"WS": (-1.0, ""), "hook": (-1.0, "")}
    for sid in sids:
        log, hooks = logs[sid], hooks_of(receiver, sid)
        types = {m["seq"]: m["type"] for _, m in log.events}
        first: dict[int, Hook] = {}
        for h in sorted(hooks, key=lambda h: h.at):
            first.setdefault(h.seq, h)
        for channel, pairs in (
            ("WS", [(at - _ts(m["emitted_at"]), m["seq"]) for at, m in log.events]),
            ("hook", [(h.at - h.emitted_at, h.seq) for h in first.values()]),
        ):
            (ws_lat if channel == "WS" else hook_lat).extend(x for x, _ in pairs)
            for x, seq in pairs:
                if x > worst[channel][0]:
                    worst[channel] = (x, f"{types.get(seq, '?')} seq {seq}")
        problems += _check(sid, log, hooks)
        s = done[sid]
        if s["status"] != "ended" or s["error"]:
            problems.append(f"{sid}: status {s['status']} error {s['error']}")
    walls = [
        _ts(s["ended_at"]) - _ts(s["started_at"])
        for s in done.values()
        if s["ended_at"] and s["started_at"]
    ]
    return {
        "n": n,
        "events": sum(len(log.events) for log in logs.values()),
        "ws": ws_lat,
        "hook": hook_lat,
        "problems": problems,
        "wall": max(walls) if walls else float("nan"),
        "worst": worst,
    }


def run_revocation(srv: Server, rec: Path, vtt: Path, duration: float) -> dict[str, Any]:
    sid = srv.session(rec, vtt, 1.0)
    consent_id = srv.consent(sid, "presenter")
    log = ws_collect(srv, sid)
    srv.http.post(f"/v1/sessions/{sid}/start").raise_for_status()
    time.sleep(duration / 2)
    sent = time.time()
    r = srv.http.post(f"/v1/consents/{consent_id}/revoke")
    answered = time.time()
    r.raise_for_status()
    at_answer = srv.get(sid)["counts"]["participants"].get("presenter", {})
    done = srv.wait_done(sid, duration * 4 + 60)
    assert log.thread is not None
    log.thread.join(30)
    after = done["counts"]["participants"].get("presenter", {})
    last = after.get("last_admitted_at")
    revoked = [m for _, m in log.events if m["type"] == "consent.revoked"]
    return {
        "status": r.json().get("status"),
        "answer_ms": 1000 * (answered - sent),
        "last_ms": 1000 * (last - sent) if isinstance(last, float) else None,
        "admitted_after_answer": {
            k: v - at_answer.get("admitted", {}).get(k, 0)
            for k, v in after.get("admitted", {}).items()
        },
        "dropped_revoked": after.get("dropped", {}).get("consent_revoked", 0),
        "revoked_events": len(revoked),
        "session": done["status"],
    }


def main() -> int:
    if len(sys.argv) > 1 and sys.argv[1] in ("consents", "websockets"):
        from bench_capacity import main as capacity

        return capacity(sys.argv[1], sys.argv[2:], Server)
    if len(sys.argv) > 1 and sys.argv[1] == "events":
        del sys.argv[1]
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--sessions", default="1,4,8", help="concurrent sessions per round, comma-separated"
    )
    ap.add_argument("--duration", type=float, default=30.0, help="recording length, s")
    ap.add_argument("--window", type=float, default=5.0, help="window.seconds in the config")
    ap.add_argument("--no-revocation", action="store_true", help="skip the revocation case")
    args = ap.parse_args()
    rounds = [int(x) for x in args.sessions.split(",") if x.strip()]

    from rapport.samples import DEFAULT_SCRIPT, make_recording

    # The 20 s script, repeated; lines that would run past the end are left out.
    script = [
        (offset + t, line)
        for offset in range(0, int(args.duration), 20)
        for t, line in DEFAULT_SCRIPT
        if offset + t + 4.0 < args.duration
    ]
    t_begin = time.perf_counter()
    results: list[dict[str, Any]] = []
    revocation: dict[str, Any] | None = None
    log_text = ""
    with tempfile.TemporaryDirectory(prefix="rapport-bench-") as tmp:
        d = Path(tmp)
        media = d / "media"
        console.print(f"generating a {args.duration:.0f} s recording with a transcript...")
        rec = make_recording(
            media / "talk.mp4",
            duration_s=args.duration,
            transcript=media / "talk.vtt",
            speaker="presenter",
            speech=script,
        )
        assert rec.transcript is not None
        srv = Server(d, media, args.window)
        srv.start()
        stop: tuple[int | None, float] = (None, 0.0)
        try:
            with webhook_receiver() as receiver:
                srv.http.post("/v1/webhooks", json={"url": receiver.url}).raise_for_status()
                for n in rounds:
                    console.print(f"{n} session(s) at speed 1.0...")
                    results.append(
                        run_round(srv, receiver, rec.path, rec.transcript, n, args.duration)
                    )
                if not args.no_revocation:
                    console.print("revocation half-way through one session...")
                    revocation = run_revocation(srv, rec.path, rec.transcript, args.duration)
                bad_hooks = bad_bodies(receiver)
        finally:
            stop = srv.stop()
            log_text = srv.log_path.read_text(errors="replace")

    table = Table(
        title=f"rapport serve: {args.duration:g} s recording, speed 1.0, "
        f"{args.window:g} s windows, {os.cpu_count()} CPUs",
        caption="latency: arrival - emitted_at; complete: every event once on both, no seq gap",
    )
    for col in ("sessions", "events", "WS ms p50/p95/max", "hook ms p50/p95/max", "complete"):
        table.add_column(col, justify="left" if col == "complete" else "right")
    table.add_column("wall s", justify="right")

    def lat(v: list[float]) -> str:
        if not v:
            return "-"
        return f"{1000 * _pct(v, 0.5):.0f} / {1000 * _pct(v, 0.95):.0f} / {1000 * max(v):.0f}"

    for r in results:
        table.add_row(
            str(r["n"]),
            str(r["events"]),
            lat(r["ws"]),
            lat(r["hook"]),
            "yes" if not r["problems"] else f"NO ({len(r['problems'])})",
            f"{r['wall']:.1f}",
        )
    console.print(table)
    for r in results:
        console.print(
            f"  slowest with {r['n']}: "
            + "; ".join(f"{k} {1000 * x:.0f} ms ({what})" for k, (x, what) in r["worst"].items())
        )
    for r in results:
        for p in r["problems"][:10]:
            console.print(f"  [red]{r['n']} session(s): {p}[/red]")
    for b in bad_hooks[:5]:
        console.print(f"  [red]unreadable webhook: {b}[/red]")
    if revocation is not None:
        v = revocation
        last = f"{v['last_ms']:+.0f} ms" if v["last_ms"] is not None else "none"
        console.print(
            f"revocation at {args.duration / 2:g} s: answered in {v['answer_ms']:.0f} ms "
            f"({v['status']}); last item admitted {last} from the request\n"
            f"  admitted after the answer {v['admitted_after_answer']}; dropped as revoked "
            f"{v['dropped_revoked']}; consent.revoked events {v['revoked_events']}; "
            f"session {v['session']}"
        )
    errors = [line for line in log_text.splitlines() if " ERROR " in line or "Traceback" in line]
    console.print(
        f"server: SIGINT -> exit {stop[0]} in {stop[1]:.1f} s; {len(errors)} error line(s) in "
        f"its log; total {time.perf_counter() - t_begin:.0f} s"
    )
    for line in errors[:5]:
        console.print(f"  [red]{line}[/red]")
    ok = all(not r["problems"] for r in results) and not errors and not bad_hooks
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
