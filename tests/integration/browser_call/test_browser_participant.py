"""A person in the call through a real browser: headless Chromium joins the local LiveKit room
with LiveKit's JavaScript SDK (tests/browser/participant.html), publishing a simulcast camera and
a microphone that play a generated recording; they consent through the API, and the bot in
`rapport serve` analyses them. Everything runs on 127.0.0.1, in about 20 s here."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from tests.fakes.browser_call import fake_media_args
from tests.fakes.wait import wait_until
from tests.integration.browser_call.conftest import FakeMedia
from tests.integration.service.test_livekit_bot import ROOM, Room, admitted, windows

WHO = "carol"
BOUND_S = 60.0  # the whole test, Chromium's start and the session's end included


def test_a_browser_participant_is_tapped_and_reported_on(
    room: Room, chromium: str, pages: str, camera_and_mic: FakeMedia, tmp_path: Path
) -> None:
    from playwright.sync_api import sync_playwright

    started = time.monotonic()
    svc = room.svc
    sid = room.session()
    svc.consent(sid, WHO)
    console: list[str] = []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=chromium,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                *fake_media_args(camera_and_mic.video, camera_and_mic.audio),
            ],
            timeout=20_000,
        )
        try:
            # The second page: the service's dashboard, signed in with a dashboard token for the
            # session before anyone joins, drawing the windows as they arrive.
            dash = browser.new_page()
            dash.on("console", lambda m: console.append(f"dashboard {m.type}: {m.text}"))
            dash.goto(f"{svc.url}/dashboard/")
            dash_token = svc.http.post(f"/v1/sessions/{sid}/tokens").json()["token"]
            dash.fill("#credential", dash_token)
            dash.click("#signin button[type=submit]")
            dash.wait_for_selector("[data-state^='live']", timeout=10_000)
            page = browser.new_page()
            page.on("console", lambda m: console.append(f"{m.type}: {m.text}"))
            page.goto(f"{pages}/participant.html")
            token = room.lk.token(WHO, room=ROOM)
            page.evaluate(
                "([url, token]) => { join(url, token).catch(() => {}); }", [room.lk.url, token]
            )
            state = "({state: call.state, error: call.error, published: call.published})"
            call = wait_until(
                lambda: (c := page.evaluate(state))["state"] in ("published", "failed") and c,
                30,
                lambda: f"the page to join and publish: {page.evaluate(state)}; {console}",
            )
            assert call["state"] == "published", (call["error"], console)
            published = {p["source"]: p for p in call["published"]}
            assert set(published) == {"camera", "microphone"}
            assert published["camera"]["simulcasted"] is True
            assert published["camera"]["layers"] == [[320, 180], [640, 360]]

            def taken() -> dict[str, Any] | None:
                s = room.get(sid)
                got = admitted(s, WHO)
                return s if got.get("face", 0) >= 20 and got.get("voice", 0) >= 10 else None

            during = wait_until(
                taken, 30, lambda: f"{WHO}'s camera and microphone admitted: {room.get(sid)}"
            )
            # Live, while they are still in the call: their card, and the windows so far.
            dash.wait_for_function(
                f"""document.querySelector('[data-person="{WHO}"]') !== null
                   && document.querySelectorAll('tr[data-seq]').length >= 2""",
                timeout=15_000,
            )
            live_rows = dash.locator("tr[data-seq]").count()
            assert room.get(sid)["status"] == "running"
            page.evaluate("leave()")
            dash.wait_for_selector("[data-state='ended']", timeout=30_000)
            shown = [
                int(x)
                for x in dash.eval_on_selector_all(
                    "tr[data-seq]", "rows => rows.map(r => r.dataset.seq)"
                )
            ]
            shown_windows = dash.eval_on_selector(
                "[data-field='summary_windows']", "e => Number(e.dataset.value)"
            )
        finally:
            browser.close()
            (tmp_path / "console.log").write_text("\n".join(console))

    lk = during["counts"]["livekit"]
    assert lk["joins"] == 1
    assert sorted(lk["ever_subscribed"]) == [f"{WHO}/audio", f"{WHO}/video"]
    # The browser left: the room closes (departure timeout 1 s) and the session with it.
    s = svc.wait_status(sid, "ended", timeout=30)
    assert s["error"] is None
    gate = s["counts"]["participants"][WHO]
    assert gate["admitted"]["face"] >= 20 and gate["admitted"]["voice"] >= 10
    assert gate["dropped"] == {}  # consented to all three: nothing of theirs stopped at the gate
    assert set(s["counts"]["participants"]) == {WHO}

    events = svc.events(sid)
    assert [e["seq"] for e in events] == list(range(len(events)))
    assert events[0]["type"] == "session.started"
    assert events[-1]["type"] == "session.summary"
    theirs = [w["data"]["participants"][WHO] for w in windows(events) if w["data"]["participants"]]
    assert len(theirs) >= 2, windows(events)  # 2 s windows: at least 4 s of the call analysed
    assert all(set(w["data"]["participants"]) <= {WHO} for w in windows(events))
    assert all(p["faces"] > 0 and "face" in p["modalities"] for p in theirs), theirs  # seen
    assert any(p["speaking_share"] > 0 for p in theirs), theirs  # and heard
    assert WHO in events[-1]["data"]["participants"]
    # The dashboard drew every window, live and to the end, in order, each once.
    assert 2 <= live_rows <= len(shown)
    assert shown == [w["seq"] for w in windows(events)]
    assert shown_windows == events[-1]["data"]["windows"]
    assert time.monotonic() - started < BOUND_S
