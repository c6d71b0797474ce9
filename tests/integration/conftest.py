"""Recordings generated once per test session, and a runner for the real `rapport` CLI."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from rapport.livekit import LiveKitServerError, LocalServer, find_server_binary
from rapport.samples import Recording, make_recording
from tests.fakes import redis as fake_redis


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


@pytest.fixture(scope="session")
def redis_server() -> Iterator[fake_redis.RedisServer]:
    """A private redis-server on 127.0.0.1; skipped without the binary (failed where CI requires
    it: RAPPORT_REQUIRE_REDIS)."""
    binary = fake_redis.server_binary()
    if binary is None:
        why = "redis-server not found (scripts/setup --dev installs it)"
        if os.environ.get("RAPPORT_REQUIRE_REDIS"):
            pytest.fail(why)
        pytest.skip(why)
    with fake_redis.redis_server(binary) as server:
        yield server


@dataclass(frozen=True)
class LiveKitPair:
    """Two nodes of one LiveKit cluster: same Redis, same keys, so a token signed by either is
    good on both, and a room made through one is served through the other."""

    a: LocalServer  # 127.0.0.1
    b: LocalServer  # 127.0.0.2
    redis: fake_redis.RedisServer

    @property
    def nodes(self) -> tuple[LocalServer, LocalServer]:
        return (self.a, self.b)


@pytest.fixture(scope="session")
def livekit_pair(
    livekit_binary: Path,
    redis_server: fake_redis.RedisServer,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[LiveKitPair]:
    logs = tmp_path_factory.mktemp("livekit-pair")
    keys = ("API" + secrets.token_hex(6), secrets.token_urlsafe(32))

    def node(host: str, name: str) -> LocalServer:
        return LocalServer(
            binary=livekit_binary,
            log_path=logs / f"{name}.log",
            host=host,
            redis_address=redis_server.address,
            keys=keys,
        )

    with node("127.0.0.1", "node-a") as a, node("127.0.0.2", "node-b") as b:
        yield LiveKitPair(a, b, redis_server)
