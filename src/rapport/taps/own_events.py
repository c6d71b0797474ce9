"""Each media stream of the LiveKit SDK woken only by its own frames.

The SDK (livekit 1.2.0) hands every FFI event to every subscribed queue whose filter passes, and a
VideoStream/AudioStream filters by event type only: each stream is woken (a cross-thread
call_soon_threadsafe) by every other stream's frames, so the bot's cost grows with the square of
the participants. Measured with 16 participants on one core: 59 % -> 45 % of the core with this.

This reaches into the SDK's private attributes, so it checks each one and leaves the stream as it
was (logged once) if the SDK changed: correctness never depends on it, only cost.
"""

from __future__ import annotations

import logging
from typing import Any, Final

log = logging.getLogger(__name__)

VIDEO: Final = "video_stream_event"
AUDIO: Final = "audio_stream_event"

_warned = False


def own_events_only(stream: Any, field: str) -> bool:
    """Narrow `stream`'s subscription to the events of its own handle; True when done."""
    global _warned
    try:
        from livekit.rtc._ffi_client import FfiClient

        queue = FfiClient.instance.queue
        mine = stream._ffi_queue
        handle = int(stream._ffi_handle.handle)
        subscribers = queue._subscribers
        lock = queue._lock
    except (AttributeError, ImportError, TypeError, ValueError) as e:
        if not _warned:
            _warned = True
            log.warning("LiveKit SDK internals changed (%s): every stream sees every frame", e)
        return False

    def own(event: Any) -> bool:
        kind = event.WhichOneof("message")
        return bool(kind == field and getattr(event, field).stream_handle == handle)

    with lock:
        for i, (q, loop, _) in enumerate(subscribers):
            if q is mine:
                subscribers[i] = (q, loop, own)
                return True
    return False
