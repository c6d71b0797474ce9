"""Which ways of leaving a room end a job as done, and which fail it."""

from __future__ import annotations

from livekit import rtc

from rapport.worker.room_job import room_over

R = rtc.DisconnectReason


def test_the_rooms_end_is_success_and_losing_the_server_is_not() -> None:
    for done in (R.ROOM_DELETED, R.ROOM_CLOSED, R.PARTICIPANT_REMOVED, R.CLIENT_INITIATED):
        assert room_over(done), R.Name(done)
    for lost in (R.SIGNAL_CLOSE, R.SERVER_SHUTDOWN, R.JOIN_FAILURE, R.UNKNOWN_REASON):
        assert not room_over(lost), R.Name(lost)
