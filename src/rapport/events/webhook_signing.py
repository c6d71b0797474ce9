"""Standard Webhooks signatures (standardwebhooks.com): sign outgoing deliveries, verify them.

Signed content is ``{msg_id}.{timestamp}.{body}``; the signature is base64(HMAC-SHA256) with the
decoded secret, prefixed ``v1,``. The signature header carries one space-separated signature per
active secret, so receivers keep verifying while a secret is rotated.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets as _secrets
from collections.abc import Mapping, Sequence

from rapport.errors import InputError

SECRET_PREFIX = "whsec_"
MIN_SECRET_BYTES = 24
MAX_SECRET_BYTES = 64
DEFAULT_TOLERANCE_S = 300.0

HEADER_ID = "webhook-id"
HEADER_TIMESTAMP = "webhook-timestamp"
HEADER_SIGNATURE = "webhook-signature"


class WebhookVerificationError(ValueError):
    """A delivery whose headers, timestamp or signature do not check out."""


def generate_secret() -> str:
    """A fresh ``whsec_`` secret holding 32 random bytes."""
    return SECRET_PREFIX + base64.b64encode(_secrets.token_bytes(32)).decode("ascii")


def secret_bytes(secret: str) -> bytes:
    """The key bytes of a ``whsec_`` secret (the prefix is optional); InputError when unusable."""
    encoded = secret.removeprefix(SECRET_PREFIX).strip()
    try:
        key = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        raise InputError("webhook secret is not valid base64 after the 'whsec_' prefix") from None
    if not MIN_SECRET_BYTES <= len(key) <= MAX_SECRET_BYTES:
        raise InputError(
            f"webhook secret decodes to {len(key)} bytes; "
            f"expected {MIN_SECRET_BYTES} to {MAX_SECRET_BYTES}"
        )
    return key


def _signed_content(msg_id: str, timestamp: int, body: bytes) -> bytes:
    return f"{msg_id}.{timestamp}.".encode() + body


def _digest(key: bytes, msg_id: str, timestamp: int, body: bytes) -> bytes:
    return hmac.new(key, _signed_content(msg_id, timestamp, body), hashlib.sha256).digest()


def sign(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    """The ``v1,<base64>`` signature of one delivery."""
    digest = _digest(secret_bytes(secret), msg_id, int(timestamp), body)
    return "v1," + base64.b64encode(digest).decode("ascii")


def headers(secrets: Sequence[str], msg_id: str, timestamp: int, body: bytes) -> dict[str, str]:
    """The three Standard Webhooks headers, signed with every secret given (rotation)."""
    if isinstance(secrets, str):
        raise TypeError("headers() takes a sequence of secrets, not a single string")
    if not secrets:
        raise InputError("a webhook delivery needs at least one signing secret")
    return {
        HEADER_ID: msg_id,
        HEADER_TIMESTAMP: str(int(timestamp)),
        HEADER_SIGNATURE: " ".join(sign(s, msg_id, timestamp, body) for s in secrets),
    }


def verify(
    secret: str,
    headers: Mapping[str, str],
    body: bytes,
    *,
    now: float,
    tolerance_s: float = DEFAULT_TOLERANCE_S,
) -> None:
    """Raise WebhookVerificationError unless one ``v1`` signature matches within tolerance."""
    lowered = {k.lower(): v for k, v in headers.items()}
    msg_id = lowered.get(HEADER_ID)
    raw_ts = lowered.get(HEADER_TIMESTAMP)
    header = lowered.get(HEADER_SIGNATURE)
    if not msg_id or not raw_ts or not header:
        raise WebhookVerificationError("missing webhook-id, webhook-timestamp or webhook-signature")
    raw_ts = raw_ts.strip()
    if not raw_ts.isascii() or not raw_ts.isdigit():
        raise WebhookVerificationError(f"webhook-timestamp {raw_ts!r} is not integer unix seconds")
    timestamp = int(raw_ts)
    if abs(now - timestamp) > tolerance_s:
        raise WebhookVerificationError(
            f"webhook-timestamp {timestamp} is outside the {tolerance_s:g} s tolerance"
        )
    expected = _digest(secret_bytes(secret), msg_id, timestamp, body)
    for candidate in header.split():
        version, sep, encoded = candidate.partition(",")
        if version != "v1" or not sep:
            continue
        try:
            given = base64.b64decode(encoded, validate=True)
        except (binascii.Error, ValueError):
            continue
        if hmac.compare_digest(given, expected):
            return
    raise WebhookVerificationError("no matching v1 signature in webhook-signature")
