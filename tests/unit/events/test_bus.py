from pathlib import Path

import pytest

from rapport import NOTICE
from rapport.events.bus import EventBus, JsonlFile
from rapport.events.schema import Event, EventType, SentimentShiftData, json_schema

SHIFT = SentimentShiftData(direction="up", from_valence=0.0, to_valence=0.3, delta=0.3)


def test_seq_is_gap_free_and_every_event_carries_models_and_notice() -> None:
    got: list[Event] = []
    bus = EventBus("ses_1", {"text": "vader"}, [got.append])
    for i in range(5):
        bus.emit(EventType.SENTIMENT_SHIFT, i * 5.0, i * 5.0 + 5, SHIFT)
    assert [e.seq for e in got] == [0, 1, 2, 3, 4]
    assert len({e.id for e in got}) == 5
    assert all(e.models == {"text": "vader"} and e.notice == NOTICE for e in got)
    assert got[2].media_time.start == 10.0


def test_jsonl_appears_only_when_complete(tmp_path: Path) -> None:
    path = tmp_path / "out" / "events.jsonl"
    with pytest.raises(RuntimeError), JsonlFile(path) as sink:
        bus = EventBus("ses_1", {}, [sink])
        bus.emit(EventType.SENTIMENT_SHIFT, 0, 5, SHIFT)
        raise RuntimeError("interrupted")
    assert not path.exists()
    assert list(path.parent.iterdir()) == []
    with JsonlFile(path) as sink:
        EventBus("ses_1", {}, [sink]).emit(EventType.SENTIMENT_SHIFT, 0, 5, SHIFT)
    [line] = path.read_text().splitlines()
    assert Event.model_validate_json(line).type == EventType.SENTIMENT_SHIFT


def test_payload_of_the_wrong_shape_is_refused() -> None:
    bus = EventBus("ses_1", {}, [])
    with pytest.raises(ValueError):
        bus.emit(EventType.SENTIMENT_SHIFT, 0, 5, {"label": "happy", "frame": 3})
    with pytest.raises(ValueError, match="carry SentimentShiftData"):
        bus.emit(
            EventType.SENTIMENT_SHIFT,
            0,
            5,
            {"speaking_shares": {}, "turns": {}, "silence_share": 1.0, "evenness": None},
        )


def test_schema_documents_the_envelope() -> None:
    props = json_schema()["properties"]
    assert {"id", "type", "version", "seq", "media_time", "models", "notice"} <= set(props)
