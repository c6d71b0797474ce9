"""Sessions running in this process: each has a consent gate (fed by the consent routes) and a
worker thread that drives the spine's Session: fed from a recording, or (a room session) by the
LiveKit bot through a LiveSession. Events go through a Recorder on the event loop; the worker blocks
until each is stored, so nothing is emitted that is not durable."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import Awaitable, Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from rapport.analytics.payloads import Reporting
from rapport.analyze import Plan, feed, open_session
from rapport.config import Settings
from rapport.consent.gate import ConsentGate, Grant
from rapport.errors import RapportError
from rapport.events.bus import EventBus
from rapport.events.schema import ConsentRevokedData, Event, EventType
from rapport.live import LiveSession
from rapport.pack import OfflinePack
from rapport.sampling import AdaptiveSampler
from rapport.service.recorder import Recorder
from rapport.session import Session
from rapport.store.tables import Consent
from rapport.taps.livekit import RoomTap

log = logging.getLogger(__name__)

EMIT_TIMEOUT_S = 30.0
"""A worker waits this long for its event to be stored before failing the session."""

ERASE_TIMEOUT_S = 5.0
"""An erasure waits this long for the running session to apply it (a live one ticks 4 times a s)."""

Finished = Callable[[str, str, str | None, dict[str, object]], Awaitable[None]]
"""(session id, final status, error, counts): awaited on the event loop when a run ends."""


@dataclass(slots=True, frozen=True)
class Resume:
    """Where a live session another worker held goes on: its next `seq`, its media time now, and
    the end of the last window it emitted (session.resumed states the gap)."""

    first_seq: int
    media_time: float
    gap_start: float
    reason: str
    """worker_lost | worker_drained"""


@dataclass(slots=True)
class Run:
    session_id: str
    gate: ConsentGate
    bus: EventBus | None = None
    session: Session | None = None
    thread: threading.Thread | None = None
    stop: threading.Event = field(default_factory=threading.Event)
    done: asyncio.Event = field(default_factory=asyncio.Event)
    tap: RoomTap | None = None
    live: LiveSession | None = None
    task: asyncio.Task[None] | None = None
    suspending: bool = False
    epoch: int | None = None
    """A worker's claim on the session: its events are stored only while it holds."""
    held_window: Event | None = None
    """An engagement.window waiting for its turns.window, to be stored with it."""
    """Handing over (a worker drains): the open windows go out, no summary; ends "suspended"."""

    def counts(self) -> dict[str, object]:
        """The gate's counters, and the bot's (subscriptions, frames, layer sizes) in a room."""
        counts = self.gate.counts()
        if self.tap is not None:
            counts["livekit"] = {
                **self.tap.stats.counts(),
                "video_frames_behind_session": self.live.dropped_video if self.live else 0,
                "audio_chunks_behind_session": self.live.dropped_audio if self.live else 0,
            }
        return counts


