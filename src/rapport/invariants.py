"""The invariants a session keeps for any sequence of inputs, stated once, with the code that checks
them (the property-based tests, the soak script and the integration tests call it).

Events
  E1. Every event validates against its schema (`rapport schema`), once serialised and read back.
  E2. `seq` is gap-free from 0; exactly one `session.started`, first; at most one
      `session.summary`, last (exactly one once the session ended).
  E3. Windows are contiguous on one timeline: the engagement windows start at 0, each starts where
      the previous ended (or, after a `session.resumed`, where its gap ends: the gap starts where
      the last window ended), and each has its `turns.window` over the same media time.
  E4. Shares and ratios lie in [0, 1] (speaking shares, silence share, evenness, engagement and its
      components, faces >= 0); valence and arousal in [-1, 1].
  E5. A window's room `participants` counts the people who contributed data to it, and, with
      participant reporting, equals its per-participant blocks and its speaking-share keys.
  E6. Room reporting: no per-participant block, no user id as a key (random pseudonyms only), and
      a window's room numbers (and its `degraded` note) are null, with `withheld` giving the
      reason, while fewer than `reporting.min_participants` people contribute to it.
  E7. A `synchrony.window` ends where an engagement window ends and covers at most its
      `parameters.window_s` before it; it compares at least two people, has one pair per two of
      them (per-pair values only with participant reporting, each naming two of them), its rates
      (RR, DET, LAM, share led) lie in [0, 1] and lengths are >= 0; its numbers are null exactly
      when `withheld` gives the reason (with room reporting below the minimum), and lag quartiles
      are given exactly when some pair has a clear leader.
  E8. A window's `degraded` note (live rooms: cameras sampled below the configured rate while
      the bot was behind) names at least one camera, and a lowest rate above 0 and below the
      session's `sample_fps`.

Consent (checked against what the gate admitted)
  C1. Nobody appears in a window unless an item of theirs was admitted (a valid, unexpired,
      unrevoked consent for its modality at that moment) over that window's media time; someone
      who contributed nothing to a window is absent from it, not scored 0.
  C2. After a revocation is applied, nothing derived from the person remains in the session's
      memory (`find_person` over the session's object graph finds nothing), and nothing emitted
      later names them. After an erasure, the same holds for the gate too, and the room numbers
      they contributed to are withdrawn from the summary.

Resources
  R1. A session's memory is bounded by its window and baseline lengths, not by its duration
      (`object_count` stays flat: scripts/soak_session.py).
"""

from __future__ import annotations

import math
import sys
import types
from collections import deque
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

from rapport.events.schema import Event, EventType


class InvariantError(AssertionError):
    """An invariant above does not hold; the message names it (E1, C2, ...)."""


def check_events(
    events: Sequence[Event],
    *,
    ended: bool = False,
    min_participants: int | None = None,
    user_ids: Iterable[str] = (),
) -> None:
    """E1-E8 over a session's events, in order of `seq`. `ended`: the summary must be there;
    `min_participants`: the session's setting (checks E6 when its events are room-reported);
    `user_ids`: ids that must never appear as keys of room-reported events."""
    _require(all(isinstance(e, Event) for e in events), "E1", "not an Event")
    for e in events:
        again = Event.model_validate_json(e.to_json())
        _require(again == e, "E1", f"seq {e.seq} does not survive serialisation")
    seqs = [e.seq for e in events]
    _require(seqs == list(range(len(events))), "E2", "seq is not gap-free from 0")
    types_ = [e.type for e in events]
    if events:
        _require(types_[0] == EventType.SESSION_STARTED, "E2", "the first event is not started")
    _require(types_.count(EventType.SESSION_STARTED) <= 1, "E2", "two session.started")
    summaries = types_.count(EventType.SESSION_SUMMARY)
    _require(summaries <= 1, "E2", "two summaries")
    if summaries:
        _require(types_[-1] == EventType.SESSION_SUMMARY, "E2", "an event after the summary")
    _require(not ended or summaries == 1, "E2", "the session ended without a summary")
    room = any(
        e.type == EventType.SESSION_STARTED and e.data.model_dump().get("reporting") == "room"
        for e in events
    )
    names = set(user_ids)
    fps = next(
        (e.data.model_dump()["sample_fps"] for e in events if e.type == EventType.SESSION_STARTED),
        None,
    )
    _windows(events)
    window_ends = {
        round(e.media_time.end, 6) for e in events if e.type == EventType.ENGAGEMENT_WINDOW
    }
    for e in events:
        data = e.data.model_dump()
        _ranges(e.seq, data)
        if e.type == EventType.ENGAGEMENT_WINDOW:
            _engagement_window(e.seq, data, room, min_participants)
            _degraded(e.seq, data["room"].get("degraded"), fps)
        elif e.type == EventType.TURNS_WINDOW:
            if room:
                _require(not names & set(data["speaking_shares"]), "E6", f"seq {e.seq}: a user id")
        elif e.type == EventType.SESSION_SUMMARY and room:
            keys = set(data["speaking_shares"]) | set(data["turns"]) | set(data["participants"])
            _require(not names & keys, "E6", "the summary names a user id")
            _require(not data["participants"], "E6", "per-person means under room reporting")
        elif e.type == EventType.SYNCHRONY_WINDOW:
            _synchrony_window(e, data, room, min_participants, window_ends)


