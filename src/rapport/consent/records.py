"""A signed, hash-chained consent log: any edit to any entry shows up when the log is verified.

An entry's hash covers its seq, kind, the hash of its content and the previous entry's hash, never
the content itself, so content can be erased (GDPR Art. 17) and the chain still verifies. Each
entry hash is signed with Ed25519; the public keys are published as a JWKS so anyone can verify.
"""

from __future__ import annotations

import base64
import hashlib
import json
import math
import os
import re
import secrets
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, fields, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal, get_args

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from rapport.errors import InputError

Kind = Literal["grant", "revoke", "erasure"]
KINDS: tuple[str, ...] = get_args(Kind)
GENESIS = "0" * 64
_HEX64 = re.compile(r"[0-9a-f]{64}")
_KID = re.compile(r"k_(\d{8}T\d{6}Z)_[0-9a-f]{4}")
_KID_TIME = "%Y%m%dT%H%M%SZ"


def _check_json(obj: object, path: str = "$") -> None:
    if obj is None or isinstance(obj, str | bool | int):
        return
    if isinstance(obj, float):
        if not math.isfinite(obj):
            raise TypeError(f"{path}: {obj} is not a JSON number")
    elif isinstance(obj, list):
        for i, item in enumerate(obj):
            _check_json(item, f"{path}[{i}]")
    elif isinstance(obj, dict):
        for key, value in obj.items():
            if not isinstance(key, str):
                raise TypeError(f"{path}: object key {key!r} is not a string")
            _check_json(value, f"{path}.{key}")
    else:
        raise TypeError(f"{path}: {type(obj).__name__} is not a JSON type")


def canonical(obj: object) -> bytes:
    """Sorted-key, compact UTF-8 JSON. Only dict (str keys), list, str, int, finite float, bool
    and None are accepted (TypeError otherwise): convert datetimes to ISO strings first."""
    _check_json(obj)
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def sha256_hex(obj: object) -> str:
    return hashlib.sha256(canonical(obj)).hexdigest()


def _b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def _b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclass(slots=True, frozen=True)
class LogEntry:
    seq: int
    kind: Kind
    content: dict[str, Any] | None
    """None once erased (or when the entry never had content)."""
    content_hash: str
    prev_hash: str
    entry_hash: str
    kid: str
    signature: str
    """Ed25519 over the ASCII bytes of entry_hash, base64url without padding."""

    def to_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> LogEntry:
        """ValueError naming the first problem when `d` is not a well-formed entry."""
        if not isinstance(d, Mapping):
            raise ValueError(f"log entry must be an object, not {type(d).__name__}")
        names = [f.name for f in fields(cls)]
        if missing := [n for n in names if n not in d]:
            raise ValueError(f"log entry lacks {', '.join(missing)}")
        if extra := sorted(set(d) - set(names)):
            raise ValueError(f"log entry has unexpected fields {', '.join(map(str, extra))}")
        seq = d["seq"]
        if not isinstance(seq, int) or isinstance(seq, bool) or seq < 0:
            raise ValueError(f"log entry seq must be a non-negative integer, not {seq!r}")
        if d["kind"] not in KINDS:
            raise ValueError(f"log entry {seq}: kind must be one of {', '.join(KINDS)}")
        if d["content"] is not None and not isinstance(d["content"], dict):
            raise ValueError(f"log entry {seq}: content must be an object or null")
        for name in ("content_hash", "prev_hash", "entry_hash"):
            if not isinstance(d[name], str) or not _HEX64.fullmatch(d[name]):
                raise ValueError(f"log entry {seq}: {name} must be 64 lowercase hex digits")
        for name in ("kid", "signature"):
            if not isinstance(d[name], str) or not d[name]:
                raise ValueError(f"log entry {seq}: {name} must be a non-empty string")
        return cls(**{n: d[n] for n in names})

    def erased(self) -> LogEntry:
        """The same entry without its content; hashes and signature stay, so the chain verifies
        once a later "erasure" entry names this seq."""
        return replace(self, content=None)


