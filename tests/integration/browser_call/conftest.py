"""A browser in the call: headless Chromium (Debian's, driven by Playwright) joins a local LiveKit
room with LiveKit's JavaScript SDK (tests/browser, installed by `npm ci --prefix tests/browser`,
which `scripts/setup --dev` runs), its camera and microphone playing a generated recording.

Skipped when Chromium or the SDK is missing; failed instead under RAPPORT_REQUIRE_BROWSER=1."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from rapport.samples import Recording, make_recording
from tests.fakes.browser_call import serve_folder, to_wav, to_y4m
from tests.integration.service.conftest import Service
from tests.integration.service.test_livekit_bot import Room

PAGES = Path(__file__).resolve().parents[2] / "browser"
SDK = PAGES / "node_modules" / "livekit-client" / "dist" / "livekit-client.umd.js"


def _missing(why: str) -> None:
    if os.environ.get("RAPPORT_REQUIRE_BROWSER") == "1":
        pytest.fail(f"RAPPORT_REQUIRE_BROWSER=1 but {why}")
    pytest.skip(why)


@pytest.fixture(scope="session")
def chromium() -> str:
    """Debian's Chromium (scripts/setup --dev installs it), and Playwright to drive it."""
    found = shutil.which("chromium")
    if found is None:
        _missing("chromium not found (scripts/setup --dev installs it)")
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        _missing("playwright is not installed (pip install -e '.[dev]')")
    assert found is not None
    return found


@pytest.fixture(scope="session")
def pages() -> Iterator[str]:
    """tests/browser (the page and the SDK's build) over HTTP on 127.0.0.1."""
    if not SDK.is_file():
        _missing(f"{SDK.relative_to(PAGES.parents[1])} is missing: npm ci --prefix tests/browser")
    with serve_folder(PAGES) as url:
        yield url


@dataclass(frozen=True)
class FakeMedia:
    recording: Recording
    video: Path
    """.y4m, raw 4:2:0, for --use-file-for-fake-video-capture."""
    audio: Path
    """.wav, 16-bit PCM 48 kHz mono, for --use-file-for-fake-audio-capture."""
    size: tuple[int, int]
    frames: int
    audio_s: float


@pytest.fixture(scope="session")
def camera_and_mic(media_dir: Path) -> FakeMedia:
    """10 s at 640x360 and 15 fps (a face, two spoken lines): the camera and microphone that
    Chromium plays, looped."""
    rec = make_recording(
        media_dir / "browser-call.mp4",
        duration_s=10.0,
        size=(640, 360),
        fps=15,
        speech=(
            (0.5, "Good morning, thanks for joining the call."),
            (5.0, "I am really happy with how the launch went."),
        ),
    )
    video, audio = media_dir / "browser-call.y4m", media_dir / "browser-call.wav"
    width, height, frames = to_y4m(rec.path, video)
    audio_s = to_wav(rec.path, audio)
    return FakeMedia(rec, video, audio, (width, height), frames, audio_s)


class DashboardService(Service):
    """The conftest's Service on a port picked before it starts, so that its dashboard's origin
    can be in `service.allowed_origins` (browsers send an Origin on the WebSocket)."""

    def __init__(self, root: Path, models_dir: Path, media: Path, overrides: dict[str, Any]):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = int(s.getsockname()[1])
        origin = f"http://127.0.0.1:{self.port}"
        super().__init__(
            root, models_dir, media, {**overrides, "service": {"allowed_origins": [origin]}}
        )

    def start(self) -> None:
        self.log = (self.root / "serve.log").open("a")
        command = [sys.executable, "-m", "rapport.cli", "--config", str(self.config)]
        self.proc = subprocess.Popen(
            [*command, "serve", "--port", str(self.port)],
            stdout=subprocess.PIPE,
            stderr=self.log,
            text=True,
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        assert line.startswith("rapport: listening on "), f"server did not start: {line!r}"
        self.url = line.split()[-1]
        assert self.url == f"http://127.0.0.1:{self.port}", self.url
        self.http.base_url = httpx.URL(self.url)


@pytest.fixture
def room(tmp_path: Path, models_dir: Path, media_dir: Path, livekit_binary: Path) -> Iterator[Room]:
    """A local LiveKit server whose webhooks go to a `rapport serve` that knows it (the LiveKit
    bot tests' Room), its dashboard allowed to read events from its own origin."""
    started: list[Service] = []

    def make_service(overrides: dict[str, Any]) -> Service:
        svc = DashboardService(tmp_path / "svc", models_dir, media_dir, overrides)
        svc.start()
        started.append(svc)
        return svc

    r = Room(make_service, livekit_binary, tmp_path)
    try:
        yield r
    finally:
        r.stop()
        for svc in started:
            svc.stop()
