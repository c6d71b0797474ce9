"""Property-based: a real Session, driven by Hypothesis through arbitrary interleavings of joins
and leaves, cameras and microphones on and off, speech starting and ending anywhere, dropped and
irregular frames, consent grants, expiries, revocations and erasures, clock ticks and the end; the
invariants of rapport/invariants.py are checked after every step, against a model of what the gate
must have admitted. The heads are deterministic fakes (tests/fakes/heads.py).

Profiles (tests/conftest.py): `ci` by default; HYPOTHESIS_PROFILE=nightly searches far longer.
"""

from __future__ import annotations

import math
from collections import defaultdict
from typing import Any

from hypothesis import event
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)

from rapport.config import Settings, WindowSettings
from rapport.consent.gate import ConsentGate, Grant
from rapport.events.bus import EventBus
from rapport.events.schema import Event, EventType
from rapport.frames import SAMPLE_RATE, AudioChunk, Utterance, VideoFrame
from rapport.invariants import check_events, find_person, people_in
from rapport.perception.vad import WINDOW_S
from rapport.session import ROOM_STREAM, Session
from tests.fakes.heads import FakePack, audio, frame
from tests.fakes.heads import LiveRoom as FakeRoom

PEOPLE = ("ann", "bob", "cy", "dee")
MODALITIES = ("face", "voice", "text")
FPS = 4.0

people = st.sampled_from(PEOPLE)
Item = VideoFrame | AudioChunk


def _overlaps(
    spans: list[tuple[float, float]], start: float, end: float, last: bool = False
) -> bool:
    """Whether a span, or an instant, lies in [start, end) (in [start, end] for the window the
    session's end closed). A nanosecond of overlap is float error, not data."""
    e = 1e-9
    return any(
        (a < end - e and b > start + e) or (a == b and start <= a and (a < end or last))
        for a, b in spans
    )


