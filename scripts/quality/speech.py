"""Section 3: voice activity boundaries and speech-to-text word error rate, on synthesised
voices and on real read speech."""

from __future__ import annotations

import zlib
from dataclasses import dataclass

from .markdown import abs_ms, signed_ms, table
from .run import Run, log
from .speech_corpora import (
    NOISE_DBFS,
    TESTDATA_HINT,
    Corpus,
    deb_version,
    real_corpora,
    script_lines,
    synth_corpus,
    timeline,
)
from .speech_scoring import BoundaryStats, WerTally, match_segments, words
from .stats import median, pct

FULL_VOICES = ("flite:slt", "flite:awb", "flite:rms", "flite:kal16", "espeak-ng:en-us")
QUICK_VOICES = ("flite:slt", "espeak-ng:en-us")
ORACLE_PAD_S = 0.3
"""The oracle cut keeps this much of the timeline before and after each true speech span."""


@dataclass
class VoiceResult:
    corpus: Corpus
    speech_s: float
    bounds: BoundaryStats
    wer_oracle: WerTally
    wer_vad: WerTally
    examples: list[tuple[int, str, str]]
    """(word errors, reference, heard) per utterance, oracle cut, most errors first."""


def run_voice(run: Run, corpus: Corpus, salt: int) -> VoiceResult:
    from rapport.frames import SAMPLE_RATE, AudioChunk
    from rapport.perception.speech_to_text import SpeechToText
    from rapport.perception.voice import VoiceActivity

    audio, spans = timeline(corpus, run.gen(salt))
    vad = VoiceActivity(
        run.models_dir,
        run.settings.runtime,
        "p",
        max_speech_s=run.settings.window.seconds,  # as the session makes it (pack.voice_activity)
        prosody=False,
    )
    segments = vad.push(AudioChunk("p", 0.0, audio)) + vad.flush()
    segs = [(s.start, s.end) for s in segments]
    bounds = match_segments([(s, e) for s, e, _ in spans], segs)

    stt = SpeechToText()
    oracle, through = WerTally(), WerTally()
    examples = []
    for (ts, te, _), clip in zip(spans, corpus.clips, strict=True):
        a, b = round((ts - ORACLE_PAD_S) * SAMPLE_RATE), round((te + ORACLE_PAD_S) * SAMPLE_RATE)
        u = stt.transcribe("p", ts, audio[max(0, a) : b])
        hyp = u.text if u else ""
        examples.append((oracle.add(clip.text, hyp), clip.text, hyp))
    examples.sort(key=lambda e: -e[0])  # the worst first
    # The product path: every VAD segment is transcribed; its words go to the utterance it
    # overlaps most (a segment overlapping none adds insertions).
    heard: dict[int, list[str]] = {k: [] for k in range(len(corpus.clips))}
    extra = []
    for s, e in segs:
        u = stt.transcribe("p", s, audio[round(s * SAMPLE_RATE) : round(e * SAMPLE_RATE)])
        if u is None:
            continue
        best = max(spans, key=lambda sp: min(e, sp[1]) - max(s, sp[0]))
        if min(e, best[1]) - max(s, best[0]) > 0:
            heard[best[2]].append(u.text)
        else:
            extra.append(u.text)
    for k, clip in enumerate(corpus.clips):
        through.add(clip.text, " ".join(heard[k]))
    for text in extra:
        through.add("", text)
    speech = sum(e - s for s, e, _ in spans)
    return VoiceResult(
        corpus,
        speech,
        bounds,
        oracle,
        through,
        [(e, " ".join(words(r)), h) for e, r, h in examples],
    )


