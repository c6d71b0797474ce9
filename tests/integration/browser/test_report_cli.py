"""`rapport analyze --report --csv`: one HTML file that opens with every request refused and
shows the summary's numbers, a CSV row per window with the events' numbers, and the usual
one-line error, before any work, when an output cannot be written."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

from rapport.samples import Recording
from tests.integration.browser.conftest import Page


def test_analyze_writes_a_report_and_a_csv(
    run_cli: Any, short_talk: Recording, chromium: Any, tmp_path: Path
) -> None:
    out, summary = tmp_path / "e.jsonl", tmp_path / "s.json"
    report, table = tmp_path / "out" / "report.html", tmp_path / "w.csv"
    r = run_cli(
        "analyze", short_talk.path, "--transcript", short_talk.transcript,
        "--participant", "presenter", "--out", out, "--summary", summary,
        "--report", report, "--csv", table, "--quiet",
    )  # fmt: skip
    assert r.code == 0, r.stderr
    assert f"report: {report}" in r.stdout and f"csv: {table}" in r.stdout
    events = [json.loads(line) for line in out.read_text().splitlines()]
    data = json.loads(summary.read_text())["data"]
    windows = [e for e in events if e["type"] == "engagement.window"]
    rows = list(csv.DictReader(table.open()))
    assert [float(row["media_start"]) for row in rows] == [
        e["media_time"]["start"] for e in windows
    ]
    for row, e in zip(rows, windows, strict=True):
        room = e["data"]["room"]
        for field in ("engagement", "valence"):
            assert (
                (row[field] == "")
                if room[field] is None
                else (abs(float(row[field]) - room[field]) < 1e-6)
            )
        assert "presenter.engagement" in row  # per-participant reporting: a column per person

    tab = Page(chromium)
    asked: list[str] = []

    def refuse(route: Any) -> None:
        if route.request.url.startswith("file:"):
            route.continue_()
        else:
            asked.append(route.request.url)
            route.abort()

    tab.page.route("**/*", refuse)
    tab.page.goto(report.as_uri())
    box = tab.page.locator("[data-summary]")
    box.wait_for(timeout=5000)
    for field, value in (
        ("summary_engagement", data["engagement"]),
        ("summary_valence", data["valence"]),
        ("summary_trend", data["engagement_trend"]),
        ("summary_windows", data["windows"]),
    ):
        shown = box.locator(f'[data-field="{field}"]').get_attribute("data-value")
        assert (shown == "") if value is None else float(shown or "nan") == value, field
    assert tab.rows().keys() == {e["seq"] for e in windows}
    assert asked == [] and tab.errors == []
    tab.close()


def test_an_unwritable_report_fails_first_in_one_line(
    run_cli: Any, short_talk: Recording, tmp_path: Path
) -> None:
    (tmp_path / "taken").mkdir()
    r = run_cli(
        "analyze", short_talk.path, "--transcript", short_talk.transcript,
        "--participant", "presenter", "--out", tmp_path / "e.jsonl",
        "--report", tmp_path / "taken", "--quiet",
    )  # fmt: skip
    assert r.code == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("rapport: error: cannot write"), r.stderr
    assert not (tmp_path / "e.jsonl").exists()  # refused before any work
