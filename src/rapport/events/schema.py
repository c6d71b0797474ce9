"""The event envelope and payloads: the only shapes that leave the process.

One envelope for every channel (JSONL file, WebSocket, webhook). Payloads are aggregates over a
media time range; none carries a frame, audio, a transcript line, a face crop or a per-frame label.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from rapport import NOTICE

SCHEMA_VERSION = 1


class EventType(StrEnum):
    SESSION_STARTED = "session.started"
    ENGAGEMENT_WINDOW = "engagement.window"
    TURNS_WINDOW = "turns.window"
    SENTIMENT_SHIFT = "sentiment.shift"
    SESSION_SUMMARY = "session.summary"
    CONSENT_REVOKED = "consent.revoked"
    SESSION_RESUMED = "session.resumed"
    SYNCHRONY_WINDOW = "synchrony.window"


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class MediaTime(_Model):
    start: float = Field(ge=0, description="Media seconds from the start of the session.")
    end: float = Field(ge=0)


Unit = float | None


class EngagementComponents(_Model):
    attention: Unit = Field(
        description="0..1 face present and turned to the camera; null: no video"
    )
    expressiveness: Unit = Field(description="0..1 against the person's own baseline (0.5 = usual)")
    participation: float = Field(description="0..1 speaking share against a fair share, and turns")


class ParticipantWindow(_Model):
    engagement: float = Field(ge=0, le=1)
    components: EngagementComponents
    calibrating: bool = Field(description="Expressiveness baseline still being collected.")
    valence: Unit = Field(description="-1..1 fused; null when no modality measured it")
    arousal: Unit
    speaking_share: float = Field(ge=0, le=1)
    turns: int = Field(ge=0)
    faces: float = Field(ge=0, description="Mean number of faces seen in this person's video.")
    modalities: list[str] = Field(description="Modalities that contributed (face, voice, text).")


class DegradedSampling(_Model):
    """Some cameras were sampled below `video.sample_fps` in this window: the bot was behind the
    media and lowered their rate (listeners first, never below `video.min_sample_fps`) rather
    than drop frames. Means over frames and the time-constant smoothing stay comparable; they
    rest on fewer frames."""

    sample_fps_min: float = Field(gt=0, description="The lowest rate any camera was sampled at.")
    cameras: int = Field(ge=1, description="Cameras sampled below the configured rate.")


class RoomWindow(_Model):
    engagement: Unit = Field(description="Mean engagement of the participants; 0..1")
    trend: Unit = Field(description="Slope of room engagement per minute over recent windows")
    valence: Unit
    arousal: Unit
    participants: int = Field(ge=0, description="People who contributed data to this window.")
    faces: float | None = Field(
        ge=0, description="Mean number of faces seen across all video; null when withheld."
    )
    withheld: Literal["fewer_than_min_participants"] | None = Field(
        None,
        description="Set when the room numbers are null because too few people contributed "
        "(room reporting, under reporting.min_participants): a room of one is that person.",
    )
    degraded: DegradedSampling | None = Field(
        None,
        description="Set when, during this window, any camera was sampled below video.sample_fps "
        "because the bot was behind (live rooms); null: every camera at the configured rate.",
    )


class EngagementWindowData(_Model):
    room: RoomWindow
    participants: dict[str, ParticipantWindow] = Field(
        default_factory=dict, description="Present only when the reporting level allows it."
    )


class TurnsWindowData(_Model):
    speaking_shares: dict[str, float] = Field(description="Share of the window each person spoke.")
    turns: dict[str, int]
    silence_share: float | None = Field(ge=0, le=1, description="Null when withheld.")
    evenness: Unit = Field(
        description="Normalised entropy of speaking shares among speakers: 1 even, 0 one voice; "
        "null with fewer than two participants"
    )
    withheld: Literal["fewer_than_min_participants"] | None = Field(
        None, description="Set when the numbers are withheld: too few people contributed."
    )


class SentimentShiftData(_Model):
    direction: Literal["up", "down"]
    from_valence: float
    to_valence: float
    delta: float


class SessionStartedData(_Model):
    source: Literal["recording", "livekit"]
    modalities: list[str] = Field(description="Modalities this session can measure.")
    window_s: float
    sample_fps: float
    reporting: Literal["room", "participant"]
    media_origin: datetime | None = Field(
        None,
        description="Live sources: the wall-clock time of media time 0, so media times map to "
        "clock times (and latency can be measured). Null for a recording.",
    )


class ConsentRevokedData(_Model):
    consent_id: str = Field(description="The consent revoked (as recorded by the backend).")
    revoked_at: datetime
    purged: bool = Field(description="The person's in-memory state was purged.")


class SessionResumedData(_Model):
    reason: Literal["worker_lost", "worker_drained"] = Field(
        description="Why the session moved to another worker: the one holding it stopped "
        "answering (crashed, cut off), or was shut down and handed it over."
    )
    gap: MediaTime = Field(
        description="Media time no worker analysed: from the end of the last window emitted "
        "before the move to where windows resume. Nothing in it is in any window."
    )


class Spread(_Model):
    mean: float = Field(ge=0, le=1)
    sd: float = Field(ge=0, description="Population standard deviation over the pairs.")


class LagSpread(_Model):
    p25: float = Field(ge=0)
    median: float = Field(ge=0)
    p75: float = Field(ge=0)


class SynchronyPair(_Model):
    a: str
    b: str
    rr: float = Field(ge=0, le=1, description="Recurrence rate.")
    det: float = Field(ge=0, le=1, description="Determinism: share of recurrences on diagonals.")
    l: float = Field(ge=0, description="Mean diagonal line length (samples); 0 with none.")  # noqa: E741
    lmax: int = Field(ge=0, description="Longest diagonal line (samples).")
    entr: float = Field(ge=0, description="Shannon entropy of diagonal line lengths (nats).")
    lam: float = Field(ge=0, le=1, description="Laminarity: share on vertical lines.")
    tt: float = Field(ge=0, description="Trapping time: mean vertical line length (samples).")
    leader: str | None = Field(description="a or b when one clearly leads; null otherwise.")
    lag_s: float | None = Field(ge=0, description="How far the leader is ahead, in seconds.")


class SynchronyRoom(_Model):
    participants: int = Field(ge=0, description="People whose series were compared.")
    pairs: int = Field(ge=0)
    rr: Spread | None = Field(description="Recurrence rate over the pairs; null when withheld.")
    det: Spread | None = Field(description="Determinism over the pairs; null when withheld.")
    led_share: float | None = Field(ge=0, le=1, description="Share of pairs with a clear leader.")
    lag_s: LagSpread | None = Field(
        description="How far ahead leaders are (seconds), over the led pairs; null with none."
    )
    withheld: Literal["fewer_than_min_participants"] | None = Field(
        None, description="Set when the numbers are withheld: too few people contributed."
    )


class SynchronyParameters(_Model):
    signal: Literal["valence", "arousal", "expressiveness"]
    window_s: float = Field(description="The longest span analysed (the event's media time).")
    sample_rate_hz: float
    embedding: int
    delay_s: float
    radius: float
    theiler: int = Field(description="Samples; the symmetric band |i - j| < w is excluded.")
    min_line: int
    max_lag_s: float


class SynchronyWindowData(_Model):
    """Cross-recurrence (CRQA, Marwan et al. 2007) of each pair's smoothed, z-scored face
    series over the media time of the event (a sliding span ending at a window's end)."""

    room: SynchronyRoom
    pairs: list[SynchronyPair] = Field(
        default_factory=list, description="Present only when the reporting level allows it."
    )
    parameters: SynchronyParameters


class Moment(_Model):
    kind: Literal["engagement_peak", "engagement_dip", "sentiment_shift"]
    media_time: MediaTime
    value: float
    description: str


class SessionSummaryData(_Model):
    duration_s: float
    windows: int
    engagement: Unit = Field(description="Mean room engagement over the session")
    engagement_trend: Unit = Field(description="Slope of room engagement per minute, whole session")
    valence: Unit
    valence_timeline: list[Unit] = Field(description="Room valence per window, in order")
    engagement_timeline: list[Unit]
    speaking_shares: dict[str, float]
    turns: dict[str, int]
    moments: list[Moment]
    participants: dict[str, dict[str, Unit]] = Field(
        default_factory=dict, description="Per-person means, when the reporting level allows it."
    )
    dropped: dict[str, int] = Field(
        default_factory=dict, description="Items not analysed, by reason (counts only)."
    )


class Event(_Model):
    id: str
    type: EventType
    version: int = SCHEMA_VERSION
    session_id: str
    seq: int = Field(ge=0, description="Per session, gap-free from 0.")
    emitted_at: datetime
    media_time: MediaTime
    data: (
        EngagementWindowData
        | TurnsWindowData
        | SentimentShiftData
        | SessionStartedData
        | SessionSummaryData
        | ConsentRevokedData
        | SessionResumedData
        | SynchronyWindowData
    )
    models: dict[str, str] = Field(description="Which model produced each modality's numbers.")
    notice: str = NOTICE

    @model_validator(mode="after")
    def _data_matches_type(self) -> Event:
        expected = _DATA_TYPES[self.type]
        if not isinstance(self.data, expected):
            raise ValueError(f"{self.type} events carry {expected.__name__}")
        return self

    def to_json(self) -> str:
        return self.model_dump_json(exclude_none=False)


_DATA_TYPES: dict[EventType, type[_Model]] = {
    EventType.SESSION_STARTED: SessionStartedData,
    EventType.ENGAGEMENT_WINDOW: EngagementWindowData,
    EventType.TURNS_WINDOW: TurnsWindowData,
    EventType.SENTIMENT_SHIFT: SentimentShiftData,
    EventType.SESSION_SUMMARY: SessionSummaryData,
    EventType.CONSENT_REVOKED: ConsentRevokedData,
    EventType.SESSION_RESUMED: SessionResumedData,
    EventType.SYNCHRONY_WINDOW: SynchronyWindowData,
}


def now() -> datetime:
    return datetime.now(UTC)


def json_schema() -> dict[str, Any]:
    return Event.model_json_schema()


def schema_text() -> str:
    return json.dumps(json_schema(), indent=2)
