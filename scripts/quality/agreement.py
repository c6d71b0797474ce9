"""Section 2: how often the offline and the transformer expression heads agree, on real faces
(only where both are installed), and VADER against the transformer text head."""

from __future__ import annotations

import math
from collections import Counter
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from .markdown import frac, table
from .models import installed
from .run import Run, log
from .speech_corpora import script_lines
from .stats import cohen_kappa, pct
from .still_scenes import still_scenes


def lfw_frames(count: int) -> list[tuple[NDArray[np.uint8], tuple[float, float, float, float]]]:
    """Real faces: the first `count` of scikit-image's LFW subset (25x25 grey face crops from
    Labeled Faces in the Wild), enlarged to 96 px and centred in a 160x160 frame; box = the face."""
    import cv2
    from skimage import data

    faces = np.asarray(data.lfw_subset())[:count]  # type: ignore[no-untyped-call]
    out = []
    for f in faces:
        grey = cv2.resize((f * 255).astype(np.uint8), (96, 96), interpolation=cv2.INTER_CUBIC)
        frame = np.full((160, 160), int(np.median(grey)), np.uint8)
        frame[32:128, 32:128] = grey
        out.append(
            (
                np.ascontiguousarray(np.repeat(frame[:, :, None], 3, axis=2)),
                (32.0, 32.0, 128.0, 128.0),
            )
        )
    return out


def shown(path: Path) -> str:
    """A path as the report prints it: relative to the working directory when inside it."""
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve())) or "."
    except ValueError:
        return str(path)


def agreement_section(run: Run) -> str:
    from rapport.frames import Box, Utterance
    from rapport.inference.engine import place
    from rapport.inference.heads import load_head
    from rapport.labels import EXPRESSIONS, valence_arousal
    from rapport.perception.face_expression import ExpressionClassifier
    from rapport.perception.face_vit import SLOT as FACE_SLOT
    from rapport.perception.face_vit import FaceViT

    head = "## 2. Expression agreement: offline head vs transformer head\n\n"
    offline, why_offline = installed(run.models_dir, "face-expression")
    vit, why_vit = installed(run.models_dir, FACE_SLOT)
    if offline is None or vit is None:
        run.headlines.append(
            "Expression agreement offline vs transformer: not measured here "
            "(no transformer weights)"
        )
        where = shown(run.models_dir)
        why = "; ".join(
            f"`{slot}` is not installed"
            if not (run.models_dir / slot / "manifest.json").is_file()
            else w.replace(str(run.models_dir), where)
            for slot, w in (("face-expression", why_offline), (FACE_SLOT, why_vit))
            if w
        )
        return head + (
            "**Not measured on this machine.** Both face expression heads must be installed in "
            f"the models folder (`{where}`), and here {why}.\n\n"
            "The transformer heads' weights come from a model hub (`rapport models fetch "
            "--pack full`, or `rapport models export CHECKPOINT` for a checkpoint fetched "
            "elsewhere), and no hub is reachable from this machine. Where both are installed, "
            "this script measures, on real faces (scikit-image's LFW subset and the still "
            "faces of section 4), how often the two heads name the same top class (with Cohen's "
            "kappa) and how far apart their valence is. Agreement is not accuracy: neither head "
            "is scored against labels here.\n"
        )
    s = run.settings
    log(f"agreement: {offline.name} vs {vit.name}")
    offline_head = ExpressionClassifier(run.models_dir, s.runtime)
    vit_head = FaceViT(load_head(run.models_dir, FACE_SLOT, s.engine, place(s.engine)), s.engine)
    try:
        items = lfw_frames(60 if run.quick else 200)
        items += [(sc.rgb, f) for sc in still_scenes() for f in sc.faces]
        a_top, b_top, dv = [], [], []
        for rgb, box in items:
            ea = offline_head.classify(rgb, [Box(*box)])[0]
            eb = vit_head.classify(rgb, [Box(*box)])[0]
            if ea is None or eb is None:
                continue
            a_top.append(int(np.argmax(ea.probs)))
            b_top.append(int(np.argmax(eb.probs)))
            dv.append(abs(valence_arousal(ea.probs)[0] - valence_arousal(eb.probs)[0]))
        n = len(a_top)
        same = sum(1 for x, y in zip(a_top, b_top, strict=True) if x == y)
        run.headlines.append(
            f"Expression agreement offline vs transformer: {same / max(n, 1):.0%} "
            f"same top class over {n} faces"
        )
        kappa = cohen_kappa(a_top, b_top, len(EXPRESSIONS))
        pairs = Counter((EXPRESSIONS[x], EXPRESSIONS[y]) for x, y in zip(a_top, b_top, strict=True))
        rows = [[a, b, c] for (a, b), c in pairs.most_common(8)]
        dist_a = Counter(EXPRESSIONS[x] for x in a_top)
        dist_b = Counter(EXPRESSIONS[x] for x in b_top)
        text = (
            f"Faces: {n} (LFW subset, enlarged from 25 px, plus the still faces of section 4). "
            "Heads: "
            f"`{offline_head.name}` and `{vit_head.name}`.\n\n"
            f"- Same top class: {frac(same, n)}; Cohen's kappa {kappa:.2f}.\n"
            f"- Valence difference |Δ|: median {pct(dv, 50):.2f}, p95 {pct(dv, 95):.2f} "
            "(valence in -1..1, labels.VALENCE_AROUSAL).\n"
            f"- Top classes, offline: {dict(dist_a.most_common())}; transformer: "
            f"{dict(dist_b.most_common())}.\n\n"
            + table(["offline top class", "transformer top class", "faces"], rows)
            + "\n\nAgreement is not accuracy: LFW has no expression labels.\n"
        )
    finally:
        vit_head.batcher.close()
    text_vit, _ = installed(run.models_dir, "text-emotion")
    if text_vit is not None:
        from rapport.perception.language import TextSentiment
        from rapport.perception.text_emotion import SLOT as TEXT_SLOT
        from rapport.perception.text_emotion import TextEmotion

        lines = script_lines()
        vader = TextSentiment()
        roberta = TextEmotion(
            load_head(run.models_dir, TEXT_SLOT, s.engine, place(s.engine)), s.engine
        )
        try:
            va = [vader.score(Utterance("p", 0, 1, t)).valence for t in lines]
            vb = [roberta.score(Utterance("p", 0, 1, t)).valence for t in lines]
        finally:
            roberta.batcher.close()
        signs = sum(
            1 for x, y in zip(va, vb, strict=True) if np.sign(round(x, 2)) == np.sign(round(y, 2))
        )
        r = float(np.corrcoef(va, vb)[0, 1]) if np.std(va) > 0 and np.std(vb) > 0 else math.nan
        text += (
            f"\nText, VADER vs `{roberta.name}` on the {len(lines)} script lines of section 3: "
            f"same valence sign {frac(signs, len(lines))}, Pearson r {r:.2f}.\n"
        )
    return head + text
