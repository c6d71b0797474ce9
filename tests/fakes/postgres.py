"""A private PostgreSQL server for tests: its own cluster in a temp folder, on 127.0.0.1, torn
down afterwards. Uses the server binaries of the machine (`scripts/setup --dev` installs them)."""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path


def server_bin() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=_version)
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb else None


def _version(path: str) -> int:
    part = Path(path).parts[-3]
    return int(part) if part.isdigit() else 0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class PostgresServer:
    """A private cluster that a test may stop and start again (a database outage, for real)."""

    bin_dir: Path
    root: Path
    port: int
    as_user: list[str]
    running: bool = False

    @property
    def url(self) -> str:
        return f"postgresql+asyncpg://rapport@127.0.0.1:{self.port}/postgres"

    def _run(self, *cmd: str) -> None:
        subprocess.run([*self.as_user, *cmd], check=True, capture_output=True, timeout=120)

    def _ctl(self, *args: str) -> None:
        self._run(str(self.bin_dir / "pg_ctl"), "-D", str(self.root / "data"), *args)

    def start(self) -> None:
        """Returns once the server accepts connections."""
        options = f"-c listen_addresses=127.0.0.1 -p {self.port} -k {self.root} -c fsync=off"
        self._ctl("-o", options, "-l", str(self.root / "log"), "-w", "start")
        self.running = True

    def stop(self, mode: str = "immediate") -> None:
        """immediate: every connection is cut at once, as when the database host dies."""
        self._ctl("-m", mode, "-w", "stop")
        self.running = False


@contextmanager
def postgres_cluster(bin_dir: Path) -> Iterator[PostgresServer]:
    """A started server, torn down afterwards. It refuses to run as root, so as root it runs as
    the `postgres` user the package creates."""
    as_user: list[str] = []
    root = Path(tempfile.mkdtemp(prefix="rapport-pg-"))
    root.chmod(0o755)
    if os.geteuid() == 0:
        as_user = ["runuser", "-u", "postgres", "--"]
        shutil.chown(root, "postgres")
    server = PostgresServer(bin_dir, root, _free_port(), as_user)
    server._run(
        str(bin_dir / "initdb"),
        "-D",
        str(root / "data"),
        "-A",
        "trust",
        "-U",
        "rapport",
        "--no-sync",
    )
    server.start()
    try:
        yield server
    finally:
        if server.running:  # a test may have left it stopped
            server.stop()
        shutil.rmtree(root, ignore_errors=True)


@contextmanager
def postgres_server(bin_dir: Path) -> Iterator[str]:
    """Yields an async SQLAlchemy URL of a private server."""
    with postgres_cluster(bin_dir) as server:
        yield server.url
