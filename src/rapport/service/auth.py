"""Who may call: API keys for product backends (hashed at rest), and short-lived signed tokens,
scoped to one session, for dashboards reading the WebSocket."""

from __future__ import annotations

import hashlib
import os
import secrets
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import jwt
from sqlalchemy import select

from rapport.store.db import Database
from rapport.store.tables import ApiKey

KEY_PREFIX = "rk_"
TOKEN_AUDIENCE = "rapport-events"


def hash_key(key: str) -> str:
    # Keys are 256-bit random, so a plain SHA-256 is not brute-forceable (no slow KDF needed).
    return hashlib.sha256(key.encode()).hexdigest()


async def create_api_key(db: Database, name: str) -> tuple[str, str]:
    """Returns (key id, the key itself); only its hash is stored, so it is shown once."""
    key = KEY_PREFIX + secrets.token_urlsafe(32)
    key_id = f"key_{uuid.uuid4().hex[:16]}"
    async with db.transaction() as s:
        s.add(ApiKey(id=key_id, name=name, hash=hash_key(key), created_at=datetime.now(UTC)))
    return key_id, key


async def list_api_keys(db: Database) -> list[ApiKey]:
    async with db.session() as s:
        return list(await s.scalars(select(ApiKey).order_by(ApiKey.created_at)))


async def revoke_api_key(db: Database, key_id: str) -> bool:
    async with db.transaction() as s:
        row = await s.get(ApiKey, key_id)
        if row is None:
            return False
        if row.revoked_at is None:
            row.revoked_at = datetime.now(UTC)
        return True


async def check_api_key(db: Database, key: str) -> str | None:
    """The key's id when it is valid and not revoked."""
    if not key.startswith(KEY_PREFIX):
        return None
    async with db.session() as s:
        row = await s.scalar(select(ApiKey).where(ApiKey.hash == hash_key(key)))
    return row.id if row is not None and row.revoked_at is None else None


@dataclass(slots=True, frozen=True)
class Tokens:
    """HS256 tokens with a per-installation secret kept in the data folder."""

    secret: bytes
    ttl_s: float

    @classmethod
    def load_or_create(cls, data_dir: Path, ttl_s: float) -> Tokens:
        path = data_dir / "token-secret"
        if not path.exists():
            data_dir.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(f".{path.name}.{os.getpid()}")
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "wb") as fh:
                fh.write(secrets.token_bytes(32))
            os.replace(tmp, path)
        return cls(path.read_bytes(), ttl_s)

    def issue(self, session_id: str) -> tuple[str, float]:
        expires = time.time() + self.ttl_s
        claims = {
            "sub": session_id,
            "aud": TOKEN_AUDIENCE,
            "scope": "events:read",
            "exp": int(expires),
            "iat": int(time.time()),
            "jti": uuid.uuid4().hex,
        }
        return jwt.encode(claims, self.secret, algorithm="HS256"), expires

    def session_of(self, token: str) -> str | None:
        """The session a valid, unexpired token is scoped to."""
        try:
            claims = jwt.decode(token, self.secret, algorithms=["HS256"], audience=TOKEN_AUDIENCE)
        except jwt.PyJWTError:
            return None
        sub = claims.get("sub")
        return sub if isinstance(sub, str) and claims.get("scope") == "events:read" else None
