"""`rapport synchrony A.csv B.csv`: CRQA of two expression series and who leads, for researchers.

A CSV is one column of numbers (without a header: its last column), or columns under a header:
the series is `--column` (default the last numeric column that is not time), and a `t` or `time`
column gives the sample rate when --rate does not. Series of different lengths are cut to the
shorter, from the start.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import sys
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING

from rapport.analytics.rqa_params import RqaParams
from rapport.errors import InputError

if TYPE_CHECKING:  # numpy and the maths load when the command runs, not at every `rapport` start
    import numpy as np

    from rapport.analytics.crqa import Lead, RqaMeasures

DEFAULT_RATE = 4.0  # Hz: the pipeline's expression series
TIME_COLUMNS = ("t", "time")
LABELS = {
    "rr": ("RR", "recurrence rate"),
    "det": ("DET", "determinism"),
    "l": ("L", "mean diagonal line"),
    "lmax": ("Lmax", "longest diagonal line"),
    "entr": ("ENTR", "entropy of diagonal lines"),
    "lam": ("LAM", "laminarity"),
    "tt": ("TT", "trapping time"),
}


def add_arguments(ap: argparse.ArgumentParser) -> None:
    d = RqaParams()
    ap.add_argument("a", type=Path, metavar="A.csv", help="the first series (x)")
    ap.add_argument("b", type=Path, metavar="B.csv", help="the second series (y)")
    ap.add_argument("--column", help="the column to read (default: the last numeric one)")
    ap.add_argument("--rate", type=float, help="samples per second (default: from t/time, or 4)")
    ap.add_argument("--embedding", type=int, default=d.embedding, help=f"m ({d.embedding})")
    ap.add_argument("--delay", type=int, default=d.delay, help=f"d, in samples ({d.delay})")
    ap.add_argument("--radius", type=float, default=d.radius, help=f"in z-scores ({d.radius})")
    ap.add_argument(
        "--theiler", type=int, default=d.theiler, help=f"drop cells |i - j| < w ({d.theiler})"
    )
    ap.add_argument("--min-line", type=int, default=d.min_line, help=f"lmin ({d.min_line})")
    ap.add_argument("--metric", choices=["euclidean", "maximum"], default=d.metric)
    ap.add_argument(
        "--max-lag-s", type=float, default=5.0, help="lags searched for a leader, seconds (5)"
    )
    ap.add_argument("--no-zscore", action="store_true", help="compare the raw values")
    ap.add_argument("--json", action="store_true", help="one JSON object on stdout")


def run(args: argparse.Namespace) -> int:
    from rapport.analytics.crqa import LEAD_Z, crqa, flat, lead, zscore

    (x, rate_a), (y, rate_b) = (read_series(p, args.column) for p in (args.a, args.b))
    rate = args.rate or rate_a or rate_b or DEFAULT_RATE
    if args.rate is None and rate_a and rate_b and not math.isclose(rate_a, rate_b, rel_tol=0.01):
        raise InputError(
            f"{args.a} is at {rate_a:g} Hz and {args.b} at {rate_b:g} Hz: resample or pass --rate"
        )
    if not (math.isfinite(rate) and rate > 0):
        raise InputError(f"--rate must be a number > 0, got {rate}")
    if x.size != y.size:
        n = min(x.size, y.size)
        print(
            f"rapport: {args.a} has {x.size} samples and {args.b} {y.size}: "
            f"using the first {n} of each",
            file=sys.stderr,
        )
        x, y = x[:n], y[:n]
    try:
        params = RqaParams(
            args.embedding, args.delay, args.radius, args.theiler, args.min_line, args.metric
        )
        vectors = x.size - params.span + 1
        max_lag = round(args.max_lag_s * rate)
        if args.max_lag_s < 0 or (vectors > 0 and max_lag >= vectors):
            raise ValueError(
                f"--max-lag-s {args.max_lag_s:g} is {max_lag} samples; "
                f"{x.size} samples allow at most {(vectors - 1) / rate:g} s"
            )
        if not args.no_zscore:
            for path, series in ((args.a, x), (args.b, y)):
                if flat(series):
                    raise ValueError(f"{path} does not vary: synchrony with it is undefined")
            x, y = zscore(x), zscore(y)
        measures = crqa(x, y, params)
        who = lead(x, y, params, max_lag)
    except ValueError as e:
        raise InputError(str(e)) from e
    a, b = args.a.name, args.b.name
    if args.json:
        doc = {
            "a": str(args.a),
            "b": str(args.b),
            "samples": int(x.size),
            "rate_hz": rate,
            "zscore": not args.no_zscore,
            "params": asdict(params),
            "measures": measures.as_dict(),
            "lead": {
                "leader": None if not who.clear else ("a" if who.lag > 0 else "b"),
                "lag_samples": who.lag,
                "lag_s": who.lag / rate,
                "clear": who.clear,
                "z": who.z,
                "threshold": LEAD_Z,
                "peak_rr": who.peak,
                "contrast": who.contrast,
            },
        }
        print(json.dumps(doc))
        return 0
    print(
        f"{a} (x) and {b} (y): {x.size} samples at {rate:g} Hz; embedding {params.embedding}, "
        f"delay {params.delay}, radius {params.radius:g} ({params.metric}), "
        f"theiler {params.theiler}, min line {params.min_line}"
    )
    print(table(measures))
    print(lead_line(who, a, b, rate))
    return 0


def table(m: RqaMeasures) -> str:
    rows = []
    for key, value in m.as_dict().items():
        name, meaning = LABELS[key]
        rows.append(f"  {name:<5} {value:>8.4g}   {meaning}")
    return "\n".join(rows)


def lead_line(who: Lead, a: str, b: str, rate: float) -> str:
    from rapport.analytics.crqa import LEAD_Z

    if not who.clear:
        return f"no clear leader (peak at lag {who.lag / rate:+g} s, z {who.z:.1f} < {LEAD_Z:g})"
    first, second = (a, b) if who.lag > 0 else (b, a)
    return (
        f"{first} leads {second} by {abs(who.lag) / rate:g} s "
        f"({abs(who.lag)} samples, z {who.z:.1f})"
    )


def read_series(path: Path, column: str | None) -> tuple[np.ndarray, float | None]:
    """The series and, when a t/time column gives it, its sample rate."""
    import numpy as np

    try:
        with path.open(newline="", encoding="utf-8-sig") as f:
            rows = [
                (n, r) for n, r in enumerate(csv.reader(f), start=1) if any(c.strip() for c in r)
            ]
    except (OSError, UnicodeDecodeError, csv.Error) as e:
        raise InputError(f"cannot read {path}: {e}") from e
    if not rows:
        raise InputError(f"{path} has no rows")
    header = [c.strip() for c in rows[0][1]]
    if all(_is_number(c) for c in header):  # no header: the last column, whatever --column
        return _numbers(path, rows, len(rows[0][1]) - 1, "the last column"), None
    rows = rows[1:]
    lowered = [h.lower() for h in header]
    if column is not None:
        if column not in header:
            raise InputError(f"{path} has no column {column!r} (columns: {', '.join(header)})")
        index = header.index(column)
    else:
        numeric = [
            i
            for i, h in enumerate(lowered)
            if h not in TIME_COLUMNS and all(i < len(r) and _is_number(r[i]) for _, r in rows)
        ]
        if not numeric:
            raise InputError(f"{path} has no numeric column besides time; pass --column")
        index = numeric[-1]
    values = _numbers(path, rows, index, f"column {header[index]!r}")
    rate = None
    time_index = next((lowered.index(t) for t in TIME_COLUMNS if t in lowered), None)
    if time_index is not None and len(rows) > 1:
        steps = np.diff(_numbers(path, rows, time_index, f"column {header[time_index]!r}"))
        if not (steps > 0).all():
            raise InputError(f"{path}: column {header[time_index]!r} does not increase")
        rate = 1.0 / float(np.median(steps))
    return values, rate


def _is_number(cell: str) -> bool:
    try:
        return math.isfinite(float(cell))
    except ValueError:
        return False


def _numbers(path: Path, rows: list[tuple[int, list[str]]], index: int, what: str) -> np.ndarray:
    import numpy as np

    out = np.empty(len(rows))
    for k, (line, row) in enumerate(rows):
        cell = row[index].strip() if index < len(row) else ""
        if not _is_number(cell):
            raise InputError(f"{path} line {line}: {cell!r} in {what} is not a finite number")
        out[k] = float(cell)
    return out
