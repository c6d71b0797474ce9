#!/usr/bin/env python3
"""Soak: a two-hour live room session on accelerated synthetic input, to show that its memory
stays flat (invariant R1 in rapport/invariants.py).

    .venv/bin/python scripts/soak_session.py [--minutes 120] [--participants 6] [--seed 7]

What runs: the real offline model pack (`load_pack`, models from ./models), the real `Session`
with a real `ConsentGate` on a virtual clock (the session's media time), live=True, owner=None,
as `Runs.start_room` builds it, fed through a `LiveSession` (its live queue is part of the soak)
the way the LiveKit bot feeds it. Time is media time, not wall time: the feeder runs as fast as
the models go, staying at most LEAD_S of media time ahead of the session so that the live queue
never drops anything (drops are reported and fail the run).

The input is synthetic but real to the models, and deterministic for a seed: a pool of
`--participants` identities, at most MAX_PRESENT in the room at once. Each streams a 320x180
camera (the LOW simulcast layer) at `--fps` with the astronaut face rapport.samples draws (each
with its own phase of motion), and a 16 kHz microphone in 100 ms chunks: low noise and, on their
turn, a sentence synthesised once with flite (three voices), so speakers alternate with pauses.
After half the turns the line's transcript arrives as an utterance ("good" and "bad" lines, in
moods redrawn every 5 minutes). The clock ticks every 0.25 s. For the first CHURN_S of every 10
minutes the room churns: people join and leave, consents are granted (a quarter lapse after a
few minutes), revoked and granted again, cameras go off and on, anyone (consenting or not) sends
a chat line, and at 25 minutes and every 40 minutes after someone present is erased. Then a roll
call brings the room back to the same composition: the first MAX_PRESENT identities present,
consenting, cameras on; the others gone and revoked (their state purged). After three minutes
of conversation, the last QUIET_S seconds silent (no speech, nor the window it holds open, in
flight), the row is taken: rows compare like with like, so churn that leaks shows as growth and
the room's composition at that moment does not. Every consent change waits until the session
has caught up with the feeder, so it lands at the same media time on every run: a seed gives
the same table (bar wall and CPU time) every time. Whenever a stream stops (leave,
revocation, lapse, erasure, camera off) the feeder puts an `EndStream`, as the bot does; a
revocation also emits `consent.revoked`, as the service does. Events go to a JSONL file (as the
service stores them), not to memory; E1-E6 are checked over them at the end.

The table: a row every simulated 10 minutes, taken while the session's worker is idle (all input
so far processed), after a gc.collect():

    min        simulated minute
    wall s     wall seconds since feeding began (models loaded, speech synthesised by then)
    cpu s      process CPU seconds since then (the machine may be shared: this is the cost)
    RSS MiB    the process's resident memory (VmRSS)
    peak MiB   its peak so far (ru_maxrss)
    heap MiB   Python heap, tracemalloc's current size, traced from after the models load
               (numpy buffers included); `--no-tracemalloc` leaves it out and saves about a
               third of the CPU time (10 simulated minutes: 74 s CPU with it, 56 s without)
    gc objs    objects the garbage collector tracks, process-wide
    sess objs  `object_count(session, skip=[pack, bus, gate])`: objects the session reaches
    sess KiB   their shallow size (mostly the 30 s of audio each microphone keeps)
    events     events emitted so far
    present    people in the room / of them with consent in force

Memory grows while the first baselines form (engagement baseline: 60 s; prosody baselines;
every identity seen once) and is flat after. At the end: the ratio of the last row to the
minute-20 row for each memory column, and which session attributes' object counts changed. The
exit status is 1 when the session's objects grew more than 5 % from minute 20 to the end (R1),
when a purged person was still in the session after a revocation or erasure (C2, checked with
`find_person` each time the session has taken the purge), when the live queue dropped an item,
or when an event breaks E1-E6; 130 on Ctrl-C (the session is finished and what was measured is
reported).

Cost, on the 2-CPU development machine: the default run (120 min, pool of 6, 4 present at most,
320x180 at 4 fps, tracemalloc on) took 14 minutes in all (824 s of feeding, 8.7x real time, one
core busy), and 19 minutes while other work loaded the machine (load average 4-8). So the
default input stays as the service's (video.sample_fps 4); `--fps 2` halves the face work (about
half of the total) and `--no-tracemalloc` saves about a third.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import math
import random
import resource
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TextIO

import numpy as np
from numpy.typing import NDArray
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from rapport.config import Settings, VideoSettings
from rapport.consent.gate import ConsentGate, Grant
from rapport.events.bus import EventBus
from rapport.events.schema import ConsentRevokedData, Event, EventType
from rapport.frames import SAMPLE_RATE, AudioChunk, Utterance, VideoFrame
from rapport.invariants import InvariantError, check_events, find_person, object_count
from rapport.live import EndStream, LiveItem, LiveSession, Tick
from rapport.pack import OfflinePack, load_pack
from rapport.samples import AUDIO_RATE, FaceLayout, resample, speak
from rapport.session import Session

ROOT = Path(__file__).resolve().parents[1]

SIZE = (320, 180)
"""(width, height) of every camera: the LOW simulcast layer of a 640x360 camera."""
CHUNK_MS = 100
"""Audio chunk length, as the bot hands it over (livekit.audio_chunk_ms)."""
TICK_MS = 250
"""Clock tick period (livekit.tick_s)."""
ROW_S = 600.0
"""A table row every this many simulated seconds."""
QUIET_S = 6
"""Nobody speaks in the last seconds before a row, so no speech (and no window it holds open)
is in flight when the row is taken: transient state would blur the comparison."""
LEAD_S = 1.0
"""The feeder stays at most this far (media time) ahead of the session: no queue drops."""
MAX_PRESENT = 4
"""People in the room at once, at most."""
MIN_PRESENT = 2
"""People in the room at once, at least (nobody leaves below this)."""
EVENT_MEAN_S = 75.0
"""Mean media time between room events (join, leave, revoke, grant, camera off/on, chat)."""
ERASE_FIRST_S, ERASE_EVERY_S = 25 * 60.0, 40 * 60.0
"""The first erasure, then one every so often."""
CHURN_S = 420.0
"""In each row's 10 minutes, the room churns (joins, leaves, consents, cameras, chat, erasure)
for this long; then a roll call brings it back to the same room (the core present and
consenting, the others gone and purged) and it only talks until the row."""
LONG_CONSENT_S = 36_000.0
MOOD_S = 300.0
"""Every this many seconds the room's mood (share of bad lines) is drawn again."""
NOISE_RMS = 0.002
VOICES = ("flite:slt", "flite:awb", "flite:rms")
GOOD_LINES = (
    "Good morning everyone, thank you for joining.",
    "I am excited to share our wonderful progress.",
    "But we fixed it, and the results are great.",
    "Thank you, I am happy to take your questions.",
    "That is a lovely idea, I really like it.",
)
BAD_LINES = (
    "Sadly, the launch failed and we lost our biggest customer.",
    "It was a terrible, painful week for the whole team.",
    "I am worried and frustrated about these awful delays.",
)
ORIGIN = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
"""Wall-clock time the virtual media time 0 stands for (consent.revoked's revoked_at)."""

