#!/usr/bin/env python3
"""The LiveKit bot under load: window latency, CPU and memory of `rapport serve` per participant.

    .venv/bin/python scripts/bench_livekit.py [--participants 1,4,8,16] [--duration 30]
        [--window 5] [--size 1280x720] [--fps 10] [--no-speech] [--talk turns|all] [--turn 4]
        [--detail] [--keep]
        [--publisher go|python]

A real livekit-server (rapport.livekit.LocalServer, loopback only) and one `rapport serve` (SQLite
in a temp folder, the offline pack from models/, LiveKit webhooks pointed at it) run for the whole
benchmark. For each N, one room: a session for it with a consent per participant, then N
publishers each playing the same generated recording (one face, speech), looped, camera with VP8
simulcast (the bot takes the LOW layer):

- `--publisher go` (the default when build/loadpub exists; `scripts/setup --dev` builds it): the
  load publisher (rapport.livekit.load_publisher, one Go process for all N) sends the recording
  pre-encoded once (rapport.livekit.preencoded: three VP8 layers, camera size / 4, / 2, / 1, and
  Opus; cached under build/loadpub-media), so a publisher costs almost nothing. No transcript;
- `--publisher python`: rapport.livekit.publisher in this process, decoding and encoding live
  (VP8 simulcast, ~35 % of a core each at 1280x720), plus a transcript sent by an agent connection.
 Once the bot has subscribed to every camera and microphone, the
measured interval runs for --duration seconds; then every publisher leaves and the session must end
(status "ended") with a summary. Per room:

- windows: `engagement.window` events whose boundary (media_origin + media_time.end, wall clock)
  lies in the measured interval; "beyond boundary" is their arrival on a WebSocket client (one per
  session, connected before the room starts) minus that boundary;
- bot CPU: utime+stime of the `rapport serve` process over the interval (/proc/PID/stat), per
  participant and in all (100 % = one core); the publishers (the Go process, or this one) and
  livekit-server are given as context;
- bot RSS at the end of the interval, and its growth over the pre-room baseline per participant;
- frames: frames the bot took for the session (after sampling at video.sample_fps; per participant
  per second of the interval in brackets; audio chunks per participant per second are given below
  the table: 10 when the bot's audio keeps real time); behind: frames dropped because the session
  worker was behind (livekit.max_backlog); engine: faces dropped by the face engine; late: items
  after their window closed (the last two from the summary's `dropped`);
- pub fps: frames per second each publisher actually pushed (the recording's rate when it keeps up;
  for go, LOW-layer frames over the publisher's whole run);
- below the table: CPU % per thread name in the bot and in this process ("main" is the thread that
  runs the event loop), and with --detail every window's emit and arrival time beyond its boundary.

Python publishers cost far more than the bot (VP8 simulcast of 1280x720 at 10 fps: ~35 % of a core
each): on a small machine they starve the bot from about 8 participants. `--size 320x180` hands the
bot the same frames as 1280x720's LOW layer (320x180) at a fraction of that cost, and `--pin K`
gives the bot K CPUs of its own (sched_setaffinity on every thread; the publishers and
livekit-server share the rest), so that it does not wait for CPU behind them. The Go publishers
speak in turn by default (`--talk turns`: one at a time, `--turn` seconds each, silence between,
as in a meeting); `--talk all` has everyone speak the whole recording at once, the worst case for
the voice heads (every microphone's speech measured, cut and scored). `--no-speech`
publishes silence (no VAD segments, no transcript).

Capture-to-bot delay is not measured: the publisher stamps each frame, but the bot does not expose
the stamps. The server is stopped with SIGINT and the temp folder removed at the end (also on
Ctrl-C).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import secrets
import shutil
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parent))  # bench_service, also when imported

from bench_service import Server, WsLog, _pct, _ts, ws_collect

from rapport.livekit import LocalServer
from rapport.livekit.load_publisher import LoadPublisher, LoadPublisherError, find_load_publisher
from rapport.livekit.preencoded import PreEncoded, preencoded_media
from rapport.livekit.publisher import SimulatedParticipant
from rapport.samples import DEFAULT_SCRIPT, Recording, make_recording

console = Console() if sys.stdout.isatty() else Console(width=180)
TICK = os.sysconf("SC_CLK_TCK")
RAMP_TIMEOUT_S = 60.0


# -- /proc -----------------------------------------------------------------------------------------


def cpu_s(pid: int) -> float:
    """utime + stime of a process, seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def threads_cpu(pid: int) -> dict[tuple[int, str], float]:
    """CPU seconds per thread, keyed by (tid, name); the main thread (the event loop) is "main"."""
    out = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(OSError):
            text = (task / "stat").read_text()
            name = "main" if task.name == str(pid) else text[text.index("(") + 1 : text.rindex(")")]
            fields = text.rsplit(")", 1)[1].split()
            out[(int(task.name), name)] = (int(fields[11]) + int(fields[12])) / TICK
    return out


