import itertools
import json
import re
import stat
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from rapport.consent.records import (
    GENESIS,
    KeyRing,
    LogEntry,
    Problem,
    SigningKey,
    canonical,
    make_entry,
    public_keys_from_jwks,
    verify_log,
)
from rapport.errors import InputError


def _grant(user: str) -> dict[str, Any]:
    return {"user_id": user, "modalities": ["face", "voice"], "granted_at": "2026-01-05T10:00:00Z"}


def _append(
    log: list[LogEntry], kind: Any, content: dict[str, Any] | None, key: SigningKey
) -> None:
    prev = log[-1].entry_hash if log else GENESIS
    log.append(make_entry(len(log), kind, content, prev, key))


def _log(key: SigningKey, n: int = 4) -> list[LogEntry]:
    log: list[LogEntry] = []
    for i in range(n):
        _append(log, "grant" if i % 2 == 0 else "revoke", _grant(f"u{i}"), key)
    return log


def _public(ring: KeyRing) -> dict[str, Ed25519PublicKey]:
    # Through JSON, as a verifier fetching /.well-known/jwks.json would see it.
    return public_keys_from_jwks(json.loads(json.dumps(ring.jwks())))


def _seqs(problems: list[Problem]) -> set[int]:
    return {p.seq for p in problems}


@pytest.fixture
def ring(tmp_path: Path) -> KeyRing:
    return KeyRing.load_or_create(tmp_path / "keys")


def test_canonical_is_sorted_compact_utf8_and_json_only() -> None:
    assert (
        canonical({"b": 1, "a": ["é", None, True, 1.5]})
        == '{"a":["é",null,true,1.5],"b":1}'.encode()
    )
    for bad in ({"at": object()}, {1: "x"}, ("a",), {"x": float("nan")}):
        with pytest.raises(TypeError):
            canonical(bad)


def test_a_log_verifies_with_the_published_jwk_alone(ring: KeyRing) -> None:
    log = _log(ring.current)
    assert log[0].prev_hash == GENESIS
    assert all(b.prev_hash == a.entry_hash for a, b in itertools.pairwise(log))
    [jwk] = ring.jwks()["keys"]
    assert jwk["kty"] == "OKP" and jwk["crv"] == "Ed25519" and jwk["kid"] == ring.current.kid
    assert "d" not in jwk
    assert verify_log(log, _public(ring)) == []
    round_tripped = [LogEntry.from_dict(json.loads(json.dumps(e.to_dict()))) for e in log]
    assert round_tripped == log
    assert verify_log(round_tripped, _public(ring)) == []


def test_a_log_signed_by_another_key_does_not_verify(ring: KeyRing, tmp_path: Path) -> None:
    other = KeyRing.load_or_create(tmp_path / "other")
    log = _log(other.current)
    problems = verify_log(log, _public(ring))
    assert _seqs(problems) == {0, 1, 2, 3}
    assert all("unknown kid" in p.reason for p in problems)


@pytest.mark.parametrize(
    "tamper",
    [
        lambda e: replace(
            e, content={**(e.content or {}), "modalities": ["face", "voice", "text"]}
        ),
        lambda e: replace(e, kind="grant" if e.kind == "revoke" else "revoke"),
        lambda e: replace(e, kind="erasure"),
        lambda e: replace(e, seq=e.seq + 5),
        lambda e: replace(e, prev_hash=GENESIS),
        lambda e: replace(e, content_hash="a" * 64),
        lambda e: replace(
            e, signature=e.signature[:-4] + ("AAAA" if e.signature[-4:] != "AAAA" else "BBBB")
        ),
        lambda e: replace(e, signature="!!not base64!!"),
        lambda e: replace(e, kid="k_20200101T000000Z_0000"),
        lambda e: replace(e, content=None),
    ],
    ids=[
        "content",
        "kind",
        "kind-erasure",
        "seq",
        "prev_hash",
        "content_hash",
        "signature",
        "signature-garbage",
        "kid",
        "content-dropped",
    ],
)
def test_tampering_with_any_field_is_reported_at_that_seq(ring: KeyRing, tamper: Any) -> None:
    log = _log(ring.current, 5)
    log[2] = tamper(log[2])
    problems = verify_log(log, _public(ring))
    assert 2 in _seqs(problems)
    assert _seqs(problems) <= {2, 3}
    assert {0, 1, 4}.isdisjoint(_seqs(problems))


