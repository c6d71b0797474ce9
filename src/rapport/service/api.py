"""Request and response bodies of the HTTP API (the OpenAPI schema at /docs comes from these)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Annotated, Any, ClassVar, Literal

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    ValidationInfo,
    WithJsonSchema,
    field_validator,
    model_validator,
)

from rapport.consent.policy import PURPOSES, Setting
from rapport.events.schema import EventType
from rapport.service.auth import Scope
from rapport.service.text import check_text

Modality = Literal["face", "voice", "text"]
Ident = Field(min_length=1, max_length=200, pattern=r"^[^\x00-\x1f\x7f]+$")
EARLIEST = datetime(2000, 1, 1, tzinfo=UTC)
LATEST = datetime(2200, 1, 1, tzinfo=UTC)
CLOCK_SKEW = timedelta(minutes=5)
MAX_SEQ = 2**53
"""Sequence numbers in queries stay below this (what every JSON client and database holds)."""


def known_purpose(code: str) -> str:
    if code not in PURPOSES:
        raise ValueError(f"unknown purpose {code!r}; one of {', '.join(sorted(PURPOSES))}")
    return code


Purpose = Annotated[
    str,
    AfterValidator(known_purpose),
    WithJsonSchema(
        {"type": "string", "enum": sorted(PURPOSES), "description": "A code from GET /v1/purposes."}
    ),
]
"""A purpose code: the catalogue (consent/policy.py PURPOSES) is closed: an enum in the schema."""
EventTypeName = Annotated[
    str, WithJsonSchema({"type": "string", "enum": [str(t) for t in EventType]})
]
"""An event type (events/schema.py EventType; the route refuses others with a 422)."""


class _In(BaseModel):
    """A request body: unknown fields refused; every string (also in lists) under the one text
    rule of service/text.py; `_multiline` names the free-text fields that may break lines."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)
    _multiline: ClassVar[frozenset[str]] = frozenset()

    @field_validator("*", mode="after")
    @classmethod
    def _text(cls, v: Any, info: ValidationInfo) -> Any:
        multiline = info.field_name in cls._multiline
        for item in v if isinstance(v, list) else (v,):
            if isinstance(item, str):
                check_text(item, multiline=multiline)
        return v


class ConsentIn(_In):
    _multiline = frozenset({"purpose_text"})
    user_id: str = Ident
    session_id: str = Field(min_length=1, max_length=40)
    purpose: Purpose
    purpose_text: str = Field(
        min_length=1, max_length=4000, description="The exact text shown to the person."
    )
    notice_version: str = Field(min_length=1, max_length=100)
    jurisdiction: str = Field(min_length=2, max_length=16, description="ISO 3166, e.g. DE, US-IL")
    modalities: list[Modality] = Field(min_length=1, max_length=3)
    granted_at: AwareDatetime
    expires_at: AwareDatetime

    @field_validator("granted_at", "expires_at")
    @classmethod
    def _plausible(cls, v: datetime) -> datetime:
        if not EARLIEST <= v < LATEST:
            raise ValueError(f"must be between {EARLIEST:%Y} and {LATEST:%Y}")
        return v

    @field_validator("modalities")
    @classmethod
    def _unique(cls, v: list[Modality]) -> list[Modality]:
        if len(set(v)) != len(v):
            raise ValueError("modalities must not repeat")
        return sorted(v)

    @model_validator(mode="after")
    def _times(self) -> ConsentIn:
        if self.expires_at <= self.granted_at:
            raise ValueError("expires_at must be after granted_at")
        if self.granted_at > datetime.now(UTC) + CLOCK_SKEW:
            raise ValueError("granted_at is in the future")
        return self


class Signature(BaseModel):
    """Verify with the public key alone: content_hash = sha256(canonical JSON of `record`);
    entry_hash = sha256(canonical {seq, kind, content_hash, prev_hash}); Ed25519 over entry_hash."""

    seq: int
    kind: str
    content_hash: str
    prev_hash: str
    entry_hash: str
    kid: str
    signature: str


class ConsentOut(BaseModel):
    id: str
    status: Literal["active", "expired", "revoked"]
    record: dict[str, Any] = Field(description="The consent exactly as signed.")
    signed: Signature
    revocation: Signature | None = None


class SessionIn(_In):
    recording: str | None = Field(
        None,
        min_length=1,
        max_length=4096,
        description="Path of a recording under one of service.media_roots.",
    )
    room: str | None = Field(None, min_length=1, max_length=200, description="LiveKit room name.")
    transcript: str | None = Field(
        None,
        min_length=1,
        max_length=4096,
        description="Transcript of the recording (VTT/SRT/JSONL).",
    )
    participant: str | None = Field(
        None, min_length=1, max_length=200, description="Whose recording it is (their user id)."
    )
    purpose: Purpose
    jurisdiction: str = Field(min_length=2, max_length=16)
    setting: Setting | None = None
    reporting: Literal["room", "participant"] = "room"
    speed: float = Field(
        0.0, ge=0, le=16, description="Recordings: 1 paces media as live; 0 as fast as possible."
    )
    bias_audit: date | None = Field(
        None, description="hiring_interview in NYC: date of the independent bias audit (LL 144)."
    )

    @model_validator(mode="after")
    def _one_source(self) -> SessionIn:
        if (self.recording is None) == (self.room is None):
            raise ValueError("give exactly one of recording or room")
        if self.room is not None and (self.transcript or self.participant):
            raise ValueError("transcript and participant apply to recordings only")
        return self


class SessionOut(BaseModel):
    id: str
    source: dict[str, str]
    purpose: str
    jurisdiction: str
    setting: str | None
    reporting: str
    status: Literal["created", "running", "ended", "failed", "interrupted"]
    created_at: datetime
    started_at: datetime | None
    ended_at: datetime | None
    error: str | None
    counts: dict[str, Any] = Field(
        description="Items admitted to the models and dropped by the consent gate."
    )


class TokenOut(BaseModel):
    token: str
    expires_at: datetime
    session_id: str


class WebhookIn(_In):
    _multiline = frozenset({"description"})
    url: str = Field(min_length=1, max_length=2000)
    event_types: list[EventTypeName] = Field(
        default_factory=list, max_length=64, description="Only these event types; empty: all."
    )
    description: str = Field("", max_length=500)


class WebhookOut(BaseModel):
    id: str
    url: str
    event_types: list[str]
    description: str
    created_at: datetime
    disabled_at: datetime | None
    disabled_reason: str | None
    secret: str | None = Field(None, description="Shown on creation and rotation only.")


class DeadLetter(BaseModel):
    id: str = Field(description="The webhook-id every attempt carried.")
    event_id: str
    event_type: str
    session_id: str
    attempts: int
    last_status: int | None
    last_error: str | None
    finished_at: datetime | None


class ReplayIn(_In):
    ids: list[Annotated[str, Field(max_length=40)]] | None = Field(
        None, max_length=10_000, description="Messages to replay; omitted: all dead ones."
    )


class ErasureOut(BaseModel):
    user_id: str
    consents_erased: int
    sessions_affected: int
    events_deleted: int
    deliveries_deleted: int
    erasure_seq: int | None = Field(description="Log entry that records the fact of erasure.")


class KeyIn(_In):
    name: str = Field(min_length=1, max_length=200, description="Who the key is for.")
    scope: Scope = Field("backend", description="read < backend < admin.")


class KeyOut(BaseModel):
    id: str
    name: str
    project: str
    scope: Scope
    created_at: datetime
    revoked_at: datetime | None
    key: str | None = Field(None, description="The key itself: in the answer to its creation only.")
