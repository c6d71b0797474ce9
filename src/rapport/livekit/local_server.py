"""A private livekit-server on loopback, for the tests, `rapport demo --livekit` and the benchmark.

Every address it advertises or contacts is on loopback: signal and API on its `host` (127.0.0.1
unless told), media on 127.0.0.1 (ICE candidates are limited to it, and the STUN server it hands to
clients is its own UDP port, so no client tries a public STUN server). Keys are random per instance
unless given; ports are picked free once and kept across `restart()`.

Several instances on distinct loopback hosts (127.0.0.1, 127.0.0.2, ...) that share one Redis
(`redis_address`) and the same `keys` form one LiveKit cluster: a room made through one node is
seen through the others, and a participant may join it through any of them. Their media share
127.0.0.1 (node IP and ICE) on distinct ports: ICE gathers only addresses that an interface holds,
and a stock Linux loopback holds 127.0.0.1 alone. It answers on all of 127.0.0.0/8, yet a node
with ICE limited to 127.0.0.2 gathers no candidate, and one with node IP 127.0.0.2 advertises
candidates its sockets do not receive on: either way clients time out on the peer connection.
"""

from __future__ import annotations

import datetime
import ipaddress
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from types import TracebackType
from typing import IO, Any

from livekit import api

from rapport.errors import RapportError

_REPO_BINARY = Path(__file__).resolve().parents[3] / "build" / "livekit-server"
_DEFAULT_HOST = "127.0.0.1"
# The node IP, the only ICE candidate address and the STUN address, whatever the host.
_MEDIA_HOST = "127.0.0.1"
_NODE_ID = re.compile(rb'"nodeID": "([A-Za-z0-9_]+)"')
# The server reads these from its environment; ours must not leak into it.
_SERVER_ENV = ("LIVEKIT_CONFIG", "LIVEKIT_KEYS", "LIVEKIT_REGION", "NODE_IP", "UDP_PORT")


class LiveKitServerError(RapportError):
    """The local livekit-server is missing, or did not start."""


def find_server_binary() -> Path:
    """$RAPPORT_LIVEKIT_SERVER, else <repo>/build/livekit-server, else livekit-server on PATH."""
    env = os.environ.get("RAPPORT_LIVEKIT_SERVER")
    if env:
        if not (Path(env).is_file() and os.access(env, os.X_OK)):
            raise LiveKitServerError(f"RAPPORT_LIVEKIT_SERVER={env} is not an executable file")
        return Path(env)
    if _REPO_BINARY.is_file() and os.access(_REPO_BINARY, os.X_OK):
        return _REPO_BINARY
    found = shutil.which("livekit-server")
    if found:
        return Path(found)
    raise LiveKitServerError(
        "livekit-server not found: run `scripts/setup --livekit` (or set RAPPORT_LIVEKIT_SERVER)"
    )


def _free_port(kind: socket.SocketKind, host: str) -> int:
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind((host, 0))
        port: int = s.getsockname()[1]
        return port


