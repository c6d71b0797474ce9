"""A bare room job for the agent-protocol tests (tests/integration/livekit/test_worker.py): join
the room with the job's token (hidden, subscribe-only, an agent: the permissions the worker
registered) and stay until the room ends or the job is terminated. `rapport worker` runs sessions
instead (rapport/worker/sessions.py). SDK constraint (livekit 1.2.x): room event handlers are plain
functions; a connect is never abandoned half-way.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from livekit import rtc

from rapport.errors import RapportError
from rapport.taps.livekit import ENDING
from rapport.worker.jobs import JobInfo

log = logging.getLogger(__name__)


class RoomLost(RapportError):
    """The job was cut from its room by something other than the room's end."""

    retryable = True


async def join_room(job: JobInfo) -> None:
    """Returns when the room ends (deleted, closed, we were removed); raises RoomLost when cut off
    otherwise; cancelled on termination, leaving the room on the way out."""
    room = rtc.Room()
    gone = asyncio.Event()
    why: list[rtc.DisconnectReason.ValueType] = []

    def disconnected(reason: rtc.DisconnectReason.ValueType) -> None:
        why.append(reason)
        log.info(
            "job left the room",
            extra={"job_id": job.job_id, "reason": rtc.DisconnectReason.Name(reason)},
        )
        gone.set()

    room.on("disconnected", disconnected)
    options = rtc.RoomOptions(auto_subscribe=False)
    connecting = asyncio.ensure_future(room.connect(job.url, job.token, options))
    try:
        await asyncio.shield(connecting)
        log.info("job joined the room", extra={"job_id": job.job_id, "identity": job.identity})
        await gone.wait()
    finally:
        if not connecting.done():
            # Terminated while joining: a connect left unfinished makes the SDK's FFI panic later
            # (it waits for the room's event subscription), so finish it, then leave.
            with contextlib.suppress(rtc.ConnectError):
                await connecting
        await room.disconnect()
    if not room_over(why[-1]):
        raise RoomLost(f"the job lost the room: {rtc.DisconnectReason.Name(why[-1])}")


def room_over(reason: rtc.DisconnectReason.ValueType) -> bool:
    """Whether a disconnect ends the job as done (the room ended, or we were asked to leave);
    any other (the server lost, a failed reconnect) fails it, so the server may dispatch again."""
    return reason in ENDING