def by_name(
    before: dict[tuple[int, str], float], after: dict[tuple[int, str], float]
) -> Counter[str]:
    """CPU seconds spent between the two snapshots, per thread name."""
    spent: Counter[str] = Counter()
    for key, s in after.items():
        spent[key[1]] += s - before.get(key, 0.0)
    return spent


def pin(pins: dict[int, set[int]]) -> None:
    """Every thread of each process onto its CPUs (threads started later inherit the creator's)."""
    for pid, cpus in pins.items():
        with contextlib.suppress(OSError):
            for task in Path(f"/proc/{pid}/task").iterdir():
                with contextlib.suppress(OSError):
                    os.sched_setaffinity(int(task.name), cpus)


async def keep_pinned(pins: dict[int, set[int]]) -> None:
    while True:
        pin(pins)
        await asyncio.sleep(0.5)


@dataclass
class Probe:
    """CPU snapshots of the processes measured."""

    pids: dict[str, int]
    at: float = 0.0
    cpu: dict[str, float] = field(default_factory=dict)
    threads: dict[str, dict[tuple[int, str], float]] = field(default_factory=dict)

    def take(self) -> Probe:
        self.at = time.monotonic()
        self.cpu = {k: cpu_s(pid) for k, pid in self.pids.items()}
        self.threads = {k: threads_cpu(pid) for k, pid in self.pids.items()}
        return self


# -- one room ----------------------------------------------------------------------------------


def bot_server(root: Path, window_s: float, lk: LocalServer) -> Server:
    """bench_service's server, configured to join rooms on `lk`."""
    media = root / "media"
    srv = Server(root, media, window_s)
    settings = yaml.safe_load(srv.config.read_text())
    settings["livekit"] = {"url": lk.url, "api_key": lk.api_key, "api_secret": lk.api_secret}
    srv.config.write_text(yaml.safe_dump(settings))
    return srv


def open_room(srv: Server, room: str) -> str:
    body = {
        "room": room,
        "purpose": "self_coaching",
        "jurisdiction": "DE",
        "setting": "consumer",
        "reporting": "participant",
    }
    r = srv.http.post("/v1/sessions", json=body)
    r.raise_for_status()
    return str(r.json()["id"])


async def play(
    srv: Server,
    lk: LocalServer,
    sid: str,
    room: str,
    people: list[str],
    rec: Path | PreEncoded,
    duration: float,
    pins: dict[int, set[int]],
    log_dir: Path,
    turn_s: float = 0.0,
) -> dict[str, Any]:
    """Publish into the room until the interval is over; the snapshots taken on the way.

    `rec`: a recording for Python publishers in this process, or pre-encoded media for the Go
    load publisher (one process for all of `people`)."""
    assert srv.proc is not None and lk.pid is not None
    pids = {"bot": srv.proc.pid, "sfu": lk.pid, "pub": os.getpid()}
    out: dict[str, Any] = {}
    async with contextlib.AsyncExitStack() as stack:
        if pins:
            pinning = asyncio.create_task(keep_pinned(pins))
            stack.callback(pinning.cancel)
        if isinstance(rec, PreEncoded):
            await go_publishers(stack, lk, room, people, rec, pins, pids, out, log_dir, turn_s)
            await _ramp_and_measure(srv, sid, people, duration, pids, out)
        else:
            await python_publishers(stack, lk, room, people, rec, duration, srv, sid, pids, out)
    out["left"] = time.time()  # every publisher has left
    if "go" in out:
        stats = out["go"].stats
        if stats is None:
            out["pub_errors"].append("the load publisher printed no stats (died?)")
            out["pub_fps"] = [float("nan")]
        else:
            sec = max(stats["seconds"], 1e-9)
            out["pub_fps"] = [stats["video_frames"].get(who, 0) / sec for who in people]
    return out


