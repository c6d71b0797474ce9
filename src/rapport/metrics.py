"""Prometheus metrics updated outside the service package: the engine (consent gate, live queue,
heads, batcher, windows), event delivery (WebSocket hub, webhook outbox) and the consent log.

The engine may import this module, never rapport.service; the service's HTTP-layer metrics live in
rapport/service/metrics.py. Both register on prometheus-client's process-wide default registry,
which `GET /metrics` exposes; each metric is defined once, here, at import. Labels take values
from small fixed sets (a modality, a head, a model name, a reason): never a session, a person or a
room. Every metric is listed in the README.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

ITEMS_ADMITTED = Counter(
    "rapport_items_admitted",
    "Media items (video frames, audio chunks, utterances) the consent gate let through.",
    ["modality"],
)
ITEMS_DROPPED = Counter(
    "rapport_items_dropped",
    "Media items not analysed: refused by the consent gate, dropped from a live session's "
    "backlog, or dropped by the engine's batcher under load.",
    ["stage", "reason"],
)

INFERENCE_SECONDS = Histogram(
    "rapport_inference_seconds",
    "Wall time of one head's call for one item, as the session waits for it (batcher queueing "
    "included).",
    ["head"],
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
BATCH_SIZE = Histogram(
    "rapport_engine_batch_size",
    "Items per batched model call (the full pack's engine).",
    ["model"],
    buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256),
)
BATCH_SECONDS = Histogram(
    "rapport_engine_batch_seconds",
    "Wall time of one batched model call.",
    ["model"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
ENGINE_QUEUE = Gauge("rapport_engine_queue_items", "Items waiting in a model's batcher.", ["model"])
LIVE_QUEUE = Gauge(
    "rapport_live_queue_items",
    "Items (media, clock ticks) waiting for their live session's worker, all sessions together.",
)

VAD_WINDOWS_BATCHED = Counter(
    "rapport_vad_windows_batched",
    "Voice-activity windows computed in one batch with other microphones' (chunks waiting in a "
    "live session's queue) rather than one call each.",
)
WINDOWS_EMITTED = Counter(
    "rapport_windows_emitted", "Aggregation windows closed and emitted (engagement.window)."
)
EVENT_LAG = Histogram(
    "rapport_event_lag_seconds",
    "From an event's emitted_at to: published (stored and queued to its WebSocket "
    "connections), or webhook (a receiver answered 2xx).",
    ["stage"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 3600),
)

WEBSOCKET_CONNECTIONS = Gauge(
    "rapport_websocket_connections", "WebSocket connections subscribed to a session's events."
)
WEBHOOK_ATTEMPTS = Counter(
    "rapport_webhook_attempts",
    "Webhook POSTs by outcome: delivered (2xx), http_error (another status), network_error "
    "(no answer), gone (410: the endpoint is disabled).",
    ["outcome"],
)
WEBHOOK_DEAD = Counter(
    "rapport_webhook_dead_letters",
    "Webhook messages given up (dead-lettered): retries_exhausted, gone (pending when the "
    "endpoint answered 410), endpoint_disabled, unsafe_url.",
    ["reason"],
)

CONSENT_WRITES = Counter(
    "rapport_consent_writes", "Entries appended to the consent log, by kind.", ["kind"]
)
