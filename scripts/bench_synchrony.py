#!/usr/bin/env python3
"""Cost of one synchrony window: crqa_pairs over P participants' last 60 s at 4 samples/s.

    .venv/bin/python scripts/bench_synchrony.py [--participants 2 8 32] [--samples 240]
        [--max-lag 20] [--repeats 20] [--metric euclidean|maximum] [--json]

Importable: `bench_synchrony(...)` returns the rows, e.g. for scripts/bench_analyze.py. The
series are z-scored AR(1) processes (phi 0.9, like smoothed expression at 4 Hz) and the params
RqaParams' defaults; one core is what counts, so pin it (taskset -c 0) to read it as such.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import asdict, dataclass

import numpy as np

from rapport.analytics.crqa import RqaParams, crqa_pairs


@dataclass(frozen=True, slots=True)
class BenchRow:
    participants: int
    pairs: int
    p50_ms: float
    p95_ms: float


def smoothed_series(participants: int, samples: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    e = rng.standard_normal((participants, samples + 50))
    x = np.zeros_like(e)
    for t in range(1, e.shape[1]):
        x[:, t] = 0.9 * x[:, t - 1] + e[:, t]
    return x[:, 50:]


def bench_synchrony(
    participants: tuple[int, ...] = (2, 8, 32),
    samples: int = 240,
    max_lag: int = 20,
    repeats: int = 20,
    params: RqaParams | None = None,
) -> list[BenchRow]:
    rows = []
    for p in participants:
        series = smoothed_series(p, samples)
        crqa_pairs(series, params, max_lag)  # warm up
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            crqa_pairs(series, params, max_lag)
            times.append((time.perf_counter() - t0) * 1000)
        p50, p95 = np.percentile(times, [50, 95])
        rows.append(BenchRow(p, p * (p - 1) // 2, float(p50), float(p95)))
    return rows


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--participants", type=int, nargs="+", default=[2, 8, 32])
    ap.add_argument("--samples", type=int, default=240)
    ap.add_argument("--max-lag", type=int, default=20)
    ap.add_argument("--repeats", type=int, default=20)
    ap.add_argument("--metric", choices=["euclidean", "maximum"], default="euclidean")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    params = RqaParams(metric=args.metric)
    rows = bench_synchrony(
        tuple(args.participants), args.samples, args.max_lag, args.repeats, params
    )
    if args.json:
        print(json.dumps([asdict(r) for r in rows]))
        return 0
    print(f"crqa_pairs, n={args.samples}, max_lag={args.max_lag}, {params}")
    print(f"{'P':>4} {'pairs':>6} {'p50 ms':>8} {'p95 ms':>8}")
    for r in rows:
        print(f"{r.participants:>4} {r.pairs:>6} {r.p50_ms:>8.1f} {r.p95_ms:>8.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