async def go_publishers(
    stack: contextlib.AsyncExitStack,
    lk: LocalServer,
    room: str,
    people: list[str],
    media: PreEncoded,
    pins: dict[int, set[int]],
    pids: dict[str, int],
    out: dict[str, Any],
    log_dir: Path,
    turn_s: float,
) -> None:
    """Starts the Go load publisher with identities p00, p01, ... (the consents' user ids)."""
    pub = LoadPublisher(
        lk, room, len(people), media, prefix="p", turn_s=turn_s, log_path=log_dir / "loadpub.log"
    )
    assert pub.identities == people
    t_join = time.monotonic()
    await asyncio.to_thread(pub.start, RAMP_TIMEOUT_S)
    stack.callback(pub.stop)
    out["join_s"] = time.monotonic() - t_join
    out["go"] = pub
    out["pub_errors"] = []
    assert pub.pid is not None
    pids["pub"] = pub.pid
    if pins:  # the publishers' CPUs, as for this process
        pins[pub.pid] = pins[os.getpid()]
        stack.callback(pins.pop, pub.pid, None)
        pin(pins)


async def _ramp_and_measure(
    srv: Server,
    sid: str,
    people: list[str],
    duration: float,
    pids: dict[str, int],
    out: dict[str, Any],
) -> None:
    """Waits until the bot has subscribed to every track, then takes the interval's snapshots."""
    t_joined = time.monotonic()
    want = {f"{who}/{kind}" for who in people for kind in ("video", "audio")}
    deadline = time.monotonic() + RAMP_TIMEOUT_S
    while True:
        s = await asyncio.to_thread(srv.get, sid)
        got = set(s["counts"].get("livekit", {}).get("subscribed", []))
        if (s["status"] == "running" and want <= got) or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.2)
    out["subscribe_s"] = time.monotonic() - t_joined
    out["subscribed_at_start"] = len(want & got)
    out["frames_start"] = s["counts"].get("livekit", {}).get("video_frames", 0)
    out["audio_start"] = s["counts"].get("livekit", {}).get("audio_chunks", 0)
    start = Probe(pids).take()
    out["t0"] = time.time()
    await asyncio.sleep(duration)
    end = Probe(pids).take()
    out["t1"] = time.time()
    out["rss_end"] = rss_mib(pids["bot"])
    out["counts_end"] = (await asyncio.to_thread(srv.get, sid))["counts"]
    out["start"], out["end"] = start, end


async def python_publishers(
    stack: contextlib.AsyncExitStack,
    lk: LocalServer,
    room: str,
    people: list[str],
    rec: Path,
    duration: float,
    srv: Server,
    sid: str,
    pids: dict[str, int],
    out: dict[str, Any],
) -> None:
    """SimulatedParticipants in this process, each with an agent connection for its transcript."""

    async def join(who: str) -> SimulatedParticipant:
        p = SimulatedParticipant(
            lk.url,
            lk.token(who, room=room),
            rec,
            loop=True,
            transcriber_token=lk.token(f"agent-{who}", room=room, agent=True),
        )
        await p.start()
        stack.push_async_callback(p.stop)
        return p

    t_join = time.monotonic()
    async with asyncio.TaskGroup() as tg:
        tasks = [tg.create_task(join(who)) for who in people]
    pubs = [t.result() for t in tasks]
    out["join_s"] = time.monotonic() - t_join
    await _ramp_and_measure(srv, sid, people, duration, pids, out)
    out["pub_fps"] = [sum(out["t0"] <= c < out["t1"] for c in p.captured) / duration for p in pubs]
    out["pub_errors"] = [repr(p.error) for p in pubs if p.error is not None]


