#!/usr/bin/env python3
"""The batched engine against a typical integration, side by side in one run, on real-size models
with random weights (speed does not depend on the weights).

    .venv/bin/python scripts/bench_engine.py [--streams 1 8 32] [--seconds 20] [--threads 2]

(a) `transformers.pipeline(...)` called per item, as a typical integration would;
(b) rapport's engine: ONNX Runtime (fp32, full graph optimisation) behind the shared micro-batcher,
    under N concurrent face streams at 4 fps (each keeps only its newest frame waiting).
Face: ViT-B/16 at 224. It prints items/s, p50/p95 latency per item, frames dropped and the ratio
(b)/(a); the output check (same pixels through torch and through the engine, batch of 8) must stay
within 1e-4. Then text (DistilRoBERTa-size, 32-token utterances) and voice (wav2vec2-base, 2 s
segments) from 8 concurrent submitters, and an int8 (dynamically quantised) ViT reported apart:
its speed and its difference, never the default without an accuracy check on real weights.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import threading
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console
from rich.table import Table

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests.fakes: the model builders
warnings.filterwarnings("ignore")
console = Console(highlight=False, width=150)
FPS = 4.0


def build(root: Path) -> dict[str, Path]:
    import torch
    from transformers import (
        PreTrainedTokenizerFast,
        RobertaConfig,
        RobertaForSequenceClassification,
        ViTConfig,
        ViTForImageClassification,
        ViTImageProcessor,
        Wav2Vec2Config,
        Wav2Vec2FeatureExtractor,
        Wav2Vec2ForSequenceClassification,
    )

    from tests.fakes.tiny_models import FACE_LABELS, TEXT_LABELS, VOICE_LABELS, tiny_roberta

    def labels(names: tuple[str, ...]) -> dict[str, Any]:
        return {"id2label": dict(enumerate(names)), "label2id": {n: i for i, n in enumerate(names)}}

    torch.manual_seed(0)
    face = root / "vit-b16"
    ViTForImageClassification(ViTConfig(**labels(FACE_LABELS))).save_pretrained(face)
    ViTImageProcessor(image_mean=[0.5] * 3, image_std=[0.5] * 3).save_pretrained(face)
    voice = root / "wav2vec2-base"
    Wav2Vec2ForSequenceClassification(Wav2Vec2Config(**labels(VOICE_LABELS))).save_pretrained(voice)
    Wav2Vec2FeatureExtractor(return_attention_mask=False).save_pretrained(voice)
    text = root / "distilroberta"
    tiny_roberta(root / "tokenizer-source")  # a trained tokenizer, then a real-size model
    tok = PreTrainedTokenizerFast.from_pretrained(root / "tokenizer-source")
    tok.save_pretrained(text)
    config = RobertaConfig(
        vocab_size=50265, num_hidden_layers=6, pad_token_id=1, **labels(TEXT_LABELS)
    )
    RobertaForSequenceClassification(config).save_pretrained(text)
    return {"face-vit": face, "voice-emotion": voice, "text-emotion": text}


def utterance_of(model_dir: Path, tokens: int) -> str:
    """A sentence exactly `tokens` tokens long with the model's tokenizer (specials included)."""
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
    words = [
        "we",
        "made",
        "great",
        "progress",
        "on",
        "the",
        "launch",
        "and",
        "the",
        "whole",
        "team",
        "is",
        "happy",
        "about",
        "it",
    ]
    text = ""
    for i in range(1000):
        candidate = f"{text} {words[i % len(words)]}".strip()
        if len(tok.encode(candidate).ids) > tokens:
            return text
        text = candidate
    return text


def pct(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) * 1000 if values else float("nan")


def pipeline_faces(model_dir: Path, seconds: float) -> dict[str, float]:
    """(a): one face at a time through transformers' image-classification pipeline."""
    from PIL import Image
    from transformers import pipeline

    clf = pipeline("image-classification", model=str(model_dir), device="cpu")
    rng = np.random.default_rng(0)
    image = Image.fromarray(rng.integers(0, 255, (160, 160, 3), dtype=np.uint8))
    clf(image)  # warm-up
    lat: list[float] = []
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        t = time.monotonic()
        clf(image)
        lat.append(time.monotonic() - t)
    return {"items_s": len(lat) / sum(lat), "p50": pct(lat, 50), "p95": pct(lat, 95)}