def people_in(event: Event) -> set[str]:
    """Every name an event reports someone under (user ids, or pseudonyms with room reporting)."""
    data = event.data.model_dump()
    found: set[str] = set()
    for key in ("participants", "speaking_shares", "turns"):
        value = data.get(key)
        if isinstance(value, Mapping):
            found |= set(value)
    if event.type == EventType.SYNCHRONY_WINDOW:
        for pair in data["pairs"]:
            found |= {pair["a"], pair["b"]}
    return found


def _windows(events: Sequence[Event]) -> None:
    spans = [
        (e.media_time.start, e.media_time.end)
        for e in events
        if e.type == EventType.ENGAGEMENT_WINDOW
    ]
    turns = [
        (e.media_time.start, e.media_time.end) for e in events if e.type == EventType.TURNS_WINDOW
    ]
    _require(spans == turns, "E3", "engagement and turns windows differ")
    end = 0.0
    for e in events:
        if e.type == EventType.SESSION_RESUMED:
            gap = e.data.model_dump()["gap"]
            _require(
                math.isclose(gap["start"], end, abs_tol=1e-6),
                "E3",
                f"seq {e.seq}: a gap from {gap['start']} after windows up to {end}",
            )
            _require(gap["end"] >= gap["start"], "E3", f"seq {e.seq}: a gap that ends first")
            end = gap["end"]
        elif e.type == EventType.ENGAGEMENT_WINDOW:
            start, stop = e.media_time.start, e.media_time.end
            _require(math.isclose(start, end, abs_tol=1e-6), "E3", f"window at {start} after {end}")
            _require(stop > start, "E3", f"empty window at {start}")
            end = stop


def _engagement_window(
    seq: int, data: dict[str, Any], room: bool, min_participants: int | None
) -> None:
    r, people = data["room"], data["participants"]
    if room:
        _require(not people, "E6", f"seq {seq}: a participant block under room reporting")
        if min_participants is not None and r["participants"] < min_participants:
            _require(r["withheld"] is not None, "E6", f"seq {seq}: a room of too few shown")
            _require(
                all(r.get(k) is None for k in _WITHHELD_ROOM),
                "E6",
                f"seq {seq}: withheld room numbers are not null",
            )
    else:
        _require(r["participants"] == len(people), "E5", f"seq {seq}: count != blocks")
    if r["withheld"] is None and r["participants"] == 0:
        _require(r["engagement"] is None or r["faces"], "E5", f"seq {seq}: engagement of no one")


def _degraded(seq: int, note: dict[str, Any] | None, sample_fps: float | None) -> None:
    if note is None:
        return
    _require(note["cameras"] >= 1, "E8", f"seq {seq}: a degraded note of no camera")
    low = note["sample_fps_min"]
    _require(low > 0, "E8", f"seq {seq}: sampled at {low} fps")
    if sample_fps is not None:
        _require(low < sample_fps, "E8", f"seq {seq}: {low} fps is not below {sample_fps}")


_WITHHELD_ROOM = ("engagement", "valence", "arousal", "trend", "faces", "degraded")
_UNIT = {"engagement", "speaking_share", "silence_share", "evenness", "attention", "participation"}
_UNIT |= {"expressiveness", "rr", "det", "lam", "led_share"}
_SIGNED = {"valence", "arousal", "from_valence", "to_valence"}
_NON_NEGATIVE = {"faces", "turns", "participants", "windows", "duration_s", "pairs"}
_NON_NEGATIVE |= {"l", "lmax", "entr", "tt", "lag_s", "p25", "median", "p75", "sd"}


def _ranges(seq: int, value: object, key: str = "") -> None:
    """E4, over every number of a payload by the name of the field that holds it."""
    if isinstance(value, Mapping):
        shares = key in ("speaking_shares",)
        for k, v in value.items():
            _ranges(seq, v, "speaking_share" if shares else str(k))
    elif isinstance(value, list):
        for v in value:
            _ranges(seq, v, "valence" if key == "valence_timeline" else key)
    elif isinstance(value, float | int) and not isinstance(value, bool):
        x = float(value)
        _require(math.isfinite(x), "E4", f"seq {seq}: {key} is {x}")
        if key in _UNIT or key == "engagement_timeline":
            _require(0.0 <= x <= 1.0, "E4", f"seq {seq}: {key} = {x} outside [0, 1]")
        elif key in _SIGNED:
            _require(-1.0 <= x <= 1.0, "E4", f"seq {seq}: {key} = {x} outside [-1, 1]")
        elif key in _NON_NEGATIVE:
            _require(x >= 0, "E4", f"seq {seq}: {key} = {x} is negative")


