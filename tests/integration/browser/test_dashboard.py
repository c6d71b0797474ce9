"""The dashboard in a real browser against a real `rapport serve`: what the page shows is what
the events say, live (within 1 s of each event on the WebSocket), across a dropped connection
and a server restart (no gap, no duplicate), and never a person in a room-reported session.
Screenshots for the README go to docs/img/."""

from __future__ import annotations

import math
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from rapport.samples import Recording
from tests.integration.browser.conftest import (
    IMG,
    FixedPortService,
    Listener,
    Page,
    make_fixed_service,
)

SHOWN_WITHIN_S = 1.0


@pytest.fixture
def shots(tmp_path: Path) -> Path:
    """Where screenshots go: docs/img/ with RAPPORT_SCREENSHOTS=1 (to refresh the README's),
    else the test's own folder (a test run leaves the checkout as it was)."""
    return IMG if os.environ.get("RAPPORT_SCREENSHOTS") else tmp_path


@pytest.fixture(scope="module")
def svc(
    tmp_path_factory: pytest.TempPathFactory, models_dir: Path, media_dir: Path
) -> Iterator[FixedPortService]:
    s = make_fixed_service(tmp_path_factory.mktemp("dash"), models_dir, media_dir)
    yield s
    s.stop()


def _same(shown: str | None, value: Any) -> bool:
    if value is None:
        return shown == ""
    return shown is not None and math.isclose(float(shown), float(value), abs_tol=1e-12)


def _check_rows(page: Page, events: list[dict[str, Any]]) -> None:
    rows = page.rows()
    windows = [e for e in events if e["type"] == "engagement.window"]
    turns = {e["media_time"]["start"]: e["data"] for e in events if e["type"] == "turns.window"}
    assert sorted(rows) == [e["seq"] for e in windows]
    for e in windows:
        row, room = rows[e["seq"]], e["data"]["room"]
        for field in ("engagement", "valence", "arousal", "trend"):
            assert _same(row[field], room[field]), (e["seq"], field, row[field], room[field])
        t = turns[e["media_time"]["start"]]
        for field in ("silence_share", "evenness"):
            assert _same(row[field], t[field]), (e["seq"], field, row[field], t[field])


def test_live_session_report_and_refusals(
    svc: FixedPortService, chromium: Any, short_talk: Recording, tmp_path: Path, shots: Path
) -> None:
    session = svc.session(short_talk, speed=1.0)
    consent = svc.consent(session["id"], "presenter")
    tab = Page(chromium)
    page = tab.page
    page.goto(svc.dashboard)
    page.get_by_label("API key or dashboard token").wait_for()
    assert tab.errors == []
    # A wrong key is refused, with a message that says so (the browser logs the 401 itself).
    tab.sign_in("rk_not_a_key")
    refused = page.get_by_role("alert")
    refused.filter(has_text="Refused").wait_for(timeout=5000)
    assert "not valid" in refused.inner_text()
    assert all("401" in e for e in tab.errors), tab.errors
    tab.errors.clear()
    assert page.locator("#sessions").is_hidden()
    # The right one lists the session; opening it waits for its events.
    tab.sign_in(svc.key)
    page.get_by_role("button", name=f"Open session {session['id']}").click()
    page.locator('[data-state="live"]').wait_for(timeout=5000)
    listener = Listener(svc, session["id"])
    try:
        assert svc.http.post(f"/v1/sessions/{session['id']}/start").status_code == 200
        early = svc.http.get(f"/v1/sessions/{session['id']}/report")
        assert early.status_code == 409 and early.json()["error"]["code"] == "session_not_ended"
        # Mid-session: a screenshot, then a revocation that the page shows.
        page.locator("tr[data-seq]").nth(1).wait_for(state="attached", timeout=15000)
        page.get_by_text("Participants (latest window)").wait_for()
        page.screenshot(path=str(shots / "dashboard-live.png"))
        assert page.locator('[data-person="presenter"]').count() == 1
        revoked = svc.http.post(f"/v1/consents/{consent['id']}/revoke")
        assert revoked.status_code == 200
        page.locator('[data-moment="revoked"]').wait_for(timeout=5000)
        assert consent["id"] in page.locator('[data-moment="revoked"]').inner_text()
        page.locator('[data-state="ended"]').wait_for(timeout=30000)
    finally:
        listener.close()
    events = [e for _, e in listener.events]
    assert [e["seq"] for e in events] == list(range(len(events)))
    _check_rows(tab, events)
    # Each window appeared within a second of its event on our own WebSocket.
    seen = tab.seen()
    for arrived, e in listener.events:
        if e["type"] == "engagement.window":
            late = seen[e["seq"]] - arrived
            assert late <= SHOWN_WITHIN_S, f"window {e['seq']} shown {late:.3f} s after its event"
    # The latest window's panel is the last window's event.
    last = [e for e in events if e["type"] == "engagement.window"][-1]
    latest = page.locator("[data-latest-seq]")
    assert latest.get_attribute("data-latest-seq") == str(last["seq"])
    for field in ("engagement", "valence", "arousal", "trend", "participants"):
        shown = latest.locator(f'[data-field="{field}"]').get_attribute("data-value")
        assert _same(shown, last["data"]["room"][field]), field
    summary = events[-1]
    assert summary["type"] == "session.summary"
    _check_summary(tab, summary)
    page.screenshot(path=str(shots / "dashboard-ended.png"), full_page=True)
    assert tab.errors == []
    tab.close()

    # The report: one file that opens with every request refused, showing the same numbers.
    r = svc.http.get(f"/v1/sessions/{session['id']}/report")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    report = tmp_path / "report.html"
    report.write_text(r.text)
    offline = Page(chromium)
    requests: list[str] = []

    def refuse(route: Any) -> None:
        if route.request.url.startswith("file:"):
            route.continue_()
        else:
            requests.append(route.request.url)
            route.abort()

    offline.page.route("**/*", refuse)
    offline.page.goto(report.as_uri())
    offline.page.locator("[data-summary]").wait_for(timeout=5000)
    assert requests == []
    _check_summary(offline, summary)
    _check_rows(offline, events)
    offline.page.screenshot(path=str(shots / "report.png"), full_page=True)
    assert offline.errors == []
    offline.close()