class SigningKey:
    """An Ed25519 private key and its kid."""

    __slots__ = ("_private", "kid")

    def __init__(self, kid: str, private: Ed25519PrivateKey) -> None:
        self.kid = kid
        self._private = private

    def sign(self, data: bytes) -> str:
        return _b64url(self._private.sign(data))

    def public_key(self) -> Ed25519PublicKey:
        return self._private.public_key()

    def public_jwk(self) -> dict[str, str]:
        raw = self.public_key().public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw
        )
        return {
            "kty": "OKP",
            "crv": "Ed25519",
            "x": _b64url(raw),
            "kid": self.kid,
            "use": "sig",
            "alg": "EdDSA",
        }


class KeyRing:
    """Every signing key in a folder (`<kid>.pem`, PKCS8, unencrypted); the newest one signs.

    Kids are `k_<UTC creation time>_<4 hex>`, so sorting kids sorts keys by age."""

    def __init__(self, keys: Sequence[SigningKey]) -> None:
        if not keys:
            raise ValueError("a key ring needs at least one key")
        self.keys: tuple[SigningKey, ...] = tuple(sorted(keys, key=lambda k: k.kid, reverse=True))

    @property
    def current(self) -> SigningKey:
        return self.keys[0]

    def jwks(self) -> dict[str, list[dict[str, str]]]:
        """All public keys, newest first."""
        return {"keys": [k.public_jwk() for k in self.keys]}

    @classmethod
    def load(cls, directory: Path) -> KeyRing:
        """InputError naming the file when a key file is unusable, or when there is none."""
        keys = [_read_key(path) for path in sorted(Path(directory).glob("*.pem"))]
        if not keys:
            raise InputError(f"no signing keys (<kid>.pem) in {directory}")
        return cls(keys)

    @classmethod
    def load_or_create(cls, directory: Path) -> KeyRing:
        """The ring in `directory`; creates the folder (0700) and a first key when missing."""
        directory = Path(directory)
        if not directory.exists():
            directory.mkdir(mode=0o700, parents=True)
            directory.chmod(0o700)
        if not any(directory.glob("*.pem")):
            _write_new_key(directory, newest=None)
        return cls.load(directory)

    @classmethod
    def rotate(cls, directory: Path) -> KeyRing:
        """Add a new key, which signs from now on; the old ones stay published."""
        ring = cls.load_or_create(directory)
        _write_new_key(Path(directory), newest=ring.current.kid)
        return cls.load(directory)


def _read_key(path: Path) -> SigningKey:
    if not _KID.fullmatch(path.stem):
        raise InputError(f"{path}: key file name is not a kid like k_20261125T214500Z_ab12.pem")
    try:
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
        raise InputError(f"{path}: not an unencrypted PKCS8 PEM private key ({exc})") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise InputError(f"{path}: not an Ed25519 key")
    return SigningKey(path.stem, key)


def _write_new_key(directory: Path, newest: str | None) -> None:
    # Never reuse or precede the newest key's second, so kid order stays creation order.
    now = datetime.now(UTC).replace(microsecond=0)
    if newest is not None and (match := _KID.fullmatch(newest)):
        last = datetime.strptime(match[1], _KID_TIME).replace(tzinfo=UTC)
        now = max(now, last + timedelta(seconds=1))
    kid = f"k_{now.strftime(_KID_TIME)}_{secrets.token_hex(2)}"
    pem = Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".", suffix=".tmp")
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "wb") as out:
            out.write(pem)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, directory / f"{kid}.pem")
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _entry_hash(seq: int, kind: str, content_hash: str, prev_hash: str) -> str:
    return sha256_hex(
        {"seq": seq, "kind": kind, "content_hash": content_hash, "prev_hash": prev_hash}
    )


