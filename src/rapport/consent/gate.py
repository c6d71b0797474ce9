"""The consent gate: the one place that decides whether an item of a person may reach a model.

A session asks `admit(stream, modality)` for every frame, audio chunk and utterance at its turn,
and `allows(person, modality)` (which counts nothing) before a model sees an item ahead of its turn
(a live queue's waiting audio, batched). A stream is one person's (its name is their user id)
unless it was given members (a shared room camera or microphone), which then all need a live
consent for the modality. Grants and
revocations arrive from the service's event loop while the session runs on a worker thread, so the
state is guarded by a lock; a revocation takes effect on the very next item.

Counters are kept per person only for people who gave a consent in this session: someone who
never did is counted in the totals alone, never by name. Revocation and erasure both stop
admission at once and ask the session to purge the person (`take_purges`). Erasure goes further:
the gate then forgets the person too (their counters leave the per-person table; the totals keep
the numbers without a name), and refuses them as having no consent. The totals also go to the
process's metrics (rapport/metrics.py), by modality and reason only.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from rapport.metrics import ITEMS_ADMITTED, ITEMS_DROPPED

Modality = str  # "face" | "voice" | "text"


@dataclass(slots=True, frozen=True)
class Purge:
    """A person whose state a session must drop now; `erased`: withdraw what they contributed
    to as well (see SummaryBuilder.forget). `token` stands for the person from their first
    revocation on: a session keeps what a later erasure must withdraw under it, never their id."""

    person: str
    erased: bool = False
    token: str = ""


@dataclass(slots=True, frozen=True)
class Grant:
    consent_id: str
    user_id: str
    modalities: frozenset[Modality]
    expires_at: float
    """Unix seconds."""


class ConsentGate:
    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._grants: dict[str, Grant] = {}
        self._named: set[str] = set()
        """People who gave a consent here (until erased): the only ones counted by name."""
        self._members: dict[str, tuple[str, ...]] = {}
        self._revoked: set[str] = set()
        self._tokens: dict[str, str] = {}
        """A revoked person's stand-in, until they are erased (see Purge.token)."""
        self._to_purge: list[Purge] = []
        self._admitted: dict[str, dict[Modality, int]] = defaultdict(lambda: defaultdict(int))
        self._dropped: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
        self._admitted_total: dict[Modality, int] = defaultdict(int)
        self._dropped_total: dict[str, int] = defaultdict(int)
        self._last_admitted: dict[str, float] = {}
        self._watchers: list[Callable[[], None]] = []

    # -- from the service ------------------------------------------------------------------------

    def watch(self, changed: Callable[[], None]) -> None:
        """Call `changed` after every grant and revocation (on the caller's thread: the service's
        event loop), so a live tap subscribes or unsubscribes at once."""
        self._watchers.append(changed)

    def grant(self, grant: Grant) -> None:
        with self._lock:
            current = self._grants.get(grant.user_id)
            if current is None or grant.expires_at >= current.expires_at:
                self._grants[grant.user_id] = grant
            self._revoked.discard(grant.user_id)
            self._named.add(grant.user_id)
        self._notify()

    def revoke(self, user_id: str, consent_id: str | None = None) -> bool:
        """Stop admitting `user_id` now; the session purges their state on its next item.
        With `consent_id`, only when that is the consent in force. True when something stopped."""
        with self._lock:
            current = self._grants.get(user_id)
            if current is None or (consent_id is not None and current.consent_id != consent_id):
                return False
            del self._grants[user_id]
            self._revoked.add(user_id)
            token = self._tokens.setdefault(user_id, secrets.token_hex(8))
            self._to_purge.append(Purge(user_id, token=token))
        self._notify()
        return True

    def erase(self, user_id: str) -> None:
        """Stop admitting `user_id` and forget them: the session purges and withdraws what they
        contributed; their per-person counters go (the totals keep the counts, unnamed)."""
        with self._lock:
            self._grants.pop(user_id, None)
            self._revoked.discard(user_id)
            self._named.discard(user_id)
            self._admitted.pop(user_id, None)
            self._dropped.pop(user_id, None)
            self._last_admitted.pop(user_id, None)
            self._to_purge.append(Purge(user_id, True, self._tokens.pop(user_id, "")))
        self._notify()

    def in_force(self) -> dict[str, str]:
        """Person -> the consent in force for them now (granted, not revoked or erased)."""
        with self._lock:
            return {user: g.consent_id for user, g in self._grants.items()}

    def _notify(self) -> None:
        for changed in self._watchers:
            changed()

    def set_members(self, stream: str, people: Iterable[str]) -> None:
        with self._lock:
            self._members[stream] = tuple(sorted(set(people)))

    # -- from the session --------------------------------------------------------------------------

    def allows(self, person: str, modality: Modality) -> bool:
        """Whether `person` may be processed for `modality` now (a tap deciding what to subscribe
        to, a session running waiting audio ahead of its turn; counts nothing: the session's
        `admit` still rules on every item)."""
        with self._lock:
            return self._refusal(person, modality, self._clock()) is None

    def admit(self, stream: str, modality: Modality) -> bool:
        now = self._clock()
        with self._lock:
            people = self._members.get(stream, (stream,))
            reason = None
            for person in people:
                reason = self._refusal(person, modality, now)
                if reason is not None:
                    break
            for person in people:
                if person not in self._named:
                    continue
                if reason is None:
                    self._admitted[person][modality] += 1
                    self._last_admitted[person] = now
                else:
                    self._dropped[person][reason] += 1
            if reason is None and people:
                self._admitted_total[modality] += 1
                ITEMS_ADMITTED.labels(modality).inc()
                return True
            reason = reason or "no_consent"
            self._dropped_total[reason] += 1
            ITEMS_DROPPED.labels("gate", reason).inc()
            return False

    def take_purges(self) -> list[Purge]:
        """People revoked or erased since the last call: their state must go."""
        with self._lock:
            out, self._to_purge = self._to_purge, []
            return out

    @property
    def purges_pending(self) -> bool:
        with self._lock:
            return bool(self._to_purge)

    def stream_people(self, stream: str) -> tuple[str, ...]:
        with self._lock:
            return self._members.get(stream, (stream,))

    # -- reporting -------------------------------------------------------------------------------

    def counts(self) -> dict[str, object]:
        """Items admitted (by modality) and dropped (by reason), in total and per person. An item
        of a shared stream counts once in the totals and once for each of its people."""
        with self._lock:
            people = sorted({*self._admitted, *self._dropped})
            per = {
                p: {
                    "admitted": dict(self._admitted.get(p, {})),
                    "dropped": dict(self._dropped.get(p, {})),
                    "last_admitted_at": self._last_admitted.get(p),
                }
                for p in people
            }
            return {
                "admitted": dict(self._admitted_total),
                "dropped": dict(self._dropped_total),
                "participants": per,
            }

    def _refusal(self, person: str, modality: Modality, now: float) -> str | None:
        grant = self._grants.get(person)
        if grant is None:
            return "consent_revoked" if person in self._revoked else "no_consent"
        if grant.expires_at <= now:
            return "consent_expired"
        if modality not in grant.modalities:
            return f"no_consent_{modality}"
        return None
