"""Recordings generated once per test session, and a runner for the real `rapport` CLI."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from rapport.livekit import LiveKitServerError, find_server_binary
from rapport.samples import Recording, make_recording


@dataclass(frozen=True)
class CliResult:
    code: int
    stdout: str
    stderr: str


@pytest.fixture(scope="session")
def run_cli(models_dir: Path) -> object:
    def run(*args: str | Path, cwd: Path | None = None) -> CliResult:
        env = {**os.environ, "RAPPORT_MODELS_DIR": str(models_dir.resolve())}
        p = subprocess.run(
            [sys.executable, "-m", "rapport.cli", *map(str, args)],
            capture_output=True,
            text=True,
            env=env,
            cwd=cwd,
            timeout=300,
        )
        return CliResult(p.returncode, p.stdout, p.stderr)

    return run


@pytest.fixture(scope="session")
def media_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("media")


@pytest.fixture(scope="session")
def talk(media_dir: Path) -> Recording:
    """20 s, one smiling face, synthetic speech with a negative passage, a WebVTT transcript."""
    return make_recording(media_dir / "talk.mp4", transcript=media_dir / "talk.vtt")


@pytest.fixture(scope="session")
def silent_video(media_dir: Path) -> Recording:
    return make_recording(media_dir / "silent.mp4", duration_s=12.0, with_audio=False)


@pytest.fixture(scope="session")
def voice_only(media_dir: Path) -> Recording:
    return make_recording(media_dir / "voice.wav", duration_s=12.0, with_video=False)


@pytest.fixture(scope="session")
def livekit_binary() -> Path:
    try:
        return find_server_binary()
    except LiveKitServerError as e:
        if os.environ.get("RAPPORT_REQUIRE_LIVEKIT"):
            pytest.fail(f"RAPPORT_REQUIRE_LIVEKIT is set but {e}")
        pytest.skip(str(e))