def test_a_replaced_entry_hash_breaks_the_link_to_the_next_entry(ring: KeyRing) -> None:
    log = _log(ring.current)
    forged = make_entry(1, "grant", _grant("mallory"), log[0].entry_hash, ring.current)
    problems = verify_log([log[0], forged, *log[2:]], _public(ring))
    assert _seqs(problems) == {2}
    assert "prev_hash" in problems[0].reason


def test_reordering_and_gaps_are_reported(ring: KeyRing) -> None:
    log = _log(ring.current, 5)
    swapped = [log[0], log[2], log[1], log[3], log[4]]
    assert {1, 2} <= _seqs(verify_log(swapped, _public(ring)))
    gap = [log[0], log[1], log[3], log[4]]
    assert _seqs(verify_log(gap, _public(ring))) == {2, 3}


def test_a_log_starting_at_zero_must_start_at_genesis(ring: KeyRing) -> None:
    first = make_entry(0, "grant", _grant("u0"), "f" * 64, ring.current)
    problems = verify_log([first], _public(ring))
    assert problems == [Problem(0, "prev_hash does not match the previous entry")]
    # A tail of a longer log is checked from wherever it starts.
    assert verify_log(_log(ring.current, 5)[2:], _public(ring)) == []


def test_erased_content_verifies_only_with_a_later_erasure_entry(ring: KeyRing) -> None:
    log = _log(ring.current, 3)
    log[1] = log[1].erased()
    assert log[1].content is None and log[1].signature
    assert _seqs(verify_log(log, _public(ring))) == {1}
    _append(log, "erasure", {"erased_seqs": [1], "erased_at": "2026-02-01T00:00:00Z"}, ring.current)
    assert verify_log(log, _public(ring)) == []
    # The erasure entry licenses only the seqs it names.
    log[2] = log[2].erased()
    assert _seqs(verify_log(log, _public(ring))) == {2}


def test_an_erasure_before_the_entry_does_not_count(ring: KeyRing) -> None:
    log: list[LogEntry] = []
    _append(log, "erasure", {"erased_seqs": [1], "erased_at": "2026-02-01T00:00:00Z"}, ring.current)
    _append(log, "grant", _grant("u1"), ring.current)
    log[1] = log[1].erased()
    assert _seqs(verify_log(log, _public(ring))) == {1}


def test_an_entry_made_without_content_verifies(ring: KeyRing) -> None:
    log = _log(ring.current, 2)
    _append(log, "revoke", None, ring.current)
    assert verify_log(log, _public(ring)) == []


def test_from_dict_rejects_malformed_entries(ring: KeyRing) -> None:
    good = _log(ring.current, 1)[0].to_dict()
    cases = [
        ({k: v for k, v in good.items() if k != "kid"}, "lacks kid"),
        ({**good, "extra": 1}, "unexpected fields extra"),
        ({**good, "seq": "0"}, "seq"),
        ({**good, "seq": True}, "seq"),
        ({**good, "kind": "consent"}, "kind"),
        ({**good, "content": [1]}, "content"),
        ({**good, "prev_hash": "xyz"}, "prev_hash"),
        ({**good, "signature": ""}, "signature"),
    ]
    for bad, words in cases:
        with pytest.raises(ValueError, match=words):
            LogEntry.from_dict(bad)
    with pytest.raises(ValueError, match="object"):
        LogEntry.from_dict([])  # type: ignore[arg-type]