def engine_faces(head: Any, streams: int, seconds: float) -> dict[str, float]:
    """(b): N streams at 4 fps; each submits its newest crop and waits for nothing but time."""
    rng = np.random.default_rng(1)
    frame = rng.integers(0, 255, (360, 640, 3), dtype=np.uint8)
    from rapport.frames import Box

    box = Box(200, 80, 360, 260)
    crop = head.crop(frame, box)
    lat: list[float] = []
    done = [0]
    lock = threading.Lock()
    start = time.monotonic()
    before = head.batcher.stats()

    def on_done(t0: float) -> Any:
        def cb(f: Any) -> None:
            if f.exception() is not None:  # dropped for a newer frame of its stream
                return
            with lock:
                lat.append(time.monotonic() - t0)
                done[0] += 1

        return cb

    def stream(k: int) -> None:
        t_next = start + (k / streams) / FPS
        while t_next < start + seconds:
            time.sleep(max(0.0, t_next - time.monotonic()))
            t0 = time.monotonic()
            head.batcher.submit(crop, stream=f"s{k}").add_done_callback(on_done(t0))
            t_next += 1 / FPS

    threads = [threading.Thread(target=stream, args=(k,)) for k in range(streams)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:  # until every item offered was run or dropped
        s = head.batcher.stats()
        if s.submitted == s.items_run + s.dropped_stale + s.dropped_full:
            break
        time.sleep(0.05)
    elapsed = time.monotonic() - start
    after = head.batcher.stats()
    dropped = (after.dropped_stale - before.dropped_stale) + (
        after.dropped_full - before.dropped_full
    )
    batches = after.batches - before.batches
    return {
        "items_s": done[0] / elapsed,
        "p50": pct(lat, 50),
        "p95": pct(lat, 95),
        "offered": streams * seconds * FPS,
        "dropped": dropped,
        "mean_batch": (after.items_run - before.items_run) / batches if batches else 0.0,
    }


def accuracy(model_dir: Path, head: Any) -> float:
    """Same pixels, batch of 8: torch logits vs the engine's -> max abs difference of probs."""
    import torch
    from transformers import AutoModelForImageClassification

    from rapport.inference.engine import softmax

    model = AutoModelForImageClassification.from_pretrained(str(model_dir)).eval()
    x = np.random.default_rng(2).standard_normal((8, 3, 224, 224)).astype(np.float32)
    with torch.no_grad():
        ref = softmax(model(pixel_values=torch.from_numpy(x)).logits.numpy())
    got = np.stack([head.batcher.submit(x[i]).result() for i in range(8)])
    return float(np.abs(ref - got).max())


def per_item_pipeline(task: str, model_dir: Path, item: Any, n: int) -> dict[str, float]:
    from transformers import pipeline

    clf = pipeline(task, model=str(model_dir), device="cpu")
    clf(item)
    lat = []
    for _ in range(n):
        t = time.monotonic()
        clf(item)
        lat.append(time.monotonic() - t)
    return {"items_s": len(lat) / sum(lat), "p50": pct(lat, 50), "p95": pct(lat, 95)}


def concurrent_engine(score: Any, item: Any, n: int, clients: int = 8) -> dict[str, float]:
    lat: list[float] = []
    lock = threading.Lock()

    def client() -> None:
        for _ in range(n // clients):
            t = time.monotonic()
            score(item)
            with lock:
                lat.append(time.monotonic() - t)

    score(item)
    start = time.monotonic()
    threads = [threading.Thread(target=client) for _ in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return {
        "items_s": len(lat) / (time.monotonic() - start),
        "p50": pct(lat, 50),
        "p95": pct(lat, 95),
    }


def int8(model_dir: Path, head: Any, threads: int) -> tuple[float, float, float]:
    """(fp32 items/s, int8 items/s, max abs prob diff) at batch 8."""
    import onnxruntime as ort
    from onnxruntime.quantization import QuantType, quantize_dynamic

    from rapport.inference.engine import softmax

    src = model_dir
    q = model_dir / "model.int8.onnx"
    # MatMuls only: ONNX Runtime's CPU provider has no ConvInteger for the patch embedding.
    quantize_dynamic(
        str(src / "model.onnx"),
        str(q),
        weight_type=QuantType.QInt8,
        op_types_to_quantize=["MatMul"],
    )
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    x = np.random.default_rng(3).standard_normal((8, 3, 224, 224)).astype(np.float32)
    out = {}
    speed = {}
    for name, path in (("fp32", src / "model.onnx"), ("int8", q)):
        s = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
        s.run(None, {"pixel_values": x})
        t = time.monotonic()
        for _ in range(3):
            out[name] = softmax(s.run(None, {"pixel_values": x})[0])
        speed[name] = 24 / (time.monotonic() - t)
    return speed["fp32"], speed["int8"], float(np.abs(out["fp32"] - out["int8"]).max())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--streams", type=int, nargs="+", default=[1, 8, 32])
    ap.add_argument("--seconds", type=float, default=20.0)
    ap.add_argument("--threads", type=int, default=2, help="intra-op threads (engine and torch)")
    args = ap.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    from rapport.config import EngineSettings
    from rapport.inference.engine import place
    from rapport.inference.export import export_checkpoint
    from rapport.inference.heads import load_head
    from rapport.perception.face_vit import FaceViT
    from rapport.perception.text_emotion import TextEmotion
    from rapport.perception.voice_emotion import VoiceEmotion

    with tempfile.TemporaryDirectory(prefix="rapport-bench-") as tmp:
        root = Path(tmp)
        console.print("building real-size models with random weights and exporting them...")
        checkpoints = build(root / "checkpoints")
        models = root / "models"
        for slot, ck in checkpoints.items():
            r = export_checkpoint(ck, models)
            console.print(f"  {slot}: export check max abs diff {r.max_abs_diff:.1e}")
        settings = EngineSettings(threads=args.threads, max_batch=16, max_delay_ms=5)
        placement = place(settings)
        face = FaceViT(load_head(models, "face-vit", settings, placement), settings)

        console.print(f"(a) pipeline per item, {args.seconds:.0f} s...")
        a = pipeline_faces(checkpoints["face-vit"], args.seconds)
        diff = accuracy(checkpoints["face-vit"], face)
        rows = []
        for n in args.streams:
            console.print(f"(b) engine, {n} stream(s) at {FPS:.0f} fps, {args.seconds:.0f} s...")
            rows.append((n, engine_faces(face, n, args.seconds)))
        table = Table(title=f"face ViT-B/16 224, CPU, {args.threads} threads, fp32")
        for col in (
            "load",
            "faces/s",
            "p50 ms",
            "p95 ms",
            "offered",
            "dropped",
            "mean batch",
            "(b)/(a)",
        ):
            table.add_column(col, justify="right")
        table.add_row(
            "(a) pipeline, 1 at a time",
            f"{a['items_s']:.2f}",
            f"{a['p50']:.0f}",
            f"{a['p95']:.0f}",
            "-",
            "-",
            "1",
            "1.00",
        )
        for n, b in rows:
            table.add_row(
                f"(b) engine, {n} streams",
                f"{b['items_s']:.2f}",
                f"{b['p50']:.0f}",
                f"{b['p95']:.0f}",
                f"{b['offered']:.0f}",
                f"{b['dropped']:.0f}",
                f"{b['mean_batch']:.1f}",
                f"{b['items_s'] / a['items_s']:.2f}",
            )
        console.print(table)
        console.print(
            "output check (same pixels, torch vs engine, batch 8): "
            f"max abs prob diff {diff:.1e} (bound 1e-4)"
        )
        face.batcher.close()

        console.print("text and voice: pipeline per item vs engine with 8 concurrent submitters...")
        text = TextEmotion(load_head(models, "text-emotion", settings, placement), settings)
        voice = VoiceEmotion(load_head(models, "voice-emotion", settings, placement), settings)
        from rapport.frames import Utterance

        words = utterance_of(checkpoints["text-emotion"], 32)
        utt = Utterance("p", 0, 1, words)
        seg = (np.random.default_rng(4).standard_normal(32000) * 0.1).astype(np.float32)
        t_a = per_item_pipeline("text-classification", checkpoints["text-emotion"], words, 40)
        t_b = concurrent_engine(text.score, utt, 80)
        v_a = per_item_pipeline("audio-classification", checkpoints["voice-emotion"], seg, 16)
        v_b = concurrent_engine(voice.score, seg, 32)
        t2 = Table(title="text (32 tokens) and voice (2 s) heads")
        for col in (
            "head",
            "(a) items/s",
            "(a) p95 ms",
            "(b) items/s",
            "(b) p50 ms",
            "(b) p95 ms",
            "(b)/(a)",
        ):
            t2.add_column(col, justify="right")
        for name, x, y in (
            ("text, DistilRoBERTa size", t_a, t_b),
            ("voice, wav2vec2-base", v_a, v_b),
        ):
            t2.add_row(
                name,
                f"{x['items_s']:.1f}",
                f"{x['p95']:.0f}",
                f"{y['items_s']:.1f}",
                f"{y['p50']:.0f}",
                f"{y['p95']:.0f}",
                f"{y['items_s'] / x['items_s']:.2f}",
            )
        console.print(t2)
        text.batcher.close()
        voice.batcher.close()
        f32, i8, qdiff = int8(models / "face-vit", face, args.threads)
        console.print(
            f"int8 (dynamic quantisation) ViT, batch 8: {i8:.2f} faces/s vs fp32 {f32:.2f} "
            f"({i8 / f32:.2f}x); max abs prob diff {qdiff:.1e} on random weights: not the default"
        )


if __name__ == "__main__":
    main()
