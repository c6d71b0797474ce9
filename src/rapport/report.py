"""A readable end-of-session summary for the terminal."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rich.console import Console
from rich.table import Table

from rapport import NOTICE
from rapport.events.schema import SessionSummaryData

if TYPE_CHECKING:
    from rapport.analyze import AnalysisResult


def _fmt(x: float | None, signed: bool = False) -> str:
    if x is None:
        return "-"
    return f"{x:+.2f}" if signed else f"{x:.2f}"


def _spark(values: list[float | None], lo: float, hi: float) -> str:
    bars = "▁▂▃▄▅▆▇█"
    out = []
    for v in values:
        if v is None:
            out.append(" ")
            continue
        q = (min(max(v, lo), hi) - lo) / (hi - lo)
        out.append(bars[min(len(bars) - 1, int(q * len(bars)))])
    return "".join(out)


def print_summary(console: Console, result: AnalysisResult) -> None:
    data = result.summary.data
    assert isinstance(data, SessionSummaryData)
    console.print(
        f"[bold]session {result.session_id}[/]  {data.duration_s:.1f} s, {data.windows} windows"
    )
    console.print(
        f"engagement  {_fmt(data.engagement)}  trend {_fmt(data.engagement_trend, True)}"
        f"/min   {_spark(data.engagement_timeline, 0, 1)}"
    )
    console.print(
        f"valence    {_fmt(data.valence, True)}               "
        f"{_spark(data.valence_timeline, -1, 1)}"
    )
    if data.participants:
        t = Table("participant", "engagement", "attention", "valence", "speaking s", "turns")
        for p, stats in data.participants.items():
            t.add_row(
                p,
                _fmt(stats.get("engagement")),
                _fmt(stats.get("attention")),
                _fmt(stats.get("valence"), True),
                _fmt(stats.get("speaking_s")),
                str(data.turns.get(p, 0)),
            )
        console.print(t)
    if data.moments:
        console.print("[bold]moments[/]")
        for m in data.moments:
            console.print(
                f"  {m.media_time.start:6.1f}-{m.media_time.end:6.1f} s  "
                f"{m.kind.replace('_', ' ')}: {m.description}"
            )
    console.print("models: " + ", ".join(f"{k}={v}" for k, v in result.models.items()))
    console.print(f"[dim]{NOTICE}[/]")
