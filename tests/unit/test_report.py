"""The HTML report and the CSV of windows (rapport.report), from events as the pipeline emits
them: the same numbers, nobody named in a room-reported session, nothing that can break out of
the report's script element."""

from __future__ import annotations

import csv
import io
import json
import re
from pathlib import Path
from typing import Any

from rapport.report import CSV_ROOM, csv_text, read_events, render_html


def _event(seq: int, kind: str, start: float, end: float, data: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": f"evt_{seq}",
        "type": kind,
        "version": 1,
        "session_id": "ses_x",
        "seq": seq,
        "emitted_at": "2026-12-01T10:00:00Z",
        "media_time": {"start": start, "end": end},
        "data": data,
        "models": {"face": "f@1"},
        "notice": "Estimates of outward expression, not of anyone's inner state.",
    }


def _person(engagement: float, share: float) -> dict[str, Any]:
    return {
        "engagement": engagement,
        "components": {"attention": 0.9, "expressiveness": 0.5, "participation": 0.6},
        "calibrating": False,
        "valence": 0.2,
        "arousal": None,
        "speaking_share": share,
        "turns": 2,
        "faces": 1.0,
        "modalities": ["face"],
    }


def _session(reporting: str) -> list[dict[str, Any]]:
    people = (
        {"ann": _person(0.8, 0.6), "bo": _person(0.4, 0.3)} if reporting == "participant" else {}
    )
    shares = {"ann": 0.6, "bo": 0.3} if reporting == "participant" else {"speaker-3f09a2": 0.6}
    room = {"engagement": 0.6, "trend": None, "valence": 0.2, "arousal": None, "participants": 2}
    events = [
        _event(
            0,
            "session.started",
            0,
            0,
            {
                "source": "recording",
                "modalities": ["face"],
                "window_s": 5,
                "sample_fps": 4,
                "reporting": reporting,
            },
        ),
    ]
    seq = 1
    for i in range(3):
        start, end = 5.0 * i, 5.0 * (i + 1)
        w = {
            "room": {**room, "engagement": 0.5 + i / 10, "trend": 0.01 * i or None, "faces": 2.0},
            "participants": people,
        }
        events.append(_event(seq, "engagement.window", start, end, w))
        t = {
            "speaking_shares": shares,
            "turns": {k: 1 for k in shares},
            "silence_share": 0.1,
            "evenness": 0.92,
        }
        events.append(_event(seq + 1, "turns.window", start, end, t))
        seq += 2
    return events


def _rows(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text)))


def test_csv_has_a_row_per_window_with_the_events_numbers() -> None:
    events = _session("participant")
    rows = _rows(csv_text(events))
    windows = [e for e in events if e["type"] == "engagement.window"]
    assert len(rows) == len(windows) == 3
    for row, e in zip(rows, windows, strict=True):
        assert float(row["media_start"]) == e["media_time"]["start"]
        assert float(row["media_end"]) == e["media_time"]["end"]
        assert float(row["engagement"]) == e["data"]["room"]["engagement"]
        assert row["arousal"] == ""  # null stays empty, never 0
        assert float(row["silence_share"]) == 0.1 and float(row["evenness"]) == 0.92
        assert row["participants"] == "2"
        assert float(row["ann.engagement"]) == 0.8 and float(row["bo.speaking_share"]) == 0.3
    assert rows[0]["trend"] == "" and float(rows[2]["trend"]) == 0.02


def test_csv_of_a_room_session_names_nobody() -> None:
    text = csv_text(_session("room"))
    header = text.splitlines()[0].split(",")
    assert header == list(CSV_ROOM)
    assert "speaker-" not in text and "ann" not in text


def test_report_inlines_everything_and_cannot_be_broken_out_of(tmp_path: Path) -> None:
    events = _session("participant")
    hostile = _event(
        7,
        "consent.revoked",
        15,
        15,
        {
            "consent_id": "</script><script>alert(1)//",
            "revoked_at": "2026-12-01T10:00:00Z",
            "purged": True,
        },
    )
    html = render_html([*events, hostile], title="<b>a</b> & b")
    assert "<title>&lt;b&gt;a&lt;/b&gt; &amp; b</title>" in html
    # Nothing is fetched: no src=, href= or url( to anywhere.
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:|//|/)""", html)
    assert "@import" not in html
    # The events come back out of the JSON element whole, and the hostile text never closes it.
    body = html.split('<script type="application/json" id="events">', 1)[1].split("</script>")[0]
    assert json.loads(body) == [*events, hostile]
    assert html.count("</script>") == 2
    assert "export function renderSession" in html


def test_read_events_reads_jsonl(tmp_path: Path) -> None:
    events = _session("room")
    path = tmp_path / "e.jsonl"
    path.write_text("".join(json.dumps(e) + "\n" for e in events) + "\n")
    assert read_events(path) == events
