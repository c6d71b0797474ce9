"""Markdown for the report: tables, and numbers as the report prints them (n/a for nan)."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence


def table(header: Sequence[str], rows: Iterable[Sequence[object]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(" --- " for _ in header) + "|"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def ms(x: float) -> str:
    return "n/a" if math.isnan(x) else (f"{x:.2f}" if x < 10 else f"{x:.1f}")


def frac(k: int, n: int) -> str:
    return f"{k / n:.2f} ({k}/{n})" if n else "n/a (0)"


def signed_ms(x: float) -> str:
    return "n/a" if math.isnan(x) else f"{x * 1000:+.0f}"


def abs_ms(x: float) -> str:
    return "n/a" if math.isnan(x) else f"{x * 1000:.0f}"
