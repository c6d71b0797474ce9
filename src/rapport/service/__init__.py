"""`rapport serve`: consents, sessions, and aggregate events over WebSocket and webhooks."""
