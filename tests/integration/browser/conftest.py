"""A real `rapport serve` on a fixed port (a restarted server must come back where the page
left it; the page's origin is the server's own, which the events WebSocket accepts) and a
headless Chromium (Debian's, driven by Playwright with `executable_path`; scripts/setup --dev
installs both). Without Chromium the tests are skipped, or fail where CI requires them
(RAPPORT_REQUIRE_BROWSER=1)."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.integration.service.conftest import Service, short_talk  # noqa: F401  (a fixture)

REPO = Path(__file__).resolve().parents[3]
IMG = REPO / "docs" / "img"

SEEN_SCRIPT = """
window.__seen = {};
new MutationObserver(() => {
  for (const tr of document.querySelectorAll("tr[data-seq]")) {
    const seq = tr.dataset.seq;
    if (!(seq in window.__seen)) window.__seen[seq] = Date.now();
  }
}).observe(document, { childList: true, subtree: true });
"""
"""Test-side only: when each window's row first appeared on the page (epoch ms)."""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class FixedPortService(Service):
    """The conftest's Service on one port for its whole life (restarts included)."""

    def __init__(self, root: Path, models_dir: Path, media: Path, overrides: dict[str, Any]):
        self.port = _free_port()
        super().__init__(root, models_dir, media, overrides)

    def start(self) -> None:
        self.log = (self.root / "serve.log").open("a")
        command = [sys.executable, "-m", "rapport.cli", "--config", str(self.config)]
        self.proc = subprocess.Popen(
            [*command, "serve", "--port", str(self.port)],
            stdout=subprocess.PIPE,
            stderr=self.log,
            text=True,
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        assert line.startswith("rapport: listening on "), f"server did not start: {line!r}"
        self.url = line.split()[-1]
        assert self.url.endswith(f":{self.port}"), self.url
        self.http.base_url = httpx.URL(self.url)

    @property
    def dashboard(self) -> str:
        return f"{self.url}/dashboard/"


def make_fixed_service(root: Path, models_dir: Path, media_dir: Path) -> FixedPortService:
    svc = FixedPortService(root, models_dir, media_dir, {})
    svc.start()
    return svc


@pytest.fixture(scope="module")
def chromium() -> Iterator[Any]:
    exe = shutil.which("chromium")
    if exe is None:
        why = "chromium not found (scripts/setup --dev installs Debian's)"
        if os.environ.get("RAPPORT_REQUIRE_BROWSER"):
            pytest.fail(why)
        pytest.skip(why)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=exe, args=["--no-sandbox", "--disable-gpu"])
        yield browser
        browser.close()


class Page:
    """A dashboard tab that collects console errors and page errors."""

    def __init__(self, browser: Any, width: int = 1100, height: int = 900) -> None:
        self.context = browser.new_context(viewport={"width": width, "height": height})
        self.page = self.context.new_page()
        self.errors: list[str] = []
        self.page.on("console", lambda m: self.errors.append(m.text) if m.type == "error" else 0)
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))
        self.page.add_init_script(SEEN_SCRIPT)

    def sign_in(self, credential: str) -> None:
        self.page.get_by_label("API key or dashboard token").fill(credential)
        self.page.get_by_role("button", name="Sign in").click()

    def state(self) -> str:
        return str(self.page.locator("[data-state]").get_attribute("data-state") or "")

    def rows(self) -> dict[int, dict[str, str]]:
        """The windows table: per seq, each field's raw value (data-value)."""
        got = self.page.evaluate(
            """() => Object.fromEntries([...document.querySelectorAll("tr[data-seq]")].map(
                tr => [tr.dataset.seq, Object.fromEntries([...tr.querySelectorAll("[data-field]")]
                    .map(f => [f.dataset.field, f.dataset.value]))]))"""
        )
        return {int(k): v for k, v in got.items()}

    def seen(self) -> dict[int, float]:
        return {int(k): v / 1000 for k, v in self.page.evaluate("window.__seen").items()}

    def close(self) -> None:
        self.context.close()


class Listener:
    """The session's events as they arrive on a WebSocket of the test's own, with arrival
    times (epoch s), read in a thread from before the session starts."""

    def __init__(self, svc: Service, session_id: str) -> None:
        from websockets.sync.client import connect

        self.events: list[tuple[float, dict[str, Any]]] = []
        self.ws = connect(
            f"{svc.ws_url}/v1/events?session={session_id}",
            additional_headers={"authorization": f"Bearer {svc.key}"},
        )
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        from websockets.exceptions import ConnectionClosed

        try:
            for message in self.ws:
                m = json.loads(message)
                if "seq" in m:
                    self.events.append((time.time(), m))
        except ConnectionClosed:
            pass

    def close(self) -> None:
        self.ws.close()
        self.thread.join(10)