def make_entry(
    seq: int, kind: Kind, content: dict[str, Any] | None, prev_hash: str, key: SigningKey
) -> LogEntry:
    """A signed entry following the entry whose hash is `prev_hash` (GENESIS for seq 0)."""
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {', '.join(KINDS)}, not {kind!r}")
    content_hash = sha256_hex(content)
    entry_hash = _entry_hash(seq, kind, content_hash, prev_hash)
    signature = key.sign(entry_hash.encode("ascii"))
    return LogEntry(seq, kind, content, content_hash, prev_hash, entry_hash, key.kid, signature)


def public_keys_from_jwks(jwks: Mapping[str, Any]) -> dict[str, Ed25519PublicKey]:
    """Kid -> Ed25519 public key; ValueError on anything but OKP/Ed25519 keys with a kid."""
    keys = jwks.get("keys") if isinstance(jwks, Mapping) else None
    if not isinstance(keys, list):
        raise ValueError("JWKS must be an object with a 'keys' list")
    out: dict[str, Ed25519PublicKey] = {}
    for i, jwk in enumerate(keys):
        if not isinstance(jwk, Mapping):
            raise ValueError(f"JWKS key {i} is not an object")
        if jwk.get("kty") != "OKP" or jwk.get("crv") != "Ed25519":
            raise ValueError(f"JWKS key {i} is not kty OKP / crv Ed25519")
        kid, x = jwk.get("kid"), jwk.get("x")
        if not isinstance(kid, str) or not kid or kid in out:
            raise ValueError(f"JWKS key {i} has a missing or duplicate kid")
        try:
            out[kid] = Ed25519PublicKey.from_public_bytes(_b64url_decode(str(x)))
        except ValueError:
            raise ValueError(f"JWKS key {kid}: x is not a base64url Ed25519 public key") from None
    return out


@dataclass(frozen=True, slots=True)
class Problem:
    seq: int
    """Where the entry sits in the chain (first entry's seq + its index)."""
    reason: str


def verify_log(entries: Sequence[LogEntry], keys: Mapping[str, Ed25519PublicKey]) -> list[Problem]:
    """Every problem in `entries` (given in seq order); an empty list means the log is intact.

    A log may start above seq 0 (a tail); only one starting at 0 must link to GENESIS. An entry
    may lack content when it never had any or when a later "erasure" entry lists its seq."""
    erased: set[int] = set()
    for entry in entries:
        listed = entry.content.get("erased_seqs") if entry.content else None
        if entry.kind == "erasure" and isinstance(listed, list):
            erased.update(s for s in listed if type(s) is int and s < entry.seq)
    problems: list[Problem] = []
    for i, entry in enumerate(entries):
        at = entries[0].seq + i
        prev = entries[i - 1] if i else None
        problems.extend(Problem(at, reason) for reason in _check(entry, at, prev, keys, erased))
    return problems


def _check(
    entry: LogEntry,
    at: int,
    prev: LogEntry | None,
    keys: Mapping[str, Ed25519PublicKey],
    erased: set[int],
) -> Iterator[str]:
    if entry.seq != at:
        yield f"seq is {entry.seq}, expected {at}"
    expected_prev = prev.entry_hash if prev else (GENESIS if at == 0 else entry.prev_hash)
    if entry.prev_hash != expected_prev:
        yield "prev_hash does not match the previous entry"
    entry_hash = _entry_hash(entry.seq, entry.kind, entry.content_hash, entry.prev_hash)
    if entry.entry_hash != entry_hash:
        yield "entry_hash does not match the entry"
    if entry.content is not None:
        if sha256_hex(entry.content) != entry.content_hash:
            yield "content does not match content_hash"
    elif entry.content_hash != sha256_hex(None) and entry.seq not in erased:
        yield "content is missing and no later erasure entry names this seq"
    public = keys.get(entry.kid)
    if public is None:
        yield f"unknown kid {entry.kid!r}"
        return
    try:
        public.verify(_b64url_decode(entry.signature), entry_hash.encode("ascii"))
    except (InvalidSignature, ValueError):
        yield "signature is not valid"
