"""Who may call: API keys for product backends (hashed at rest), each in one project with one
scope, and short-lived signed tokens, scoped to one session, for dashboards reading the
WebSocket. A token names the key that minted it and dies with it."""

from __future__ import annotations

import asyncio
import hashlib
import os
import re
import secrets
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal, get_args

import jwt
from sqlalchemy import select

from rapport.errors import InputError
from rapport.events.websocket import EventHub
from rapport.store.db import Database
from rapport.store.tables import ApiKey

KEY_PREFIX = "rk_"
TOKEN_AUDIENCE = "rapport-events"
TOKEN_LEEWAY_S = 30
"""Clock skew tolerated between the machine that minted a token and the one checking it."""

Scope = Literal["read", "backend", "admin"]
SCOPES: tuple[Scope, ...] = get_args(Scope)
"""Ordered: each scope may do everything the ones before it may. read: GET sessions, consents,
the log, webhook endpoints, events. backend: sessions, consents, tokens, erasure. admin: webhook
endpoints (their secrets) and API keys."""

PROJECT_RE = re.compile(r"[a-z0-9][a-z0-9_-]{0,63}")
DEFAULT_PROJECT = "default"


def allows(scope: str, needed: Scope) -> bool:
    return scope in SCOPES and SCOPES.index(scope) >= SCOPES.index(needed)


def check_project(project: str) -> str:
    if not PROJECT_RE.fullmatch(project):
        raise InputError(
            f"project: {project!r} is not a project name (1-64 of a-z, 0-9, '_' and '-', "
            "starting with a letter or digit)"
        )
    return project


@dataclass(slots=True, frozen=True)
class Caller:
    """Who is calling: an API key's id, its project and scope."""

    key_id: str
    project: str
    scope: str


def hash_key(key: str) -> str:
    # Keys are 256-bit random, so a plain SHA-256 is not brute-forceable (no slow KDF needed).
    return hashlib.sha256(key.encode()).hexdigest()


async def create_api_key(
    db: Database, name: str, project: str = DEFAULT_PROJECT, scope: str = "backend"
) -> tuple[ApiKey, str]:
    """Returns (the key's row, the key itself); only its hash is stored, so it is shown once."""
    check_project(project)
    if scope not in SCOPES:
        raise InputError(f"scope: {scope!r} is not one of {', '.join(SCOPES)}")
    key = KEY_PREFIX + secrets.token_urlsafe(32)
    row = ApiKey(
        id=f"key_{uuid.uuid4().hex[:16]}",
        project=project,
        scope=scope,
        name=name,
        hash=hash_key(key),
        created_at=datetime.now(UTC),
    )
    async with db.transaction() as s:
        s.add(row)
    return row, key


async def list_api_keys(db: Database, project: str | None = None) -> list[ApiKey]:
    q = select(ApiKey).order_by(ApiKey.created_at)
    if project is not None:
        q = q.where(ApiKey.project == project)
    async with db.session() as s:
        return list(await s.scalars(q))


async def revoke_api_key(db: Database, key_id: str, project: str | None = None) -> ApiKey | None:
    """The revoked key (revoking twice is no error), or None when there is no such key (in the
    project, when one is given)."""
    async with db.transaction() as s:
        row = await s.get(ApiKey, key_id)
        if row is None or (project is not None and row.project != project):
            return None
        if row.revoked_at is None:
            row.revoked_at = datetime.now(UTC)
        return row


async def check_api_key(db: Database, key: str) -> Caller | None:
    """The caller when the key is valid and not revoked."""
    if not key.startswith(KEY_PREFIX):
        return None
    async with db.session() as s:
        row = await s.scalar(select(ApiKey).where(ApiKey.hash == hash_key(key)))
    if row is None or row.revoked_at is not None:
        return None
    return Caller(row.id, row.project, row.scope)


class KeyCache:
    """Valid keys remembered for `ttl_s` (service.key_check_s), so a busy backend's requests do
    not each look their key up: a key revoked in another process (`rapport keys revoke`) is
    refused within `ttl_s`, one revoked through this one at once (`forget`). Unknown keys are
    never remembered: a new key works at once, and guessing costs a lookup each."""

    def __init__(self, db: Database, ttl_s: float) -> None:
        self._db, self._ttl_s = db, ttl_s
        self._known: dict[str, tuple[Caller, float]] = {}

    async def check(self, key: str) -> Caller | None:
        digest = hash_key(key)
        hit = self._known.get(digest)
        now = time.monotonic()
        if hit is not None and hit[1] > now:
            return hit[0]
        who = await check_api_key(self._db, key)
        if who is None:
            self._known.pop(digest, None)
        else:
            if len(self._known) > 10_000:  # bounded: expired entries go first, then all
                self._known = {d: h for d, h in self._known.items() if h[1] > now}
                if len(self._known) > 10_000:
                    self._known.clear()
            self._known[digest] = (who, now + self._ttl_s)
        return who

    def forget(self, key_id: str) -> None:
        self._known = {d: h for d, h in self._known.items() if h[0].key_id != key_id}


async def key_is_live(db: Database, key_id: str) -> bool:
    async with db.session() as s:
        row = await s.get(ApiKey, key_id)
    return row is not None and row.revoked_at is None


async def revoked_keys(db: Database) -> set[str]:
    async with db.session() as s:
        return set(await s.scalars(select(ApiKey.id).where(ApiKey.revoked_at.is_not(None))))


@dataclass(slots=True, frozen=True)
class TokenGrant:
    """What a valid dashboard token allows: reading one session's events, for as long as the
    key that minted it lives."""

    session_id: str
    key_id: str
    project: str


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

    def issue(self, caller: Caller, session_id: str) -> tuple[str, float]:
        now = int(time.time())
        expires = now + int(self.ttl_s)
        claims = {
            "sub": session_id,
            "aud": TOKEN_AUDIENCE,
            "scope": "events:read",
            "exp": expires,
            "iat": now,
            "jti": uuid.uuid4().hex,
            "key": caller.key_id,
            "project": caller.project,
        }
        return jwt.encode(claims, self.secret, algorithm="HS256"), expires

    def check(self, token: str) -> TokenGrant | None:
        """What a token allows, when it is signed by us, for us, and within its life: `exp`,
        `iat`, `aud` and `sub` are required, and a life longer than `ttl_s` is refused (so is
        one issued in the future). The minting key's revocation is checked by the caller."""
        try:
            claims = jwt.decode(
                token,
                self.secret,
                algorithms=["HS256"],
                audience=TOKEN_AUDIENCE,
                leeway=TOKEN_LEEWAY_S,
                options={"require": ["exp", "iat", "aud", "sub"]},
            )
        except jwt.PyJWTError:
            return None
        sub, key, project = claims.get("sub"), claims.get("key"), claims.get("project")
        exp, iat = claims["exp"], claims["iat"]
        if not (isinstance(exp, int) and isinstance(iat, int)):
            return None
        if exp - iat > self.ttl_s or iat > time.time() + TOKEN_LEEWAY_S:
            return None
        if claims.get("scope") != "events:read":
            return None
        if not (isinstance(sub, str) and isinstance(key, str) and isinstance(project, str)):
            return None
        return TokenGrant(sub, key, project)


async def close_revoked_forever(db: Database, hub: EventHub, every_s: float) -> None:
    """Closes the WebSocket connections of revoked keys, whichever process revoked them (`rapport
    keys revoke` runs apart from the server): the database is the one place that knows."""
    while True:
        revoked = await revoked_keys(db)
        if revoked:
            hub.revoke_keys(revoked)
        await asyncio.sleep(every_s)