def _check_summary(tab: Page, summary: dict[str, Any]) -> None:
    d = summary["data"]
    box = tab.page.locator("[data-summary]")
    for field, value in (
        ("summary_engagement", d["engagement"]),
        ("summary_trend", d["engagement_trend"]),
        ("summary_valence", d["valence"]),
        ("summary_duration", d["duration_s"]),
        ("summary_windows", d["windows"]),
    ):
        shown = box.locator(f'[data-field="{field}"]').get_attribute("data-value")
        assert _same(shown, value), (field, shown, value)
    for reason, n in d["dropped"].items():
        assert tab.page.locator(f'[data-reason="{reason}"]').inner_text() == str(n)
    notice = tab.page.locator("[data-notice]").inner_text()
    assert notice == summary["notice"]
    for name in summary["models"].values():
        assert name in tab.page.locator("ul.models").inner_text()


def test_room_session_never_shows_a_person(
    svc: FixedPortService, chromium: Any, short_talk: Recording
) -> None:
    """Replayed after its end, from a dashboard token alone (no key in the page)."""
    session = svc.session(short_talk, reporting="room")
    svc.consent(session["id"], "presenter")
    assert svc.http.post(f"/v1/sessions/{session['id']}/start").status_code == 200
    svc.wait_status(session["id"], "ended")
    token = svc.http.post(f"/v1/sessions/{session['id']}/tokens").json()["token"]
    tab = Page(chromium, width=390, height=844)  # a phone
    tab.page.goto(svc.dashboard)
    tab.sign_in(token)
    tab.page.locator('[data-state="ended"]').wait_for(timeout=10000)
    events = svc.events(session["id"])
    _check_rows(tab, events)
    _check_summary(tab, events[-1])
    assert tab.page.locator("[data-person], [data-people]").count() == 0
    text = tab.page.locator("body").inner_text()
    assert "presenter" not in text and "speaker-" not in text
    assert tab.page.locator('[data-field="reporting"]').inner_text() == "room"
    # Readable at phone width: nothing wider than the screen.
    width = tab.page.evaluate("document.documentElement.scrollWidth")
    assert width <= 390, width
    assert tab.errors == []
    tab.close()


def test_server_restart_mid_session_same_timeline(
    tmp_path: Path, models_dir: Path, media_dir: Path, chromium: Any, short_talk: Recording
) -> None:
    svc = make_fixed_service(tmp_path / "restart", models_dir, media_dir)
    try:
        session = svc.session(short_talk, speed=1.0)
        svc.consent(session["id"], "presenter")
        tab = Page(chromium)
        tab.page.goto(svc.dashboard)
        tab.sign_in(svc.key)
        tab.page.get_by_role("button", name=f"Open session {session['id']}").click()
        tab.page.locator('[data-state="live"]').wait_for(timeout=5000)
        assert svc.http.post(f"/v1/sessions/{session['id']}/start").status_code == 200
        tab.page.locator("tr[data-seq]").first.wait_for(state="attached", timeout=15000)
        svc.kill()
        tab.page.locator('[data-state="reconnecting…"]').wait_for(timeout=5000)
        svc.start()  # the session was a recording's: it is interrupted, its events kept
        tab.page.locator('[data-state^="ended"]').wait_for(timeout=20000)
        stored = svc.events(session["id"])
        assert [e["seq"] for e in stored] == list(range(len(stored)))
        _check_rows(tab, stored)
        shown = tab.page.evaluate("document.querySelectorAll('tr[data-seq]').length")
        assert shown == len([e for e in stored if e["type"] == "engagement.window"])
        # Dropped-connection errors are the browser's own log lines; the page threw nothing.
        assert [e for e in tab.errors if "WebSocket" not in e and "ERR_" not in e] == []
        tab.close()
    finally:
        svc.stop()


