#!/usr/bin/env python3
"""Profiles the LiveKit bot (`rapport serve`) during bench_livekit.py's measured interval.

    .venv/bin/python scripts/profile_bot.py --profiler pyspy|perf|threads --out DIR \
        -- [bench_livekit.py arguments, e.g. --participants 8 --pin 1 --duration 20]

Runs bench_livekit.py unchanged, except that each room's measured interval (after every track is
subscribed) is also profiled:

- pyspy: `py-spy record --native --format raw` on the bot for the interval (Python threads only:
  the SDK's Rust/WebRTC threads are not Python threads and are not sampled); samples are CPU
  samples (idle threads are left out), so samples / (rate x seconds) = cores;
- perf: `perf record -F 499 -g` on the bot for the interval (every thread, native; the SDK's
  library is stripped, so its frames are attributed to liblivekit_ffi.so), then `perf report
  --sort comm,dso` into DIR;
- threads: only CPU per thread (/proc/PID/task/*/stat), every thread by name, as a JSON.

py-spy comes from $PYSPY (default: py-spy on PATH); it is not a dependency of the project.
Output: DIR/N<n>.<profiler>.txt (and .json for threads).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_livekit as bl


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--profiler", choices=("pyspy", "perf", "threads"), default="threads")
    ap.add_argument("--out", type=Path, default=Path("/tmp/profile_bot"))
    ap.add_argument("--rate", type=int, default=100, help="py-spy samples per second")
    ap.add_argument("rest", nargs=argparse.REMAINDER)
    args = ap.parse_args()
    rest = [a for a in args.rest if a != "--"]
    args.out.mkdir(parents=True, exist_ok=True)
    duration = float(rest[rest.index("--duration") + 1]) if "--duration" in rest else 30.0
    state: dict[str, object] = {}
    orig_take = bl.Probe.take

    def take(self: bl.Probe) -> bl.Probe:
        pid = self.pids["bot"]
        starting = not state.get("in")
        state["in"] = starting
        if starting:  # the interval starts
            n = state["n"] = int(state.get("room", 0)) + 1
            state["room"] = n
            tag = args.out / f"room{n}.{args.profiler}"
            if args.profiler == "pyspy":
                cmd = [
                    os.environ.get("PYSPY", "py-spy"),
                    "record",
                    "--nonblocking",
                    "--format",
                    "raw",
                    "--rate",
                    str(args.rate),
                    "--duration",
                    str(int(duration)),
                    "--pid",
                    str(pid),
                    "-o",
                    f"{tag}.txt",
                ]
                state["proc"] = subprocess.Popen(cmd, stdout=subprocess.DEVNULL)
            elif args.profiler == "perf":
                cmd = [
                    "perf",
                    "record",
                    "-F",
                    "499",
                    "-g",
                    "-p",
                    str(pid),
                    "-o",
                    f"{tag}.data",
                    "--",
                    "sleep",
                    str(duration),
                ]
                state["proc"] = subprocess.Popen(
                    cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
                )
            state["threads0"] = bl.threads_cpu(pid)
            state["t0"] = time.monotonic()
        else:  # the interval ends
            wall = time.monotonic() - float(state["t0"])  # type: ignore[arg-type]
            spent = bl.by_name(state["threads0"], bl.threads_cpu(pid))  # type: ignore[arg-type]
            n = state["n"]
            (args.out / f"room{n}.threads.json").write_text(
                json.dumps({k: round(100 * v / wall, 2) for k, v in spent.most_common()}, indent=1)
            )
            running = state.pop("proc", None)
            if running is not None:
                running.wait()  # type: ignore[attr-defined]
            if args.profiler == "perf":
                tag = args.out / f"room{n}.perf"
                with open(f"{tag}.txt", "w") as f:
                    subprocess.run(
                        [
                            "perf",
                            "report",
                            "-i",
                            f"{tag}.data",
                            "--no-children",
                            "--sort",
                            "comm,dso",
                            "--stdio",
                        ],
                        stdout=f,
                        stderr=subprocess.DEVNULL,
                    )
        return orig_take(self)

    bl.Probe.take = take  # type: ignore[method-assign]
    sys.argv = ["bench_livekit.py", *rest]
    return bl.main()


if __name__ == "__main__":
    sys.exit(main())