class LiveRoom(RuleBasedStateMachine):
    """A LiveKit room session: each person has their own camera and microphone."""

    reporting = "participant"
    min_participants = 3

    def __init__(self) -> None:
        super().__init__()
        self.finished = False

    @initialize(
        window=st.sampled_from([1.0, 2.5, 5.0]),
        transcribe=st.booleans(),
        present=st.sets(people, min_size=1),
        talking=st.sets(people),
        warmup=st.sampled_from([0.0, 1.0, 3.0, 7.0]),
    )
    def open(
        self, window: float, transcribe: bool, present: set[str], talking: set[str], warmup: float
    ) -> None:
        """A room some people are already in, with their consent, after `warmup` seconds of
        media (the rules then change all of it)."""
        self.window = window
        room = FakeRoom(
            window_s=window,
            reporting=self.reporting,
            min_participants=self.min_participants,
            transcribe=transcribe,
        )
        self.settings, self.clock, self.gate = room.settings, room.clock, room.gate
        self.events, self.pack, self.bus, self.session = (
            room.events,
            room.pack,
            room.bus,
            room.session,
        )
        self.now = 0.0
        self.joined: dict[str, dict[str, Any]] = {}
        # The model of consent: what the gate must decide, on media time.
        self.consent: dict[str, tuple[frozenset[str], float] | None] = {}
        self.admitted: dict[str, list[tuple[float, float]]] = defaultdict(list)
        """Per person, what was admitted: (start, end), an instant for a frame or a text."""
        self.on_time: dict[str, list[tuple[float, float]]] = defaultdict(list)
        """The same, less what arrived for windows already closed (late)."""
        self.speech: dict[str, list[tuple[float, float]]] = defaultdict(list)
        self.gone: dict[str, int] = {}
        """Revoked or erased: from this event index on, nothing may name them (until a grant)."""
        self.ever_gone: set[str] = set()
        self.erased: dict[str, set[float]] = {}
        """Erased people, and the starts of the windows they had been reported in."""
        self.checked = 0
        self.grants = 0
        self.media_steps = 0
        for who in sorted(present):
            self.join(who, camera=True, mic=True)
            self.grant(who, set(MODALITIES), math.inf)
            self.speak(who, who in talking)
        if warmup:
            self.media(warmup, chunks=[0.1], gaps=[0.0], drops=[False])

    # -- the room -------------------------------------------------------------------------------

    @precondition(lambda self: not self.finished)
    @rule(who=people, camera=st.booleans(), mic=st.booleans())
    def join(self, who: str, camera: bool, mic: bool) -> None:
        if who not in self.joined:
            self.joined[who] = {
                "camera": camera,
                "mic": mic,
                "speaking": False,
                "next_frame": self.now,
                "mic_t": self.now,
            }

    @precondition(lambda self: not self.finished)
    @rule(who=people)
    def leave(self, who: str) -> None:
        if self.joined.pop(who, None) is not None:
            self.session.end_stream("video", who)
            self.session.end_stream("audio", who)

    @precondition(lambda self: not self.finished)
    @rule(who=people, on=st.booleans())
    def camera(self, who: str, on: bool) -> None:
        p = self.joined.get(who)
        if p is not None:
            if p["camera"] and not on:
                self.session.end_stream("video", who)
            if on and not p["camera"]:
                p["next_frame"] = self.now
            p["camera"] = on

    @precondition(lambda self: not self.finished)
    @rule(who=people, on=st.booleans())
    def microphone(self, who: str, on: bool) -> None:
        p = self.joined.get(who)
        if p is not None:
            if p["mic"] and not on:
                self.session.end_stream("audio", who)
            if on and not p["mic"]:
                p["mic_t"] = self.now
            p["mic"] = on

    @precondition(lambda self: not self.finished)
    @rule(who=people, on=st.booleans())
    def speak(self, who: str, on: bool) -> None:
        if who in self.joined:
            self.joined[who]["speaking"] = on

    @precondition(lambda self: not self.finished)
    @rule(who=people, text=st.sampled_from(["good", "bad", "so so"]))
    def say(self, who: str, text: str) -> None:
        if who in self.joined:
            self.clock.t = self.now
            self._push(Utterance(who, self.now, self.now, text), "text")

    @precondition(lambda self: not self.finished)
    @rule(
        dt=st.sampled_from([0.05, 0.25, 0.4, 1.0, 2.6, 6.0, 12.0]),
        chunks=st.lists(st.sampled_from([0.02, 0.1, 0.25]), min_size=1, max_size=4),
        gaps=st.lists(st.floats(0.0, 0.5), min_size=1, max_size=4),
        drops=st.lists(st.booleans(), min_size=1, max_size=5),
    )
    def media(self, dt: float, chunks: list[float], gaps: list[float], drops: list[bool]) -> None:
        """`dt` seconds of media from everyone present, in time order; frames come at irregular
        intervals (`gaps` beyond 1/fps) and some are lost on the way (`drops`)."""
        end = self.now + dt
        items: list[tuple[float, int, Item]] = []
        n = 0
        for who, p in sorted(self.joined.items()):
            while p["camera"] and p["next_frame"] < end:
                t = p["next_frame"]
                if not drops[n % len(drops)]:
                    # Expressions that change over time, differently per person (synchrony).
                    items.append((t, n, frame(who, t, expression=(int(t * 1.5) + len(who)) % 7)))
                p["next_frame"] = t + 1 / FPS + gaps[n % len(gaps)]
                n += 1
            while p["mic"] and p["mic_t"] < end - 1e-9:
                t = p["mic_t"]
                length = min(chunks[n % len(chunks)], end - t)
                items.append((t, n, audio(who, t, length, p["speaking"])))
                p["mic_t"] = t + round(length * SAMPLE_RATE) / SAMPLE_RATE
                n += 1
        for t, _, item in sorted(items, key=lambda x: (x[0], x[1])):
            self.clock.t = t
            self._push(item, "face" if isinstance(item, VideoFrame) else "voice")
        self.now = end
        self.media_steps += 1

    @precondition(lambda self: not self.finished)
    @rule()
    def tick(self) -> None:
        self.session.tick(self.now)

    # -- consent ----------------------------------------------------------------------------------

    @precondition(lambda self: not self.finished)
    @rule(
        who=people,
        modalities=st.sets(st.sampled_from(MODALITIES), min_size=1),
        lifetime=st.sampled_from([0.3, 2.0, 7.0, math.inf]),
    )
    def grant(self, who: str, modalities: set[str], lifetime: float) -> None:
        expires = self.now + lifetime
        self.grants += 1
        self.gate.grant(Grant(f"con_{self.grants}", who, frozenset(modalities), expires))
        current = self.consent.get(who)
        if current is None or expires >= current[1]:  # the gate keeps the longest consent
            self.consent[who] = (frozenset(modalities), expires)
        self.gone.pop(who, None)
        self.erased.pop(who, None)

    @precondition(lambda self: not self.finished)
    @rule(who=people)
    def revoke(self, who: str) -> None:
        if self.gate.revoke(who):
            self.consent[who] = None
            self.gone[who] = len(self.events)
            self.ever_gone.add(who)

    @precondition(lambda self: not self.finished)
    @rule(who=people)
    def erase(self, who: str) -> None:
        self.gate.erase(who)
        self.consent[who] = None
        self.gone[who] = len(self.events)
        self.ever_gone.add(who)
        self.erased[who] = {
            e.media_time.start
            for e in self.events
            if e.type == EventType.ENGAGEMENT_WINDOW and who in people_in(e)
        }

    # -- the end ----------------------------------------------------------------------------------

    @precondition(lambda self: not self.finished and self.media_steps >= 3)
    @rule()
    def finish(self) -> None:
        self.session.finish(self.now)
        self.finished = True
        windows = self._windows(self.events)
        reported = max((d["room"]["participants"] for _, d in windows), default=0)
        event(f"windows: {min(len(windows), 10)}{'+' if len(windows) >= 10 else ''}")
        event(f"most people in a window: {reported}")
        event(f"revoked or erased: {bool(self.ever_gone)}")

    @precondition(lambda self: self.finished)
    @rule()
    def after_the_end(self) -> None:
        """Nothing happens after the summary (the machine needs a rule it can always take)."""

    def teardown(self) -> None:
        """A run that never chose to end ends here, and is checked once more."""
        if hasattr(self, "session") and not self.finished:
            self.finish()
            self.events_are_well_formed()
            self.windows_hold_exactly_the_people_who_contributed()
            self.nothing_is_left_of_the_revoked_and_erased()
            self.an_erasure_withdraws_their_windows_from_the_summary()

    # -- the model --------------------------------------------------------------------------------

    def _push(self, item: Item | Utterance, modality: str) -> None:
        who = item.participant
        grant = self.consent.get(who)
        expected = grant is not None and modality in grant[0] and grant[1] > self.clock.t
        before = self._admitted_total(modality)
        closed = sum(e.type == EventType.ENGAGEMENT_WINDOW for e in self.events)
        if isinstance(item, VideoFrame):
            span = (item.t, item.t)
            self.session.push_video(item)
        elif isinstance(item, AudioChunk):
            span = (item.t, item.end)
            self.session.push_audio(item)
        else:
            span = (item.start, item.start)
            self.session.push_utterance(item)
        admitted = self._admitted_total(modality) > before
        assert admitted == expected, (who, modality, self.clock.t, grant)
        if admitted:
            self.admitted[who].append(span)
            if span[1] > closed * self.window or span[0] >= closed * self.window:
                self.on_time[who].append((max(span[0], closed * self.window), span[1]))
            if isinstance(item, AudioChunk) and item.samples.any():
                self.speech[who].append(span)

    def _admitted_total(self, modality: str) -> int:
        admitted = self.gate.counts()["admitted"]
        assert isinstance(admitted, dict)
        return int(admitted.get(modality, 0))

    def _windows(self, events: list[Event]) -> list[tuple[Event, dict[str, Any]]]:
        return [(e, e.data.model_dump()) for e in events if e.type == EventType.ENGAGEMENT_WINDOW]

    # -- invariants -------------------------------------------------------------------------------

    @invariant()
    def events_are_well_formed(self) -> None:
        if hasattr(self, "events"):
            check_events(
                self.events,
                ended=self.finished,
                min_participants=self.min_participants,
                user_ids=PEOPLE if self.reporting == "room" else (),
            )

    @invariant()
    def windows_hold_exactly_the_people_who_contributed(self) -> None:
        if not hasattr(self, "events"):
            return
        fresh, self.checked = self.events[self.checked :], len(self.events)
        ends = [e for e in self.events if e.type == EventType.ENGAGEMENT_WINDOW]
        final = ends[-1] if self.finished and ends else None  # closed by the session's end
        for e, data in self._windows(fresh):
            start, end = e.media_time.start, e.media_time.end
            last = self.finished and e is final
            contributed = {
                p for p, spans in self.admitted.items() if _overlaps(spans, start, end, last)
            }
            if self.reporting == "room":
                assert data["room"]["participants"] <= len(contributed)
                continue
            reported = set(data["participants"])
            assert reported <= contributed, (start, reported - contributed)  # C1: never unasked
            on_time = {
                p
                for p, spans in self.on_time.items()
                if p not in self.ever_gone and _overlaps(spans, start, end, last)
            }
            assert on_time <= reported, (start, on_time - reported)  # absent only if no data
            for p in reported:
                # The voice detector's 32 ms windows may reach that far past the speech itself.
                heard = [(a - WINDOW_S, b + WINDOW_S) for a, b in self.speech[p]]
                if not _overlaps(heard, start, end, last):
                    block = data["participants"][p]
                    assert block["speaking_share"] == 0.0 and block["turns"] == 0, (p, start)

    @invariant()
    def synchrony_compares_only_people_who_contributed(self) -> None:
        """C1 for synchrony.window: each pair is of people with admitted data over its span."""
        if not hasattr(self, "events"):
            return
        for e in self.events:
            if e.type != EventType.SYNCHRONY_WINDOW:
                continue
            start, end = e.media_time.start, e.media_time.end
            contributed = {p for p, spans in self.admitted.items() if _overlaps(spans, start, end)}
            data = e.data.model_dump()
            assert data["room"]["participants"] <= len(contributed), (start, end)
            named = {p[k] for p in data["pairs"] for k in ("a", "b")}
            assert named <= contributed, (start, named - contributed)

    @invariant()
    def nothing_is_left_of_the_revoked_and_erased(self) -> None:
        if not hasattr(self, "events"):
            return
        for who, since in self.gone.items():
            if self.reporting == "participant":  # every later call applied the purge first
                for e in self.events[since:]:
                    assert who not in people_in(e), (who, e.type, e.seq)
            if self.gate.purges_pending:
                continue  # the session applies it at its next call
            skip: list[object] = [self.pack, self.bus, self.events]
            if who not in self.erased:
                skip.append(self.gate)  # the gate must remember a revocation to refuse it
            assert find_person(self.session, who, skip=skip) == [], who

    @invariant()
    def an_erasure_withdraws_their_windows_from_the_summary(self) -> None:
        if not self.finished or not self.erased:
            return
        summary = self.events[-1].data.model_dump()
        windows = [e.media_time.start for e, _ in self._windows(self.events)]
        withdrawn = set().union(*self.erased.values())
        for start, value in zip(windows, summary["engagement_timeline"], strict=True):
            if start in withdrawn:
                assert value is None, start


