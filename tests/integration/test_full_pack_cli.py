"""The full pack through the real CLI: `models export`, `analyze` on the transformer heads,
and the clear one-line failures where models or a hub are missing."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from rapport.samples import Recording

pytestmark = pytest.mark.slow


def _rapport(*args: str | Path, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "rapport.cli", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, **env},
    )


def test_models_export_prints_the_check(tiny_checkpoints: dict[str, Path], tmp_path: Path) -> None:
    r = _rapport(
        "models", "export", tiny_checkpoints["text-emotion"], RAPPORT_MODELS_DIR=str(tmp_path)
    )
    assert r.returncode == 0, r.stderr
    assert "text-emotion: ok (7 labels: anger, disgust" in r.stdout
    assert "max abs diff" in r.stdout and (tmp_path / "text-emotion" / "model.onnx").is_file()


def test_analyze_on_the_full_pack(full_models_dir: Path, talk: Recording, tmp_path: Path) -> None:
    out = tmp_path / "talk.events.jsonl"
    r = _rapport(
        "analyze",
        talk.path,
        "--transcript",
        talk.transcript,
        "--out",
        out,
        "--quiet",
        RAPPORT_MODELS_DIR=str(full_models_dir),
        RAPPORT_ENGINE__PACK="full",
    )
    assert r.returncode == 0, r.stderr
    events: list[dict[str, Any]] = [json.loads(line) for line in out.read_text().splitlines()]
    models = events[0]["models"]
    assert models["face"].endswith("+tiny-vit@onnx-cpu-fp32")
    assert models["voice"] == "silero-vad+tiny-wav2vec2@onnx-cpu-fp32"
    assert models["text"] == "tiny-roberta@onnx-cpu-fp32"
    windows = [e for e in events if e["type"] == "engagement.window"]
    person = [w["data"]["participants"]["presenter"] for w in windows]
    assert all(p["modalities"] for p in person)
    assert any("voice" in p["modalities"] for p in person)
    assert any("text" in p["modalities"] for p in person)
    assert events[-1]["type"] == "session.summary"


def test_full_pack_without_exported_models_fails_in_one_line(
    models_dir: Path, talk: Recording, tmp_path: Path
) -> None:
    r = _rapport(
        "analyze",
        talk.path,
        "--out",
        tmp_path / "x.jsonl",
        "--quiet",
        RAPPORT_MODELS_DIR=str(models_dir),
        RAPPORT_ENGINE__PACK="full",
    )
    assert r.returncode == 2
    assert r.stderr.count("\n") == 1 and "rapport models export" in r.stderr
    assert not (tmp_path / "x.jsonl").exists()


def test_fetch_full_pack_fails_fast_without_a_hub(tmp_path: Path) -> None:
    with socket.socket() as s:  # a loopback port nothing listens on: the hub is unreachable
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    started = time.monotonic()
    r = _rapport(
        "models",
        "fetch",
        "--pack",
        "full",
        RAPPORT_MODELS_DIR=str(tmp_path),
        HF_ENDPOINT=f"http://127.0.0.1:{port}",
        HF_HUB_OFFLINE="0",
    )
    assert r.returncode == 2 and time.monotonic() - started < 30
    assert "unreachable" in r.stderr and "rapport models export" in r.stderr
    assert r.stderr.count("\n") == 1
    offline = _rapport("models", "fetch", "--pack", "full", HF_HUB_OFFLINE="1")
    assert offline.returncode == 2 and "HF_HUB_OFFLINE" in offline.stderr


def test_fp16_on_a_cpu_host_is_refused(
    full_models_dir: Path, talk: Recording, tmp_path: Path
) -> None:
    r = _rapport(
        "analyze",
        talk.path,
        "--out",
        tmp_path / "x.jsonl",
        "--quiet",
        RAPPORT_MODELS_DIR=str(full_models_dir),
        RAPPORT_ENGINE__PACK="full",
        RAPPORT_ENGINE__PRECISION="fp16",
    )
    assert r.returncode == 2 and "fp16 needs cuda or tensorrt" in r.stderr
