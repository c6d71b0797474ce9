"""A private Redis server for tests: on 127.0.0.1 with a free port, no persistence, its working
folder in a temp directory, killed afterwards. Uses the machine's `redis-server` binary
(`scripts/setup --dev` installs it); LiveKit nodes that share it form one cluster."""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

HOST = "127.0.0.1"


def server_binary() -> Path | None:
    """`redis-server` on PATH, else /usr/bin/redis-server, else None."""
    found = shutil.which("redis-server") or shutil.which("redis-server", path="/usr/bin")
    return Path(found) if found else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def ping(port: int, timeout: float = 1.0) -> bool:
    """True when a Redis server answers PING on 127.0.0.1:`port` (inline command, RESP reply)."""
    try:
        with socket.create_connection((HOST, port), timeout=timeout) as s:
            s.sendall(b"PING\r\n")
            reply = b""
            while not reply.endswith(b"\r\n"):
                chunk = s.recv(64)
                if not chunk:
                    break
                reply += chunk
    except OSError:
        return False
    return reply.startswith(b"+PONG")


@dataclass
class RedisServer:
    port: int
    root: Path
    proc: subprocess.Popen[bytes]

    @property
    def address(self) -> str:
        """host:port, as LiveKit's `redis.address` takes it."""
        return f"{HOST}:{self.port}"

    @property
    def log_path(self) -> Path:
        return self.root / "redis.log"


@contextmanager
def redis_server(binary: Path, *, start_timeout_s: float = 10.0) -> Iterator[RedisServer]:
    """A started server (it answered PING), stopped and its folder removed afterwards."""
    root = Path(tempfile.mkdtemp(prefix="rapport-redis-"))
    port = _free_port()
    cmd = [
        str(binary),
        "--bind", HOST,
        "--port", str(port),
        "--save", "",
        "--appendonly", "no",
        "--dir", str(root),
        "--daemonize", "no",
        "--protected-mode", "yes",
        "--logfile", "",
    ]  # fmt: skip
    log = (root / "redis.log").open("wb")
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    server = RedisServer(port, root, proc)
    try:
        deadline = time.monotonic() + start_timeout_s
        while not ping(port):
            if proc.poll() is not None:
                raise RuntimeError(
                    f"redis-server exited with code {proc.returncode}: "
                    f"{server.log_path.read_text(errors='replace').strip()[-2000:]}"
                )
            if time.monotonic() >= deadline:
                raise RuntimeError(
                    f"redis-server did not answer PING on {server.address} within "
                    f"{start_timeout_s:g} s (log: {server.log_path})"
                )
            time.sleep(0.02)
        yield server
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)
        log.close()
        shutil.rmtree(root, ignore_errors=True)
