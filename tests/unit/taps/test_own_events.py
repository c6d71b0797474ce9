"""Each media stream gets only its own frames, through the SDK's real FfiQueue and event types."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

import pytest
from livekit.rtc._ffi_client import FfiClient, FfiQueue
from livekit.rtc._proto import ffi_pb2

from rapport.taps import own_events
from rapport.taps.own_events import own_events_only


def _event(field: str, handle: int) -> Any:
    e = ffi_pb2.FfiEvent()
    getattr(e, field).stream_handle = handle
    return e


def _stream(queue: FfiQueue[Any], loop: asyncio.AbstractEventLoop, field: str, handle: int) -> Any:
    """What rtc.VideoStream/AudioStream hold: a subscription filtered by event type, a handle."""
    sub = queue.subscribe(loop, filter_fn=lambda e: e.WhichOneof("message") == field)
    return SimpleNamespace(_ffi_queue=sub, _ffi_handle=SimpleNamespace(handle=handle))


def _drain(q: asyncio.Queue[Any]) -> list[tuple[str, int]]:
    out = []
    while not q.empty():
        e = q.get_nowait()
        kind = e.WhichOneof("message")
        out.append((kind, getattr(e, kind).stream_handle))
    return out


def test_a_stream_is_woken_only_by_its_own_frames(monkeypatch: pytest.MonkeyPatch) -> None:
    loop = asyncio.new_event_loop()
    try:
        queue: FfiQueue[Any] = FfiQueue()
        monkeypatch.setattr(FfiClient, "instance", SimpleNamespace(queue=queue), raising=False)
        video = [_stream(queue, loop, own_events.VIDEO, h) for h in (1, 2, 3)]
        audio = [_stream(queue, loop, own_events.AUDIO, h) for h in (4, 5)]
        for s in video:
            assert own_events_only(s, own_events.VIDEO)
        assert own_events_only(audio[0], own_events.AUDIO)  # audio[1] keeps the SDK's filter
        for h in (1, 2, 3):
            queue.put(_event(own_events.VIDEO, h))
        for h in (4, 5):
            queue.put(_event(own_events.AUDIO, h))
        loop.call_soon(loop.stop)  # after the puts already scheduled: run exactly those
        loop.run_forever()
        assert [_drain(s._ffi_queue) for s in video] == [
            [("video_stream_event", 1)],
            [("video_stream_event", 2)],
            [("video_stream_event", 3)],
        ]
        assert _drain(audio[0]._ffi_queue) == [("audio_stream_event", 4)]
        # Without the narrowing (as in the SDK), a stream gets every stream's frames.
        assert _drain(audio[1]._ffi_queue) == [("audio_stream_event", 4), ("audio_stream_event", 5)]
    finally:
        loop.close()


def test_an_sdk_without_those_internals_is_left_as_it_is(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(own_events, "_warned", False)
    assert own_events_only(SimpleNamespace(), own_events.VIDEO) is False
    assert "internals changed" in caplog.text


def test_the_sdk_streams_still_hold_what_the_narrowing_reads() -> None:
    # The test above uses stand-ins for the streams: this one fails if livekit renames what the
    # narrowing reads on a real VideoStream/AudioStream (the bot would quietly lose the cut).
    import inspect

    from livekit import rtc

    for cls in (rtc.VideoStream, rtc.AudioStream):
        source = inspect.getsource(cls)
        assert "self._ffi_queue = FfiClient.instance.queue.subscribe(" in source, cls
        assert "self._ffi_handle = FfiHandle(" in source, cls
    event = _event(own_events.AUDIO, 9)
    assert event.audio_stream_event.stream_handle == 9
