"""Webhook connections go to the addresses the SSRF check approved, never to a fresh lookup:
between the check and the connection a name could be re-pointed at an internal address (DNS
rebinding). The URL keeps its host name, so the Host header and TLS (SNI, certificate checks)
are as for any client; only the TCP connection's address is pinned."""

from __future__ import annotations

import ssl
from collections.abc import Iterable, Sequence

import httpcore
import httpx

_DEFAULT_PORTS = {"http": 80, "https": 443}


def _origin(url: str) -> tuple[str, int]:
    u = httpx.URL(url)
    return u.raw_host.decode("ascii").lower(), u.port or _DEFAULT_PORTS[u.scheme]


class PinnedBackend(httpcore.AsyncNetworkBackend):
    """Connects to the pinned addresses of (host, port); refuses a host never pinned."""

    def __init__(self) -> None:
        self._inner = httpcore.AnyIOBackend()
        self._pins: dict[tuple[str, int], tuple[str, ...]] = {}

    def pin(self, url: str, addresses: Sequence[str]) -> None:
        self._pins[_origin(url)] = tuple(addresses)

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        addresses = self._pins.get((host.lower(), port), ())
        if not addresses:
            raise httpcore.ConnectError(f"{host}:{port} has no checked address")
        error: httpcore.ConnectError | None = None
        for address in addresses:
            try:
                return await self._inner.connect_tcp(
                    address, port, timeout, local_address, socket_options
                )
            except httpcore.ConnectError as e:
                error = e
        assert error is not None
        raise error

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        raise httpcore.ConnectError("webhooks do not use unix sockets")

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


class PinnedTransport(httpx.AsyncHTTPTransport):
    """httpx's transport over a PinnedBackend. httpx takes no network backend, so the pool it
    built is replaced by one with the same TLS context (tests/unit/events/test_pinned.py
    notices if an httpx upgrade stops routing requests through `_pool`)."""

    def __init__(self, backend: PinnedBackend) -> None:
        super().__init__()
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=ssl.create_default_context(), network_backend=backend
        )
