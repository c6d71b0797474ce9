"""Durable state of the service: consents, sessions, events, webhook outbox (async SQLAlchemy)."""
