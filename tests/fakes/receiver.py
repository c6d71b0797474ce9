"""A real HTTP webhook receiver on 127.0.0.1, scripted to fail, stall or answer as a test needs."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass(frozen=True)
class Received:
    headers: dict[str, str]
    body: bytes
    at: float


@dataclass
class Receiver:
    url: str = ""
    received: list[Received] = field(default_factory=list)
    script: list[tuple[int, dict[str, str]]] = field(default_factory=list)
    """Responses to give first, in order (status, headers); then 204 for good."""
    delay_s: float = 0.0
    lock: threading.Lock = field(default_factory=threading.Lock)
    attempts: list[Received] = field(default_factory=list)
    """Every request, answered with success or not."""

    def respond(self, request: Received) -> tuple[int, dict[str, str]]:
        with self.lock:
            self.attempts.append(request)
            if self.script:
                return self.script.pop(0)
            self.received.append(request)
            return 204, {}

    def wait_for(self, predicate: object, timeout: float = 30.0) -> list[Received]:
        assert callable(predicate)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                got = list(self.received)
            if predicate(got):
                return got
            time.sleep(0.05)
        raise AssertionError(f"receiver: condition not met in {timeout} s ({len(got)} received)")


@contextmanager
def webhook_receiver(host: str = "127.0.0.1") -> Iterator[Receiver]:
    """A receiver listening on `host` (any loopback address) at a free port."""
    receiver = Receiver()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("content-length", 0)))
            if receiver.delay_s:
                time.sleep(receiver.delay_s)
            request = Received({k.lower(): v for k, v in self.headers.items()}, body, time.time())
            status, headers = receiver.respond(request)
            self.send_response(status)
            for k, v in headers.items():
                self.send_header(k, v)
            self.send_header("content-length", "0")
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer((host, 0), Handler)
    server.daemon_threads = True
    receiver.url = f"http://{host}:{server.server_address[1]}/hooks"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield receiver
    finally:
        server.shutdown()
        server.server_close()
