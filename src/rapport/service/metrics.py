"""Prometheus metrics of the service, defined once at import (prometheus-client's registry is
process-wide); `/metrics` exposes them. Every metric is listed in the README."""

from __future__ import annotations

from prometheus_client import Counter

BODY_BYTES_READ = Counter(
    "rapport_http_request_body_bytes",
    "Request body bytes read from clients (counted before any limit or authentication).",
)
