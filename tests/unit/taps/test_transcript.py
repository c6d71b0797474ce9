from __future__ import annotations

from pathlib import Path

import pytest

from rapport.errors import TranscriptError
from rapport.frames import Utterance
from rapport.taps.transcript import load_transcript

VTT = """\
WEBVTT - weekly sync
Kind: captions

NOTE exported by the meeting tool,
two lines of comment

STYLE
::cue { color: yellow }

intro-2
00:00:04.500 --> 00:00:06.000 align:start position:10%
<v.loud Bob Lee>Sounds <i>good</i> &amp; clear.</v>

intro-1
00:00:01.000 --> 00:00:03.250
<v Ana>Hello everyone,
welcome back.

01:00:00.000 --> 01:00:02.000 line:0
No voice tag here.

00:07.000 --> 00:09.000
<v Ana>Short form times.
<v Bob Lee>And a reply in the same cue.
"""


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_webvtt_with_voices_settings_notes_and_markup(tmp_path: Path) -> None:
    got = load_transcript(write(tmp_path, "sync.vtt", VTT), default_participant="room")
    assert got == [
        Utterance("Ana", 1.0, 3.25, "Hello everyone, welcome back."),
        Utterance("Bob Lee", 4.5, 6.0, "Sounds good & clear."),
        Utterance("Ana", 7.0, 9.0, "Short form times."),
        Utterance("Bob Lee", 7.0, 9.0, "And a reply in the same cue."),
        Utterance("room", 3600.0, 3602.0, "No voice tag here."),
    ]


def test_srt_with_speaker_prefixes_crlf_and_bom(tmp_path: Path) -> None:
    text = (
        "\ufeff1\r\n00:00:01,000 --> 00:00:02,500\r\nAna: Hi <i>there</i>.\r\n\r\n"
        "2\r\n00:00:03,000 --> 00:00:05,000 X1:10 X2:20\r\nTwo lines,\r\nno speaker.\r\n\r\n"
        "3\r\n00:00:02,600 --> 00:00:02,900\r\nBob Lee: Yes.\r\n"
    )
    got = load_transcript(write(tmp_path, "talk.srt", text), default_participant="room")
    assert got == [
        Utterance("Ana", 1.0, 2.5, "Hi there."),
        Utterance("Bob Lee", 2.6, 2.9, "Yes."),
        Utterance("room", 3.0, 5.0, "Two lines, no speaker."),
    ]


def test_jsonl_with_and_without_speaker(tmp_path: Path) -> None:
    text = (
        '{"start": 2, "end": 3.5, "text": "Second.", "speaker": "Bob"}\n'
        "\n"
        '{"start": 0.25, "end": 1.75, "text": "First <3", "confidence": 0.9}\n'
    )
    got = load_transcript(write(tmp_path, "talk.jsonl", text), default_participant="room")
    assert got == [
        Utterance("room", 0.25, 1.75, "First <3"),
        Utterance("Bob", 2.0, 3.5, "Second."),
    ]


def test_webvtt_is_recognised_by_its_header_whatever_the_extension(tmp_path: Path) -> None:
    path = write(tmp_path, "captions.txt", "WEBVTT\n\n00:01.000 --> 00:02.000\nHi.\n")
    assert load_transcript(path, default_participant="p") == [Utterance("p", 1.0, 2.0, "Hi.")]


SRT_OK = "1\n00:00:01,000 --> 00:00:02,000\nFine.\n\n"

