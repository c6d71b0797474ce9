"""A browser in the call: the generated recording as Chromium's fake camera and microphone, and
a loopback HTTP server for the page that joins with LiveKit's JavaScript SDK (tests/browser)."""

from __future__ import annotations

import functools
import threading
import wave
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import av
import numpy as np

FAKE_AUDIO_RATE = 48_000


def to_y4m(recording: Path, out: Path) -> tuple[int, int, int]:
    """The recording's video as raw 4:2:0 YUV4MPEG2 (what --use-file-for-fake-video-capture
    plays, looped); (width, height, frames)."""
    with av.open(str(recording)) as src:
        stream = src.streams.video[0]
        rate = stream.average_rate or stream.base_rate
        assert rate is not None, f"{recording} has no frame rate"
        width, height = stream.codec_context.width, stream.codec_context.height
        frames = 0
        with out.open("wb") as f:
            f.write(
                f"YUV4MPEG2 W{width} H{height} F{rate.numerator}:{rate.denominator} "
                "Ip A1:1 C420jpeg\n".encode()
            )
            for frame in src.decode(stream):
                planes = frame.reformat(format="yuv420p").to_ndarray()
                f.write(b"FRAME\n")
                f.write(np.ascontiguousarray(planes, dtype=np.uint8).tobytes())
                frames += 1
    return width, height, frames


def to_wav(recording: Path, out: Path) -> float:
    """The recording's audio as 16-bit PCM mono at 48 kHz (what --use-file-for-fake-audio-capture
    plays, looped); its length in seconds."""
    resampler = av.AudioResampler(format="s16", layout="mono", rate=FAKE_AUDIO_RATE)
    chunks: list[np.ndarray[Any, Any]] = []
    with av.open(str(recording)) as src:
        for frame in src.decode(src.streams.audio[0]):
            for out_frame in resampler.resample(frame):
                chunks.append(out_frame.to_ndarray().reshape(-1))
        for out_frame in resampler.resample(None):
            chunks.append(out_frame.to_ndarray().reshape(-1))
    pcm = np.concatenate(chunks).astype("<i2")
    with wave.open(str(out), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(FAKE_AUDIO_RATE)
        w.writeframes(pcm.tobytes())
    return len(pcm) / FAKE_AUDIO_RATE


def fake_media_args(video: Path, audio: Path) -> list[str]:
    """Chromium's flags for a camera and microphone that play these files, allowed without a
    prompt, and WebRTC over loopback (the local LiveKit server offers 127.0.0.1 only)."""
    return [
        "--use-fake-device-for-media-stream",
        "--use-fake-ui-for-media-stream",
        f"--use-file-for-fake-video-capture={video}",
        f"--use-file-for-fake-audio-capture={audio}",
        "--allow-loopback-in-peer-connection",
        "--disable-features=WebRtcHideLocalIpsWithMdns",
        "--autoplay-policy=no-user-gesture-required",
    ]


class _Quiet(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


@contextmanager
def serve_folder(root: Path) -> Iterator[str]:
    """`root` over HTTP on 127.0.0.1 (a free port), from a thread; yields its base URL."""
    handler = functools.partial(_Quiet, directory=str(root))
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)