class Runs:
    def __init__(
        self, settings: Settings, pack: OfflinePack, recorder: Recorder, finished: Finished
    ) -> None:
        self._settings = settings
        self._pack = pack
        self._recorder = recorder
        self._finished = finished
        self._runs: dict[str, Run] = {}
        self._loop = asyncio.get_running_loop()

    def get(self, session_id: str) -> Run | None:
        return self._runs.get(session_id)

    def open(self, session_id: str, grants: list[Grant]) -> Run:
        """The live state of a session (created at POST, before any media arrives)."""
        run = self._runs.get(session_id)
        if run is None:
            run = self._runs[session_id] = Run(session_id, ConsentGate())
            for g in grants:
                run.gate.grant(g)
        return run

    def grant(self, session_id: str, grant: Grant) -> None:
        run = self._runs.get(session_id)
        if run is not None:
            run.gate.grant(grant)

    async def revoke(self, session_id: str, user_id: str, consent_id: str, at: datetime) -> None:
        """Stop admitting the person now; the session purges their state on its next item (or
        here, when it is idle) and a consent.revoked event goes out."""
        run = self._runs.get(session_id)
        if run is None or not run.gate.revoke(user_id, consent_id):
            return
        if run.bus is not None and run.session is not None:
            bus, session = run.bus, run.session
            data = ConsentRevokedData(consent_id=consent_id, revoked_at=at, purged=True)
            t = session.media_time
            # Emitting blocks on the event loop storing the event: do it off the loop.
            await asyncio.to_thread(bus.emit, EventType.CONSENT_REVOKED, t, t, data)

    async def erase(self, sid: str, user_id: str) -> None:
        """Erasure: stop admitting the person, and return once the running session has purged
        them and withdrawn what they contributed to (its next item or clock tick applies it), so
        nothing computed with them is stored after the caller deletes what was."""
        run = self._runs.get(sid)
        if run is None:
            return
        run.gate.erase(user_id)
        if run.tap is not None:
            run.tap.forget(user_id)
        if run.live is not None:
            run.live.forget(user_id)
        if run.session is None:
            return  # not started: it will find nothing of them
        deadline = asyncio.get_running_loop().time() + ERASE_TIMEOUT_S
        while run.gate.purges_pending and not run.done.is_set():
            if asyncio.get_running_loop().time() > deadline:
                log.warning("erasure not applied by the session yet", extra={"session_id": sid})
                return
            await asyncio.sleep(0.02)

    def start_recording(
        self,
        run: Run,
        recording: Path,
        plan: Plan,
        *,
        reporting: Reporting,
        speed: float,
    ) -> None:
        models = self._pack.model_names(plan.modalities, transcribed=plan.transcribe)
        run.bus = EventBus(run.session_id, models, [self._store])
        run.thread = threading.Thread(
            target=self._work,
            args=(run, recording, plan, reporting, speed),
            name=f"session-{run.session_id}",
            daemon=True,
        )
        run.thread.start()

    async def stop(self, session_id: str) -> None:
        """End a running session early: it emits its summary, then ends."""
        run = self._runs.get(session_id)
        if run is None:
            return
        run.stop.set()
        if run.tap is not None:
            run.tap.stop()
        if run.thread is not None or run.task is not None:
            await run.done.wait()
        self._runs.pop(session_id, None)

    async def suspend(self, session_id: str) -> None:
        """Hand a room session over: the bot leaves, its open windows go out, no summary; the
        run ends with status "suspended" for another worker to resume."""
        run = self._runs.get(session_id)
        if run is None or run.task is None:
            return
        if run.stop.is_set():  # an end asked for first wins: it goes on to its summary
            await run.done.wait()
            return
        run.suspending = True
        run.stop.set()
        if run.tap is not None:
            run.tap.stop()
        await run.done.wait()

    async def shutdown(self) -> None:
        for run in list(self._runs.values()):
            run.stop.set()
            if run.tap is not None:
                run.tap.stop()
        for run in list(self._runs.values()):
            if run.thread is not None:
                await asyncio.to_thread(run.thread.join, EMIT_TIMEOUT_S)
            if run.task is not None:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(run.done.wait(), EMIT_TIMEOUT_S)

    def start_room(
        self,
        run: Run,
        *,
        url: str,
        token: Callable[[], str],
        reporting: Reporting,
        resume: Resume | None = None,
    ) -> None:
        """The bot joins the room and taps it until the room ends or the session is stopped;
        `resume`: a session another worker held goes on from where it was."""
        modalities = ["face", "voice", "text"]
        models = self._pack.model_names(modalities, transcribed=False)
        first_seq = resume.first_seq if resume is not None else 0
        bus = run.bus = EventBus(run.session_id, models, [self._store], first_seq)

        def open_live() -> Session:
            session = Session(
                settings=self._settings,
                pack=self._pack,
                bus=bus,
                owner=None,
                reporting=reporting,
                gate=run.gate,
                live=True,
            )
            assert run.tap is not None
            if resume is None:
                session.start(
                    source="livekit", modalities=modalities, media_origin=run.tap.media_origin
                )
            else:
                session.resume(at=run.tap.now(), gap_start=resume.gap_start, reason=resume.reason)
            run.session = session
            return session

        sampler = AdaptiveSampler.from_settings(self._settings)
        live = run.live = LiveSession(
            open_live,
            max_backlog=self._settings.livekit.max_backlog,
            max_audio_backlog_s=self._settings.livekit.max_audio_backlog_s,
            name=f"session-{run.session_id}",
            sampler=sampler,
        )
        run.tap = RoomTap(
            url=url,
            token=token,
            gate=run.gate,
            put=live.put,
            settings=self._settings,
            media_start=resume.media_time if resume is not None else 0.0,
            sample_fps=sampler.rate,
        )
        live.start()
        run.task = asyncio.create_task(self._tap_room(run))

    async def _tap_room(self, run: Run) -> None:
        assert run.tap is not None and run.live is not None
        tap, live = run.tap, run.live
        tapping = asyncio.create_task(tap.run())
        session_over = asyncio.create_task(asyncio.to_thread(live.done.wait))
        await asyncio.wait({tapping, session_over}, return_when=asyncio.FIRST_COMPLETED)
        tap.stop()  # when the session failed first, the bot leaves; else a no-op
        try:
            why = await tapping
        except Exception as e:
            log.exception("the bot failed", extra={"session_id": run.session_id})
            why = f"bot error: {type(e).__name__}"
        live.finish(tap.now(), suspend=run.suspending)
        await session_over
        status, error = "ended", None
        if run.suspending and live.error is None:
            status = "suspended"
        elif live.error is not None:
            status = "failed"
            error = str(live.error) if isinstance(live.error, RapportError) else "internal error"
            log.error("session failed", exc_info=live.error, extra={"session_id": run.session_id})
        elif why not in ("room_ended", "stopped"):
            status, error = (
                "failed",
                ("the LiveKit server stayed unreachable" if why == "lost" else why),
            )
        try:
            await self._finished(run.session_id, status, error, run.counts())
        finally:
            self._runs.pop(run.session_id, None)
            run.done.set()

    # -- worker thread -----------------------------------------------------------------------------

    def _store(self, event: Event) -> None:
        """Blocks until the event is stored. A window's engagement.window waits for its
        turns.window (emitted right after it, on the same thread): the two are stored in one
        transaction, so a worker lost between them leaves neither, never half a window."""
        run = self._runs.get(event.session_id)
        epoch = run.epoch if run is not None else None
        if event.type == EventType.ENGAGEMENT_WINDOW and run is not None:
            run.held_window = event
            return
        events = [event]
        if event.type == EventType.TURNS_WINDOW and run is not None and run.held_window:
            events, run.held_window = [run.held_window, event], None
        future: Future[None] = asyncio.run_coroutine_threadsafe(
            self._recorder.record_all(events, epoch), self._loop
        )
        future.result(EMIT_TIMEOUT_S)

    def _work(
        self, run: Run, recording: Path, plan: Plan, reporting: Reporting, speed: float
    ) -> None:
        assert run.bus is not None
        status, error = "ended", None
        try:
            # Built here, not on the event loop: a session loads its own VAD model.
            run.session = open_session(
                plan,
                settings=self._settings,
                pack=self._pack,
                bus=run.bus,
                reporting=reporting,
                gate=run.gate,
            )
            run.session.start(source="recording", modalities=plan.modalities)
            reached = feed(run.session, recording, plan, self._settings, stop=run.stop, speed=speed)
            run.session.finish(min(reached, plan.info.duration_s))
        except RapportError as e:
            status, error = "failed", str(e)
        except Exception as e:  # the session fails; the service goes on
            log.exception("session failed", extra={"session_id": run.session_id})
            status, error = "failed", f"internal error: {type(e).__name__}"
        counts = run.gate.counts()

        async def finished() -> None:
            try:
                await self._finished(run.session_id, status, error, counts)
            finally:
                # Ended: a later revocation or consent has no live state to act on.
                self._runs.pop(run.session_id, None)
                run.done.set()

        if not self._loop.is_closed():
            asyncio.run_coroutine_threadsafe(finished(), self._loop)


def grant_of(c: Consent) -> Grant:
    return Grant(c.id, c.user_id, frozenset(c.modalities), c.expires_at.timestamp())


def utc(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, UTC)
