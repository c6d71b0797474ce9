"""Durable state of the service: consents, sessions, events, webhook outbox (SQLAlchemy 2, async)."""
