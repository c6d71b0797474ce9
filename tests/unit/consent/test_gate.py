"""The consent gate on a virtual clock: who is admitted, for which modality, until when."""

from __future__ import annotations

import threading

from rapport.consent.gate import ConsentGate, Grant, Purge


class Clock:
    def __init__(self) -> None:
        self.t = 1_000.0

    def __call__(self) -> float:
        return self.t


def grant(user: str, *modalities: str, until: float = 2_000.0, cid: str = "con_1") -> Grant:
    return Grant(cid, user, frozenset(modalities or ("face", "voice", "text")), until)


def test_no_consent_no_admission_and_it_is_counted() -> None:
    gate = ConsentGate(Clock())
    assert not gate.admit("ann", "face")
    counts = gate.counts()
    assert counts["admitted"] == {} and counts["dropped"] == {"no_consent": 1}


def test_only_the_consented_modalities() -> None:
    gate = ConsentGate(Clock())
    gate.grant(grant("ann", "voice"))
    assert gate.admit("ann", "voice")
    assert not gate.admit("ann", "face")
    assert not gate.admit("ann", "text")
    per = gate.counts()["participants"]
    assert isinstance(per, dict)
    assert per["ann"]["admitted"] == {"voice": 1}
    assert per["ann"]["dropped"] == {"no_consent_face": 1, "no_consent_text": 1}


def test_expiry_on_the_clock() -> None:
    clock = Clock()
    gate = ConsentGate(clock)
    gate.grant(grant("ann", until=1_010.0))
    assert gate.admit("ann", "face")
    clock.t = 1_009.999
    assert gate.admit("ann", "face")
    clock.t = 1_010.0
    assert not gate.admit("ann", "face")
    assert gate.counts()["dropped"] == {"consent_expired": 1}


def test_revocation_stops_the_next_item_and_asks_for_a_purge() -> None:
    gate = ConsentGate(Clock())
    gate.grant(grant("ann", cid="con_a"))
    assert gate.admit("ann", "face")
    assert not gate.revoke("ann", "con_other")  # not the consent in force
    assert gate.admit("ann", "face")
    assert gate.revoke("ann", "con_a")
    assert not gate.admit("ann", "face")
    [purge] = gate.take_purges()
    assert (purge.person, purge.erased) == ("ann", False) and len(purge.token) == 16
    assert gate.take_purges() == []
    assert gate.counts()["dropped"] == {"consent_revoked": 1}
    assert not gate.revoke("ann", "con_a")  # already revoked: nothing to stop


def test_a_new_consent_after_revocation_admits_again() -> None:
    gate = ConsentGate(Clock())
    gate.grant(grant("ann", cid="con_a"))
    gate.revoke("ann")
    gate.grant(grant("ann", cid="con_b"))
    assert gate.admit("ann", "text")


def test_a_shared_stream_needs_every_member() -> None:
    gate = ConsentGate(Clock())
    gate.set_members("room", ["ann", "bob"])
    gate.grant(grant("ann"))
    assert not gate.admit("room", "face")
    gate.grant(grant("bob", "voice"))
    assert not gate.admit("room", "face")  # bob did not consent to his face
    assert gate.admit("room", "voice")
    per = gate.counts()["participants"]
    assert isinstance(per, dict)
    assert per["ann"]["admitted"] == {"voice": 1} and per["bob"]["admitted"] == {"voice": 1}
    assert gate.stream_people("room") == ("ann", "bob")
    assert gate.stream_people("carol") == ("carol",)


def test_an_empty_room_admits_nothing() -> None:
    gate = ConsentGate(Clock())
    gate.set_members("room", [])
    assert not gate.admit("room", "voice")


def test_revocation_from_another_thread_is_seen_at_once() -> None:
    # The worker is admitting when the revocation lands (it waits to be seen admitting), and goes
    # on checking for a while after: the race is run every time, not only when a thread wins it.
    gate = ConsentGate(Clock())
    gate.grant(grant("ann"))
    admitting = threading.Event()
    revoked = threading.Event()
    before = after = admitted_after = 0

    def worker() -> None:
        nonlocal before, after, admitted_after
        while after < 5_000:
            seen = revoked.is_set()  # set once revoke() has returned
            admitted = gate.admit("ann", "voice")
            if seen:
                after += 1
                admitted_after += admitted
            else:
                before += admitted
                if before == 100:
                    admitting.set()

    t = threading.Thread(target=worker)
    t.start()
    assert admitting.wait(10), "the worker never admitted anything"
    gate.revoke("ann")
    revoked.set()
    t.join(30)
    assert before >= 100 and after == 5_000
    assert admitted_after == 0


def test_erasure_stops_admission_and_forgets_the_person() -> None:
    gate = ConsentGate(Clock())
    gate.grant(grant("ann"))
    gate.grant(grant("bob"))
    assert gate.admit("ann", "face") and gate.admit("bob", "face")
    assert not gate.admit("ann", "rumour")
    gate.revoke("bob")
    gate.erase("ann")
    assert not gate.admit("ann", "face")
    revoked, erased = gate.take_purges()
    assert erased == Purge("ann", erased=True)  # never revoked: no stand-in to withdraw under
    gate.erase("bob")
    assert gate.take_purges() == [Purge("bob", True, revoked.token)]  # the one from revocation
    counts = gate.counts()
    per = counts["participants"]
    assert isinstance(per, dict) and per == {}  # their counters are gone ...
    assert counts["admitted"] == {"face": 2}  # ... the totals keep the numbers, unnamed
    assert counts["dropped"] == {"no_consent_rumour": 1, "no_consent": 1}
    for who in ("ann", "bob"):
        assert who not in repr(vars(gate)) and who not in repr(gate.counts())


def test_a_watcher_hears_of_grants_revocations_and_erasures() -> None:
    gate = ConsentGate(Clock())
    heard: list[int] = []
    gate.watch(lambda: heard.append(1))
    gate.grant(grant("ann"))
    gate.revoke("ann")
    gate.erase("bob")
    assert len(heard) == 3
