"""Who spoke when, on a microphone shared by several people whose transcript names them.

With one speaker (or none named) everything belongs to the stream's owner. With two or more, a
speech segment is cut at transcript cue boundaries and each piece goes to the speaker whose cue
overlaps it most, or to the nearest cue's speaker within ATTRIBUTE_S; speech further from every
cue is credited to no one (None).

Cues are kept only when they are needed (two or more speakers), and only as long as they can still
attribute speech: the session prunes those that ended before any speech still to come could start.
"""

from __future__ import annotations

import itertools

from rapport.frames import Utterance

ATTRIBUTE_S = 1.5

Piece = tuple[str | None, float, float]


class SpeakerAttribution:
    def __init__(self, owner: str | None, speakers: tuple[str, ...]) -> None:
        self._owner = owner
        self.multi = len(speakers) >= 2
        self._cues: list[Utterance] = []

    def add(self, utterance: Utterance) -> None:
        if self.multi:
            self._cues.append(utterance)

    def prune(self, before: float) -> None:
        """Drop cues that ended before `before`: no speech still to come can reach them."""
        if self._cues and min(u.end for u in self._cues) < before:
            self._cues = [u for u in self._cues if u.end >= before]

    def forget(self, participant: str) -> None:
        self._cues = [u for u in self._cues if u.participant != participant]

    def clear(self) -> None:
        self._cues = []

    def __len__(self) -> int:
        return len(self._cues)

    def split(self, start: float, end: float) -> list[Piece]:
        if not self.multi:
            return [(self._owner, start, end)]
        inner = {t for u in self._cues for t in (u.start, u.end) if start < t < end}
        pieces: list[Piece] = []
        for a, b in itertools.pairwise(sorted({start, end} | inner)):
            who = self._who(a, b)
            if pieces and pieces[-1][0] == who:
                a = pieces.pop()[1]
            pieces.append((who, a, b))
        return pieces

    def _who(self, start: float, end: float) -> str | None:
        best, best_score = None, -ATTRIBUTE_S
        for u in self._cues:
            score = min(end, u.end) - max(start, u.start)  # overlap, or minus the gap
            if score > best_score:
                best, best_score = u.participant, score
        return best
