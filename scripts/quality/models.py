"""Which models are installed: a slot's manifest (or why not), and the report's table of them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .markdown import table


def installed(models_dir: Path, slot: str) -> tuple[Any | None, str]:
    """The slot's manifest, or None and why not (the registry's own message)."""
    from rapport.errors import ModelError
    from rapport.inference.registry import load_model_dir

    try:
        return load_model_dir(models_dir, slot), ""
    except ModelError as e:
        return None, str(e)


def models_table(models_dir: Path) -> str:
    rows = []
    for slot in (
        "face-detection",
        "face-detection-full",
        "face-expression",
        "vad",
        "face-vit",
        "voice-emotion",
        "text-emotion",
    ):
        m, _ = installed(models_dir, slot)
        if m is not None:
            rows.append(
                [f"`{slot}`", f"`{m.name}`", m.version, f"{m.source.package} {m.source.version}"]
            )
    from importlib.metadata import version

    rows.append(
        [
            "(speech-to-text)",
            "`pocketsphinx-en-us`",
            "—",
            f"pocketsphinx {version('pocketsphinx')} (its wheel's en-us model)",
        ]
    )
    rows.append(["(text)", "`vader`", "—", f"vaderSentiment {version('vaderSentiment')}"])
    return table(["slot", "model", "version", "from"], rows)
