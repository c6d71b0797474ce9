import re

import pytest

from rapport.errors import InputError
from rapport.events.ssrf import Resolver, UnsafeUrl, check_url

PUBLIC_V4 = "93.184.215.14"
PUBLIC_V6 = "2606:2800:21f:cb07:6820:80da:af6b:8b2c"


def fake_dns(table: dict[str, list[str]]) -> Resolver:
    calls: list[tuple[str, int]] = []

    def resolve(host: str, port: int) -> list[str]:
        calls.append((host, port))
        if host not in table:
            raise OSError(f"[Errno -2] Name or service not known: {host}")
        return table[host]

    resolve.calls = calls  # type: ignore[attr-defined]
    return resolve


def no_dns(host: str, port: int) -> list[str]:
    raise AssertionError(f"resolver called for {host}:{port}")


def test_public_hostname_is_allowed_and_resolved_with_the_right_port() -> None:
    dns = fake_dns({"hooks.example.com": [PUBLIC_V4, PUBLIC_V6, PUBLIC_V4]})
    assert check_url("https://hooks.example.com/rapport", resolve=dns) == [PUBLIC_V4, PUBLIC_V6]
    check_url("http://Hooks.Example.COM:8080/x?y=1", resolve=dns)
    assert dns.calls == [("hooks.example.com", 443), ("hooks.example.com", 8080)]  # type: ignore[attr-defined]


def test_public_literal_addresses_skip_dns() -> None:
    assert check_url(f"https://{PUBLIC_V4}/hook", resolve=no_dns) == [PUBLIC_V4]
    assert check_url(f"https://[{PUBLIC_V6.upper()}]:8443/", resolve=no_dns) == [PUBLIC_V6]
    # NAT64 / 6to4 / mapped forms of a public address are fine.
    assert check_url("http://[64:ff9b::5db8:d70e]/", resolve=no_dns) == ["64:ff9b::5db8:d70e"]
    check_url("http://[2002:5db8:d70e::1]/", resolve=no_dns)


FORBIDDEN = [
    ("127.0.0.1", "loopback"),
    ("127.45.6.7", "loopback"),
    ("10.1.2.3", "private"),
    ("172.16.0.1", "private"),
    ("172.31.255.254", "private"),
    ("192.168.1.1", "private"),
    ("169.254.169.254", "link-local"),
    ("169.254.0.1", "link-local"),
    ("100.64.0.1", "shared address space"),
    ("100.127.255.254", "shared address space"),
    ("0.0.0.0", "unspecified"),
    ("0.1.2.3", "private"),
    ("224.0.0.1", "multicast"),
    ("239.255.255.250", "multicast"),
    ("240.0.0.1", "reserved"),
    ("255.255.255.255", "reserved"),
    ("192.0.2.10", "private"),
    ("::1", "loopback"),
    ("::", "unspecified"),
    ("fc00::1", "private"),
    ("fd12:3456:789a::1", "private"),
    ("fe80::1", "link-local"),
    ("ff02::1", "multicast"),
    ("2001:db8::1", "private"),
    ("100::1", "reserved"),
    ("::ffff:127.0.0.1", "IPv6 form of 127.0.0.1 (loopback)"),
    ("::ffff:169.254.169.254", "IPv6 form of 169.254.169.254 (link-local"),
    ("::ffff:10.0.0.1", "IPv6 form of 10.0.0.1 (private)"),
    ("::ffff:0.0.0.0", "IPv6 form of 0.0.0.0 (unspecified)"),
    ("::127.0.0.1", "IPv6 form of 127.0.0.1 (loopback)"),
    ("::a9fe:a9fe", "IPv6 form of 169.254.169.254"),
    ("2002:7f00:1::1", "IPv6 form of 127.0.0.1 (loopback)"),
    ("2002:a9fe:a9fe::", "IPv6 form of 169.254.169.254"),
    ("64:ff9b::7f00:1", "IPv6 form of 127.0.0.1 (loopback)"),
    ("64:ff9b::a00:1", "IPv6 form of 10.0.0.1 (private)"),
    ("64:ff9b:1::a00:1", "local-use NAT64"),
    ("2001:0:4136:e378:8000:63bf:3fff:fdd2", "private"),
]


