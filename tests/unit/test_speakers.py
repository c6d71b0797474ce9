import itertools

from rapport.frames import Utterance
from rapport.speakers import SpeakerAttribution


def _attribution() -> SpeakerAttribution:
    a = SpeakerAttribution(None, ("ann", "bob"))
    for who, start, end in [("ann", 0.5, 2.7), ("bob", 3.6, 6.3), ("ann", 6.8, 10.0)]:
        a.add(Utterance(who, start, end, "..."))
    return a


def test_one_segment_over_several_cues_is_cut_at_their_boundaries() -> None:
    pieces = _attribution().split(0.4, 10.1)
    assert [p[0] for p in pieces] == ["ann", "bob", "ann"]
    assert pieces[0][1] == 0.4 and pieces[-1][2] == 10.1
    assert all(a[2] == b[1] for a, b in itertools.pairwise(pieces))  # no gaps


def test_speech_far_from_every_cue_belongs_to_no_one() -> None:
    assert _attribution().split(20.0, 21.0) == [(None, 20.0, 21.0)]
    assert _attribution().split(11.0, 11.4) == [("ann", 11.0, 11.4)]  # within 1.5 s of a cue


def test_a_single_speaker_owns_everything() -> None:
    a = SpeakerAttribution("ann", ("ann",))
    assert not a.multi
    assert a.split(3.0, 4.0) == [("ann", 3.0, 4.0)]
