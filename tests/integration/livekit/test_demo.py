"""`rapport demo --livekit`: local server, `rapport serve`, a simulated participant, end to end."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from rapport.events.schema import Event


def test_demo_through_livekit(run_cli: Any, livekit_binary: Path, tmp_path: Path) -> None:
    r = run_cli("demo", "--livekit", "--dir", tmp_path)
    assert r.code == 0, r.stderr
    out = tmp_path / "livekit"
    events = [Event.model_validate_json(line) for line in (out / "events.jsonl").open()]
    assert events[0].type == "session.started"
    assert json.loads(events[0].model_dump_json())["data"]["source"] == "livekit"
    assert events[-1].type == "session.summary"
    assert [e.seq for e in events] == list(range(len(events)))
    assert sum(e.type == "engagement.window" for e in events) >= 3  # a 20 s recording, 5 s windows
    summary = json.loads((out / "summary.json").read_text())
    assert summary["data"]["participants"], "the consenting presenter is reported"
    assert "session.summary" in r.stderr