def run_room(
    srv: Server,
    lk: LocalServer,
    rec: Recording | PreEncoded,
    n: int,
    duration: float,
    pins: dict[int, set[int]],
    log_dir: Path,
    turn_s: float = 0.0,
) -> dict[str, Any]:
    room = f"bench-{n}-{secrets.token_hex(3)}"
    sid = open_room(srv, room)
    people = [f"p{i:02d}" for i in range(n)]
    for who in people:
        srv.consent(sid, who)
    log: WsLog = ws_collect(srv, sid)
    assert srv.proc is not None
    rss_base = rss_mib(srv.proc.pid)
    source = rec if isinstance(rec, PreEncoded) else rec.path
    got = asyncio.run(play(srv, lk, sid, room, people, source, duration, pins, log_dir, turn_s))
    done = srv.wait_done(sid, 60 + 2 * n)
    ended_s = time.time() - got["left"]
    assert log.thread is not None
    log.thread.join(30)

    events = [m for _, m in log.events]
    started = next((m for m in events if m["type"] == "session.started"), None)
    origin = _ts(started["data"]["media_origin"]) if started else float("nan")
    lat, all_windows = [], 0
    detail: list[tuple[float, float, float]] = []
    for at, m in log.events:
        if m["type"] != "engagement.window":
            continue
        all_windows += 1
        boundary = origin + m["media_time"]["end"]
        if got["t0"] <= boundary <= got["t1"]:
            lat.append(at - boundary)
            detail.append((m["media_time"]["end"], _ts(m["emitted_at"]) - boundary, at - boundary))
    summary = events[-1]["data"] if events and events[-1]["type"] == "session.summary" else None
    problems = []
    if log.error:
        problems.append(f"ws error {log.error}")
    if [m["seq"] for m in events] != list(range(len(events))):
        problems.append("ws seqs not gap-free")
    if summary is None:
        problems.append("no session.summary last")
    if done["status"] != "ended" or done.get("error"):
        problems.append(f"status {done['status']} error {done.get('error')}")
    if got["subscribed_at_start"] < 2 * n:
        problems.append(f"only {got['subscribed_at_start']}/{2 * n} tracks subscribed at start")
    problems += [f"publisher: {e}" for e in got["pub_errors"]]

    start, end = got["start"], got["end"]
    wall = end.at - start.at
    lk_end = got["counts_end"].get("livekit", {})
    lk_done = done["counts"].get("livekit", lk_end)
    return {
        "n": n,
        "sid": sid,
        "windows": len(lat),
        "all_windows": all_windows,
        "lat": lat,
        "detail": detail,
        "cpu": {k: 100 * (end.cpu[k] - start.cpu[k]) / wall for k in end.cpu},
        "threads": {k: by_name(start.threads[k], end.threads[k]) for k in end.threads},
        "wall": wall,
        "rss_base": rss_base,
        "rss_end": got["rss_end"],
        "frames": lk_done.get("video_frames", 0),
        "frames_rate": (lk_end.get("video_frames", 0) - got["frames_start"]) / (n * duration),
        "audio_rate": (lk_end.get("audio_chunks", 0) - got["audio_start"]) / (n * duration),
        "behind": lk_done.get("video_frames_behind_session", 0),
        "sizes": sorted({tuple(v) for v in lk_done.get("video_size", {}).values()}),
        "dropped": dict(summary.get("dropped", {})) if summary else {},
        "pub_fps": got["pub_fps"],
        "join_s": got["join_s"],
        "subscribe_s": got["subscribe_s"],
        "subscribed": got["subscribed_at_start"],
        "ended_s": ended_s,
        "problems": problems,
    }


# -- main ----------------------------------------------------------------------------------------


def _size(text: str) -> tuple[int, int]:
    w, h = (int(x) for x in text.lower().split("x"))
    return w, h


