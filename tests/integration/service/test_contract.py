"""The OpenAPI document is the contract: schemathesis runs every operation of a real `rapport
serve` with all its checks (statuses, the error model, content types and headers, `Allow`,
refusal of invalid data, acceptance of valid data, authentication) and must find nothing.

Bounded for CI: a fixed number of examples per operation, deterministic generation (the same
cases every run), one worker (schemathesis's threads tripped over Python 3.11's `ast` once in a
4-worker run: a tool error, not a finding); about 80 s on two cores. scripts/contract.sh runs
the same with many more examples and a random seed. Webhook host names resolve from a fixed
table (`webhooks.resolve_table`): no lookup leaves the machine.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

from rapport.config import Settings
from rapport.service import openapi
from rapport.service.app import create_app
from tests.integration.service.conftest import Service

HERE = Path(__file__).resolve().parent
CONFIG = HERE / "schemathesis.toml"
MAX_EXAMPLES = 25
TIME_LIMIT_S = 240
RESOLVE_TABLE = {"hooks.example.com": ["127.0.0.1"]}
"""The only name webhook URLs may use in this run (127.0.0.0/8 is allowed by BASE_CONFIG)."""


def schemathesis_command(url: str, key: str, *extra: str) -> list[str]:
    """`st run` over every operation of the service at `url`, with every check."""
    st = "from schemathesis.cli import schemathesis; schemathesis()"
    return [
        sys.executable,
        "-c",
        st,
        "--config-file",
        str(CONFIG),
        "run",
        f"{url}/openapi.json",
        "--checks",
        "all",
        "--header",
        f"Authorization: Bearer {key}",
        "--no-color",
        "--request-timeout",
        "30",
        *extra,
    ]


def test_document_is_complete() -> None:
    """Every table entry names a real operation; every operation has security and only the
    error model for its errors; the FastAPI validation models are gone."""
    doc = create_app(Settings()).openapi()
    keys = set(openapi.operation_keys(doc))
    assert set(openapi.STATUSES) <= keys, set(openapi.STATUSES) - keys
    assert set(openapi.SECURITY) <= keys, set(openapi.SECURITY) - keys
    schemas = doc["components"]["schemas"]
    assert "HTTPValidationError" not in schemas and "Error" in schemas
    assert set(doc["components"]["securitySchemes"]) == {
        "apiKey",
        "dashboardToken",
        "livekitWebhook",
    }
    for path, item in doc["paths"].items():
        for method, op in item.items():
            assert "security" in op, (method, path)
            for status, response in op["responses"].items():
                if int(status) >= 400:
                    ref = response["content"]["application/json"]["schema"]["$ref"]
                    assert ref.endswith("/Error"), (method, path, status)
    assert "self_coaching" in schemas["SessionIn"]["properties"]["purpose"]["enum"]


def test_schemathesis_finds_nothing(make_service: Any) -> None:
    svc: Service = make_service({"webhooks": {"resolve_table": RESOLVE_TABLE}}, name="contract")
    command = schemathesis_command(
        svc.url,
        svc.key,
        "--max-examples",
        str(MAX_EXAMPLES),
        "--generation-deterministic",
        "--workers",
        "1",
    )
    p = subprocess.run(command, capture_output=True, text=True, timeout=TIME_LIMIT_S, cwd=svc.root)
    out = p.stdout + p.stderr
    assert p.returncode == 0, out[-20_000:]
    assert " passed" in out, out[-5_000:]
