"""A readable end-of-session summary for the terminal; the HTML report of a session (the
dashboard's renderer with the events inlined) and the CSV of its windows."""

from __future__ import annotations

import csv
import html
import io
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

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


# -- the HTML report and the CSV of windows -------------------------------------------------

REPORT_TEMPLATE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="Content-Security-Policy"
      content="default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'">
<title>{title}</title>
<style>
{css}
</style>
</head>
<body>
<main>
<h1>{title}</h1>
<p class="muted">A report of one session from its aggregate events: it needs no network.</p>
<div id="session">
<p>This report draws its charts with JavaScript; the events are below as JSON.</p>
</div>
</main>
<script type="application/json" id="events">{events}</script>
<script type="module">
{js}
renderSession(document.getElementById("session"),
  JSON.parse(document.getElementById("events").textContent), {{ state: "report" }});
</script>
</body>
</html>
"""


def render_html(events: list[dict[str, Any]], *, title: str = "rapport report") -> str:
    """One self-contained HTML file: the dashboard's stylesheet and session renderer inlined,
    and the events as JSON (`</` escaped so no event text can end the script element)."""
    from rapport.service import dashboard

    data = json.dumps(events, separators=(",", ":"), ensure_ascii=True).replace("</", "<\\/")
    return REPORT_TEMPLATE.format(
        title=html.escape(title),
        css=dashboard.read("dashboard.css"),
        js=dashboard.read("session.js"),
        events=data,
    )


CSV_ROOM = (
    "media_start",
    "media_end",
    "engagement",
    "valence",
    "arousal",
    "trend",
    "silence_share",
    "evenness",
    "participants",
)
PERSON_FIELDS = ("engagement", "valence", "arousal", "speaking_share", "turns")


def _window_rows(events: list[dict[str, Any]]) -> tuple[str, list[dict[str, Any]]]:
    """The reporting level, and one row per window (engagement and turns of one media range)."""
    reporting = "room"
    rows: dict[float, dict[str, Any]] = {}
    for e in events:
        kind, data = e.get("type"), e.get("data") or {}
        if kind == "session.started":
            reporting = data.get("reporting", "room")
        if kind not in ("engagement.window", "turns.window"):
            continue
        start, end = e["media_time"]["start"], e["media_time"]["end"]
        row = rows.setdefault(round(start, 3), {"media_start": start, "media_end": end})
        if kind == "engagement.window":
            room = data["room"]
            for k in ("engagement", "valence", "arousal", "trend", "participants"):
                row[k] = room.get(k)
            row["people"] = data.get("participants") or {}
        else:
            row["silence_share"] = data.get("silence_share")
            row["evenness"] = data.get("evenness")
            row["shares"] = data.get("speaking_shares") or {}
    return reporting, [rows[k] for k in sorted(rows)]


def _cell(v: Any) -> str:
    if v is None:
        return ""
    if isinstance(v, float):
        return repr(round(v, 6))
    return str(v)


def csv_text(events: list[dict[str, Any]]) -> str:
    """One row per window: the room columns, and per-person columns (`<who>.<field>`) only when
    the session reported per participant; a room-reported session names nobody."""
    reporting, rows = _window_rows(events)
    people: list[str] = []
    if reporting == "participant":
        seen = {who for r in rows for who in r.get("people", {})}
        people = sorted(seen)
    header = [*CSV_ROOM, *(f"{who}.{f}" for who in people for f in PERSON_FIELDS)]
    out = io.StringIO()
    w = csv.writer(out, lineterminator="\n")
    w.writerow(header)
    for r in rows:
        cells = [_cell(r.get(k)) for k in CSV_ROOM]
        for who in people:
            p = r.get("people", {}).get(who)
            cells += [_cell(p.get(f)) if p else "" for f in PERSON_FIELDS]
        w.writerow(cells)
    return out.getvalue()


def read_events(path: Path) -> list[dict[str, Any]]:
    """The events of a JSONL file (as `rapport analyze --out` writes it)."""
    with path.open(encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]
