"""Settings: defaults < configs/*.yaml (or --config FILE) < RAPPORT_* environment variables.

Nested fields use a double underscore in the environment: RAPPORT_WINDOW__SECONDS=10.
Every field is validated at start, so a bad value fails before any media is read.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from rapport.errors import InputError


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class VideoSettings(_Section):
    sample_fps: float = Field(4.0, gt=0, le=30, description="Frames analysed per media second.")
    max_side: int = Field(640, ge=64, description="Frames are downscaled so no side exceeds this.")
    min_sample_fps: float = Field(
        1.0,
        gt=0,
        le=30,
        description="Live rooms: the floor a camera's rate is lowered to while the bot is behind "
        "(never above sample_fps; equal to it: no adaptive sampling).",
    )


class FaceSettings(_Section):
    min_score: float = Field(0.6, gt=0, lt=1, description="Detector score threshold.")
    track_iou: float = Field(0.3, gt=0, lt=1, description="Min IoU to continue a track.")
    track_gap_s: float = Field(
        3.0, ge=0, description="A track survives this long without its face (then it ends)."
    )
    min_face_px: int = Field(24, ge=8, description="Faces smaller than this (side) are ignored.")
    detector: Literal["short", "full", "auto"] = Field(
        "auto",
        description="BlazeFace short range (faces wider than ~1/7 of the frame, cheapest), full "
        "range (any distance), or auto: full range on shared room cameras and on participant "
        "cameras whose faces are small or missing, short range otherwise.",
    )
    full_range_tiles: bool = Field(
        True,
        description="Full range also runs on 4x2 overlapping tiles, so ~24 px faces at 640x360 "
        "are found (9 passes instead of one).",
    )


class SmoothingSettings(_Section):
    tau_s: float = Field(
        0.6,
        gt=0,
        le=60,
        description="Time constant of each face's expression smoothing, in media seconds: an "
        "observation's weight decays by 1/e over this time, whatever the frame rate or gaps.",
    )


class EngagementSettings(_Section):
    baseline_s: float = Field(
        60.0, gt=0, description="Each person's expressiveness baseline is calibrated over this."
    )
    w_attention: float = Field(0.4, ge=0)
    w_expressiveness: float = Field(0.3, ge=0)
    w_participation: float = Field(0.3, ge=0)


class WindowSettings(_Section):
    seconds: float = Field(5.0, ge=1.0, description="Aggregation window; never below 1 s.")
    trend_windows: int = Field(6, ge=2, description="Windows in the engagement trend's slope.")
    sentiment_shift_delta: float = Field(
        0.25, gt=0, le=2, description="Change in smoothed room valence that makes a shift event."
    )


class SynchronySettings(_Section):
    """Cross-recurrence (CRQA) of each pair of participants' smoothed face series."""

    enabled: bool = Field(True, description="Emit synchrony.window events (two or more people).")
    signal: Literal["valence", "arousal", "expressiveness"] = Field(
        "valence", description="Which smoothed per-sample series is compared, z-scored per person."
    )
    window_s: float = Field(
        60.0,
        ge=10,
        le=120,
        description="Sliding span analysed at each window's end (seconds); the cost grows with "
        "its square.",
    )
    embedding: int = Field(3, ge=1, le=10, description="Delay-embedding dimension m.")
    delay_s: float = Field(0.5, gt=0, le=10, description="Embedding delay (seconds).")
    radius: float = Field(
        0.5, gt=0, description="Recurrence threshold, in z units (Euclidean norm)."
    )
    theiler: int = Field(
        0, ge=0, description="Theiler window w in samples: the band |i - j| < w is excluded."
    )
    min_line: int = Field(2, ge=2, description="Shortest diagonal/vertical line counted.")
    max_lag_s: float = Field(
        5.0, gt=0, le=30, description="Lags searched, +-, for who leads (diagonal-wise profile)."
    )
    max_participants: int = Field(
        16,
        ge=2,
        le=64,
        description="At most this many people are compared (those whose faces were measured "
        "longest): the cost grows with the square of their number and runs on the session's "
        "thread at each window's end (16: 120 pairs, ~55 ms on one core; 32: 496 pairs, ~250 "
        "ms, which delays a 32-person room's windows).",
    )
    min_coverage: float = Field(
        0.75,
        gt=0,
        le=1,
        description="A person takes part when their face was measured over this share of the "
        "span (shorter gaps are filled from the last value).",
    )


class RuntimeSettings(_Section):
    intra_op_threads: int = Field(1, ge=1, description="ONNX Runtime threads inside one op.")
    inter_op_threads: int = Field(1, ge=1)


Provider = Literal["tensorrt", "cuda", "cpu"]
PROVIDERS: tuple[Provider, ...] = ("tensorrt", "cuda", "cpu")


