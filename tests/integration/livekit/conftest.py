"""A private livekit-server on 127.0.0.1 for the session, a two-node LiveKit cluster on loopback
(127.0.0.1 and 127.0.0.2 sharing a private Redis), and a short simulcast-sized clip."""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from rapport.livekit import LocalServer
from rapport.samples import Recording, make_recording
from tests.fakes import redis as fake_redis

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
