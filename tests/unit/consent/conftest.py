"""A database for the consent log's tests: SQLite in a temp folder, and a real PostgreSQL (a
private cluster for the module, skipped without the server binaries)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest


@pytest.fixture(scope="module")
def pg_url() -> Iterator[str]:
    from tests.fakes.postgres import postgres_server, server_bin

    bin_dir = server_bin()
    if bin_dir is None:
        why = "PostgreSQL server binaries not found (scripts/setup --dev installs them)"
        if os.environ.get("RAPPORT_REQUIRE_POSTGRES"):
            pytest.fail(why)
        pytest.skip(why)
    with postgres_server(bin_dir) as url:
        yield url


@pytest.fixture(params=["sqlite", "postgres"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'rapport.db'}"
    url: str = request.getfixturevalue("pg_url")
    return url
