"""What every section shares: the settings and folders, the seeds, the summary lines, the log."""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

SEED = 20261202


def log(msg: str) -> None:
    print(f"[quality] {msg}", file=sys.stderr, flush=True)


@dataclass
class Run:
    quick: bool
    settings: Any
    models_dir: Path
    testdata: Path
    headlines: list[str] = field(default_factory=list)
    """One line per section for the summary at the top."""

    def gen(self, salt: int) -> np.random.Generator:
        """A generator of its own per use, so one section's draws never shift another's."""
        return np.random.default_rng([SEED, salt])
