"""Face tracking by detection: stable ids across frames, gaps reported as gaps.

Each update matches the frame's detections to live tracks, greedily, best pair first: first by IoU
with the box where the track was last seen; then, for what is left, by centre distance in units of
face size (fast motion at a low sample rate leaves no overlap). Nothing is predicted: a live track
whose face is not found gets a None slot, never a guessed box. A track unseen for longer than gap_s
ends and its id is never reused; a face found again within gap_s near its last box keeps its id.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from rapport.frames import Box, Detection

MAX_SCALE_CHANGE = 2.0
"""Centre-distance matching only pairs boxes whose sides differ by less than this factor."""


@dataclass(slots=True, frozen=True)
class TrackUpdate:
    slots: tuple[tuple[int, Detection | None], ...]
    """One entry per live track, by ascending id; None where its face was not found this frame."""
    ended: tuple[int, ...]
    """Tracks that ended at this update (unseen for longer than gap_s): drop their state."""


@dataclass(slots=True)
class _Track:
    id: int
    box: Box
    """Where the face was last seen."""
    last_seen: float


def _side(box: Box) -> float:
    return math.sqrt(box.area)


def _centre_distance(a: Box, b: Box) -> float:
    """Distance between centres in units of the mean face side; inf when scales differ too much."""
    sa, sb = _side(a), _side(b)
    if sa <= 0 or sb <= 0 or max(sa, sb) >= MAX_SCALE_CHANGE * min(sa, sb):
        return math.inf
    dx = (a.x0 + a.x1 - b.x0 - b.x1) / 2
    dy = (a.y0 + a.y1 - b.y0 - b.y1) / 2
    return math.hypot(dx, dy) / ((sa + sb) / 2)


def _assign(costs: list[tuple[float, int, int]], matched: dict[int, int], free: set[int]) -> None:
    """Greedy matching, cheapest pair first; each track and detection used at most once."""
    for _, track_id, det in sorted(costs):
        if track_id not in matched and det in free:
            matched[track_id] = det
            free.discard(det)


class FaceTracker:
    """One per video stream; not thread-safe."""

    def __init__(self, iou_threshold: float, gap_s: float, max_shift: float = 1.0) -> None:
        """`max_shift`: the farthest a face may move between sightings, in face sides, and still
        be matched when its boxes no longer overlap enough."""
        if not 0 < iou_threshold < 1:
            raise ValueError(f"iou_threshold must be in (0, 1), got {iou_threshold}")
        if gap_s < 0:
            raise ValueError(f"gap_s must be >= 0, got {gap_s}")
        if max_shift < 0:
            raise ValueError(f"max_shift must be >= 0, got {max_shift}")
        self._iou = iou_threshold
        self._gap = gap_s
        self._max_shift = max_shift
        self._tracks: dict[int, _Track] = {}  # by id; insertion order is id order
        self._next_id = 1
        self._t = -math.inf

    def update(self, t: float, detections: Sequence[Detection]) -> TrackUpdate:
        """Feed one frame's detections at media time `t` (non-decreasing between calls)."""
        if t < self._t:
            raise ValueError(f"time went backwards: {t} after {self._t}")
        self._t = t
        ended = tuple(i for i, tr in self._tracks.items() if t - tr.last_seen > self._gap)
        for i in ended:
            del self._tracks[i]

        matched: dict[int, int] = {}  # track id -> detection index
        free = set(range(len(detections)))
        # Costs are (cost, track id, detection index) so ties resolve the same way every time.
        overlaps = [
            (-tr.box.iou(d.box), tr.id, di)
            for tr in self._tracks.values()
            for di, d in enumerate(detections)
        ]
        _assign([c for c in overlaps if -c[0] >= self._iou], matched, free)
        shifts = [
            (_centre_distance(tr.box, detections[di].box), tr.id, di)
            for tr in self._tracks.values()
            if tr.id not in matched
            for di in free
        ]
        _assign([c for c in shifts if c[0] <= self._max_shift], matched, free)

        slots: list[tuple[int, Detection | None]] = []
        for tr in self._tracks.values():
            det = detections[matched[tr.id]] if tr.id in matched else None
            if det is not None:
                tr.box, tr.last_seen = det.box, t
            slots.append((tr.id, det))
        for di in sorted(free):
            det = detections[di]
            self._tracks[self._next_id] = _Track(self._next_id, det.box, t)
            slots.append((self._next_id, det))
            self._next_id += 1
        return TrackUpdate(slots=tuple(slots), ended=ended)
