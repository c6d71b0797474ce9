"""Operations: `/healthz` (the process is alive), `/readyz` (it can do its job), `/metrics`.

None needs a key: a load balancer or Prometheus calls them. They say nothing about sessions or
people (loop names, check names, exception types, metric values labelled by fixed sets), but
/metrics should still not be exposed publicly; `service.metrics: false` turns it off (404).
Readiness answers within about READY_TIMEOUT_S even when the database hangs.
"""

from __future__ import annotations

import asyncio
from functools import cache
from typing import Any

from alembic.config import Config
from alembic.script import ScriptDirectory
from fastapi import APIRouter, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from rapport import __version__
from rapport.service.deps import App
from rapport.service.errors import ApiError
from rapport.service.state import State
from rapport.service.supervise import LoopState
from rapport.store.db import MIGRATIONS, Database

router = APIRouter(tags=["operations"])

READY_TIMEOUT_S = 2.0
"""The database probe's limit: past it the database counts as unreachable."""

OK = "ok"


@cache
def migration_heads() -> frozenset[str]:
    """The schema revisions this code expects (Alembic heads), read once from its scripts."""
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    return frozenset(ScriptDirectory.from_config(cfg).get_heads())


async def _schema_versions(db: Database) -> set[str] | str:
    """The database's Alembic revisions, or why it could not be read."""

    async def probe() -> set[str]:
        async with db.engine.connect() as conn:
            await conn.execute(text("SELECT 1"))
            rows = await conn.execute(text("SELECT version_num FROM alembic_version"))
            return {str(r[0]) for r in rows}

    try:
        return await asyncio.wait_for(probe(), READY_TIMEOUT_S)
    except TimeoutError:
        return f"no answer within {READY_TIMEOUT_S:g} s"
    except (SQLAlchemyError, OSError) as e:
        return f"unreachable ({type(e).__name__})"


async def readiness(st: State) -> dict[str, str]:
    """Each check's result: "ok", or in a few words why not."""
    versions = await _schema_versions(st.db)
    checks = {"database": OK, "migrations": OK, "loops": OK, "models": OK}
    if isinstance(versions, str):
        checks["database"] = versions
        checks["migrations"] = "unknown (no database)"
    elif versions != migration_heads():
        have, want = ",".join(sorted(versions)) or "none", ",".join(sorted(migration_heads()))
        checks["migrations"] = f"database at {have}, code at {want}"
    down = [name for name, s in st.loops.loops().items() if s.state is not LoopState.RUNNING]
    if down:
        checks["loops"] = "not running: " + ", ".join(sorted(down))
    if st.pack is None:
        checks["models"] = "not loaded"
    return checks


@router.get("/healthz")
async def health(st: App) -> dict[str, Any]:
    """`ok`, or `degraded` while a background loop (webhooks, retention, rooms) is not running:
    it failed and waits to be restarted. Each loop's state, restarts and last error type are
    listed. The answer is 200 either way: the API still serves, and restarting this process
    would not bring a database back (that is /readyz's to say)."""
    return {
        "status": "degraded" if st.loops.degraded else "ok",
        "version": __version__,
        "loops": st.loops.health(),
    }


@router.get("/readyz", responses={503: {"description": "not ready; `checks` says why"}})
async def ready(st: App) -> dict[str, Any]:
    """200 when the database answers, its schema is at this code's migration head, every
    background loop runs and the models are loaded; else 503 with the failed checks."""
    checks = await readiness(st)
    failed = [name for name, result in checks.items() if result != OK]
    if failed:
        raise ApiError(503, "not_ready", f"not ready: {', '.join(failed)}", checks=checks)
    return {"status": "ready", "checks": checks}


@router.get("/metrics", response_class=Response, responses={404: {"description": "turned off"}})
async def metrics(st: App) -> Response:
    """Prometheus text exposition of the process's metrics (README: Metrics)."""
    if not st.settings.service.metrics:
        raise ApiError(404, "not_found", "metrics are turned off (service.metrics)")
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)
