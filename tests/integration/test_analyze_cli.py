"""`rapport analyze` end to end: generated media in, the aggregate-only event contract out."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from rapport import NOTICE
from rapport.events.schema import Event, EventType, SessionSummaryData
from rapport.samples import Recording
from tests.fakes.media import not_media, random_bytes, truncated, zero_length

pytestmark = pytest.mark.slow

# Strings allowed in payloads: enums and descriptions, never a label of a frame or a transcript.
ALLOWED_STRING_KEYS = {"direction", "source", "reporting", "kind", "description", "modalities"}
FORBIDDEN_KEYS = {
    "label",
    "labels",
    "probs",
    "text",
    "transcript",
    "frame",
    "frames",
    "image",
    "crop",
    "audio",
    "samples",
    "box",
    "boxes",
    "track_id",
}


def _events(path: Path) -> list[Event]:
    return [Event.model_validate_json(line) for line in path.read_text().splitlines()]


def _assert_aggregate_only(node: Any, key: str = "") -> None:
    if isinstance(node, dict):
        for k, v in node.items():
            assert k not in FORBIDDEN_KEYS, f"forbidden key {k!r} in an event"
            _assert_aggregate_only(v, k)
    elif isinstance(node, list):
        for v in node:
            _assert_aggregate_only(v, key)
    elif isinstance(node, str):
        assert key in ALLOWED_STRING_KEYS, f"string value under {key!r}: {node!r}"


def test_analyze_emits_the_full_contract(run_cli: Any, talk: Recording, tmp_path: Path) -> None:
    out, summary = tmp_path / "e.jsonl", tmp_path / "s.json"
    r = run_cli(
        "analyze", talk.path, "--transcript", talk.transcript, "--out", out, "--summary", summary
    )
    assert r.code == 0, r.stderr
    events = _events(out)
    assert [e.seq for e in events] == list(range(len(events)))  # gap-free
    assert events[0].type == EventType.SESSION_STARTED
    assert events[-1].type == EventType.SESSION_SUMMARY
    windows = [e for e in events if e.type == EventType.ENGAGEMENT_WINDOW]
    assert len(windows) == math.ceil(talk.duration_s / 5.0)
    assert len({e.session_id for e in events}) == 1
    for e in events:
        assert e.notice == NOTICE
        assert set(e.models) == {"face", "voice", "text"}
        assert e.media_time.end >= e.media_time.start
        _assert_aggregate_only(e.model_dump(mode="json")["data"])
    for w in windows:
        assert w.media_time.end - w.media_time.start <= 5.0 + 1e-6
        data = w.model_dump()["data"]
        assert 0.0 <= data["room"]["engagement"] <= 1.0
        assert data["room"]["faces"] == pytest.approx(1.0, abs=0.3)
    turns = [e for e in events if e.type == EventType.TURNS_WINDOW]
    assert sum(sum(e.model_dump()["data"]["turns"].values()) for e in turns) >= 1
    spoken = sum(u.end - u.start for u in talk.speech)
    said = sum(e.model_dump()["data"]["speaking_shares"]["presenter"] * 5.0 for e in turns)
    assert said == pytest.approx(spoken, rel=0.25)
    s = Event.model_validate_json(summary.read_text())
    assert isinstance(s.data, SessionSummaryData)
    assert s.data.windows == len(windows)
    assert s.data.engagement is not None and 0 < s.data.engagement < 1
    assert len(s.data.valence_timeline) == len(windows)
    assert s.data.moments, "a 20 s talk with a negative passage has highlight moments"
    assert "presenter" in s.data.participants


def test_smiling_face_alone_gives_positive_valence(
    run_cli: Any, silent_video: Recording, tmp_path: Path
) -> None:
    out = tmp_path / "e.jsonl"
    r = run_cli("analyze", silent_video.path, "--out", out, "--summary", tmp_path / "s.json")
    assert r.code == 0, r.stderr
    assert "no audio stream: analysing video only" in r.stderr
    windows = [e.model_dump()["data"] for e in _events(out) if e.type == "engagement.window"]
    assert windows
    for w in windows:
        (p,) = w["participants"].values()
        assert p["modalities"] == ["face"]
        assert p["valence"] > 0.3  # the astronaut smiles
        assert p["speaking_share"] == 0.0


def test_voice_only_recording_is_analysed_without_faces(
    run_cli: Any, voice_only: Recording, tmp_path: Path
) -> None:
    out = tmp_path / "e.jsonl"
    r = run_cli("analyze", voice_only.path, "--out", out, "--summary", tmp_path / "s.json")
    assert r.code == 0, r.stderr
    assert "no video stream" in r.stderr
    events = _events(out)
    assert set(events[0].models) == {"voice", "text"}  # transcribed with pocketsphinx
    shares = [
        sum(e.model_dump()["data"]["speaking_shares"].values())
        for e in events
        if e.type == "turns.window"
    ]
    assert max(shares) > 0.2


def test_transcript_speakers_split_voice_turns_and_balance(
    run_cli: Any, talk: Recording, tmp_path: Path
) -> None:
    transcript = tmp_path / "two.jsonl"
    transcript.write_text(
        "".join(
            json.dumps(
                {
                    "start": u.start,
                    "end": u.end,
                    "text": u.text,
                    "speaker": "alice" if i % 2 == 0 else "bob",
                }
            )
            + "\n"
            for i, u in enumerate(talk.speech)
        )
    )
    out, summary = tmp_path / "e.jsonl", tmp_path / "s.json"
    r = run_cli(
        "analyze", talk.path, "--transcript", transcript, "--out", out, "--summary", summary
    )
    assert r.code == 0, r.stderr
    s = Event.model_validate_json(summary.read_text()).data
    assert isinstance(s, SessionSummaryData)
    assert set(s.turns) == {"alice", "bob"}
    assert s.turns["alice"] >= 2 and s.turns["bob"] >= 2
    assert s.speaking_shares["alice"] > 0.1 and s.speaking_shares["bob"] > 0.1
    evenness = [
        e.model_dump()["data"]["evenness"] for e in _events(out) if e.type == "turns.window"
    ]
    assert max(v for v in evenness if v is not None) > 0.5
    # the video is a shared room camera now: its faces are counted for the room, not a speaker
    windows = [e.model_dump()["data"] for e in _events(out) if e.type == "engagement.window"]
    assert all(w["room"]["faces"] > 0.5 for w in windows)
    assert all(p["faces"] == 0 for w in windows for p in w["participants"].values())


def test_room_reporting_leaves_people_out(run_cli: Any, talk: Recording, tmp_path: Path) -> None:
    out = tmp_path / "e.jsonl"
    r = run_cli(
        "analyze",
        talk.path,
        "--transcript",
        talk.transcript,
        "--reporting",
        "room",
        "--out",
        out,
        "--summary",
        tmp_path / "s.json",
    )
    assert r.code == 0, r.stderr
    text = out.read_text()
    assert "presenter" not in text
    for e in _events(out):
        if e.type == "engagement.window":
            assert e.model_dump()["data"]["participants"] == {}


def _bad_inputs(tmp: Path, good: Path) -> dict[str, tuple[Path, str]]:
    return {
        "missing": (tmp / "nope.mp4", "no such file"),
        "directory": (tmp, "directory"),
        "text file": (not_media(tmp / "notes.mp4"), "not"),
        "random bytes": (random_bytes(tmp / "noise.mp4"), "not"),
        "zero length": (zero_length(tmp / "empty.mp4"), "empty"),
        "truncated": (truncated(good, tmp / "cut.mp4", 0.5), "truncated"),
    }


@pytest.mark.parametrize(
    "case", ["missing", "directory", "text file", "random bytes", "zero length", "truncated"]
)
def test_bad_media_fails_in_one_line_and_writes_nothing(
    run_cli: Any, talk: Recording, tmp_path: Path, case: str
) -> None:
    path, words = _bad_inputs(tmp_path, talk.path)[case]
    out = tmp_path / "out"
    r = run_cli("analyze", path, "--out", out / "e.jsonl", "--summary", out / "s.json")
    assert r.code == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("rapport: error:"), r.stderr
    assert words in lines[0].lower()
    assert "Traceback" not in r.stderr
    assert not out.exists() or not any(out.iterdir())


def test_bad_transcript_names_the_line(run_cli: Any, talk: Recording, tmp_path: Path) -> None:
    bad = tmp_path / "bad.vtt"
    bad.write_text("WEBVTT\n\n00:00:01.000 --> 00:00:02.000\nhello\n\n00:00:0x.000 --> 1\nx\n")
    r = run_cli("analyze", talk.path, "--transcript", bad, "--out", tmp_path / "e.jsonl")
    assert r.code == 2
    assert "bad.vtt:6" in r.stderr
    assert not (tmp_path / "e.jsonl").exists()


def test_bad_config_value_is_refused_before_reading_media(
    run_cli: Any, talk: Recording, tmp_path: Path
) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text("window:\n  seconds: 0.5\n")
    r = run_cli("--config", cfg, "analyze", talk.path, "--out", tmp_path / "e.jsonl")
    assert r.code == 2
    assert "window.seconds" in r.stderr


def test_schema_command_prints_the_envelope(run_cli: Any) -> None:
    r = run_cli("schema")
    assert r.code == 0
    schema = json.loads(r.stdout)
    assert {"id", "type", "seq", "media_time", "models", "notice"} <= set(schema["properties"])


def test_a_reader_that_leaves_early_ends_the_command_quietly() -> None:
    # `rapport schema | head -1` printed a BrokenPipeError traceback.
    p = subprocess.Popen(
        [sys.executable, "-m", "rapport.cli", "schema"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert p.stdout is not None and p.stderr is not None
    p.stdout.close()  # the reader is gone before the first write: that write fails, always
    err = p.stderr.read().decode()
    assert p.wait(timeout=60) == 141
    assert err == ""


def test_unwritable_output_fails_before_any_work(
    run_cli: Any, talk: Recording, tmp_path: Path
) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    for out in (tmp_path, blocker / "events.jsonl"):
        r = run_cli("analyze", talk.path, "--out", out, "--summary", tmp_path / "s.json")
        assert r.code == 2
        assert r.stderr.strip().startswith("rapport: error: cannot write"), r.stderr
        assert "Traceback" not in r.stderr
        assert not (tmp_path / "s.json").exists()


def test_summary_defaults_beside_the_events(run_cli: Any, talk: Recording, tmp_path: Path) -> None:
    r = run_cli("analyze", talk.path, "--out", tmp_path / "out" / "e.jsonl", "--quiet", "--no-stt")
    assert r.code == 0, r.stderr
    assert (tmp_path / "out" / "talk.summary.json").is_file()