def voice_section(run: Run) -> str:
    lines = script_lines()
    voices = QUICK_VOICES if run.quick else FULL_VOICES
    if run.quick:
        lines = lines[:6]
    corpora: list[Corpus] = []
    for v in voices:
        log(f"voice: synthesising {len(lines)} lines with {v}")
        corpora.append(synth_corpus(v, lines))
    real_note = ""
    if (run.testdata / "librivox" / "transcription").is_file():
        corpora += real_corpora(run.testdata)
    else:
        real_note = (
            f"\n**Real read speech was not measured in this run**: {run.testdata} does not hold "
            f"pocketsphinx's test data. To include it: {TESTDATA_HINT}.\n"
        )
        log(f"voice: no pocketsphinx test data at {run.testdata}; {TESTDATA_HINT}")
    results = []
    for k, c in enumerate(corpora):
        log(f"voice: VAD + speech-to-text on {c.name} ({k + 1}/{len(corpora)})")
        results.append(run_voice(run, c, 300 + zlib.crc32(c.name.encode()) % 10_000))

    def brow(r: VoiceResult) -> list[object]:
        b = r.bounds
        a_s = [abs(x) for x in b.start_err]
        a_e = [abs(x) for x in b.end_err]
        return [
            r.corpus.name,
            f"{b.utterances} / {r.speech_s:.0f} s",
            b.missed,
            f"{b.false_alarms} ({b.false_alarm_s:.1f} s)",
            f"{signed_ms(median(b.start_err))}",
            f"{abs_ms(pct(a_s, 50))} / {abs_ms(pct(a_s, 95))}",
            f"{signed_ms(median(b.end_err))}",
            f"{abs_ms(pct(a_e, 50))} / {abs_ms(pct(a_e, 95))}",
            f"{sum(b.pieces) / len(b.pieces):.2f}" if b.pieces else "n/a",
        ]

    def wrow(r: VoiceResult) -> list[object]:
        o, v = r.wer_oracle, r.wer_vad
        return [
            r.corpus.name,
            o.ref_words,
            f"{o.wer:.1%}",
            f"{o.subs}/{o.dels}/{o.ins}",
            f"{v.wer:.1%}",
            f"{v.subs}/{v.dels}/{v.ins}",
        ]

    synth = [r for r in results if r.corpus.name in voices]
    real = [r for r in results if r.corpus.name not in voices]
    pooled = {}
    for label, group in (("synthesised", synth), ("real", real)):
        if group:
            tot = WerTally()
            for r in group:
                tot.merge(r.wer_oracle)
            pooled[label] = tot
    for label, tot in pooled.items():
        run.headlines.append(
            f"Speech-to-text WER (oracle cut), {label} speech: {tot.wer:.1%} "
            f"of {tot.ref_words} words"
        )
    ends = [x for r in results for x in r.bounds.end_err]
    starts = [x for r in results for x in r.bounds.start_err]
    if starts:
        run.headlines.append(
            "VAD boundaries, all corpora: start error median "
            f"{signed_ms(median(starts))} ms, end error median "
            f"{signed_ms(median(ends))} ms "
            f"(p95 |error| {abs_ms(pct([abs(x) for x in starts], 95))} / "
            f"{abs_ms(pct([abs(x) for x in ends], 95))} ms)"
        )
    sources = "\n".join(f"- `{r.corpus.name}`: {r.corpus.source}" for r in results)
    examples = "\n".join(
        f"- {r.corpus.name} ({err} errors): “{ref}” → “{hyp}”"
        for r in results
        for err, ref, hyp in r.examples[:1]
    )
    w = run.settings.window.seconds
    missed = sum(r.bounds.missed for r in results)
    alarms = sum(r.bounds.false_alarms for r in results)
    total = sum(r.bounds.utterances for r in results)
    vad_summary = (
        f"- The VAD missed {missed} of {total} utterances and raised {alarms} false alarm(s) "
        "over these quiet gaps. The median segment starts "
        f"{signed_ms(median(starts))} ms from the true start and "
        f"ends {signed_ms(median(ends))} ms from the true end: a "
        "late end is the hangover of the 0.3 s minimum silence, by design, so that a short "
        "pause does not split a sentence."
    )
    worse = [r.corpus.name for r in real if r.wer_vad.wer > r.wer_oracle.wer]
    split_note = (
        f"; this is why {', '.join(worse)} {'score' if len(worse) > 1 else 'scores'} worse "
        "through the VAD than on the oracle cut"
        if worse
        else ""
    )
    version = deb_version("pocketsphinx-testdata")
    deb = f" {version}" if version else ""
    provenance = (
        f"\nThe real recordings come from Debian's `pocketsphinx-testdata` package{deb} "
        "(pocketsphinx's own test data: LibriVox volunteers' public-domain reading of Jane "
        "Austen's *Sense and Sensibility*, and short utterances of playing-card names, each with "
        "its reference transcription). The `pocketsphinx` wheel on PyPI ships the en-us model "
        "but no test audio.\n"
        if real
        else ""
    )
    bounds_table = table(
        [
            "corpus",
            "utterances / speech",
            "missed",
            "false alarms",
            "start, median",
            "start abs p50 / p95",
            "end, median",
            "end abs p50 / p95",
            "pieces",
        ],
        [brow(r) for r in results],
    )
    wer_table = table(
        ["corpus", "ref words", "WER oracle cut", "S/D/I", "WER through VAD", "S/D/I"],
        [wrow(r) for r in results],
    )
    pooled_text = "; ".join(f"{k} {v.wer:.1%} of {v.ref_words} words" for k, v in pooled.items())
    return f"""## 3. Voice activity and speech-to-text

Silero VAD (`models/vad`) through the product's `VoiceActivity` (on 0.5, off 0.35, min speech
0.25 s, min silence 0.3 s, segments cut at {w:g} s as the session cuts them) over timelines of
utterances separated by 0.8-1.6 s gaps (seeded) over white noise at {NOISE_DBFS:.0f} dBFS. The
truth of each utterance is measured on the clean clip: from the first to the last 10 ms frame
within 35 dB of its loudest frame and at least 15 dB above its floor. For real recordings this is
an approximation (a loud breath counts as speech, a faint word ending may not). Speech-to-text is
pocketsphinx with the en-us model its wheel ships (`SpeechToText`), scored as word error rate
(substitutions + deletions + insertions over reference words, lower-case, punctuation removed),
once on each utterance cut from the timeline at its true span with {ORACLE_PAD_S:g} s either
side ("oracle cut") and once on the VAD's segments, as the product
transcribes ("through VAD").

Sources:
{sources}
{provenance}
{real_note}
### Boundaries

Errors in milliseconds; signed medians (negative: the segment starts or ends before the truth)
and median / 95th percentile of the absolute error. "Pieces" is segments per utterance (a pause
of 0.3 s or more inside an utterance, or the {w:g} s cut, splits it).

{bounds_table}

### Word error rate

{wer_table}

Pooled, oracle cut: {pooled_text}. With about a hundred words per corpus one word is about one
point of WER, so differences of a few points between rows, or between the two cuts, are within
noise.

The worst utterance of each corpus (oracle cut; reference → heard):
{examples}

What this means:

{vad_summary}
- Real read speech splits where the reader pauses, and the {w:g} s cut splits long sentences;
  each piece is transcribed on its own, without the words around it{split_note}.
- espeak-ng is a formant synthesiser whose voice is unlike a human one; its row says more about
  that voice than about the recogniser. flite's voices and the real recordings are the fairer
  test, and ten real utterances (five of one reader, five of card names) are a small one.
- The recogniser is a 2010s HMM with a general English language model; its transcripts feed only
  the text head's lexicon-based sentiment (VADER), which needs the sentiment-bearing words, not a
  verbatim transcript. Where the room supplies its own transcription (LiveKit transcriptions, or
  `--transcript`), pocketsphinx is not used at all.
"""
