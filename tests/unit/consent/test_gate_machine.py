"""Property-based: the consent gate against a plain model, through any sequence of grants (longest
consent wins), revocations (of the consent in force or another), erasures, shared streams, time
passing past expiries, and admissions. Checked after every step: each admission decided as the
model decides; counters by name only for people who consented and were not erased; every purge
asked for exactly once, in order."""

from __future__ import annotations

import math

from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from rapport.consent.gate import ConsentGate, Grant

PEOPLE = ("ann", "bob", "cy")
MODALITIES = ("face", "voice", "text")
people = st.sampled_from(PEOPLE)
modality = st.sampled_from(MODALITIES)


class GateMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.now = 0.0
        self.gate = ConsentGate(lambda: self.now)
        self.grants: dict[str, tuple[str, frozenset[str], float]] = {}
        self.revoked: set[str] = set()
        self.named: set[str] = set()
        self.purges: list[tuple[str, bool, int | None]] = []
        """Purges asked for and not yet taken: (person, erased, their stand-in's number)."""
        self.admitted: dict[str, int] = {}
        self.dropped: dict[str, int] = {}
        self.members: dict[str, tuple[str, ...]] = {}
        self.stand_in: dict[str, int] = {}
        """A revoked person's stand-in (numbered here; the gate's token), until erased."""
        self.tokens: dict[int, str] = {}
        self.n = 0

    def _refusal(self, person: str, m: str) -> str | None:
        g = self.grants.get(person)
        if g is None:
            return "consent_revoked" if person in self.revoked else "no_consent"
        if g[2] <= self.now:
            return "consent_expired"
        return None if m in g[1] else f"no_consent_{m}"

    @rule(
        who=people,
        mods=st.sets(modality, min_size=1),
        lifetime=st.sampled_from([0.5, 3.0, math.inf]),
    )
    def grant(self, who: str, mods: set[str], lifetime: float) -> None:
        self.n += 1
        cid, expires = f"con_{self.n}", self.now + lifetime
        self.gate.grant(Grant(cid, who, frozenset(mods), expires))
        current = self.grants.get(who)
        if current is None or expires >= current[2]:
            self.grants[who] = (cid, frozenset(mods), expires)
        self.revoked.discard(who)
        self.named.add(who)

    @rule(who=people, in_force=st.booleans())
    def revoke(self, who: str, in_force: bool) -> None:
        current = self.grants.get(who)
        cid = current[0] if current and in_force else "con_other"
        stopped = self.gate.revoke(who, cid)
        assert stopped == (current is not None and in_force)
        if stopped:
            del self.grants[who]
            self.revoked.add(who)
            self.purges.append((who, False, self.stand_in.setdefault(who, len(self.tokens))))
            self.tokens.setdefault(self.stand_in[who], "")

    @rule(who=people)
    def erase(self, who: str) -> None:
        self.gate.erase(who)
        self.grants.pop(who, None)
        self.revoked.discard(who)
        self.named.discard(who)
        self.purges.append((who, True, self.stand_in.pop(who, None)))

    @rule(stream=st.sampled_from(["room", "pair"]), members=st.sets(people))
    def share(self, stream: str, members: set[str]) -> None:
        self.gate.set_members(stream, members)
        self.members[stream] = tuple(sorted(members))

    @rule(dt=st.sampled_from([0.1, 0.5, 1.0, 5.0]))
    def time_passes(self, dt: float) -> None:
        self.now += dt

    @rule(stream=st.sampled_from([*PEOPLE, "room", "pair"]), m=modality)
    def admit(self, stream: str, m: str) -> None:
        who = self.members.get(stream, (stream,) if stream in PEOPLE else ())
        reasons = [r for r in (self._refusal(p, m) for p in who) if r is not None]
        expected = bool(who) and not reasons
        assert self.gate.admit(stream, m) == expected, (stream, m, who, reasons)
        if expected:
            self.admitted[m] = self.admitted.get(m, 0) + 1
        else:
            reason = reasons[0] if reasons else "no_consent"
            self.dropped[reason] = self.dropped.get(reason, 0) + 1
        for p in who:
            assert self.gate.allows(p, m) == (self._refusal(p, m) is None)

    @rule()
    def take_purges(self) -> None:
        taken = self.gate.take_purges()
        assert [(t.person, t.erased) for t in taken] == [(p, e) for p, e, _ in self.purges]
        for purge, (_, _, number) in zip(taken, self.purges, strict=True):
            if number is None:
                assert purge.token == ""  # erased without a revocation: no stand-in
                continue
            known = self.tokens[number] or purge.token
            assert purge.token == known and len(known) == 16
            self.tokens[number] = known
        assert len(set(self.tokens.values()) - {""}) == len([t for t in self.tokens.values() if t])
        self.purges = []

    @invariant()
    def counters_agree(self) -> None:
        counts = self.gate.counts()
        assert counts["admitted"] == self.admitted
        assert counts["dropped"] == self.dropped
        per = counts["participants"]
        assert isinstance(per, dict) and set(per) <= self.named
        assert self.gate.purges_pending == bool(self.purges)


TestGate = GateMachine.TestCase
