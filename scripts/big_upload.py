#!/usr/bin/env python3
"""A 300 MiB unauthenticated upload against a real `rapport serve`: how soon it is refused and how
much the server's memory grows.

    .venv/bin/python scripts/big_upload.py [--mib 300] [--rounds 3]

The server runs with its defaults (SQLite in a temp folder, service.max_body_bytes 256 KiB). Each
round sends the body twice over a raw socket, as fast as the kernel takes it: once with a
Content-Length header, once chunked, to POST /v1/consents without a key. Printed per upload:
the status, seconds from the first byte sent to the answer (the sender keeps sending meanwhile),
bytes the server read (its rapport_http_request_body_bytes counter) and its RSS after.
"""

from __future__ import annotations

import argparse
import contextlib
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
import yaml
from prometheus_client.parser import text_string_to_metric_families

CHUNK = 1 << 20


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


def body_read(url: str) -> float:
    for family in text_string_to_metric_families(httpx.get(f"{url}/metrics").text):
        if family.name == "rapport_http_request_body_bytes":
            return sum(s.value for s in family.samples if s.name.endswith("_total"))
    return 0.0


def upload(url: str, mib: int, chunked: bool) -> tuple[int, float]:
    host, port = url.removeprefix("http://").split(":")
    framing = "Transfer-Encoding: chunked" if chunked else f"Content-Length: {mib * CHUNK}"
    head = f"POST /v1/consents HTTP/1.1\r\nHost: x\r\n{framing}\r\n\r\n".encode()
    piece = (b"%x\r\n" % CHUNK + b"a" * CHUNK + b"\r\n") if chunked else b"a" * CHUNK
    with socket.create_connection((host, int(port)), timeout=60) as sock:

        def send() -> None:
            try:
                sock.sendall(head)
                for _ in range(mib):
                    sock.sendall(piece)
            except OSError:
                pass  # refused and closed: the rest was never read

        t0 = time.monotonic()
        sender = threading.Thread(target=send, daemon=True)
        sender.start()
        answer = sock.recv(4096)  # the answer arrives while the body is still being sent
        took = time.monotonic() - t0
        with contextlib.suppress(OSError):  # the server may have closed it already
            sock.shutdown(socket.SHUT_RDWR)
        sender.join(60)
    return (int(answer.split(b" ", 2)[1]) if answer else 0), took


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mib", type=int, default=300)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        config = Path(tmp) / "rapport.yaml"
        config.write_text(yaml.safe_dump({"service": {"data_dir": str(Path(tmp) / "data")}}))
        proc = subprocess.Popen(
            [sys.executable, "-m", "rapport.cli", "--config", str(config), "serve", "--port", "0"],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        try:
            assert proc.stdout is not None
            url = proc.stdout.readline().split()[-1]
            httpx.get(f"{url}/healthz")
            start = rss_mib(proc.pid)
            print(f"server RSS before: {start:.1f} MiB; body limit: the default")
            print(f"{'upload':<24}{'status':>7}{'answer s':>10}{'read KiB':>10}{'RSS MiB':>9}")
            for r in range(args.rounds):
                for chunked in (False, True):
                    before = body_read(url)
                    status, took = upload(url, args.mib, chunked)
                    read = (body_read(url) - before) / 1024
                    name = f"{args.mib} MiB {'chunked' if chunked else 'sized'} #{r + 1}"
                    print(
                        f"{name:<24}{status:>7}{took:>10.3f}{read:>10.0f}{rss_mib(proc.pid):>9.1f}"
                    )
            grew = rss_mib(proc.pid) - start
            print(f"server RSS after: {rss_mib(proc.pid):.1f} MiB (grew {grew:+.1f} MiB)")
        finally:
            proc.terminate()
            proc.wait(20)
    return 0


if __name__ == "__main__":
    sys.exit(main())
