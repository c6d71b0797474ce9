"""A private livekit-server on 127.0.0.1 for the session, and a short simulcast-sized clip (the
two-node cluster, `livekit_pair`, is in tests/integration/conftest.py)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from rapport.livekit import LocalServer
from rapport.samples import Recording, make_recording

# 1280x720: the SDK's simulcast LOW layer is then 320x180; at 640x360 it publishes LOW at full size.
CLIP_SIZE = (1280, 720)
CLIP_SPEECH = ((0.2, "Hello everyone."), (1.6, "This is a short test."))


@pytest.fixture(scope="session")
def livekit_server(
    livekit_binary: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LocalServer]:
    log = tmp_path_factory.mktemp("livekit") / "server.log"
    with LocalServer(binary=livekit_binary, log_path=log) as server:
        yield server


@pytest.fixture(scope="session")
def livekit_clip(tmp_path_factory: pytest.TempPathFactory) -> Recording:
    """4 s at 1280x720 and 25 fps, two spoken lines and their WebVTT transcript."""
    root = tmp_path_factory.mktemp("livekit-media")
    return make_recording(
        root / "clip.mp4",
        duration_s=4.0,
        size=CLIP_SIZE,
        speech=CLIP_SPEECH,
        transcript=root / "clip.vtt",
    )
