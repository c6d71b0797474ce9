"""Running the service: uvicorn on the configured address, and API-key administration."""

from __future__ import annotations

import asyncio
import socket
import sys

import uvicorn

from rapport.config import Settings
from rapport.consent.records import KeyRing
from rapport.errors import InputError
from rapport.service.app import create_app, open_database
from rapport.service.auth import (
    DEFAULT_PROJECT,
    create_api_key,
    list_api_keys,
    revoke_api_key,
)


def serve(settings: Settings, host: str | None, port: int | None) -> int:
    """Blocks until interrupted. Prints one line with the address once it accepts connections
    (port 0 picks a free one), so scripts and tests can wait for it."""
    config = uvicorn.Config(
        create_app(settings),
        log_level="warning",
        h11_max_incomplete_event_size=settings.service.max_header_bytes,
        log_config=None,  # uvicorn's loggers go to the root handler: logging.format applies
        ws_ping_interval=20,
        ws_ping_timeout=20,
    )
    server = uvicorn.Server(config)
    sock = _listen(
        host or settings.service.host,
        settings.service.port if port is None else port,
        settings.service.send_buffer_bytes,
    )

    async def run() -> None:
        task = asyncio.create_task(server.serve(sockets=[sock]))
        while not server.started and not task.done():
            await asyncio.sleep(0.05)
        if server.started:
            bound = server.servers[0].sockets[0]
            addr_host, addr_port = bound.getsockname()[:2]
            print(f"rapport: listening on http://{addr_host}:{addr_port}", flush=True)
        await task

    try:
        asyncio.run(run())
    except KeyboardInterrupt:  # uvicorn re-raises the signal once it has shut down cleanly
        print("rapport: stopped", file=sys.stderr)
        return 0
    return 0 if server.started else 1


def _listen(host: str, port: int, send_buffer: int | None) -> socket.socket:
    """The listening socket; accepted connections inherit its send buffer size."""
    try:
        family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][0]
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if send_buffer is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, send_buffer)
        sock.bind((host, port))
    except OSError as e:
        raise InputError(f"cannot listen on {host}:{port}: {e.strerror or e}") from e
    sock.set_inheritable(True)
    return sock


def keys(
    settings: Settings,
    action: str,
    arg: str | None,
    project: str | None = None,
    scope: str = "backend",
) -> list[str]:
    """`rapport keys create NAME [--project P --scope S] | list [--project P] | revoke KEY_ID`:
    lines for stdout."""

    if action == "rotate-signing":
        ring = KeyRing.rotate(settings.service.data_dir / "keys")
        return [f"signing key {ring.current.kid} added; restart the service to sign with it"]

    async def run() -> list[str]:
        db = await open_database(settings)
        try:
            if action == "create":
                assert arg is not None
                row, key = await create_api_key(db, arg, project or DEFAULT_PROJECT, scope)
                print(
                    f"created {row.id} for {arg!r} in project {row.project!r} with scope "
                    f"{row.scope!r}; the key is shown only this once:",
                    file=sys.stderr,
                )
                return [key]
            if action == "revoke":
                assert arg is not None
                if await revoke_api_key(db, arg) is None:
                    raise InputError(f"no API key {arg!r} (see `rapport keys list`)")
                return [f"revoked {arg}"]
            return [
                f"{k.id}\t{k.project}\t{k.scope}\t{k.name}\tcreated {k.created_at:%Y-%m-%d}"
                + (f"\trevoked {k.revoked_at:%Y-%m-%d}" if k.revoked_at else "")
                for k in await list_api_keys(db, project)
            ]
        finally:
            await db.close()

    return asyncio.run(run())


if __name__ == "__main__":
    sys.exit("use `rapport serve`")