class RoomReported(LiveRoom):
    """The same room, reported as a room: pseudonyms, and nothing for fewer than two people."""

    reporting = "room"
    min_participants = 2


class Recording(RuleBasedStateMachine):
    """A recording of known duration (one owner, or a shared camera and microphone of speakers
    named by the transcript): speech anywhere, including across a short last window and up to
    the end of the file; the session may be stopped early."""

    def __init__(self) -> None:
        super().__init__()
        self.finished = False

    @initialize(
        tenths=st.integers(100, 300),
        shared=st.booleans(),
        transcribe=st.booleans(),
        window=st.sampled_from([2.0, 5.0]),
    )
    def open(self, tenths: int, shared: bool, transcribe: bool, window: float) -> None:
        self.duration = tenths / 10
        self.settings = Settings(window=WindowSettings(seconds=window))
        self.events: list[Event] = []
        speakers = ("ann", "bob") if shared else ()
        gate = None
        if shared:
            gate = ConsentGate(lambda: 0.0)
            gate.set_members(ROOM_STREAM, speakers)
            for who in speakers:
                gate.grant(Grant(f"con_{who}", who, frozenset(MODALITIES), math.inf))
        self.stream = ROOM_STREAM if shared else "ann"
        self.speakers = speakers
        self.session = Session(
            settings=self.settings,
            pack=FakePack(self.settings),  # type: ignore[arg-type]
            bus=EventBus("ses_rec", {}, [self.events.append]),
            owner=None if shared else "ann",
            speakers=speakers,
            transcribe=transcribe and not shared,
            duration_s=self.duration,
            gate=gate,
        )
        self.session.start(source="recording", modalities=list(MODALITIES))
        self.now = 0.0
        self.next_frame = 0.0
        self.speaking = False

    @precondition(lambda self: not self.finished)
    @rule(on=st.booleans())
    def speak(self, on: bool) -> None:
        self.speaking = on

    @precondition(lambda self: not self.finished and self.speakers)
    @rule(who=st.sampled_from(["ann", "bob"]), length=st.floats(0.2, 4.0))
    def cue(self, who: str, length: float) -> None:
        self.session.push_utterance(
            Utterance(who, self.now, min(self.duration, self.now + length), "good")
        )

    @precondition(lambda self: not self.finished and self.now < self.duration)
    @rule(
        dt=st.sampled_from([0.1, 0.3, 1.0, 2.5]),
        chunk=st.sampled_from([0.02, 0.1, 0.25]),
        drop=st.booleans(),
    )
    def media(self, dt: float, chunk: float, drop: bool) -> None:
        end = min(self.duration, self.now + dt)
        while self.next_frame < end:
            if not drop:
                self.session.push_video(frame(self.stream, self.next_frame, faces=1))
            self.next_frame += 1 / FPS
        t = self.now
        while t < end - 1e-9:
            length = min(chunk, end - t)
            self.session.push_audio(audio(self.stream, t, length, self.speaking))
            t += round(length * SAMPLE_RATE) / SAMPLE_RATE
        self.now = end

    @precondition(lambda self: not self.finished and self.now >= self.duration - 1e-9)
    @rule()
    def end_of_file(self) -> None:
        self.session.finish(self.duration)
        self.finished = True
        ends = [e.media_time.end for e in self.events if e.type == EventType.ENGAGEMENT_WINDOW]
        assert math.isclose(ends[-1], self.duration), (ends[-1], self.duration)

    @precondition(lambda self: not self.finished)
    @rule()
    def stopped_early(self) -> None:
        self.session.finish(min(self.now, self.duration))
        self.finished = True

    @precondition(lambda self: self.finished)
    @rule()
    def after_the_end(self) -> None:
        """Nothing happens after the summary."""

    def teardown(self) -> None:
        if hasattr(self, "session") and not self.finished:
            self.stopped_early()
            self.events_are_well_formed()

    @invariant()
    def events_are_well_formed(self) -> None:
        if hasattr(self, "events"):
            check_events(self.events, ended=self.finished)


TestLiveRoom = LiveRoom.TestCase
TestRoomReported = RoomReported.TestCase
TestRecording = Recording.TestCase