def _synchrony_window(
    e: Event,
    data: dict[str, Any],
    room: bool,
    min_participants: int | None,
    window_ends: set[float],
) -> None:
    seq, r, pairs = e.seq, data["room"], data["pairs"]
    _require(round(e.media_time.end, 6) in window_ends, "E7", f"seq {seq}: not at a window end")
    span = e.media_time.end - e.media_time.start
    longest = data["parameters"]["window_s"]
    _require(0 < span <= longest + 1e-6, "E7", f"seq {seq}: a span of {span} s (at most {longest})")
    numbers = ("rr", "det", "led_share")
    hidden = r["withheld"] is not None
    _require(
        all((r[k] is None) == hidden for k in numbers),
        "E7",
        f"seq {seq}: numbers null without withheld, or shown with it",
    )
    if not hidden:
        led = r["led_share"] > 0
        _require((r["lag_s"] is not None) == led, "E7", f"seq {seq}: lag quartiles vs led share")
    _require(r["participants"] >= 2, "E7", f"seq {seq}: synchrony of fewer than two")
    n = r["participants"]
    _require(r["pairs"] == n * (n - 1) // 2, "E7", f"seq {seq}: {r['pairs']} pairs of {n}")
    for spread in ("rr", "det"):
        if r[spread] is not None:
            mean = r[spread]["mean"]
            _require(0.0 <= mean <= 1.0, "E7", f"seq {seq}: {spread} mean {mean} outside [0, 1]")
    withheld = room and min_participants is not None and n < min_participants
    if withheld:
        _require(r["withheld"] is not None, "E7", f"seq {seq}: a room of too few shown")
        _require(
            all(r[k] is None for k in ("rr", "det", "led_share", "lag_s")),
            "E7",
            f"seq {seq}: withheld synchrony numbers are not null",
        )
    if room or r["withheld"] is not None:
        _require(not pairs, "E7", f"seq {seq}: per-pair values under room reporting")
    else:
        _require(len(pairs) == r["pairs"], "E7", f"seq {seq}: pairs listed != pairs counted")
        people = {p["a"] for p in pairs} | {p["b"] for p in pairs}
        _require(len(people) == n, "E7", f"seq {seq}: pairs of {len(people)} people, not {n}")
        for p in pairs:
            _require(p["a"] != p["b"], "E7", f"seq {seq}: a pair of one person")
            _require(
                p["leader"] in (None, p["a"], p["b"])
                and (p["leader"] is None) == (p["lag_s"] is None),
                "E7",
                f"seq {seq}: a leader outside its pair, or a lag without one",
            )


def _require(condition: bool, invariant: str, message: str) -> None:
    if not condition:
        raise InvariantError(f"{invariant}: {message}")


# -- the object graph ---------------------------------------------------------------------------

_LEAVES: tuple[type, ...] = (str, bytes, int, float, complex, bool, type(None), range)
_LEAVES += (types.ModuleType, type, types.FunctionType, types.BuiltinFunctionType)
_LEAVES += (types.MethodType,)
"""Not entered: atoms, and code (a bound method's object is reached from its owner, if at all)."""
_OPAQUE_MODULES = ("numpy", "onnxruntime", "pocketsphinx", "threading", "_thread", "array")


def find_person(root: object, person: str, *, skip: Iterable[object] = ()) -> list[str]:
    """Paths (`.attr`, `[key]`) from `root` to every string equal to `person`, as a value or a
    key, in the objects `root` reaches. `skip`: objects not to enter (shared models, the event
    bus, the gate where it must remember a refusal). Arrays, models and locks are not entered."""
    return [path for path, obj in _walk(root, skip) if isinstance(obj, str) and obj == person]


def object_count(root: object, *, skip: Iterable[object] = ()) -> tuple[int, int]:
    """(objects, bytes) that `root` reaches (sys.getsizeof, shallow each): R1's measure."""
    n = size = 0
    for _, obj in _walk(root, skip):
        n += 1
        size += sys.getsizeof(obj)
    return n, size


def _walk(root: object, skip: Iterable[object]) -> Iterator[tuple[str, object]]:
    seen = {id(s) for s in skip}
    stack: list[tuple[str, object]] = [("", root)]
    while stack:
        path, obj = stack.pop()
        if id(obj) in seen:
            continue
        seen.add(id(obj))
        yield path, obj
        if isinstance(obj, _LEAVES) or _opaque(obj):
            continue
        stack.extend(_children(path, obj))


def _opaque(obj: object) -> bool:
    module = type(obj).__module__ or ""
    return module.split(".")[0] in _OPAQUE_MODULES


def _children(path: str, obj: object) -> Iterator[tuple[str, object]]:
    if isinstance(obj, Mapping):
        for k, v in list(obj.items()):
            yield f"{path}<key {k!r}>", k
            yield f"{path}[{k!r}]", v
        return
    if isinstance(obj, list | tuple | set | frozenset | deque):
        for i, v in enumerate(list(obj)):
            yield f"{path}[{i}]", v
        return
    if hasattr(obj, "__dict__"):
        for k, v in list(vars(obj).items()):
            yield f"{path}.{k}", v
    for cls in type(obj).__mro__:
        for name in getattr(cls, "__slots__", ()):
            if hasattr(obj, name) and name not in ("__dict__", "__weakref__"):
                yield f"{path}.{name}", getattr(obj, name)
