"""`rapport demo --livekit --api URL`: the demo's participant through a running deployment (here
on processes: livekit-server, PostgreSQL, `rapport serve` in agent mode and one `rapport worker`;
scripts/compose_check.sh runs the same command inside the compose stack). One-line refusals for a
wrong API key, a wrong LiveKit secret and an API that is not there."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from rapport.events.schema import Event
from rapport.livekit import LocalServer
from rapport.samples import Recording, make_recording
from tests.fakes.wait import wait_until
from tests.integration.service.conftest import Service, postgres_bin


@pytest.fixture(scope="module")
def postgres_url() -> Iterator[str]:
    from tests.fakes.postgres import postgres_server

    with postgres_server(postgres_bin()) as url:
        yield url


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Recording:
    root = tmp_path_factory.mktemp("remote-demo")
    return make_recording(
        root / "clip.mp4",
        duration_s=6.0,
        size=(640, 360),
        fps=10,
        speech=((0.5, "Thanks for joining, let us look at the plan."),),
        transcript=root / "clip.vtt",
    )


@pytest.fixture
def stack(
    livekit_server: LocalServer, postgres_url: str, models_dir: Path, tmp_path: Path
) -> Iterator[tuple[Service, LocalServer]]:
    lk = livekit_server
    agent = f"demo-{uuid.uuid4().hex[:8]}"
    svc = Service(
        tmp_path / "api",
        models_dir,
        tmp_path,
        {
            "window": {"seconds": 2},
            "service": {"database_url": postgres_url},
            "livekit": {
                "url": lk.url,
                "api_key": lk.api_key,
                "api_secret": lk.api_secret,
                "agent_name": agent,
                "redispatch_s": 3,
            },
        },
    )
    svc.start()
    log = tmp_path / "worker.log"
    with log.open("wb") as out:
        worker = subprocess.Popen(
            [
                *(sys.executable, "-m", "rapport.cli", "--config", str(svc.config)),
                *("worker", "--agent-name", agent),
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_until(
            lambda: "agent worker registered" in log.read_text(errors="replace"),
            60,
            "the worker to register",
        )
        yield svc, lk
    finally:
        worker.kill()
        worker.wait(10)
        svc.stop()


def demo(*args: str | Path, secret: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAPPORT_")}
    env["RAPPORT_LIVEKIT__API_SECRET"] = secret
    return subprocess.run(
        [sys.executable, "-m", "rapport.cli", "demo", "--livekit", *map(str, args)],
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd,
        timeout=240,
    )


def test_demo_through_a_running_deployment(
    stack: tuple[Service, LocalServer], clip: Recording, tmp_path: Path
) -> None:
    svc, lk = stack
    common: list[Any] = ["--url", lk.url, "--livekit-api-key", lk.api_key]
    common += ["--recording", clip.path, "--dir", tmp_path / "out"]
    r = demo(
        "--api",
        svc.url,
        "--api-key",
        svc.key,
        "--windows",
        "2",
        *common,
        secret=lk.api_secret,
        cwd=tmp_path,
    )
    assert r.returncode == 0, r.stderr
    out = tmp_path / "out" / "livekit-remote"
    events = [Event.model_validate_json(line) for line in (out / "events.jsonl").open()]
    assert events[0].type == "session.started"
    assert events[-1].type == "session.summary"
    assert sum(e.type == "engagement.window" for e in events) >= 2
    assert [e.seq for e in events] == list(range(len(events)))
    summary = json.loads((out / "summary.json").read_text())
    assert summary["data"]["participants"], "the consenting presenter is reported"
    assert "first engagement.window" in r.stderr and "session.summary" in r.stderr
    # the session ended through the API
    sid = events[0].session_id
    assert svc.http.get(f"/v1/sessions/{sid}").json()["status"] == "ended"

    # One line and exit 2 for a wrong API key, a wrong LiveKit secret, an API not there.
    wrong_key = demo(
        "--api", svc.url, "--api-key", "rk_wrong", *common, secret=lk.api_secret, cwd=tmp_path
    )
    wrong_secret = demo(
        "--api", svc.url, "--api-key", svc.key, *common, secret="x" * 32, cwd=tmp_path
    )
    no_api = demo(
        "--api",
        "http://127.0.0.1:9",
        "--api-key",
        svc.key,
        *common,
        secret=lk.api_secret,
        cwd=tmp_path,
    )
    for bad, says in (
        (wrong_key, "401"),
        (wrong_secret, "could not join room"),
        (no_api, "the rapport API at http://127.0.0.1:9"),
    ):
        assert bad.returncode == 2, bad.stderr
        lines = bad.stderr.strip().splitlines()
        assert lines[-1].startswith("rapport: error: ") and says in lines[-1], bad.stderr
        assert "Traceback" not in bad.stderr and "eyJ" not in bad.stderr  # no token echoed