def pinning(bot_cpus: int, srv: Server, lk: LocalServer) -> dict[int, set[int]]:
    """The bot on the last `bot_cpus` CPUs, this process (the publishers) and livekit-server on the
    others; nothing pinned for 0."""
    cpus = sorted(os.sched_getaffinity(0))
    if not bot_cpus:
        return {}
    if bot_cpus >= len(cpus):
        raise SystemExit(f"--pin {bot_cpus}: only {len(cpus)} CPUs, the publishers need one")
    assert srv.proc is not None and lk.pid is not None
    bot, rest = set(cpus[-bot_cpus:]), set(cpus[:-bot_cpus])
    pins = {srv.proc.pid: bot, lk.pid: rest, os.getpid(): rest}
    pin(pins)
    return pins


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--participants", default="1,4,8,16", help="publishers per room, comma-separated"
    )
    ap.add_argument("--duration", type=float, default=30.0, help="measured interval per room, s")
    ap.add_argument("--window", type=float, default=5.0, help="window.seconds in the config")
    ap.add_argument("--size", type=_size, default=(1280, 720), help="publishers' camera, WxH")
    ap.add_argument("--fps", type=int, default=10, help="publishers' camera frame rate")
    ap.add_argument("--length", type=float, default=12.0, help="the looped recording's length, s")
    ap.add_argument("--no-speech", action="store_true", help="silent publishers (no transcript)")
    ap.add_argument(
        "--talk",
        choices=("turns", "all"),
        default="turns",
        help="go publishers: speak in turn, one at a time, silent otherwise (a meeting), or all "
        "at once, each the whole recording (the worst case for the voice heads)",
    )
    ap.add_argument("--turn", type=float, default=4.0, help="seconds each speaker talks (turns)")
    ap.add_argument(
        "--pin",
        type=int,
        default=0,
        metavar="K",
        help="give the bot K CPUs of its own (the publishers and livekit-server the rest)",
    )
    ap.add_argument(
        "--publisher",
        choices=("go", "python"),
        default=None,
        help="go: pre-encoded media from build/loadpub (the default when it exists); python: "
        "encoding live in this process",
    )
    ap.add_argument("--keep", action="store_true", help="keep the temp folder (logs)")
    ap.add_argument("--detail", action="store_true", help="print every window's latency")
    args = ap.parse_args()
    if args.publisher is None:
        try:
            find_load_publisher()
            args.publisher = "go"
        except LoadPublisherError as e:
            console.print(f"[yellow]{e}: publishing from Python[/yellow]")
            args.publisher = "python"
    rounds = [int(x) for x in args.participants.split(",") if x.strip()]
    script = [(t, line) for t, line in DEFAULT_SCRIPT if t + 4.0 < args.length]

    t_begin = time.perf_counter()
    results: list[dict[str, Any]] = []
    interrupted = False
    log_text, stop = "", (None, 0.0)
    d = Path(tempfile.mkdtemp(prefix="rapport-bench-lk-"))
    try:
        w, h = args.size
        rec: Recording | PreEncoded
        if args.publisher == "go":
            console.print(f"pre-encoded {args.length:g} s {w}x{h} {args.fps} fps media...")
            rec = preencoded_media(
                size=args.size,
                fps=args.fps,
                duration_s=args.length,
                speech=[] if args.no_speech else script,
            )
        else:
            console.print(f"generating a {args.length:g} s {w}x{h} {args.fps} fps recording...")
            rec = make_recording(
                d / "media" / "call.mp4",
                duration_s=args.length,
                size=args.size,
                fps=args.fps,
                speech=[] if args.no_speech else script,
                transcript=None if args.no_speech else d / "media" / "call.vtt",
            )
        lk = LocalServer(log_path=d / "livekit.log", departure_timeout_s=1)
        srv = bot_server(d, args.window, lk)
        try:
            srv.start()
            lk.webhook_url = f"{srv.url}/v1/livekit/webhook"
            lk.start()
            pins = pinning(args.pin, srv, lk)
            for n in rounds:
                console.print(f"{n} participant(s), {args.duration:g} s...")
                turn = args.turn if args.talk == "turns" else 0.0
                results.append(run_room(srv, lk, rec, n, args.duration, pins, d, turn))
        finally:
            lk.stop()
            stop = srv.stop()
            log_text = srv.log_path.read_text(errors="replace")
    except KeyboardInterrupt:
        interrupted = True
        console.print("[yellow]interrupted: cleaned up[/yellow]")
    finally:
        if args.keep:
            console.print(f"kept {d} (serve.log, livekit.log)")
        else:
            shutil.rmtree(d, ignore_errors=True)

    print_results(args, results)
    errors = [line for line in log_text.splitlines() if " ERROR " in line or "Traceback" in line]
    console.print(
        f"server: SIGINT -> exit {stop[0]} in {stop[1]:.1f} s; {len(errors)} error line(s) in "
        f"its log; total {time.perf_counter() - t_begin:.0f} s"
    )
    # The same message (timestamp left out) once, with how often it came.
    for message, count in Counter(line.split(" ", 2)[-1] for line in errors).most_common(8):
        console.print(f"  [red]{count}x {message[:300]}[/red]")
    if interrupted:
        return 130
    # The SDK logs errors of its own when a room closes under it; those do not fail the run.
    ours = [line for line in errors if " ERROR livekit " not in line]
    return 0 if all(not r["problems"] for r in results) and not ours else 1