class EngineSettings(_Section):
    pack: Literal["offline", "full"] = Field(
        "offline",
        description="offline: the pack registry packages ship; full: the transformer heads "
        "(`rapport models export`).",
    )
    backend: Literal["onnx", "torch"] = Field("onnx", description="How the full pack runs.")
    providers: list[Provider] = Field(
        default_factory=lambda: list(PROVIDERS),
        min_length=1,
        description="ONNX Runtime execution providers in order of preference (those present).",
    )
    precision: Literal["fp32", "fp16"] = Field("fp32", description="fp16 needs CUDA/TensorRT.")
    threads: int = Field(2, ge=1, description="Intra-op threads of each transformer head.")
    max_batch: int = Field(16, ge=1, description="Items per batched model call.")
    max_delay_ms: float = Field(5.0, ge=0, description="Longest wait for a batch to fill.")
    max_queue: int = Field(
        256, ge=1, description="Items queued per model; past it the stalest video is dropped."
    )
    max_age_ms: float = Field(
        1000, gt=0, description="Video items waiting longer than this are dropped as stale."
    )


class ServiceSettings(_Section):
    host: str = Field("127.0.0.1", description="Address `rapport serve` listens on.")
    port: int = Field(8080, ge=0, le=65535, description="0 picks a free port (printed at start).")
    data_dir: Path = Field(
        default_factory=lambda: default_data_dir(),
        description="Database (SQLite by default), signing keys and token secret live here.",
    )
    database_url: str | None = Field(
        None,
        description="SQLAlchemy async URL, e.g. postgresql+asyncpg://...; "
        "default: SQLite in data_dir.",
    )
    media_roots: list[Path] = Field(
        default_factory=list,
        description="Folders recordings may be read from by POST /v1/sessions (none: refused).",
    )
    allowed_origins: list[str] = Field(
        default_factory=list,
        description="Browser Origins allowed on the WebSocket; clients sending no Origin pass.",
    )
    token_ttl_s: float = Field(
        900,
        gt=0,
        le=86400,
        description="Life of a dashboard token; a token claiming a longer life is refused.",
    )
    key_check_s: float = Field(
        1.0,
        gt=0,
        le=60,
        description="How soon WebSocket connections of a revoked API key are closed (4401).",
    )
    max_body_bytes: int = Field(
        262_144,
        ge=1024,
        le=64 * 2**20,
        description="Largest request body (413 above it, refused before authentication).",
    )
    max_header_bytes: int = Field(
        16_384,
        ge=4096,
        le=2**20,
        description="Largest request header block (the connection is refused above it).",
    )
    send_buffer_bytes: int | None = Field(
        None,
        ge=4096,
        description="Kernel send buffer per connection (SO_SNDBUF); null: the kernel's autotuning "
        "(up to MBs per stalled WebSocket consumer).",
    )
    metrics: bool = Field(
        True,
        description="Serve Prometheus metrics at /metrics (no key: keep it off public networks).",
    )


class LoggingSettings(_Section):
    format: Literal["text", "json"] = Field(
        "text",
        description="text: the message, then key=value fields; json: one JSON object per line.",
    )


class WebSocketSettings(_Section):
    queue_size: int = Field(
        256, ge=1, description="Events buffered per connection; a consumer past it is cut off."
    )
    send_timeout_s: float = Field(
        5.0, gt=0, description="A send blocked this long cuts the consumer off."
    )
    heartbeat_s: float = Field(15.0, gt=0, description="A heartbeat message after this idle time.")


class WebhookSettings(_Section):
    retry_schedule_s: list[float] = Field(
        default_factory=lambda: [0.0, 5, 300, 1800, 7200, 18000, 36000, 36000],
        min_length=1,
        description="Delay before each attempt (Standard Webhooks schedule); then dead-lettered.",
    )
    jitter: float = Field(0.2, ge=0, lt=1, description="Random +/- fraction on every delay.")
    timeout_s: float = Field(15.0, gt=0, description="Per-attempt HTTP timeout.")
    lease_s: float = Field(
        60.0, gt=0, description="A message claimed by a worker that died is retried after this."
    )
    poll_s: float = Field(1.0, gt=0, description="Outbox poll interval when nothing wakes it.")
    concurrency: int = Field(8, ge=1, description="Deliveries in flight at once.")
    rotation_grace_s: float = Field(
        86400, ge=0, description="An old secret keeps signing this long after a rotation."
    )
    allowed_networks: list[str] = Field(
        default_factory=list,
        description="CIDRs exempt from the private-address refusal (e.g. 127.0.0.0/8 for tests).",
    )
    resolve_table: dict[str, list[str]] | None = Field(
        None,
        description="Host name -> addresses: webhook URLs resolve from this table alone, never "
        "DNS (tests; a name not listed does not resolve). null: the system resolver.",
    )


class RetentionSettings(_Section):
    days: float = Field(30, gt=0, description="Events, summaries and deliveries kept this long.")
    purge_interval_s: float = Field(3600, gt=0, description="How often expired data is purged.")