PutFn = Callable[[LiveItem], None]
RevokedFn = Callable[[str, float], None]
Clips = dict[tuple[int, str], NDArray[np.float32]]


# -- input ----------------------------------------------------------------------------------------


class MediaClock:
    """The gate's clock: how far the session's media has arrived (`Session.media_time`), so
    what the gate decides depends on the items alone, not on how far ahead the feeder runs."""

    def __init__(self) -> None:
        self.session: Session | None = None

    def __call__(self) -> float:
        return 0.0 if self.session is None else self.session.media_time


@dataclass(slots=True)
class Person:
    user_id: str
    voice: int
    phase: float
    """Media seconds added to the face's motion, so no two people move alike."""
    present: bool = False
    camera: bool = True
    consent: str | None = None
    """The consent in force (or expired) as far as the room knows; None after revoke/erase."""
    expires_at: float = 0.0
    grants: int = 0
    video_on: bool = False
    audio_from_ms: int | None = None
    """When their microphone stream (re)started; None while not streaming."""


@dataclass(slots=True)
class Turn:
    speaker: str
    text: str
    start: int
    """First sample (16 kHz, from media time 0)."""
    clip: NDArray[np.float32]

    @property
    def end(self) -> int:
        return self.start + len(self.clip)


@dataclass(slots=True)
class Stats:
    joins: int = 0
    leaves: int = 0
    grants: int = 0
    revocations: int = 0
    erasures: int = 0
    camera_toggles: int = 0
    chats: int = 0
    utterances: int = 0
    turns: int = 0
    purge_checks: int = 0
    c2_paths: list[str] = field(default_factory=list)


