import base64
import hashlib
import hmac

import pytest

from rapport.errors import InputError
from rapport.events.webhook_signing import (
    WebhookVerificationError,
    generate_secret,
    headers,
    secret_bytes,
    sign,
    verify,
)

KEY = bytes(range(32))
SECRET = "whsec_" + base64.b64encode(KEY).decode()
OTHER = "whsec_" + base64.b64encode(bytes(range(100, 132))).decode()
MSG_ID = "msg_2KWPBgLlAfxdpx2AI54pPJ85f4W"
TS = 1_700_000_000
BODY = b'{"type":"sentiment.shift","data":{"delta":0.3}}'


def test_known_answer_matches_an_independent_hmac() -> None:
    content = f"{MSG_ID}.{TS}.".encode() + BODY
    expected = "v1," + base64.b64encode(hmac.new(KEY, content, hashlib.sha256).digest()).decode()
    assert sign(SECRET, MSG_ID, TS, BODY) == expected
    h = headers([SECRET], MSG_ID, TS, BODY)
    assert h == {"webhook-id": MSG_ID, "webhook-timestamp": str(TS), "webhook-signature": expected}


def test_fixed_vector() -> None:
    # Hard-coded output of hmac/hashlib/base64 over the inputs above; guards against silent drift.
    assert sign(SECRET, MSG_ID, TS, BODY) == "v1,IYvTn0z4wKmoL+IRHDshlBNk9n1sJSl4dXFpfoBXyIQ="


def test_generated_secrets_round_trip() -> None:
    a, b = generate_secret(), generate_secret()
    assert a.startswith("whsec_") and a != b
    assert len(secret_bytes(a)) == 32
    assert secret_bytes(SECRET) == KEY
    assert secret_bytes(SECRET.removeprefix("whsec_")) == KEY


@pytest.mark.parametrize("bad", ["whsec_", "whsec_not base64!!", "whsec_" + "A" * 8])
def test_bad_secrets_are_input_errors(bad: str) -> None:
    with pytest.raises(InputError):
        secret_bytes(bad)


def test_rotation_carries_one_signature_per_secret_and_either_verifies() -> None:
    h = headers([SECRET, OTHER], MSG_ID, TS, BODY)
    sigs = h["webhook-signature"].split(" ")
    assert sigs == [sign(SECRET, MSG_ID, TS, BODY), sign(OTHER, MSG_ID, TS, BODY)]
    verify(SECRET, h, BODY, now=TS)
    verify(OTHER, h, BODY, now=TS)
    with pytest.raises(WebhookVerificationError):
        verify(generate_secret(), h, BODY, now=TS)


@pytest.mark.parametrize(
    "field, value",
    [("webhook-id", "msg_other"), ("webhook-timestamp", str(TS + 1)), ("body", b"{}")],
)
def test_tampering_fails(field: str, value: object) -> None:
    h = headers([SECRET], MSG_ID, TS, BODY)
    body = BODY
    if field == "body":
        assert isinstance(value, bytes)
        body = value
    else:
        assert isinstance(value, str)
        h[field] = value
    with pytest.raises(WebhookVerificationError, match="no matching"):
        verify(SECRET, h, body, now=TS)


def test_timestamp_tolerance() -> None:
    h = headers([SECRET], MSG_ID, TS, BODY)
    verify(SECRET, h, BODY, now=TS + 300)
    verify(SECRET, h, BODY, now=TS - 300)
    for now in (TS + 301, TS - 301):
        with pytest.raises(WebhookVerificationError, match="tolerance"):
            verify(SECRET, h, BODY, now=now)
    verify(SECRET, h, BODY, now=TS + 3000, tolerance_s=3600)
    h["webhook-timestamp"] = "1.7e9"
    with pytest.raises(WebhookVerificationError, match="integer"):
        verify(SECRET, h, BODY, now=TS)


@pytest.mark.parametrize("missing", ["webhook-id", "webhook-timestamp", "webhook-signature"])
def test_missing_headers_fail(missing: str) -> None:
    h = headers([SECRET], MSG_ID, TS, BODY)
    del h[missing]
    with pytest.raises(WebhookVerificationError, match="missing"):
        verify(SECRET, h, BODY, now=TS)


def test_other_versions_are_ignored() -> None:
    good = sign(SECRET, MSG_ID, TS, BODY)
    b64 = good.removeprefix("v1,")
    h = headers([SECRET], MSG_ID, TS, BODY)
    h["webhook-signature"] = f"v2,{b64}"
    with pytest.raises(WebhookVerificationError):
        verify(SECRET, h, BODY, now=TS)
    h["webhook-signature"] = f"v1a,{b64} v1,!!notbase64 {good} v2,xyz"
    verify(SECRET, h, BODY, now=TS)


def test_header_names_are_case_insensitive() -> None:
    h = {k.title(): v for k, v in headers([SECRET], MSG_ID, TS, BODY).items()}
    assert "Webhook-Signature" in h
    verify(SECRET, h, BODY, now=TS)
    verify(SECRET, {k.upper(): v for k, v in h.items()}, BODY, now=TS)


def test_headers_needs_a_secret() -> None:
    with pytest.raises(InputError):
        headers([], MSG_ID, TS, BODY)
