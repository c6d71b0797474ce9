"""Capacity of `rapport serve`: the `consents` and `websockets` modes of scripts/bench_service.py
(run them through it).

consents: a real server on SQLite (a file in a temp folder) and on PostgreSQL (a private cluster,
tests/fakes/postgres.py, restarted with fsync ON so commits are durable, as in production), when
the server binaries are installed. For each client count (default 50 and 200): one room session
per consent is created first; then the clients create the consents (POST /v1/consents, each for
its own session) as fast as the server answers, then read them (GET /v1/consents/{id}, random
order) for --read-seconds. Writes/s and reads/s are completed requests over the phase's wall time;
errors are transport errors and non-2xx answers. The clients run in their own process (raw HTTP/1.1
keep-alive over asyncio, scripts/bench_load.py); "client CPU" and "server CPU" are each process's
CPU seconds per wall second (1.0 = one core busy), and "server CPU ms/req" the server's CPU time
per request of the phase (the figure least moved by other load on a shared machine). At the end
the exported log of the project is verified (every entry's hash chain and signature).

websockets: one live session (a generated recording with one consenting face, analysed at speed
1.0, --window seconds per window so events come often) and --sockets dashboard WebSockets in a
separate process, all connected before the start. Every socket must get every event exactly once,
in order (seq 0..n-1, the same ids, session.summary last, close code 1000). Lag: arrival minus
the event's emitted_at, over every (socket, event).
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from contextlib import ExitStack
from multiprocessing import get_context
from pathlib import Path
from typing import Any

from bench_load import (
    consent_reads,
    consent_writes,
    make_sessions,
    raise_fd_limit,
    websocket_clients,
)
from rich.console import Console
from rich.table import Table

from rapport.consent.records import LogEntry, public_keys_from_jwks, verify_log

console = Console(width=140)


def _pct(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, max(0, round(q * len(s) + 0.5) - 1))] if s else float("nan")


def _ms(v: list[float]) -> str:
    return " / ".join(f"{1000 * _pct(v, q):.0f}" for q in (0.5, 0.95, 0.99))


def _durable_postgres(stack: ExitStack) -> str | None:
    """A private PostgreSQL with fsync on (the test fake runs it off), or None without binaries."""
    from tests.fakes.postgres import postgres_cluster, server_bin

    bin_dir = server_bin()
    if bin_dir is None:
        return None
    server = stack.enter_context(postgres_cluster(bin_dir))
    server.stop("fast")
    options = f"-c listen_addresses=127.0.0.1 -p {server.port} -k {server.root} -c fsync=on"
    server._ctl("-o", options, "-l", str(server.root / "log"), "-w", "start")
    server.running = True
    return server.url


def _verify_log(srv: Any) -> str:
    entries: list[LogEntry] = []
    after = -1
    while True:
        page = srv.http.get("/v1/consents/log", params={"after": after, "limit": 10_000}).json()
        if not page["entries"]:
            break
        entries += [LogEntry.from_dict(e) for e in page["entries"]]
        after = entries[-1].seq
    problems = verify_log(entries, public_keys_from_jwks({"keys": page["keys"]}))
    return f"{len(entries)} entries, " + ("verified" if not problems else f"{problems[:3]}")


def consents(args: argparse.Namespace, server_cls: Any) -> int:
    clients = [int(x) for x in args.clients.split(",")]
    rows: list[list[str]] = []
    ok = True
    pool = ProcessPoolExecutor(1, mp_context=get_context("spawn"))
    for backend in args.backends.split(","):
        with ExitStack() as stack, tempfile.TemporaryDirectory(prefix="rapport-bench-") as tmp:
            url = None
            if backend == "postgres":
                url = _durable_postgres(stack)
                if url is None:
                    console.print("PostgreSQL server binaries not found: skipped")
                    continue
            srv = server_cls(Path(tmp), Path(tmp), 5.0, url)
            srv.start()
            try:
                for n in clients:
                    console.print(f"{backend}: {args.writes} sessions, then {n} clients...")
                    sessions = pool.submit(
                        make_sessions, srv.url, srv.key, args.writes, n * 1_000_000
                    ).result()
                    got: dict[str, Any] = {}
                    cpu: dict[str, float] = {}
                    for phase in ("writes", "reads"):
                        cpu0 = srv.cpu_s()
                        if phase == "writes":
                            job = pool.submit(consent_writes, srv.url, srv.key, n, sessions)
                        else:
                            ids = got["writes"]["ids"]
                            job = pool.submit(
                                consent_reads, srv.url, srv.key, n, ids, args.read_seconds
                            )
                        got[phase] = job.result()
                        cpu[phase] = srv.cpu_s() - cpu0
                    for phase in ("writes", "reads"):
                        r = got[phase]
                        done = max(1, len(r["lat"]))
                        rows.append(
                            [
                                backend,
                                str(n),
                                phase,
                                str(len(r["lat"])),
                                f"{len(r['lat']) / r['wall']:.0f}",
                                _ms(r["lat"]),
                                str(len(r["errors"])),
                                f"{r['client_cpu']:.2f}",
                                f"{cpu[phase] / r['wall']:.2f}",
                                f"{1000 * cpu[phase] / done:.1f}",
                            ]
                        )
                        ok = ok and not r["errors"]
                        console.print("  " + " | ".join(rows[-1]))
                        for e in r["errors"][:3]:
                            console.print(f"  [red]{backend} {n} {phase}: {e}[/red]")
                console.print(f"  {backend} log: {_verify_log(srv)}; load {os.getloadavg()[0]:.1f}")
            finally:
                srv.stop()
                errors = [
                    line
                    for line in srv.log_path.read_text(errors="replace").splitlines()
                    if " ERROR " in line or "Traceback" in line
                ]
                for line in errors[:5]:
                    console.print(f"  [red]server: {line}[/red]")
                ok = ok and not errors
    pool.shutdown()
    table = Table(
        title=f"rapport serve: consents, {os.cpu_count()} CPUs, client in its own process",
        caption="ms: latency p50 / p95 / p99; CPU: busy cores (1.00 = one core); "
        f"load average at the end {os.getloadavg()[0]:.1f}",
    )
    for col in ("db", "clients", "phase", "requests", "per s", "ms", "errors", "client CPU"):
        table.add_column(col, justify="right")
    table.add_column("server CPU", justify="right")
    table.add_column("server CPU ms/req", justify="right")
    for row in rows:
        table.add_row(*row)
    console.print(table)
    return 0 if ok else 1


def websockets(args: argparse.Namespace, server_cls: Any) -> int:
    from rapport.samples import DEFAULT_SCRIPT, make_recording

    script = [
        (offset + t, line)
        for offset in range(0, int(args.duration), 20)
        for t, line in DEFAULT_SCRIPT
        if offset + t + 4.0 < args.duration
    ]
    with tempfile.TemporaryDirectory(prefix="rapport-bench-") as tmp:
        d = Path(tmp)
        rec = make_recording(
            d / "media" / "talk.mp4",
            duration_s=args.duration,
            transcript=d / "media" / "talk.vtt",
            speaker="presenter",
            speech=script,
        )
        assert rec.transcript is not None
        srv = server_cls(d, d / "media", args.window)
        srv.start()
        try:
            sid = srv.session(rec.path, rec.transcript, 1.0)
            srv.consent(sid, "presenter")
            ready = d / "ready"
            ws_url = f"{srv.url.replace('http://', 'ws://')}/v1/events?session={sid}"
            with ProcessPoolExecutor(1, mp_context=get_context("spawn")) as pool:
                console.print(f"connecting {args.sockets} WebSockets...")
                fut = pool.submit(
                    websocket_clients,
                    ws_url,
                    srv.key,
                    args.sockets,
                    str(ready),
                    args.duration * 3 + 60,
                )
                while not ready.exists() and not fut.done():
                    time.sleep(0.1)
                console.print("all connected; the session starts")
                cpu0, t0 = srv.cpu_s(), time.perf_counter()
                srv.http.post(f"/v1/sessions/{sid}/start").raise_for_status()
                got = fut.result()
                server_cpu = (srv.cpu_s() - cpu0) / (time.perf_counter() - t0)
            done = srv.get(sid)
        finally:
            srv.stop()
    events = got["events"]
    reference = max(events, key=len)
    want = [(seq, kind) for _, seq, _, kind in reference]
    complete = sum(
        [(seq, kind) for _, seq, _, kind in ev] == want and closes == 1000
        for ev, closes in zip(events, got["closes"], strict=True)
    )
    in_order = [s for s, _ in want] == list(range(len(want))) and want[-1][1] == "session.summary"
    lag = [at - _iso_ts(emitted) for ev in events for at, _, emitted, _ in ev]
    table = Table(
        title=f"rapport serve: {args.sockets} WebSockets on one live session, "
        f"{args.duration:g} s at speed 1.0, {args.window:g} s windows",
        caption="lag: arrival - emitted_at over every (socket, event)",
    )
    for col in ("sockets", "events", "deliveries", "exact & in order", "lag ms p50/p95/p99"):
        table.add_column(col, justify="right")
    table.add_column("client / server CPU", justify="right")
    table.add_row(
        f"{got['connected']}/{args.sockets}",
        str(len(want)),
        str(sum(len(ev) for ev in events)),
        f"{complete}/{args.sockets}" + ("" if in_order else " (seq gap!)"),
        _ms(lag),
        f"{got['client_cpu']:.2f} / {server_cpu:.2f}",
    )
    console.print(table)
    console.print(f"session {done['status']}; client errors: {len(got['errors'])}")
    for e in got["errors"][:5]:
        console.print(f"  [red]{e}[/red]")
    ok = complete == args.sockets and in_order and not got["errors"] and done["status"] == "ended"
    return 0 if ok else 1


def _iso_ts(iso: str) -> float:
    from datetime import datetime

    return datetime.fromisoformat(iso).timestamp()


def main(mode: str, argv: list[str], server_cls: Any) -> int:
    ap = argparse.ArgumentParser(prog=f"bench_service.py {mode}", description=__doc__)
    if mode == "consents":
        ap.add_argument("--clients", default="50,200", help="concurrent clients per round")
        ap.add_argument("--writes", type=int, default=4000, help="consents created per round")
        ap.add_argument("--read-seconds", type=float, default=8.0)
        ap.add_argument("--backends", default="sqlite,postgres")
    else:
        ap.add_argument("--sockets", type=int, default=1000)
        ap.add_argument("--duration", type=float, default=30.0, help="recording length, s")
        ap.add_argument("--window", type=float, default=1.0, help="window.seconds")
    args = ap.parse_args(argv)
    raise_fd_limit()  # the server inherits it: a thousand sockets
    return consents(args, server_cls) if mode == "consents" else websockets(args, server_cls)


if __name__ == "__main__":
    raise SystemExit("run: scripts/bench_service.py consents|websockets")