def print_results(args: argparse.Namespace, results: list[dict[str, Any]]) -> None:
    w, h = args.size
    talk = (
        ""
        if args.no_speech or args.publisher != "go"
        else "speaking all at once, "
        if args.talk == "all"
        else f"speaking in turn ({args.turn:g} s each), "
    )
    table = Table(
        title=f"rapport serve + LiveKit bot: {args.duration:g} s per room, {args.window:g} s "
        f"windows, {args.publisher} publishers {w}x{h} at {args.fps} fps (simulcast), {talk}"
        f"{os.cpu_count()} CPUs" + (f", the bot pinned to {args.pin} of them" if args.pin else ""),
        caption="beyond boundary: WS arrival - (media_origin + media_time.end); "
        "CPU: 100 % = one core; pub = the publishers' process (go) or this one (python)",
    )
    cols = (
        "N",
        "windows",
        "beyond boundary ms p50/p95/max",
        "bot CPU %/N (all)",
        "bot RSS MiB (+/N)",
        "frames (/s/N)",
        "behind/engine/late",
        "pub fps",
        "pub CPU %/N (all)",
        "SFU CPU %",
        "ended",
    )
    for col in cols:
        table.add_column(col, justify="left" if col == "ended" else "right")
    for r in results:
        lat = r["lat"]
        lat_s = (
            f"{1000 * _pct(lat, 0.5):.0f} / {1000 * _pct(lat, 0.95):.0f} / {1000 * max(lat):.0f}"
            if lat
            else "-"
        )
        d = r["dropped"]
        table.add_row(
            str(r["n"]),
            f"{r['windows']} ({r['all_windows']})",
            lat_s,
            f"{r['cpu']['bot'] / r['n']:.0f} ({r['cpu']['bot']:.0f})",
            f"{r['rss_end']:.0f} (+{(r['rss_end'] - r['rss_base']) / r['n']:.1f})",
            f"{r['frames']} ({r['frames_rate']:.1f})",
            f"{r['behind']}/{d.get('faces_dropped_by_engine', 0)}/{d.get('late_items', 0)}",
            f"{sum(r['pub_fps']) / len(r['pub_fps']):.1f}",
            f"{r['cpu']['pub'] / r['n']:.1f} ({r['cpu']['pub']:.0f})",
            f"{r['cpu']['sfu']:.0f}",
            "yes" if not r["problems"] else f"NO ({len(r['problems'])})",
        )
    console.print(table)
    console.print(
        "  windows: in the measured interval (all the session emitted); frames: taken by the bot "
        "over the session (per participant per second of the interval)"
    )
    for r in results:
        tops = []
        for proc in ("bot", "pub"):
            spent = r["threads"][proc]
            top = ", ".join(
                f"{name} {100 * s / r['wall']:.0f}" for name, s in spent.most_common(4) if s > 0
            )
            tops.append(f"{proc}: {top}")
        console.print(
            f"  N={r['n']}: joined in {r['join_s']:.1f} s, all subscribed "
            f"{r['subscribe_s']:.1f} s later, ended {r['ended_s']:.1f} s after leaving, "
            f"LOW layer {r['sizes']}, pub fps min {min(r['pub_fps']):.1f}, audio chunks "
            f"{r['audio_rate']:.2f}/s/N, subscribed at start {r['subscribed']}/{2 * r['n']}; "
            f"CPU % by thread name: {' | '.join(tops)}"
        )
        if args.detail:
            console.print(
                "    windows (media end s: emitted, arrived ms beyond boundary): "
                + ", ".join(f"{e:g}: {1000 * x:.0f}, {1000 * y:.0f}" for e, x, y in r["detail"])
            )
        for p in r["problems"][:5]:
            console.print(f"  [red]N={r['n']}: {p}[/red]")


if __name__ == "__main__":
    sys.exit(main())
