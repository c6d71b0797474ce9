"""A long schemathesis run against a real `rapport serve`: the contract test's run, with many more
examples and a random seed (printed, so a finding can be replayed with --seed).

    .venv/bin/python scripts/contract.py                    # 500 examples per operation
    .venv/bin/python scripts/contract.py --examples 2000 --seed 42 --workers 2
    .venv/bin/python scripts/contract.py -- --max-failures 5 --report junit   # more `st run` flags

Everything runs on 127.0.0.1: the service starts in a temporary folder with SQLite, and webhook
host names resolve from a fixed table (`webhooks.resolve_table`), never DNS. Exit status is
schemathesis's: 0 when it found nothing. The CI-sized run is
tests/integration/service/test_contract.py (deterministic, 25 examples per operation).
"""

from __future__ import annotations

import argparse
import os
import random
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # tests: the service harness and the contract test's command

from tests.integration.service.conftest import Service  # noqa: E402
from tests.integration.service.test_contract import (  # noqa: E402
    RESOLVE_TABLE,
    schemathesis_command,
)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=500, help="per operation (default 500)")
    parser.add_argument("--seed", type=int, default=None, help="default: random, printed")
    parser.add_argument("--workers", type=int, default=1, help="schemathesis workers (default 1)")
    parser.add_argument("st_args", nargs="*", help="more `st run` options, after --")
    args = parser.parse_args()
    seed = random.randrange(2**31) if args.seed is None else args.seed
    models = Path(os.environ.get("RAPPORT_TEST_MODELS_DIR", ROOT / "models"))
    with tempfile.TemporaryDirectory(prefix="rapport-contract-") as tmp:
        root = Path(tmp)
        (root / "media").mkdir()
        overrides = {"webhooks": {"resolve_table": RESOLVE_TABLE}}
        svc = Service(root / "svc", models, root / "media", overrides)
        svc.start()
        try:
            print(f"contract: {svc.url}, seed {seed}, {args.examples} examples", flush=True)
            command = schemathesis_command(
                svc.url,
                svc.key,
                "--max-examples",
                str(args.examples),
                "--seed",
                str(seed),
                "--workers",
                str(args.workers),
                *args.st_args,
            )
            return subprocess.run(command).returncode
        finally:
            svc.stop()


if __name__ == "__main__":
    sys.exit(main())