def _event(seq: int, kind: str, start: float, end: float, data: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": f"evt_{seq}",
        "type": kind,
        "version": 1,
        "session_id": "ses_gap",
        "seq": seq,
        "emitted_at": "2026-12-01T10:00:00Z",
        "media_time": {"start": start, "end": end},
        "data": data,
        "models": {"face": "f@1"},
        "notice": "Estimates of outward expression, not of anyone's inner state.",
    }


def test_report_shows_a_resumed_gap(chromium: Any, tmp_path: Path) -> None:
    """A `session.resumed` (a worker moved the session) is a shaded gap on the timeline and a
    moment saying which media time nobody analysed."""
    from rapport.report import render_html

    room = {"trend": None, "valence": 0.1, "arousal": 0.0, "participants": 3, "faces": 3.0}
    turns = {"speaking_shares": {}, "turns": {}, "silence_share": 0.5, "evenness": 0.9}
    started = {"source": "livekit", "modalities": ["face"], "window_s": 2.0, "sample_fps": 4}
    events = [
        _event(0, "session.started", 0, 0, {**started, "reporting": "room"}),
        _event(1, "engagement.window", 0, 2, {"room": {**room, "engagement": 0.5}}),
        _event(2, "turns.window", 0, 2, turns),
        _event(
            3, "session.resumed", 2, 6, {"reason": "worker_lost", "gap": {"start": 2, "end": 6}}
        ),
        _event(4, "engagement.window", 6, 8, {"room": {**room, "engagement": 0.7}}),
        _event(5, "turns.window", 6, 8, turns),
    ]
    report = tmp_path / "gap.html"
    report.write_text(render_html(events, title="gap </script><b>"))
    tab = Page(chromium)
    tab.page.route(
        "**/*", lambda r: r.continue_() if r.request.url.startswith("file:") else r.abort()
    )
    tab.page.goto(report.as_uri())
    moment = tab.page.locator('[data-moment="gap"]')
    moment.wait_for(timeout=5000)
    assert moment.inner_text().startswith("2.0 s\u20136.0 s: not analysed")
    assert tab.page.locator("svg.chart rect.gap").count() == 2  # both charts
    assert sorted(tab.rows()) == [1, 4]
    assert tab.page.title() == "gap </script><b>"
    assert tab.errors == []
    tab.close()


def test_report_shows_synchrony_as_the_events_say(chromium: Any, tmp_path: Path) -> None:
    """synchrony.window: a DET chart, the latest span's room numbers, its pairs with participant
    reporting; a withheld span says so and shows no number."""
    import numpy as np

    from rapport.analytics.synchrony import SynchronyTracker
    from rapport.config import SynchronySettings
    from rapport.frames import FrameSummary
    from rapport.report import render_html

    rng = np.random.default_rng(3)
    drive = np.convolve(rng.normal(size=260), np.ones(8) / 8, mode="valid")
    tracker = SynchronyTracker(SynchronySettings(), 4.0)
    for k in range(240):  # bob follows ann 1 s later; cy on his own
        for who, v in (("ann", drive[k + 4]), ("bob", drive[k]), ("cy", rng.normal())):
            tracker.add(FrameSummary(who, k / 4, 1, 1.0, float(np.tanh(v)), 0.0, 0.5))
    out = tracker.window(60.0, "participant", 3)
    assert out is not None
    sync = out[1].model_dump(mode="json")
    started = {"source": "livekit", "modalities": ["face"], "window_s": 60.0, "sample_fps": 4}
    events = [
        _event(0, "session.started", 0, 0, {**started, "reporting": "participant"}),
        _event(1, "synchrony.window", 0, 60, sync),
    ]
    report = tmp_path / "sync.html"
    report.write_text(render_html(events))
    tab = Page(chromium)
    tab.page.route(
        "**/*", lambda r: r.continue_() if r.request.url.startswith("file:") else r.abort()
    )
    tab.page.goto(report.as_uri())
    tab.page.locator("[data-pairs]").wait_for(timeout=5000)
    room = sync["room"]
    for field, value in (("sync_det", room["det"]["mean"]), ("sync_rr", room["rr"]["mean"])):
        shown = tab.page.locator(f'[data-field="{field}"]').get_attribute("data-value")
        assert _same(shown, value), (field, shown, value)
    ann_bob = next(p for p in sync["pairs"] if {p["a"], p["b"]} == {"ann", "bob"})
    assert ann_bob["leader"] == "ann"
    row = tab.page.locator(f'[data-pair="{ann_bob["a"]}|{ann_bob["b"]}"]').inner_text()
    assert f"ann by {ann_bob['lag_s']:.2f} s" in row
    assert tab.page.locator("[data-pairs] tbody tr").count() == 3
    assert tab.page.locator("svg.chart path.line.sync").count() == 1
    assert tab.errors == []

    withheld = tracker.window(60.0, "room", 4)
    assert withheld is not None
    events = [
        _event(0, "session.started", 0, 0, {**started, "reporting": "room"}),
        _event(1, "synchrony.window", 0, 60, withheld[1].model_dump(mode="json")),
    ]
    report.write_text(render_html(events))
    tab.page.goto(report.as_uri())
    tab.page.locator("[data-synchrony-withheld]").wait_for(timeout=5000)
    assert tab.page.locator('[data-field="sync_det"]').count() == 0
    assert tab.page.locator("[data-pairs]").count() == 0
    assert tab.errors == []
    tab.close()