@pytest.mark.parametrize("address, why", FORBIDDEN)
def test_forbidden_addresses_via_dns(address: str, why: str) -> None:
    dns = fake_dns({"internal.example": [address]})
    with pytest.raises(UnsafeUrl, match=r"webhooks\.allowed_networks") as err:
        check_url("https://internal.example/hook", resolve=dns)
    message = str(err.value)
    assert "\n" not in message
    assert why in message
    assert "resolves to" in message


@pytest.mark.parametrize("address, why", FORBIDDEN)
def test_forbidden_addresses_as_literals(address: str, why: str) -> None:
    host = f"[{address}]" if ":" in address else address
    with pytest.raises(UnsafeUrl, match=re.escape(why)):
        check_url(f"http://{host}:8080/", resolve=no_dns)


def test_one_private_address_among_public_ones_is_refused() -> None:
    dns = fake_dns({"rebind.example": [PUBLIC_V4, "10.0.0.7"]})
    with pytest.raises(UnsafeUrl, match=r"10\.0\.0\.7.*private"):
        check_url("https://rebind.example/", resolve=dns)


def test_allowed_networks_let_addresses_through() -> None:
    dns = fake_dns({"localhost": ["127.0.0.1", "::1"]})
    with pytest.raises(UnsafeUrl, match="::1"):
        check_url("http://localhost:9000/", allowed_networks=["127.0.0.0/8"], resolve=dns)
    got = check_url(
        "http://localhost:9000/", allowed_networks=["127.0.0.0/8", "::1/128"], resolve=dns
    )
    assert got == ["127.0.0.1", "::1"]
    assert check_url("http://127.0.0.1/", allowed_networks=["127.0.0.1/32"], resolve=no_dns)
    # The mapped form of an allowed IPv4 address is allowed too; neighbours are not.
    check_url("http://[::ffff:127.0.0.1]/", allowed_networks=["127.0.0.0/8"], resolve=no_dns)
    with pytest.raises(UnsafeUrl):
        check_url("http://10.0.0.1/", allowed_networks=["127.0.0.0/8"], resolve=no_dns)
    check_url("http://10.9.8.7/", allowed_networks=[" 10.0.0.0/8 "], resolve=no_dns)


@pytest.mark.parametrize("cidr", ["not-a-network", "10.0.0.0/33", "300.1.1.1/8", ""])
def test_invalid_cidr_is_an_input_error(cidr: str) -> None:
    with pytest.raises(InputError, match=r"webhooks\.allowed_networks") as err:
        check_url(f"https://{PUBLIC_V4}/", allowed_networks=[cidr], resolve=no_dns)
    assert not isinstance(err.value, UnsafeUrl)


@pytest.mark.parametrize(
    "url, why",
    [
        ("ftp://hooks.example.com/", "scheme"),
        ("file:///etc/passwd", "scheme"),
        ("gopher://hooks.example.com/", "scheme"),
        ("javascript:alert(1)", "scheme"),
        ("hooks.example.com/hook", "scheme"),
        ("https:///hook", "no host"),
        ("https://user:pw@hooks.example.com/", "credentials"),
        ("https://user@hooks.example.com/", "credentials"),
        (f"https://hooks.example.com@{PUBLIC_V4}/", "credentials"),
        ("https://hooks.example.com:99999/", "port"),
        ("https://hooks.example.com:0/", "port"),
        ("https://hooks.example.com:http/", "port"),
        ("https://hooks.example.com:/", "port"),
        ("https://hooks.example.com/a b", "whitespace"),
        ("https://hooks.example.com/\r\nX-Injected: 1", "whitespace"),
        ("http://[::1/", "parse"),
    ],
)
def test_malformed_urls(url: str, why: str) -> None:
    dns = fake_dns({"hooks.example.com": [PUBLIC_V4]})
    with pytest.raises(UnsafeUrl, match=why):
        check_url(url, resolve=dns)


def test_resolution_failures_are_unsafe() -> None:
    dns = fake_dns({"empty.example": [], "weird.example": ["not-an-ip"]})
    with pytest.raises(UnsafeUrl, match="does not resolve"):
        check_url("https://nowhere.example/", resolve=dns)
    with pytest.raises(UnsafeUrl, match="no address"):
        check_url("https://empty.example/", resolve=dns)
    with pytest.raises(UnsafeUrl, match="not an address"):
        check_url("https://weird.example/", resolve=dns)


def test_unsafe_url_is_an_input_error() -> None:
    assert issubclass(UnsafeUrl, InputError)
