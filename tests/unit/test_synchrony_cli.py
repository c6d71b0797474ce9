"""`rapport synchrony` through the real entry point (a subprocess, as a user runs it)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest


def _rapport(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "rapport.cli", "synchrony", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=60,
    )


def _pair(k: int = 5, n: int = 240) -> tuple[np.ndarray, np.ndarray]:
    """a, and b = a k samples later plus noise: a leads b by k samples."""
    rng = np.random.default_rng(3)
    e = rng.standard_normal(n + k + 50)
    base = np.zeros_like(e)
    for t in range(1, e.size):
        base[t] = 0.8 * base[t - 1] + e[t]
    base = base[50:]
    return base[k:], base[:-k] + 0.3 * base.std() * rng.standard_normal(n)


@pytest.fixture
def csvs(tmp_path: Path) -> tuple[Path, Path]:
    a, b = _pair()
    pa, pb = tmp_path / "a.csv", tmp_path / "b.csv"
    t = np.arange(a.size) / 4.0
    pa.write_text(
        "t,valence,arousal\n" + "".join(f"{s},{v},0.5\n" for s, v in zip(t, a, strict=True))
    )
    pb.write_text("".join(f"{v}\n" for v in b))  # one column, no header
    return pa, pb


def test_table_and_leader(csvs: tuple[Path, Path]) -> None:
    r = _rapport(*csvs, "--column", "valence")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert "240 samples at 4 Hz" in lines[0]
    assert [line.split()[0] for line in lines[1:8]] == [
        "RR",
        "DET",
        "L",
        "Lmax",
        "ENTR",
        "LAM",
        "TT",
    ]
    assert lines[8].startswith("a.csv leads b.csv by 1.25 s (5 samples")
    assert r.stderr == ""


def test_json_swapped_and_defaults(csvs: tuple[Path, Path]) -> None:
    # the default column is the last numeric one: a constant here, which is refused
    r = _rapport(*csvs, "--json")
    assert r.returncode == 2 and "does not vary" in r.stderr, r.stderr
    r = _rapport(csvs[1], csvs[0], "--column", "valence", "--json", "--embedding", "2")
    doc = json.loads(r.stdout)
    assert doc["lead"]["leader"] == "b" and doc["lead"]["lag_samples"] == -5
    assert doc["lead"]["lag_s"] == -1.25 and doc["rate_hz"] == 4.0
    assert doc["params"]["embedding"] == 2 and doc["samples"] == 240
    assert set(doc["measures"]) == {"rr", "det", "l", "lmax", "entr", "lam", "tt"}


def test_different_lengths_are_cut_and_said(tmp_path: Path) -> None:
    a, b = _pair()
    pa, pb = tmp_path / "a.csv", tmp_path / "b.csv"
    pa.write_text("".join(f"{v}\n" for v in a))
    pb.write_text("".join(f"{v}\n" for v in b[:200]))
    r = _rapport(pa, pb, "--rate", "2", "--max-lag-s", "4")
    assert r.returncode == 0, r.stderr
    assert "has 240 samples and" in r.stderr and "using the first 200 of each" in r.stderr
    assert "200 samples at 2 Hz" in r.stdout and "by 2.5 s (5 samples" in r.stdout


@pytest.mark.parametrize(
    ("content", "args", "message"),
    [
        (None, [], "cannot read"),
        ("1\n2\nx\n4\n", [], "line 3: 'x' in the last column is not a finite number"),
        ("1\n2\n", [], "needs at least 3"),
        ("v\n1\n2\n3\n4\n5\n", ["--column", "w"], "has no column 'w'"),
        ("1\n2\n3\n4\n5\n", ["--radius", "0"], "radius must be a finite number > 0"),
        ("1\n2\n3\n4\n5\n6\n", ["--max-lag-s", "5"], "--max-lag-s 5 is 20 samples"),
        ("t,v\n0,1\n0,2\n", [], "'t' does not increase"),
        # Flat up to rounding (a frozen camera's smoothed output): no spikes of 15 SD, refused.
        ("".join(f"{0.3 + (k % 2) * 5e-17!r}\n" for k in range(40)), [], "does not vary"),
        ("0.5\n" * 40, [], "does not vary"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(
    tmp_path: Path, content: str | None, args: list[str], message: str
) -> None:
    bad = tmp_path / "bad.csv"
    if content is not None:
        bad.write_text(content)
    r = _rapport(bad, bad, *args)
    assert r.returncode == 2, r.stdout
    assert r.stderr.count("\n") == 1 and r.stderr.startswith("rapport: error: "), r.stderr
    assert message in r.stderr