MALFORMED: dict[str, tuple[str, str, int, str]] = {
    # name: (file name, content, line the error must name, words it must contain)
    "srt bad timestamp": (
        "talk.srt",
        SRT_OK + "2\n00:00:3,00 --> 00:00:04,000\nOops.\n",
        6,
        "bad timestamp '00:00:3,00'",
    ),
    "srt seconds over 59": (
        "talk.srt",
        SRT_OK + SRT_OK + "3\n00:00:05,000 --> 00:00:61,000\nOops.\n",
        10,
        "bad timestamp '00:00:61,000'",
    ),
    "srt text where a cue number belongs": (
        "talk.srt",
        SRT_OK + "Just some words\nmore words\n",
        5,
        "expected a cue number",
    ),
    "srt number without timing": ("talk.srt", SRT_OK + "2\nNo timing.\n", 6, "cue timing"),
    "srt no end time": ("talk.srt", "1\n00:00:01,000 -->\nHi.\n", 2, "no end time"),
    "srt ends before start": (
        "talk.srt",
        SRT_OK + "2\n00:00:05,000 --> 00:00:04,000\nBackwards.\n",
        6,
        "not after its start",
    ),
    "vtt without header": ("talk.vtt", "00:01.000 --> 00:02.000\nHi.\n", 1, "'WEBVTT' header"),
    "vtt comma decimal": (
        "talk.vtt",
        "WEBVTT\n\n00:00:01.000 --> 00:00:02.000\nOk.\n\n00:00:03,000 --> 00:00:04.000\nNo.\n",
        6,
        "bad timestamp '00:00:03,000'",
    ),
    "vtt zero length cue": (
        "talk.vtt",
        "WEBVTT\n\ncue-1\n00:00:03.000 --> 00:00:03.000\nNo.\n",
        4,
        "not after its start",
    ),
    "vtt cue without timing": ("talk.vtt", "WEBVTT\n\ncue-1\nNo timing.\n", 4, "cue timing"),
    "jsonl bad json": (
        "talk.jsonl",
        '{"start": 0, "end": 1, "text": "a"}\n\n{"start": 1, "end": 2, "text": "b"\n',
        3,
        "bad JSON",
    ),
    "jsonl not an object": ("talk.jsonl", "[0, 1, 2]\n", 1, "expected a JSON object"),
    "jsonl missing end": ("talk.jsonl", '{"start": 0, "text": "a"}\n', 1, "missing 'end'"),
    "jsonl string time": (
        "talk.jsonl",
        '{"start": "00:01", "end": 2, "text": "a"}\n',
        1,
        "'start' must be a number",
    ),
    "jsonl boolean time": ("talk.jsonl", '{"start": true, "end": 2, "text": "a"}\n', 1, "'start'"),
    "jsonl negative time": ("talk.jsonl", '{"start": -1, "end": 2, "text": "a"}\n', 1, ">= 0"),
    "jsonl nan time": ("talk.jsonl", '{"start": 0, "end": NaN, "text": "a"}\n', 1, "'end'"),
    "jsonl end before start": (
        "talk.jsonl",
        '{"start": 0, "end": 1, "text": "a"}\n{"start": 3, "end": 2, "text": "b"}\n',
        2,
        "not after its start",
    ),
    "jsonl text missing": ("talk.jsonl", '{"start": 0, "end": 1}\n', 1, "'text' must be a string"),
    "jsonl speaker not a string": (
        "talk.jsonl",
        '{"start": 0, "end": 1, "text": "a", "speaker": 7}\n',
        1,
        "'speaker' must be a non-empty string",
    ),
}


@pytest.mark.parametrize("case", list(MALFORMED))
def test_malformed_transcripts_name_file_and_line(tmp_path: Path, case: str) -> None:
    name, text, line, words = MALFORMED[case]
    path = write(tmp_path, name, text)
    with pytest.raises(TranscriptError) as err:
        load_transcript(path, default_participant="p")
    message = str(err.value)
    assert message.startswith(f"transcript {path}:{line}: ")
    assert words in message and "\n" not in message


def test_the_example_message_reads_exactly(tmp_path: Path) -> None:
    path = write(tmp_path, "talk.srt", "1\n00:00:3,00 --> 00:00:04,000\nOops.\n")
    with pytest.raises(TranscriptError) as err:
        load_transcript(path, default_participant="p")
    assert str(err.value) == f"transcript {path}:2: bad timestamp '00:00:3,00'"


@pytest.mark.parametrize(
    ("name", "text"),
    [("a.vtt", "WEBVTT\n\nNOTE nothing yet\n"), ("a.srt", "\n\n"), ("a.jsonl", "\n")],
)
def test_empty_transcripts_are_errors(tmp_path: Path, name: str, text: str) -> None:
    with pytest.raises(TranscriptError, match="empty, no utterances"):
        load_transcript(write(tmp_path, name, text), default_participant="p")


def test_unknown_extension_lists_the_supported_ones(tmp_path: Path) -> None:
    with pytest.raises(
        TranscriptError, match=r"unsupported format '\.docx'.*\.vtt, \.srt, \.jsonl"
    ):
        load_transcript(write(tmp_path, "notes.docx", "hello"), default_participant="p")


def test_missing_and_binary_files(tmp_path: Path) -> None:
    with pytest.raises(TranscriptError, match="no such file"):
        load_transcript(tmp_path / "gone.vtt", default_participant="p")
    binary = tmp_path / "blob.srt"
    binary.write_bytes(b"\xff\xfe\x00\x81garbage")
    with pytest.raises(TranscriptError, match="not UTF-8 text"):
        load_transcript(binary, default_participant="p")
