"""synchrony.window from a live session: real tracker, smoothing and windows on the fake heads."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from rapport.config import SynchronySettings
from rapport.consent.gate import Grant
from rapport.events.schema import EventType, SynchronyWindowData
from rapport.invariants import InvariantError, check_events, people_in
from tests.fakes.heads import LiveRoom, frame

FPS = 4


class Room(LiveRoom):
    """Everyone's camera at FPS; each person's expression class is a function of media time."""

    def __init__(self, people: dict[str, float], **kw: Any) -> None:
        """`people`: name -> how many seconds behind the room's expression script they are."""
        super().__init__(**kw)
        self.people = people
        self.script = np.random.default_rng(7).integers(0, 7, size=400)  # a class per second
        for who in people:
            self.gate.grant(Grant(f"con_{who}", who, frozenset({"face", "voice", "text"}), 1e9))

    def run(self, seconds: float, revoke: tuple[str, float] | None = None) -> None:
        """`revoke`: (who, when) their consent is revoked."""
        for k in range(round(seconds * FPS)):
            t = k / FPS
            self.clock.t = t
            if revoke is not None and t == revoke[1]:
                self.gate.revoke(revoke[0])
            for who, behind in self.people.items():
                cls = int(self.script[max(0, int(t - behind + 10))])
                self.session.push_video(frame(who, t, expression=cls))
            self.session.tick(t + 1 / FPS)
        self.session.finish(seconds)
        check_events(
            self.events, ended=True, min_participants=self.settings.reporting.min_participants
        )

    def synchrony(self) -> list[dict[str, Any]]:
        return [e.data.model_dump() for e in self.events if e.type == EventType.SYNCHRONY_WINDOW]


def test_a_follower_is_found_behind_the_leader_in_a_live_room() -> None:
    room = Room(
        {"ann": 0.0, "bob": 1.0, "cy": 7.3}, synchrony=SynchronySettings(window_s=30, max_lag_s=3)
    )
    room.run(60.0)
    windows = room.synchrony()
    assert windows, "no synchrony.window in 60 s"
    spans = [
        (e.media_time.start, e.media_time.end)
        for e in room.events
        if e.type == EventType.SYNCHRONY_WINDOW
    ]
    assert spans[0] == (0.0, 20.0) and spans[-1] == (30.0, 60.0)  # from 20 s, then 30 s spans
    for w in windows:
        pairs = {(p["a"], p["b"]): p for p in w["pairs"]}
        ann_bob = pairs.get(("ann", "bob")) or pairs[("bob", "ann")]
        assert ann_bob["leader"] == "ann" and ann_bob["lag_s"] == 1.0, w
        assert w["room"]["participants"] == 3 and w["room"]["pairs"] == 3


def test_room_reporting_gives_room_numbers_and_withholds_below_the_minimum() -> None:
    shown = Room({"ann": 0.0, "bob": 1.0, "cy": 2.0}, reporting="room", min_participants=3)
    shown.run(20.0)
    for w in shown.synchrony():
        assert w["pairs"] == [] and w["room"]["withheld"] is None and w["room"]["rr"] is not None
    assert shown.synchrony()

    hidden = Room({"ann": 0.0, "bob": 1.0}, reporting="room", min_participants=3)
    hidden.run(20.0)
    assert hidden.synchrony()
    for w in hidden.synchrony():
        assert w["room"]["withheld"] == "fewer_than_min_participants"
        assert w["room"]["rr"] is None and w["room"]["det"] is None and w["pairs"] == []


def test_a_revoked_person_leaves_later_synchrony_windows() -> None:
    room = Room({"ann": 0.0, "bob": 1.0, "cy": 2.0})
    room.run(40.0, revoke=("cy", 15.0))
    before = [
        e for e in room.events if e.type == EventType.SYNCHRONY_WINDOW and e.media_time.end <= 15
    ]
    after = [
        e for e in room.events if e.type == EventType.SYNCHRONY_WINDOW and e.media_time.end > 15
    ]
    assert before and all("cy" in people_in(e) for e in before)
    assert after and all("cy" not in people_in(e) for e in after)
    assert all(e.data.model_dump()["room"]["participants"] == 2 for e in after)


def test_synchrony_can_be_turned_off() -> None:
    room = Room({"ann": 0.0, "bob": 1.0}, synchrony=SynchronySettings(enabled=False, window_s=10.0))
    room.run(20.0)
    assert room.synchrony() == []


def _edited(room: Room, change: Any) -> list[Any]:
    """The room's events with its last synchrony.window's payload changed by `change(data)`."""
    events = list(room.events)
    k = max(i for i, e in enumerate(events) if e.type == EventType.SYNCHRONY_WINDOW)
    data = events[k].data.model_dump()
    change(data)
    events[k] = events[k].model_copy(update={"data": SynchronyWindowData.model_validate(data)})
    return events


@pytest.mark.parametrize(
    "change",
    [
        pytest.param(lambda d: d["parameters"].update(window_s=5.0), id="span-longer-than-said"),
        pytest.param(lambda d: d["room"].update(rr=None, det=None), id="null-without-withheld"),
        pytest.param(
            lambda d: d["room"].update(
                led_share=0.0, lag_s={"p25": 1.0, "median": 1.0, "p75": 1.0}
            ),
            id="lags-without-a-leader",
        ),
        pytest.param(
            lambda d: d["room"].update(withheld="fewer_than_min_participants"),
            id="shown-and-withheld",
        ),
        pytest.param(lambda d: d["pairs"].pop(), id="a-pair-missing"),
    ],
)
def test_e7_refuses_an_edited_synchrony_window(change: Any) -> None:
    # A review edited real events these ways and E7 let every one through.
    room = Room({"ann": 0.0, "bob": 1.0, "cy": 2.0})
    room.run(25.0)
    check_events(room.events, ended=True, min_participants=3)
    with pytest.raises(InvariantError, match="E7"):
        check_events(_edited(room, change), ended=True, min_participants=3)
