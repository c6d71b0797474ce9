"""Issue 10: `rapport analyze` on recordings whose last window is short, or takes the tail (a tail
shorter than max(1 s, half a window) joins the last window), with speech in the last 2 s.

The reported case: a 12 s recording with speech at 10.4-11.8 s crashed the CLI (silence_share > 1,
no summary), since speech past the nominal end (10 s) of the last window was clipped to that end.
scripts/sweep_tail.py does the same over every length from 10 s to 30 s.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from rapport.events.schema import Event, EventType, SessionSummaryData
from rapport.invariants import check_events
from rapport.samples import Recording, make_recording

pytestmark = pytest.mark.slow

PHRASE = "Thank you all for coming."  # about 1.5 s
VAD_TOLERANCE_S = 0.3  # speech the VAD may miss or add around a line


@dataclass(frozen=True)
class Case:
    duration: float
    last_window: tuple[float, float]
    """Where the tail rule puts the last window (5 s windows, the default)."""
    start: float | None = None
    """Where the speech starts; None: it ends `gap` seconds before the end of the file."""
    gap: float = 0.0
    """Below 0 the line would run on past the end and is cut off by it."""


CASES = {
    # the tail (2 s) joins [5, 10): the speech lies wholly past that window's nominal end
    "12.0-reported": Case(12.0, (5.0, 12.0), start=10.4),
    # a joined tail (2.4 s), the speech cut off by the end of the file
    "12.4-to-the-end": Case(12.4, (5.0, 12.4), gap=-0.3),
    # a joined tail (1.6 s), the speech across the nominal end (9.6-11.1 s)
    "11.6-across-10s": Case(11.6, (5.0, 11.6), start=9.6),
    # a tail of 3 s stands alone: a short last window, the speech ending 0.2 s before the end
    "13.0-short": Case(13.0, (10.0, 13.0), gap=0.2),
    # a tenth short of a full window, the speech ending at the end
    "14.9-short": Case(14.9, (10.0, 14.9), gap=0.0),
}
RUNS = [pytest.param(name, False, id=name) for name in CASES]
RUNS.append(pytest.param("12.0-reported", True, id="12.0-reported-with-transcript"))


@pytest.fixture(scope="module")
def recordings(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Recording]:
    """One recording per case (one face, one spoken line), with a WebVTT transcript."""
    folder = tmp_path_factory.mktemp("short-tail")
    probe = make_recording(
        folder / "phrase.wav", duration_s=4.0, with_video=False, speech=[(0.0, PHRASE)]
    )
    (line,) = probe.speech
    lead, length = line.start, line.end - line.start  # make_recording starts it `lead` late
    out = {}
    for i, (name, case) in enumerate(CASES.items()):
        start = case.duration - case.gap - length if case.start is None else case.start
        out[name] = make_recording(
            folder / f"tail{i}.mp4",
            duration_s=case.duration,
            speech=[(start - lead, PHRASE)],
            transcript=folder / f"tail{i}.vtt",
        )
    return out


@pytest.mark.parametrize(("name", "transcript"), RUNS)
def test_last_window_takes_the_speech_up_to_the_end(
    run_cli: Any,
    recordings: dict[str, Recording],
    tmp_path: Path,
    name: str,
    transcript: bool,
) -> None:
    case, rec = CASES[name], recordings[name]
    (line,) = rec.speech
    out, summary = tmp_path / "e.jsonl", tmp_path / "s.json"
    args = ["analyze", rec.path, "--out", out, "--summary", summary]
    r = run_cli(*args, *(["--transcript", rec.transcript] if transcript else []))
    assert r.code == 0, r.stderr
    assert summary.is_file(), "no summary written"

    events = [Event.model_validate_json(ln) for ln in out.read_text().splitlines()]
    check_events(events, ended=True)
    windows = [e for e in events if e.type == EventType.ENGAGEMENT_WINDOW]
    turns = [e.model_dump()["data"] for e in events if e.type == EventType.TURNS_WINDOW]
    last = windows[-1].media_time
    assert (last.start, last.end) == pytest.approx(case.last_window, abs=1e-6)
    assert len(windows) == round(case.last_window[0] / 5.0) + 1
    s = Event.model_validate_json(summary.read_text()).data
    assert isinstance(s, SessionSummaryData)
    assert s.duration_s == pytest.approx(rec.duration_s, abs=1e-6)  # the window ends at the end
    assert s.windows == len(windows)

    # The speech put into the last window is what it reports, as silence and as speaking share.
    length = last.end - last.start
    put = max(0.0, min(line.end, last.end) - max(line.start, last.start))
    silence = turns[-1]["silence_share"]
    assert 0.0 <= silence <= 1.0
    assert (1.0 - silence) * length == pytest.approx(put, abs=VAD_TOLERANCE_S)
    (share,) = turns[-1]["speaking_shares"].values()
    assert share * length == pytest.approx(put, abs=VAD_TOLERANCE_S)