def test_a_revoked_key_closes_the_view(
    svc: FixedPortService, chromium: Any, short_talk: Recording
) -> None:
    """Signed in and opened by keyboard; then the key is revoked: the open view says so
    (WebSocket 4401 within service.key_check_s) and does not try again."""
    made = svc.http.post("/v1/keys", json={"name": "dashboard", "scope": "backend"}).json()
    key_id, key = made["id"], made["key"]
    session = svc.session(short_talk)
    tab = Page(chromium)
    tab.page.goto(svc.dashboard)
    # By keyboard alone: the first Tab reaches the credential, Enter signs in and opens.
    tab.page.keyboard.press("Tab")
    assert tab.page.evaluate("document.activeElement.id") == "credential"
    tab.page.keyboard.type(key)
    tab.page.keyboard.press("Enter")
    opener = tab.page.get_by_role("button", name=f"Open session {session['id']}")
    opener.focus()
    tab.page.keyboard.press("Enter")
    tab.page.locator('[data-state="live"]').wait_for(timeout=5000)
    assert svc.http.delete(f"/v1/keys/{key_id}").status_code == 200
    tab.page.locator('[data-state^="access revoked"]').wait_for(timeout=5000)
    assert "revoked" in tab.page.get_by_role("status").inner_text()
    assert tab.errors == []
    tab.close()


def test_session_list_pages_newest_first(svc: FixedPortService, short_talk: Recording) -> None:
    """GET /v1/sessions, the list the dashboard shows: the project's own, newest first, a page
    of `limit` at a time (`after` = the last one's id), filtered by status on request."""
    made = [svc.session(short_talk)["id"] for _ in range(3)]
    listed = svc.http.get("/v1/sessions", params={"limit": 1000}).json()
    ids = [s["id"] for s in listed]
    assert ids[:3] == made[::-1]
    created = [s["created_at"] for s in listed]
    assert created == sorted(created, reverse=True)
    paged: list[str] = []
    after = None
    while True:
        params: dict[str, Any] = {"limit": 2} | ({"after": after} if after else {})
        page = svc.http.get("/v1/sessions", params=params).json()
        paged += [s["id"] for s in page]
        if len(page) < 2:
            break
        after = page[-1]["id"]
    assert paged == ids
    ended = svc.http.get("/v1/sessions", params={"status": "ended"}).json()
    assert ended and {s["status"] for s in ended} == {"ended"}
    missing = svc.http.get("/v1/sessions", params={"after": "ses_missing"})
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "not_found"
    # (Another project's key lists none of these: tests/integration/service/test_projects.py.)


def test_dashboard_files_are_served_and_nothing_else(svc: FixedPortService) -> None:
    plain = httpx.Client(base_url=svc.url, timeout=10)  # no key: the page signs in itself
    moved = plain.get("/dashboard")
    assert moved.status_code == 308 and moved.headers["location"] == "/dashboard/"
    for path, kind in (
        ("/dashboard/", "text/html"),
        ("/dashboard/app.js", "text/javascript"),
        ("/dashboard/session.js", "text/javascript"),
        ("/dashboard/dashboard.css", "text/css"),
    ):
        r = plain.get(path)
        assert r.status_code == 200 and r.headers["content-type"].startswith(kind), path
        assert "default-src 'self'" in r.headers["content-security-policy"]
    for path in ("/dashboard/__init__.py", "/dashboard/..%2F__init__.py", "/dashboard/static"):
        assert plain.get(path).status_code == 404, path
    assert "/dashboard" not in str(svc.http.get("/openapi.json").json()["paths"])
    plain.close()
