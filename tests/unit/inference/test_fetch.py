from __future__ import annotations

import dataclasses
import os
import shutil
import zipfile
from pathlib import Path

import numpy as np
import pytest

from rapport.config import RuntimeSettings
from rapport.errors import FetchError
from rapport.inference import fetch
from rapport.inference.fetch import OFFLINE_PACK, Asset, fetch_offline_pack
from rapport.inference.registry import MODEL_FILE, load_model_dir, sha256_file
from rapport.inference.runtime import create_session
from rapport.labels import EXPRESSIONS

VAD = next(a for a in OFFLINE_PACK if a.name == "vad")


@pytest.fixture
def no_index(monkeypatch: pytest.MonkeyPatch) -> None:
    """pip (a subprocess) sees a registry that refuses connections, and no user config."""
    monkeypatch.setenv("PIP_CONFIG_FILE", os.devnull)
    monkeypatch.setenv("PIP_INDEX_URL", "http://127.0.0.1:9/simple")
    monkeypatch.delenv("PIP_EXTRA_INDEX_URL", raising=False)
    monkeypatch.delenv("PIP_FIND_LINKS", raising=False)


def _cached_wheel(models_dir: Path, asset: Asset) -> Path:
    prefix = f"{asset.package.replace('-', '_')}-{asset.package_version}-"
    (wheel,) = (models_dir / ".cache" / "wheels").glob(f"{prefix}*.whl")
    return wheel


def _entries(models_dir: Path) -> list[str]:
    return sorted(p.name for p in models_dir.iterdir() if p.name != ".cache")


def test_every_asset_is_installed_from_its_pins(models_dir: Path) -> None:
    for asset in OFFLINE_PACK:
        m = load_model_dir(models_dir, asset.name)
        assert (m.name, m.version, m.task, m.labels) == (
            asset.model,
            asset.version,
            asset.task,
            asset.labels,
        )
        assert (m.source.package, m.source.version, m.source.member) == (
            asset.package,
            asset.package_version,
            asset.member,
        )
        assert list(m.files) == [MODEL_FILE]
        create_session(models_dir / asset.name / MODEL_FILE, RuntimeSettings())


def test_face_expression_manifest(models_dir: Path) -> None:
    m = load_model_dir(models_dir, "face-expression")
    assert m.labels == EXPRESSIONS
    assert (m.input.name, m.input.shape, m.input.dtype) == ("input", ("N", 1, 64, 64), "float32")


def test_vad_is_the_wheels_file_and_runs_as_its_manifest_says(models_dir: Path) -> None:
    m = load_model_dir(models_dir, "vad")
    assert m.files[MODEL_FILE] == VAD.member_sha256  # copied as is
    session = create_session(models_dir / "vad" / MODEL_FILE, RuntimeSettings())
    assert [i.name for i in session.get_inputs()] == ["input", "state", "sr"]
    state = np.zeros((2, 1, 128), np.float32)
    x = np.zeros((1, 64 + 512), np.float32)  # context + one chunk, per the notes
    prob, state_n = session.run(None, {"input": x, "state": state, "sr": np.array(16000, np.int64)})
    assert prob.shape == (1, 1) and 0.0 <= float(prob[0, 0]) <= 1.0
    assert state_n.shape == (2, 1, 128)
    assert "576" in m.input.notes and "[2, 1, 128]" in m.input.notes


def test_rerun_touches_nothing(models_dir: Path, no_index: None) -> None:
    before = {a.name: (models_dir / a.name / MODEL_FILE).stat().st_mtime_ns for a in OFFLINE_PACK}
    steps: list[str] = []
    fetch_offline_pack(models_dir, on_step=steps.append)
    assert steps == [f"{a.name}: up to date" for a in OFFLINE_PACK]
    after = {a.name: (models_dir / a.name / MODEL_FILE).stat().st_mtime_ns for a in OFFLINE_PACK}
    assert after == before


def test_tampered_model_is_rebuilt_from_the_wheel_cache_offline(
    models_dir: Path, tmp_path: Path, no_index: None
) -> None:
    (tmp_path / ".cache" / "wheels").mkdir(parents=True)
    wheel = _cached_wheel(models_dir, VAD)
    shutil.copy(wheel, tmp_path / ".cache" / "wheels" / wheel.name)
    shutil.copytree(models_dir / "vad", tmp_path / "vad")
    (tmp_path / "vad" / MODEL_FILE).write_bytes(b"tampered")

    steps: list[str] = []
    (manifest,) = fetch_offline_pack(tmp_path, names=["vad"], on_step=steps.append)

    assert steps[-1] == "vad: ready"
    assert load_model_dir(tmp_path, "vad") == manifest
    assert sha256_file(tmp_path / "vad" / MODEL_FILE) == VAD.member_sha256
    assert _entries(tmp_path) == ["vad"]


def test_no_registry_is_a_one_line_fetch_error_and_leaves_nothing(
    tmp_path: Path, no_index: None
) -> None:
    with pytest.raises(FetchError) as info:
        fetch_offline_pack(tmp_path, names=["vad"])
    message = str(info.value)
    assert message.startswith("could not download silero-vad==6.2.3 (is PyPI reachable?): ")
    assert "\n" not in message
    assert info.value.retryable
    assert _entries(tmp_path) == []
    assert list((tmp_path / ".cache" / "wheels").iterdir()) == []


def test_cached_wheel_with_a_wrong_member_is_not_trusted(tmp_path: Path, no_index: None) -> None:
    wheels = tmp_path / ".cache" / "wheels"
    wheels.mkdir(parents=True)
    fake = wheels / "silero_vad-6.2.3-py3-none-any.whl"
    with zipfile.ZipFile(fake, "w") as z:
        z.writestr(VAD.member, b"not the pinned model")

    with pytest.raises(FetchError, match="could not download"):
        fetch_offline_pack(tmp_path, names=["vad"])
    assert not fake.exists()
    assert _entries(tmp_path) == []


def test_failed_forced_fetch_keeps_the_installed_model(
    models_dir: Path, tmp_path: Path, no_index: None
) -> None:
    shutil.copytree(models_dir / "vad", tmp_path / "vad")
    with pytest.raises(FetchError):
        fetch_offline_pack(tmp_path, names=["vad"], force=True)
    assert load_model_dir(tmp_path, "vad").version == VAD.version
    assert _entries(tmp_path) == ["vad"]


def test_failed_conversion_leaves_no_half_written_model(
    models_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def half_write_then_fail(src: Path, dst: Path) -> None:
        dst.write_bytes(src.read_bytes()[:100])
        raise ValueError("unexpected op\nsecond line")

    broken = dataclasses.replace(VAD, build=half_write_then_fail)
    monkeypatch.setattr(fetch, "OFFLINE_PACK", (broken,))
    (tmp_path / ".cache" / "wheels").mkdir(parents=True)
    wheel = _cached_wheel(models_dir, VAD)
    shutil.copy(wheel, tmp_path / ".cache" / "wheels" / wheel.name)

    with pytest.raises(FetchError) as info:
        fetch.fetch_offline_pack(tmp_path)
    assert str(info.value) == "vad: conversion failed: unexpected op"
    assert isinstance(info.value.__cause__, ValueError)
    assert _entries(tmp_path) == []


def test_unknown_name_is_refused(tmp_path: Path) -> None:
    with pytest.raises(FetchError, match="no such model in the offline pack: nope"):
        fetch_offline_pack(tmp_path, names=["vad", "nope"])
