"""Outbound URL safety for webhook endpoints: refuse URLs that reach internal addresses (SSRF).

``check_url`` resolves the host and refuses the URL when any address is not publicly routable,
unless the operator allowed that address via ``webhooks.allowed_networks``. Deliveries connect to
the returned addresses (events/pinned.py), never re-resolving the name, so DNS rebinding cannot
slip past the check.

Names resolve through the operating system (DNS) unless ``webhooks.resolve_table`` is set: then
``table_resolver`` answers from that table alone and no lookup leaves the machine (tests and the
contract run use it; a name not in the table does not resolve).
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable, Mapping, Sequence
from urllib.parse import urlsplit

from rapport.errors import InputError

Resolver = Callable[[str, int], list[str]]
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

ALLOWED_NETWORKS_KEY = "webhooks.allowed_networks"
_DEFAULT_PORTS = {"http": 80, "https": 443}
_SHARED_ADDRESS_SPACE = ipaddress.IPv4Network("100.64.0.0/10")
_NAT64_WELL_KNOWN = ipaddress.IPv6Network("64:ff9b::/96")
_NAT64_LOCAL_USE = ipaddress.IPv6Network("64:ff9b:1::/48")


class UnsafeUrl(InputError):
    """A webhook URL that must not be called: bad shape, or it reaches an internal address."""


def system_resolver(host: str, port: int) -> list[str]:
    """Addresses for ``host`` from the operating system's resolver (getaddrinfo)."""
    infos = socket.getaddrinfo(host, port, proto=socket.IPPROTO_TCP)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


def table_resolver(table: Mapping[str, Sequence[str]]) -> Resolver:
    """A resolver that answers from ``table`` (host name -> addresses; names compare without case
    and without a trailing dot) and never asks DNS: a name not in it fails as an unknown name
    does (socket.gaierror). The addresses are checked like any resolver's answer."""
    known = {name.lower().rstrip("."): list(addresses) for name, addresses in table.items()}

    def resolve(host: str, port: int) -> list[str]:
        addresses = known.get(host.lower().rstrip("."))
        if addresses is None:
            raise socket.gaierror(socket.EAI_NONAME, "not in webhooks.resolve_table")
        return list(addresses)

    return resolve


def resolver_for(table: Mapping[str, Sequence[str]] | None) -> Resolver:
    """The resolver ``webhooks.resolve_table`` asks for: the table when set, else the system's."""
    return system_resolver if table is None else table_resolver(table)


def parse_networks(cidrs: Sequence[str]) -> list[IPNetwork]:
    """CIDR strings as networks; InputError naming the first that does not parse."""
    if isinstance(cidrs, str):
        cidrs = [cidrs]
    networks: list[IPNetwork] = []
    for cidr in cidrs:
        try:
            networks.append(ipaddress.ip_network(cidr.strip(), strict=False))
        except (ValueError, TypeError, AttributeError):
            raise InputError(f"{ALLOWED_NETWORKS_KEY}: {cidr!r} is not a valid CIDR") from None
    return networks


def _embedded_ipv4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address carried inside a mapped, compatible, 6to4 or NAT64 IPv6 address."""
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip.sixtofour is not None:
        return ip.sixtofour
    if ip in _NAT64_WELL_KNOWN:
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    # IPv4-compatible (deprecated): ::a.b.c.d, excluding :: and ::1 themselves.
    if int(ip) >> 32 == 0 and int(ip) > 1:
        return ipaddress.IPv4Address(int(ip))
    return None


def _forbidden(ip: IPAddress) -> str | None:
    """Why ``ip`` must not be called, or None when it is publicly routable."""
    if isinstance(ip, ipaddress.IPv6Address):
        embedded = _embedded_ipv4(ip)
        if embedded is not None:
            reason = _forbidden(embedded)
            return None if reason is None else f"an IPv6 form of {embedded} ({reason})"
        if ip in _NAT64_LOCAL_USE:
            return "a local-use NAT64 address"
    if ip.is_unspecified:
        return "unspecified"
    if ip.is_loopback:
        return "loopback"
    if ip.is_link_local:
        return "link-local (cloud metadata lives here)"
    if ip.is_multicast:
        return "multicast"
    if isinstance(ip, ipaddress.IPv4Address) and ip in _SHARED_ADDRESS_SPACE:
        return "shared address space (100.64.0.0/10)"
    if ip.is_reserved:
        return "reserved"
    if ip.is_private:
        return "private"
    if not ip.is_global:
        return "not globally routable"
    return None


def _allowed(ip: IPAddress, networks: Sequence[IPNetwork]) -> bool:
    candidates: list[IPAddress] = [ip]
    if isinstance(ip, ipaddress.IPv6Address) and (embedded := _embedded_ipv4(ip)) is not None:
        candidates.append(embedded)
    return any(c in net for c in candidates for net in networks)


def _parse_ip(text: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


def check_url(
    url: str,
    *,
    allowed_networks: Sequence[str] = (),
    resolve: Resolver = system_resolver,
) -> list[str]:
    """The addresses ``url`` resolves to, or UnsafeUrl saying why it must not be called."""
    networks = parse_networks(allowed_networks)
    if any(ch.isspace() or ord(ch) < 0x20 or ord(ch) == 0x7F for ch in url):
        raise UnsafeUrl("webhook URL contains whitespace or control characters")
    try:
        parts = urlsplit(url)
    except ValueError as exc:
        raise UnsafeUrl(f"webhook URL does not parse: {exc}") from None
    scheme = parts.scheme.lower()
    if scheme not in _DEFAULT_PORTS:
        raise UnsafeUrl(f"webhook URL scheme must be http or https, not {scheme or 'none'!r}")
    if "@" in parts.netloc:
        raise UnsafeUrl("webhook URL must not carry credentials (user:password@)")
    host = parts.hostname
    if not host:
        raise UnsafeUrl("webhook URL has no host")
    try:
        port = parts.port
    except ValueError:
        raise UnsafeUrl("webhook URL has an invalid port") from None
    if port is None:
        if parts.netloc.endswith(":"):
            raise UnsafeUrl("webhook URL has an empty port")
        port = _DEFAULT_PORTS[scheme]
    if not 0 < port < 65536:
        raise UnsafeUrl(f"webhook URL port {port} is out of range")

    literal = _parse_ip(host)
    if literal is not None:
        raw = [host]
    else:
        try:
            raw = resolve(host, port)
        except (OSError, UnicodeError, ValueError) as exc:
            raise UnsafeUrl(f"webhook host {host!r} does not resolve: {exc}") from None
        if not raw:
            raise UnsafeUrl(f"webhook host {host!r} resolves to no address")

    addresses: list[str] = []
    for text in raw:
        ip = _parse_ip(text)
        if ip is None:
            raise UnsafeUrl(f"webhook host {host!r} resolved to {text!r}, which is not an address")
        reason = _forbidden(ip)
        if reason is not None and not _allowed(ip, networks):
            where = (
                f"webhook address {ip} is"
                if literal is not None
                else f"webhook host {host!r} resolves to {ip}, which is"
            )
            raise UnsafeUrl(
                f"{where} {reason}; to allow it, add a network containing it "
                f"to {ALLOWED_NETWORKS_KEY}"
            )
        if str(ip) not in addresses:
            addresses.append(str(ip))
    return addresses
