"""Rows the store tests start from."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from rapport.store.tables import Session


def room_session(room: str, **fields: Any) -> Session:
    """A room session row of project "p" (status created unless `fields` say otherwise)."""
    values: dict[str, Any] = {
        "id": f"ses_{uuid.uuid4().hex[:24]}",
        "project": "p",
        "source_kind": "room",
        "source": room,
        "purpose": "self_coaching",
        "jurisdiction": "DE",
        "setting": "consumer",
        "reporting": "participant",
        "options": {},
        "status": "created",
        "created_at": datetime.now(UTC),
        "counts": {},
    }
    return Session(**{**values, **fields})
