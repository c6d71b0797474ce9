"""A live session carried across workers: any sequence of media, ticks, revocations and hand-overs
(a worker drained: `suspend` then `resume`; or lost: dropped where it was, `resume` from what was
stored) keeps the event invariants (rapport/invariants.py) on the one stream of events the
workers wrote together: seq gap-free, one session.started first, windows contiguous but for the
gaps each session.resumed states, nobody revoked named after, one summary last."""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from rapport.consent.gate import Grant
from rapport.events.bus import EventBus
from rapport.events.schema import Event, EventType
from rapport.invariants import check_events, people_in
from rapport.session import Session
from tests.fakes.heads import LiveRoom as FakeRoom
from tests.fakes.heads import audio, frame

PEOPLE = ("ana", "ben")
TIMELINE = (EventType.ENGAGEMENT_WINDOW, EventType.SESSION_RESUMED)


class HandOver(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.finished = False

    @initialize(window=st.sampled_from([1.0, 2.0, 5.0]))
    def open(self, window: float) -> None:
        self.window = window
        room = FakeRoom(window_s=window, reporting="participant", min_participants=1)
        self.room, self.events, self.gate = room, room.events, room.gate
        self.session: Session = room.session
        self.now = 0.0
        self.revoked: dict[str, int] = {}
        self.moves: list[str] = []
        for i, who in enumerate(PEOPLE):
            self.gate.grant(Grant(f"con_{i}", who, frozenset({"face", "voice", "text"}), 1e9))

    @precondition(lambda self: not self.finished)
    @rule(dt=st.sampled_from([0.1, 0.4, 1.0, 2.5]), talking=st.sets(st.sampled_from(PEOPLE)))
    def media(self, dt: float, talking: set[str]) -> None:
        t, end = self.now, self.now + dt
        step = 0.1
        while t < end - 1e-9:
            self.room.clock.t = t
            for who in PEOPLE:
                self.session.push_video(frame(who, t))
                self.session.push_audio(audio(who, t, step, who in talking))
            t = round(t + step, 6)
        self.now = end
        self.session.tick(self.now)

    @precondition(lambda self: not self.finished)
    @rule(who=st.sampled_from(PEOPLE))
    def revoke(self, who: str) -> None:
        if self.gate.revoke(who):
            self.revoked[who] = len(self.events)

    @precondition(lambda self: not self.finished)
    @rule(lost=st.booleans(), gap=st.sampled_from([0.0, 0.3, 1.7, 6.0]))
    def hand_over(self, lost: bool, gap: float) -> None:
        """The worker holding the session is drained (its open windows go out) or lost (what it
        had not emitted is gone); another claims it after `gap` seconds of media."""
        if not lost:
            self.session.suspend(self.now)
        # What the next holder reads from the sessions table: the next seq, and where the timeline
        # stored so far ends (store/leases.py `fence`).
        ends = [e.media_time.end for e in self.events if e.type in TIMELINE]
        self.now += gap
        self.room.clock.t = self.now
        bus = EventBus("ses_fake", {"face": "fake"}, [self.events.append], len(self.events))
        self.session = Session(
            settings=self.room.settings,
            pack=self.room.pack,  # type: ignore[arg-type]
            bus=bus,
            owner=None,
            reporting="participant",
            gate=self.gate,
            live=True,
        )
        reason = "worker_lost" if lost else "worker_drained"
        self.session.resume(at=self.now, gap_start=max(ends, default=0.0), reason=reason)
        self.moves.append(reason)

    @precondition(lambda self: not self.finished)
    @rule()
    def finish(self) -> None:
        self.session.finish(self.now)
        self.finished = True

    @precondition(lambda self: self.finished)
    @rule()
    def after_the_end(self) -> None:
        """Nothing happens after the summary (the machine needs a rule it can always take)."""

    def teardown(self) -> None:
        if hasattr(self, "session") and not self.finished:
            self.finish()
            self.invariants_hold()

    @invariant()
    def invariants_hold(self) -> None:
        if not hasattr(self, "events"):
            return
        events: list[Event] = self.events
        check_events(events, ended=self.finished)
        resumed = [e for e in events if e.type == EventType.SESSION_RESUMED]
        assert [e.data.model_dump()["reason"] for e in resumed] == self.moves
        for who, since in self.revoked.items():
            assert all(who not in people_in(e) for e in events[since:]), who
        starts = [e.media_time.start for e in events if e.type == EventType.ENGAGEMENT_WINDOW]
        assert starts == sorted(set(starts))  # no window twice, whoever emitted it
        for e in resumed:  # windows resume on a boundary
            end: Any = e.data.model_dump()["gap"]["end"]
            assert abs(end / self.window - round(end / self.window)) < 1e-6


TestHandOver = HandOver.TestCase