class LocalServer:
    """Runs livekit-server bound to a loopback address. Use as a context manager, or
    start()/stop().

    `webhook_url`: the server POSTs its webhooks there, signed with `api_key`/`api_secret`.
    `host`: the loopback address its signal and API listen on (Linux answers on all of
    127.0.0.0/8 without set-up); media stay on 127.0.0.1. `redis_address` ("host:port"): join the
    cluster of the nodes that use that Redis. `keys` (api_key, api_secret): shared by the nodes of
    one cluster; random when not given.
    """

    def __init__(
        self,
        *,
        webhook_url: str | None = None,
        log_path: Path | None = None,
        binary: Path | None = None,
        start_timeout_s: float = 20.0,
        departure_timeout_s: int | None = None,
        host: str = _DEFAULT_HOST,
        redis_address: str | None = None,
        keys: tuple[str, str] | None = None,
    ) -> None:
        """`departure_timeout_s`: how long a room outlives its last participant (server default
        20 s); tests set it short to see rooms end."""
        if not ipaddress.ip_address(host).is_loopback:
            raise ValueError(f"host must be a loopback address, not {host}")
        self.binary = binary or find_server_binary()
        self.host = host
        self.redis_address = redis_address
        if keys is None:
            keys = ("API" + secrets.token_hex(6), secrets.token_urlsafe(32))
        self.api_key, self.api_secret = keys
        self.port = _free_port(socket.SOCK_STREAM, host)
        self.rtc_tcp_port = _free_port(socket.SOCK_STREAM, _MEDIA_HOST)
        self.udp_port = _free_port(socket.SOCK_DGRAM, _MEDIA_HOST)
        self.webhook_url = webhook_url
        if log_path is None:
            fd, name = tempfile.mkstemp(prefix="livekit-server-", suffix=".log")
            os.close(fd)
            log_path = Path(name)
        self.log_path = log_path
        self.start_timeout_s = start_timeout_s
        self.departure_timeout_s = departure_timeout_s
        self._proc: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None
        # This run's node in the cluster (new on every start); CreateRoomRequest(node_id=...)
        # places a room on it.
        self.node_id: str | None = None

    @property
    def url(self) -> str:
        """Signal URL for rtc.Room.connect."""
        return f"ws://{self.host}:{self.port}"

    @property
    def http_url(self) -> str:
        """Base URL for the server API (livekit.api.LiveKitAPI)."""
        return f"http://{self.host}:{self.port}"

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def config(self) -> dict[str, Any]:
        rtc: dict[str, Any] = {
            "tcp_port": self.rtc_tcp_port,
            "udp_port": self.udp_port,  # one UDP mux port: stays the same across restart()
            "use_external_ip": False,
            "enable_loopback_candidate": True,
            "ips": {"includes": [f"{_MEDIA_HOST}/32"]},
            # Without STUN servers the server tells clients to use Google's; keep them local.
            "stun_servers": [f"{_MEDIA_HOST}:{self.udp_port}"],
        }
        conf: dict[str, Any] = {
            "port": self.port,
            "keys": {self.api_key: self.api_secret},
            "rtc": rtc,
            "logging": {"level": "info"},
        }
        if self.redis_address is not None:
            conf["redis"] = {"address": self.redis_address}
        if self.departure_timeout_s is not None:
            conf["room"] = {"departure_timeout": self.departure_timeout_s}
        if self.webhook_url:
            conf["webhook"] = {"api_key": self.api_key, "urls": [self.webhook_url]}
        return conf

    def start(self) -> LocalServer:
        if self.running:
            return self
        env = {k: v for k, v in os.environ.items() if k not in _SERVER_ENV}
        body = json.dumps(self.config())  # JSON is YAML
        cmd = [str(self.binary), "--bind", self.host, "--node-ip", _MEDIA_HOST]
        cmd += ["--config-body", body]
        self._log = self.log_path.open("ab")
        log_start = self._log.tell()
        self._proc = subprocess.Popen(
            cmd, stdout=self._log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env
        )
        try:
            self._wait_ready()
        except BaseException:
            self.stop()
            raise
        self.node_id = self._read_node_id(log_start)
        return self

    def _read_node_id(self, offset: int) -> str | None:
        """The node ID from this run's "starting LiveKit server" line, logged before it serves."""
        try:
            with self.log_path.open("rb") as f:
                f.seek(offset)
                found = _NODE_ID.search(f.read())
        except OSError:
            return None
        return found.group(1).decode() if found else None

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + self.start_timeout_s
        while time.monotonic() < deadline:
            assert self._proc is not None
            if self._proc.poll() is not None:
                raise LiveKitServerError(
                    f"livekit-server exited with code {self._proc.returncode}: {self._last_log()}"
                )
            try:
                with urllib.request.urlopen(self.http_url, timeout=1.0) as r:
                    if r.status == 200:
                        return
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.1)
        raise LiveKitServerError(
            f"livekit-server did not answer on {self.http_url} within {self.start_timeout_s:g} s "
            f"(log: {self.log_path})"
        )

    def _last_log(self) -> str:
        try:
            lines = self.log_path.read_text(errors="replace").strip().splitlines()
        except OSError:
            return f"see {self.log_path}"
        return (lines[-1] if lines else "no output") + f" (log: {self.log_path})"

    def stop(self) -> None:
        """Kill the server (no graceful drain: clients see it vanish, as in a crash)."""
        if self._proc is not None:
            if self._proc.poll() is None:
                self._proc.kill()
            self._proc.wait(timeout=10)
            self._proc = None
            self.node_id = None
        if self._log is not None:
            self._log.close()
            self._log = None

    def freeze(self, seconds: float) -> None:
        """Stop the server (SIGSTOP) for `seconds`: nothing flows either way while connections
        stay open, as in a network cut; then it goes on where it was."""
        assert self._proc is not None
        self._proc.send_signal(signal.SIGSTOP)
        try:
            time.sleep(seconds)
        finally:
            self._proc.send_signal(signal.SIGCONT)

    def restart(self) -> None:
        """Kill and start again on the same ports and keys (rooms and participants are lost)."""
        self.stop()
        self.start()

    def token(
        self,
        identity: str,
        *,
        room: str,
        name: str | None = None,
        publish: bool = True,
        subscribe: bool = True,
        publish_data: bool = True,
        hidden: bool = False,
        agent: bool = False,
        metadata: str | None = None,
        attributes: dict[str, str] | None = None,
        ttl: datetime.timedelta = datetime.timedelta(hours=6),
    ) -> str:
        """A join token for `room`, signed with this server's key.

        `agent=True` makes an agent participant (kind "agent"): the server forwards transcription
        segments only from agents, and lets them send text streams on another's behalf.
        """
        grants = api.VideoGrants(
            room_join=True,
            room=room,
            can_publish=publish,
            can_subscribe=subscribe,
            can_publish_data=publish_data,
            hidden=hidden or None,
            agent=agent or None,
        )
        tok = api.AccessToken(self.api_key, self.api_secret).with_identity(identity)
        tok = tok.with_grants(grants).with_ttl(ttl).with_name(name or identity)
        if agent:
            tok = tok.with_kind("agent")
        if metadata is not None:
            tok = tok.with_metadata(metadata)
        if attributes:
            tok = tok.with_attributes(attributes)
        return tok.to_jwt()

    def __enter__(self) -> LocalServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