def synthesise() -> Clips:
    """Every line in every voice, once, at 16 kHz (clips shared by all turns)."""
    clips: Clips = {}
    for v, voice in enumerate(VOICES):
        for text in GOOD_LINES + BAD_LINES:
            clip48, _ = speak(voice, text)
            clip = resample(np.ascontiguousarray(clip48), AUDIO_RATE, SAMPLE_RATE)
            clip = (0.6 * clip / max(1e-6, float(np.abs(clip).max()))).astype(np.float32)
            clip.flags.writeable = False
            clips[(v, text)] = clip
    return clips


class Room:
    """The simulated room: who is here, their consents, the conversation; turns it into the
    items a LiveKit bot would put, step by step. Deterministic for a seed (it never looks at
    the session)."""

    def __init__(
        self,
        *,
        pool: int,
        seed: int,
        fps: float,
        gate: ConsentGate,
        put: PutFn,
        revoked: RevokedFn,
        clips: Clips,
    ) -> None:
        self.rng = random.Random(seed)  # the room's events
        self.talk = random.Random(seed + 1)  # the conversation
        self.gate, self.put, self.revoked = gate, put, revoked
        self.sync: Callable[[], None] = lambda: None
        """Called before every consent change: returns once the session has processed all
        that was put, so a change takes effect at the same media time on every run."""
        self.t = 0.0
        self.clips = clips
        self.frame_ms = round(1000 / fps)
        self.layout = FaceLayout(*SIZE, 1)
        nrng = np.random.default_rng(seed)
        self.noise = (nrng.normal(0.0, NOISE_RMS, 8 * SAMPLE_RATE)).astype(np.float32)
        self.people = {
            f"user-{k:02d}": Person(f"user-{k:02d}", k % len(VOICES), 37.0 * k) for k in range(pool)
        }
        self.stats = Stats()
        self.turn: Turn | None = None
        self.next_turn = round(1.0 * SAMPLE_RATE)
        self.last_speaker: str | None = None
        self.bad_share = 0.2
        self.next_mood = MOOD_S
        self.next_event = EVENT_MEAN_S
        self.next_erase = ERASE_FIRST_S
        self.next_roll_call = CHURN_S
        self.pending_checks: list[str] = []
        """People revoked or erased whose absence from the session is checked once purged."""
        people = list(self.people.values())
        self.core = people[: min(MAX_PRESENT, pool)]
        self.extras = people[len(self.core) :]
        for p in self.core:
            self._grant(p, 0.0, LONG_CONSENT_S)
            self._join(p)

    # -- the room's events --------------------------------------------------------------------

    def present(self) -> list[Person]:
        return [p for p in self.people.values() if p.present]

    def admitted(self) -> int:
        return sum(self.consents(p) for p in self.present())

    def consents(self, p: Person) -> bool:
        """Whether `p` has a consent in force now, as the room knows it (the bot asks the gate
        on a wall clock; the feeder keeps its own book, so that it never races the session)."""
        return p.consent is not None and self.t < p.expires_at

    def _grant(self, p: Person, t: float, life: float | None = None) -> None:
        self.sync()
        p.grants += 1
        p.consent = f"con_{p.user_id}_{p.grants}"
        if life is None:  # most consents outlast the session; some lapse (the bot sees them go)
            short = self.rng.random() < 0.25
            life = self.rng.uniform(120.0, 400.0) if short else LONG_CONSENT_S
        p.expires_at = t + life
        grant = Grant(p.consent, p.user_id, frozenset({"face", "voice", "text"}), p.expires_at)
        self.gate.grant(grant)
        self.stats.grants += 1

    def _join(self, p: Person) -> None:
        p.present, p.camera = True, True
        self.stats.joins += 1

    def _leave(self, p: Person) -> None:
        p.present = False
        self.stats.leaves += 1

    def _events(self, t: float) -> None:
        if t >= self.next_mood:
            self.next_mood += MOOD_S
            self.bad_share = self.rng.choice((0.1, 0.2, 0.6, 0.8))
        if t >= self.next_roll_call:
            self.next_roll_call += ROW_S
            self._roll_call(t)
        if not 0.0 < t % ROW_S < CHURN_S:
            return  # the room settles until the row (taken after this step)
        if t >= self.next_erase:
            self.next_erase += ERASE_EVERY_S
            here = [p for p in self.present() if p.consent is not None]
            if here:
                self._erase(self.rng.choice(here))
        if t < self.next_event:
            return
        self.next_event = t + max(10.0, self.rng.expovariate(1.0 / EVENT_MEAN_S))
        here, away = self.present(), [p for p in self.people.values() if not p.present]
        actions = ["chat", "chat", "camera"]
        if len(here) < MAX_PRESENT and away:
            actions += ["join"] * 3
        if len(here) > MIN_PRESENT:
            actions += ["leave"] * 3
        if any(p.consent is not None for p in here):
            actions += ["revoke"] * 2
        if any(not self.consents(p) for p in here):
            actions += ["grant"] * 3
        action = self.rng.choice(actions)
        if action == "join":
            p = self.rng.choice(away)
            if (
                not self.consents(p) and self.rng.random() < 0.8
            ):  # some join without (valid) consent
                self._grant(p, t)
            self._join(p)
        elif action == "leave":
            self._leave(self.rng.choice(here))
        elif action == "revoke":
            self._revoke(self.rng.choice([p for p in here if p.consent is not None]), t)
        elif action == "grant":
            self._grant(self.rng.choice([p for p in here if not self.consents(p)]), t)
        elif action == "camera":
            p = self.rng.choice(here)
            p.camera = not p.camera
            self.stats.camera_toggles += 1
        else:  # chat: anyone present, consent or not (the gate decides)
            p = self.rng.choice(here)
            line = self.rng.choice(BAD_LINES if self.rng.random() < self.bad_share else GOOD_LINES)
            self.put(Utterance(p.user_id, t, t, line))
            self.stats.chats += 1

    def _roll_call(self, t: float) -> None:
        """Back to the rows' room: the core present, consenting, cameras on; the others gone
        and revoked (purged), whatever the churn left. Rows then compare like with like."""
        for p in self.extras:
            if p.present:
                self._leave(p)
            if p.consent is not None:
                self._revoke(p, t)
        for p in self.core:
            if not p.present:
                self._join(p)
            p.camera = True
            if not self.consents(p) or p.expires_at < t + 2 * ROW_S:
                self._grant(p, t, LONG_CONSENT_S)

    def _revoke(self, p: Person, t: float) -> None:
        self.sync()
        consent, p.consent = p.consent, None
        if consent is not None and self.gate.revoke(p.user_id, consent):
            self.stats.revocations += 1
            self.revoked(consent, t)
            self.pending_checks.append(p.user_id)

    def _erase(self, p: Person) -> None:
        self.sync()
        p.consent = None
        self.gate.erase(p.user_id)
        self.stats.erasures += 1
        self.pending_checks.append(p.user_id)

    # -- media ----------------------------------------------------------------------------------

    def step(self, ms: int) -> None:
        """Everything the bot would put at media time `ms` (milliseconds)."""
        t = ms / 1000
        self.t = t
        self._events(t)
        for p in self.people.values():  # streams that stop now: the bot ends them
            audio = p.present and self.consents(p)
            video = audio and p.camera
            if p.video_on and not video:
                self.put(EndStream("video", p.user_id))
            if p.audio_from_ms is not None and not audio:
                self.put(EndStream("audio", p.user_id))
                p.audio_from_ms = None
            p.video_on = video
            if audio and p.audio_from_ms is None:
                p.audio_from_ms = ms
        if ms % CHUNK_MS == 0 and ms > 0:
            self._audio(ms)
        if ms % self.frame_ms == 0:
            for p in self.people.values():
                if p.video_on:
                    rgb, _ = self.layout.render(t + p.phase, False)
                    self.put(VideoFrame(p.user_id, t, rgb))
        if ms % TICK_MS == 0:
            self.put(Tick(t))

    def _audio(self, ms: int) -> None:
        """The 100 ms chunk ending at `ms` of every microphone streaming since it began."""
        hi = ms * SAMPLE_RATE // 1000
        lo = hi - CHUNK_MS * SAMPLE_RATE // 1000
        self._converse(lo, hi)
        for k, p in enumerate(self.people.values()):
            if p.audio_from_ms is None or p.audio_from_ms > ms - CHUNK_MS:
                continue
            start = (lo + 12_345 * k) % (len(self.noise) - (hi - lo))
            samples = self.noise[start : start + hi - lo].copy()
            turn = self.turn
            if turn is not None and turn.speaker == p.user_id and turn.start < hi and turn.end > lo:
                a, b = max(lo, turn.start), min(hi, turn.end)
                samples[a - lo : b - lo] += turn.clip[a - turn.start : b - turn.start]
            self.put(AudioChunk(p.user_id, lo / SAMPLE_RATE, samples))

    def _converse(self, lo: int, hi: int) -> None:
        """End the turn that ended before `hi` (its transcript may arrive), start the next."""
        turn = self.turn
        if turn is not None and turn.end <= lo:
            self.turn = None
            speaker = self.people[turn.speaker]
            if speaker.present and self.talk.random() < 0.5:  # stamped on arrival, as the bot does
                t = hi / SAMPLE_RATE
                self.put(Utterance(turn.speaker, t, t, turn.text))
                self.stats.utterances += 1
            self.next_turn = turn.end + round(self.talk.uniform(0.3, 2.5) * SAMPLE_RATE)
        if self.turn is not None or self.next_turn >= hi:
            return
        voices = [p for p in self.present() if p.audio_from_ms is not None]
        others = [p for p in voices if p.user_id != self.last_speaker] or voices
        if not others:
            self.next_turn = hi + SAMPLE_RATE
            return
        p = self.talk.choice(others)
        text = self.talk.choice(BAD_LINES if self.talk.random() < self.bad_share else GOOD_LINES)
        start, clip = max(self.next_turn, lo), self.clips[(p.voice, text)]
        row = round(ROW_S * SAMPLE_RATE)
        next_row = (start // row + 1) * row
        if start + len(clip) > next_row - QUIET_S * SAMPLE_RATE:
            self.next_turn = next_row  # quiet before the row: no speech open across it
            return
        self.turn = Turn(p.user_id, text, start, clip)
        self.last_speaker = p.user_id
        self.stats.turns += 1


# -- measuring ------------------------------------------------------------------------------------


@dataclass(slots=True, frozen=True)
class Row:
    minute: float
    wall_s: float
    cpu_s: float
    rss_mib: float
    peak_mib: float
    heap_mib: float | None
    gc_objects: int
    objects: int
    bytes_: int
    parts: dict[str, int]
    """Objects reached from each attribute of the session, and of its attributes' attributes."""
    events: int
    present: int
    admitted: int


MEMORY = (
    ("RSS MiB", "rss_mib"),
    ("peak MiB", "peak_mib"),
    ("heap MiB", "heap_mib"),
    ("gc objs", "gc_objects"),
    ("sess objs", "objects"),
    ("sess KiB", "bytes_"),
)
HEADER = (
    f"{'min':>5} {'wall s':>7} {'cpu s':>7} {'RSS MiB':>8} {'peak MiB':>8} {'heap MiB':>8} "
    f"{'gc objs':>8} "
    f"{'sess objs':>10} {'sess KiB':>9} {'events':>7} {'present':>8}"
)


def rss_mib() -> float:
    with open("/proc/self/status", encoding="ascii") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return math.nan


def format_row(r: Row) -> str:
    heap = "-" if r.heap_mib is None else f"{r.heap_mib:.1f}"
    return (
        f"{r.minute:>5.0f} {r.wall_s:>7.0f} {r.cpu_s:>7.0f} {r.rss_mib:>8.1f} {r.peak_mib:>8.1f} "
        f"{heap:>8} {r.gc_objects / 1000:>7.1f}k {r.objects:>10,} {r.bytes_ / 1024:>9.1f} "
        f"{r.events:>7,} {f'{r.present}/{r.admitted}':>8}"
    )


def breakdown(session: Session, skip: list[object]) -> dict[str, int]:
    """`object_count` under each attribute of the session and of the objects it holds (shared
    objects count under each holder): where growth comes from."""
    skip = [*skip, session]  # nor back into the session (the gate's clock reads it)
    skipped = {id(s) for s in skip}
    parts: dict[str, int] = {}
    for name, value in vars(session).items():
        if id(value) in skipped:
            continue
        parts[name] = object_count(value, skip=skip)[0]
        if hasattr(value, "__dict__") and not isinstance(value, type):
            for inner, v in vars(value).items():
                parts[f"{name}.{inner}"] = object_count(v, skip=skip)[0]
    return parts


# -- the run --------------------------------------------------------------------------------------


def say(console: Console, line: str) -> None:
    """A line of output: above the progress bar on a terminal, else straight to stdout."""
    if console.is_terminal:
        console.print(line, highlight=False, soft_wrap=True)
    else:
        print(line, flush=True)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--minutes", type=float, default=120.0, help="simulated minutes (120)")
    ap.add_argument("--participants", type=int, default=6, help="pool of identities (6)")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--fps", type=float, default=4.0, help="camera frames per media second (4)")
    ap.add_argument("--reporting", choices=("participant", "room"), default="participant")
    ap.add_argument("--no-tracemalloc", action="store_true", help="leave the heap column out")
    ap.add_argument("--events", type=Path, help="keep the events here (JSONL); else a temp file")
    args = ap.parse_args()
    frame_ms = round(1000 / args.fps) if args.fps > 0 else 0
    if args.participants < MIN_PRESENT or args.minutes < 1 or not frame_ms or 1000 % frame_ms:
        ap.error("need --participants >= 2, --minutes >= 1, and --fps dividing 1000 ms evenly")

    console = Console()
    try:
        return run_soak(args, console)
    except KeyboardInterrupt:  # before the feeding began (it handles its own)
        say(console, "interrupted")
        return 130


def run_soak(args: argparse.Namespace, console: Console) -> int:
    wall0 = time.perf_counter()
    settings = Settings(models_dir=ROOT / "models", video=VideoSettings(sample_fps=args.fps))
    pack = load_pack(settings)
    clips = synthesise()
    say(
        console,
        f"soak: {args.minutes:g} simulated min, pool of {args.participants} (<= {MAX_PRESENT} "
        f"present), {SIZE[0]}x{SIZE[1]} at {args.fps:g} fps, seed {args.seed}, reporting "
        f"{args.reporting}; models and speech ready in {time.perf_counter() - wall0:.1f} s",
    )
    with contextlib.ExitStack() as stack:
        path: Path = args.events
        if path is None:
            path = Path(stack.enter_context(tempfile.TemporaryDirectory())) / "events.jsonl"
        with path.open("w", encoding="utf-8") as out:
            job = Soak(args, settings, pack, clips, out, console)
            failures = job.run()
        failures += check_stored(path, job)
    for f in failures:
        say(console, f"FAIL {f}")
    if job.interrupted:
        return 130
    return 1 if failures else 0


class Soak:
    """The session as a room session runs it, the simulated room feeding it, and the rows."""

    def __init__(
        self,
        args: argparse.Namespace,
        settings: Settings,
        pack: OfflinePack,
        clips: Clips,
        out: TextIO,
        console: Console,
    ) -> None:
        self.args, self.settings, self.console, self.out = args, settings, console, out
        self.events = 0
        self.interrupted = False
        self.aborted: str | None = None
        self.rows: list[Row] = []
        modalities = ["face", "voice", "text"]
        self.clock = MediaClock()
        self.gate = gate = ConsentGate(clock=self.clock)
        self.bus = bus = EventBus(
            "ses_soak", pack.model_names(modalities, transcribed=False), [self._store]
        )
        self.pack = pack

        def open_live() -> Session:  # as Runs.start_room
            session = Session(
                settings=settings,
                pack=pack,
                bus=bus,
                owner=None,
                reporting=args.reporting,
                gate=gate,
                live=True,
            )
            session.start(source="livekit", modalities=modalities, media_origin=ORIGIN)
            self.clock.session = session
            return session

        self.live = LiveSession(
            open_live,
            max_backlog=settings.livekit.max_backlog,
            max_audio_backlog_s=settings.livekit.max_audio_backlog_s,
            name="soak-session",
        )
        self.room = Room(
            pool=args.participants,
            seed=args.seed,
            fps=args.fps,
            gate=gate,
            put=self.live.put,
            revoked=self._revoked,
            clips=clips,
        )
        self.traced = not args.no_tracemalloc
        self.feed0 = self.cpu0 = 0.0

    def _store(self, event: Event) -> None:
        """The sink: durable (a file, as the service's recorder stores), not kept in memory."""
        self.out.write(event.to_json() + "\n")
        self.events += 1

    def _revoked(self, consent_id: str, t: float) -> None:  # as Runs.revoke
        data = ConsentRevokedData(
            consent_id=consent_id, revoked_at=ORIGIN + timedelta(seconds=t), purged=True
        )
        self.bus.emit(EventType.CONSENT_REVOKED, t, t, data)

    def run(self) -> list[str]:
        live, room = self.live, self.room
        live.start()
        live.wait_idle(120)  # the session opens (loads its models) on the worker first
        if live.session is None:
            raise RuntimeError(f"the session did not open: {live.error!r}")
        self.session = session = live.session
        room.sync = self._settle
        if self.traced:
            tracemalloc.start()
        total_ms = round(self.args.minutes * 60_000)
        step_ms = math.gcd(CHUNK_MS, TICK_MS, room.frame_ms)
        row_ms = round(ROW_S * 1000)
        progress = Progress(
            TextColumn("simulated"),
            BarColumn(),
            TextColumn("{task.completed:.1f}/{task.total:.0f} min"),
            TimeElapsedColumn(),
            console=self.console,
            transient=True,
            disable=not self.console.is_terminal,
        )
        say(self.console, HEADER)
        self.feed0, self.cpu0 = time.perf_counter(), time.process_time()
        ms = 0
        with progress:
            task = progress.add_task("soak", total=total_ms / 60_000)
            try:
                self._row(0)
                for ms in range(step_ms, total_ms + 1, step_ms):
                    while session.media_time < ms / 1000 - LEAD_S:  # the live queue stays short
                        if live.done.is_set():
                            raise RuntimeError(f"the live session ended: {live.error!r}")
                        time.sleep(0.0005)
                    room.step(ms)
                    if room.pending_checks and ms % TICK_MS == 0:
                        self._check_purged()
                    if ms % row_ms == 0:
                        self._row(ms)
                    if ms % 5_000 == 0:
                        progress.update(task, completed=ms / 60_000)
            except KeyboardInterrupt:
                self.interrupted = True
                say(self.console, f"interrupted at simulated minute {ms / 60_000:.1f}: finishing")
            except RuntimeError as e:  # the session failed or hung: report what there is
                self.aborted = str(e)
        live.finish(ms / 1000)
        live.join(120.0)
        wall, cpu = time.perf_counter() - self.feed0, time.process_time() - self.cpu0
        if self.traced:
            tracemalloc.stop()
        return self._report(ms, wall, cpu)

    def _settle(self, timeout: float = 60.0) -> None:
        """Wait until everything put so far is processed and the worker waits for more (nothing
        is put meanwhile: the feeder is this thread)."""
        if not self.live.wait_idle(timeout):
            raise RuntimeError("the live session did not settle")
        if self.live.error is not None or self.live.done.is_set():
            raise RuntimeError(f"the live session ended: {self.live.error!r}")

    def _row(self, ms: int) -> None:
        self._settle()
        gc.collect()
        skip = [self.pack, self.bus, self.gate]
        objects, size = object_count(self.session, skip=skip)
        row = Row(
            minute=ms / 60_000,
            wall_s=time.perf_counter() - self.feed0,
            cpu_s=time.process_time() - self.cpu0,
            rss_mib=rss_mib(),
            peak_mib=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            heap_mib=tracemalloc.get_traced_memory()[0] / 2**20 if self.traced else None,
            gc_objects=len(gc.get_objects()),
            objects=objects,
            bytes_=size,
            parts=breakdown(self.session, skip),
            events=self.events,
            present=len(self.room.present()),
            admitted=self.room.admitted(),
        )
        self.rows.append(row)
        say(self.console, format_row(row))

    def _check_purged(self) -> None:
        """C2: once the session has taken the purges, nothing of the person is left in it."""
        if self.gate.purges_pending:
            return
        self._settle()
        st = self.room.stats
        for person in self.room.pending_checks:
            st.purge_checks += 1
            if self.room.consents(self.room.people[person]):
                continue  # consented again meanwhile: what it holds of them now is legitimate
            paths = find_person(self.session, person, skip=[self.pack, self.bus, self.gate])
            st.c2_paths += [f"{person} at {self.room.t:.2f} s: {p}" for p in paths[:5]]
        self.room.pending_checks.clear()

    def _report(self, ms: int, wall: float, cpu: float) -> list[str]:
        live, st, say_ = self.live, self.room.stats, self.console
        failures: list[str] = []
        say(
            say_,
            f"\nfed {ms / 60_000:.1f} simulated min in {wall:.0f} s wall, {cpu:.0f} s CPU "
            f"({ms / 1000 / max(wall, 1e-9):.1f}x real time); {self.events:,} events; "
            f"session counts {self.session.counts}",
        )
        say(
            say_,
            f"room: {st.joins} joins, {st.leaves} leaves, {st.grants} grants, "
            f"{st.revocations} revocations, {st.erasures} erasures, {st.camera_toggles} camera "
            f"toggles, {st.turns} turns, {st.utterances} transcripts, {st.chats} chat lines",
        )
        say(say_, f"gate: {self.gate.counts()}")
        say(say_, f"C2 checked {st.purge_checks} times, after each purge")
        if live.dropped_video or live.dropped_audio:
            failures.append(
                f"the live queue dropped {live.dropped_video} frames, "
                f"{live.dropped_audio} audio chunks"
            )
        if self.aborted is not None:
            failures.append(f"stopped at {ms / 60_000:.1f} min: {self.aborted}")
        if live.error is not None:
            failures.append(f"the session failed: {live.error!r}")
        elif live.summary is None:
            failures.append("the session did not finish")
        if st.c2_paths:
            failures.append("C2: purged, yet in the session: " + "; ".join(st.c2_paths[:10]))
        rows = self.rows
        base = next((r for r in rows if r.minute >= 20 - 1e-9), None)
        last = rows[-1]
        if base is None or last.minute <= base.minute:
            say(say_, "R1 not checked: no row after minute 20")
            return failures
        ratios = []
        for name, attr in MEMORY:
            a, b = getattr(base, attr), getattr(last, attr)
            ratios.append(f"{name} {b / a:.3f}" if a else f"{name} -")
        say(say_, f"last / minute {base.minute:.0f}: " + ", ".join(ratios))
        grew = sorted(
            ((last.parts.get(k, 0) - base.parts.get(k, 0), k) for k in base.parts | last.parts),
            reverse=True,
        )
        moved = [f"{k} {d:+,}" for d, k in grew if d] or ["none"]
        say(say_, "session objects by attribute, change since then: " + ", ".join(moved[:12]))
        later = [r for r in rows if r.minute >= base.minute]
        mean_m = sum(r.minute for r in later) / len(later)
        mean_o = sum(r.objects for r in later) / len(later)
        slope = sum((r.minute - mean_m) * (r.objects - mean_o) for r in later) / sum(
            (r.minute - mean_m) ** 2 for r in later
        )
        say(say_, f"session objects trend from minute {base.minute:.0f}: {60 * slope:+.0f} an hour")
        growth = last.objects / base.objects - 1
        say(
            say_,
            f"R1 {'holds' if growth <= 0.05 else 'FAILS'}: session objects {growth:+.1%} from "
            f"minute {base.minute:.0f} to {last.minute:.0f} (limit +5.0%)",
        )
        if growth > 0.05:
            failures.append(f"R1: the session's objects grew {growth:+.1%}")
        return failures


def check_stored(path: Path, soak: Soak) -> list[str]:
    """E1-E6 over every event the session emitted, read back from the file."""
    events = [
        Event.model_validate_json(line) for line in path.read_text(encoding="utf-8").splitlines()
    ]
    try:
        check_events(
            events,
            ended=soak.live.summary is not None,
            min_participants=soak.settings.reporting.min_participants,
            user_ids=list(soak.room.people),
        )
    except InvariantError as e:
        return [f"events: {e}"]
    say(soak.console, f"E1-E6 hold over the {len(events):,} events")
    return []


if __name__ == "__main__":
    sys.exit(main())