class LiveKitSettings(_Section):
    url: str | None = Field(
        None, description="LiveKit server (ws:// or wss://); null: no rooms are joined."
    )
    api_key: str | None = Field(None, description="API key the bot's tokens are signed with.")
    api_secret: str | None = Field(
        None, description="Its secret; set it by RAPPORT_LIVEKIT__API_SECRET, not in a file."
    )
    identity: str = Field("rapport-bot", min_length=1, description="The bot's hidden identity.")
    audio_chunk_ms: int = Field(
        100, ge=10, le=1000, description="Audio is handed to the session in chunks this long."
    )
    tick_s: float = Field(
        0.25, gt=0, le=1, description="Clock tick: windows close, revocations purge, this often."
    )
    rejoin_s: float = Field(
        120.0, ge=0, description="After losing the server, keep rejoining the room this long."
    )
    reconcile_s: float = Field(
        30.0, gt=0, description="How often rooms are reconciled against the room service."
    )
    agent_name: str | None = Field(
        None,
        min_length=1,
        max_length=64,
        description="Workers: when set, `rapport serve` runs no bot itself; it asks LiveKit's "
        "agent dispatch for a `rapport worker` of this name for each room session (PostgreSQL "
        "shared).",
    )
    lease_s: float = Field(
        3.0,
        ge=0.5,
        le=60,
        description="Workers: how long a worker's hold on a session lasts unless renewed (every "
        "third of it); a worker silent this long is presumed dead and its room dispatched again.",
    )
    redispatch_s: float = Field(
        10.0,
        gt=0,
        description="Workers: a room session no worker took within this is dispatched again "
        "(LiveKit never retries a dispatch no worker took).",
    )
    max_backlog: int = Field(
        64, ge=1, description="Video frames waiting for the session past this: the oldest goes."
    )
    max_audio_backlog_s: float = Field(
        10.0,
        gt=0,
        description="Audio waiting for the session past this many seconds: the oldest goes.",
    )
    lag_budget_s: float = Field(
        0.5,
        gt=0,
        le=10,
        description="The bot is behind when the oldest frame not yet analysed is older than this "
        "(media seconds) or half of max_backlog waits: cameras are sampled less, listeners first.",
    )
    restore_s: float = Field(
        5.0,
        gt=0,
        le=600,
        description="Caught up this long (half the budget, a quarter of the backlog), a lowered "
        "rate doubles back, speakers first.",
    )


class ReportingSettings(_Section):
    min_participants: int = Field(
        3,
        ge=1,
        description="Room reporting: room aggregates are withheld while fewer consenting people "
        "contribute to a window (a room of one is that person).",
    )


def _checkout() -> Path | None:
    checkout = Path(__file__).resolve().parents[2]
    return checkout if (checkout / "pyproject.toml").is_file() else None


def default_models_dir() -> Path:
    """`models/` of the source checkout rapport runs from, else the user's cache."""
    checkout = _checkout()
    return checkout / "models" if checkout else Path.home() / ".cache" / "rapport" / "models"


def default_data_dir() -> Path:
    """`data/` of the source checkout rapport runs from, else the user's data folder."""
    checkout = _checkout()
    return checkout / "data" if checkout else Path.home() / ".local" / "share" / "rapport"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="RAPPORT_", env_nested_delimiter="__", extra="forbid", frozen=True
    )

    models_dir: Path = Field(
        default_factory=lambda: default_models_dir(),
        description="Where `rapport models fetch` writes and models load from.",
    )
    video: VideoSettings = VideoSettings()
    faces: FaceSettings = FaceSettings()
    smoothing: SmoothingSettings = SmoothingSettings()
    engagement: EngagementSettings = EngagementSettings()
    window: WindowSettings = WindowSettings()
    synchrony: SynchronySettings = SynchronySettings()
    reporting: ReportingSettings = ReportingSettings()
    runtime: RuntimeSettings = RuntimeSettings()
    engine: EngineSettings = EngineSettings()
    service: ServiceSettings = ServiceSettings()
    logging: LoggingSettings = LoggingSettings()
    websocket: WebSocketSettings = WebSocketSettings()
    webhooks: WebhookSettings = WebhookSettings()
    retention: RetentionSettings = RetentionSettings()
    livekit: LiveKitSettings = LiveKitSettings()

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # Environment beats the YAML file, which comes in as init kwargs.
        return env_settings, init_settings


def load_settings(path: Path | None = None) -> Settings:
    """Load settings from `path` (or $RAPPORT_CONFIG, or none) plus the environment."""
    path = path or (Path(os.environ["RAPPORT_CONFIG"]) if "RAPPORT_CONFIG" in os.environ else None)
    data: dict[str, Any] = {}
    if path is not None:
        try:
            loaded = yaml.safe_load(path.read_text(encoding="utf-8"))
        except (OSError, yaml.YAMLError) as e:
            raise InputError(f"config {path}: {e}".splitlines()[0]) from e
        if loaded is not None and not isinstance(loaded, dict):
            raise InputError(f"config {path}: expected a mapping at the top level")
        data = loaded or {}
    try:
        return Settings(**data)
    except ValidationError as e:
        first = e.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise InputError(f"config: {where}: {first['msg']}") from e