def test_rotation_keeps_old_entries_verifiable_and_signs_with_the_new_key(tmp_path: Path) -> None:
    keys = tmp_path / "keys"
    old = KeyRing.load_or_create(keys)
    log = _log(old.current, 2)
    new = KeyRing.rotate(keys)
    assert new.current.kid != old.current.kid
    assert new.current.kid > old.current.kid
    assert [k["kid"] for k in new.jwks()["keys"]] == [new.current.kid, old.current.kid]
    _append(log, "grant", _grant("u9"), new.current)
    assert log[-1].kid == new.current.kid
    assert verify_log(log, _public(new)) == []
    # Only the old key published: the new entry cannot be verified.
    assert _seqs(verify_log(log, _public(old))) == {2}
    assert KeyRing.load_or_create(keys).current.kid == new.current.kid


def test_key_files_are_private_and_reloaded(tmp_path: Path) -> None:
    keys = tmp_path / "state" / "keys"
    first = KeyRing.load_or_create(keys)
    again = KeyRing.load_or_create(keys)
    assert again.current.kid == first.current.kid
    [pem] = keys.iterdir()
    assert pem.name == f"{first.current.kid}.pem"
    assert stat.S_IMODE(pem.stat().st_mode) == 0o600
    assert stat.S_IMODE(keys.stat().st_mode) == 0o700
    assert first.current.kid.startswith("k_") and len(first.current.kid) == len(
        "k_20261125T214500Z_ab12"
    )
    # The reloaded key signs what the first one verifies.
    entry = make_entry(0, "grant", _grant("u0"), GENESIS, again.current)
    assert verify_log([entry], _public(first)) == []


def test_a_corrupt_pem_is_an_input_error_naming_the_file(tmp_path: Path) -> None:
    keys = tmp_path / "keys"
    ring = KeyRing.load_or_create(keys)
    path = keys / f"{ring.current.kid}.pem"
    path.write_text("-----BEGIN PRIVATE KEY-----\nbm90IGEga2V5\n-----END PRIVATE KEY-----\n")
    with pytest.raises(InputError, match=re.escape(path.name)):
        KeyRing.load_or_create(keys)
    path.unlink()
    (keys / "stray.pem").write_text("x")
    with pytest.raises(InputError, match=re.escape("stray.pem")):
        KeyRing.load_or_create(keys)


def test_jwks_with_other_key_types_are_rejected(ring: KeyRing) -> None:
    jwk = ring.jwks()["keys"][0]
    cases: list[tuple[dict[str, Any], str]] = [
        ({"keys": [{**jwk, "kty": "RSA"}]}, "kty OKP"),
        ({"keys": [{**jwk, "crv": "X25519"}]}, "crv Ed25519"),
        ({"keys": [{**jwk, "x": "c2hvcnQ"}]}, "not a base64url Ed25519 public key"),
        ({"keys": [jwk, jwk]}, "duplicate kid"),
        ({"keys": [{k: v for k, v in jwk.items() if k != "kid"}]}, "missing or duplicate kid"),
        ({"nokeys": []}, "'keys' list"),
    ]
    for bad, words in cases:
        with pytest.raises(ValueError, match=re.escape(words)):
            public_keys_from_jwks(bad)


def test_a_rotated_key_always_sorts_after_the_newest(tmp_path: Path) -> None:
    keys = tmp_path / "keys"
    ring = KeyRing.load_or_create(keys)
    # Same second and the highest suffix: only a later timestamp keeps kid order = age.
    newest = "k_29991231T235959Z_ffff"
    (keys / f"{ring.current.kid}.pem").rename(keys / f"{newest}.pem")
    rotated = KeyRing.rotate(keys)
    assert rotated.current.kid.startswith("k_30000101T000000Z_")
    assert [k.kid for k in rotated.keys][1:] == [newest]
