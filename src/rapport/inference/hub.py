"""`rapport models fetch --pack full`: the reference checkpoints from a model hub, exported.

Where no hub is reachable (our CI machines; air-gapped hosts) this fails within seconds with one
line saying so, never hangs: the hub is probed with a short timeout before any download.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import httpx

from rapport.errors import FetchError
from rapport.inference.export import ExportReport, export_checkpoint

PROBE_TIMEOUT_S: Final = 5.0


@dataclass(slots=True, frozen=True)
class Checkpoint:
    slot: str
    repo: str
    labels: str


FULL_PACK: Final = (
    Checkpoint("face-vit", "trpakov/vit-face-expression", "FER2013's 7 expressions"),
    Checkpoint("voice-emotion", "superb/wav2vec2-base-superb-er", "IEMOCAP: neu, hap, ang, sad"),
    Checkpoint(
        "text-emotion",
        "j-hartmann/emotion-english-distilroberta-base",
        "Ekman's 6 + neutral",
    ),
)


def endpoint() -> str:
    try:
        from huggingface_hub import constants
    except ImportError as e:
        raise FetchError("the full pack needs the export extra: pip install -e .[export]") from e

    return str(os.environ.get("HF_ENDPOINT") or constants.ENDPOINT).rstrip("/")


def probe(url: str, timeout: float = PROBE_TIMEOUT_S) -> None:
    if os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes"):
        raise FetchError("HF_HUB_OFFLINE is set: the full pack cannot be downloaded")
    try:
        httpx.head(f"{url}/api/models", timeout=timeout, follow_redirects=False)
    except httpx.HTTPError as e:
        raise FetchError(
            f"the model hub at {url} is unreachable ({type(e).__name__}); fetch the checkpoints "
            "where it is reachable and run `rapport models export FOLDER` here"
        ) from e


def fetch_full_pack(
    models_dir: Path, *, fp16: bool = False, on_step: Callable[[str], None] = lambda _: None
) -> list[ExportReport]:
    url = endpoint()
    probe(url)
    from huggingface_hub import snapshot_download

    reports = []
    for ck in FULL_PACK:
        on_step(f"downloading {ck.repo}")
        try:
            folder = snapshot_download(
                ck.repo,
                local_dir=models_dir / "checkpoints" / ck.slot,
                allow_patterns=["*.json", "*.safetensors", "*.txt", "*.model"],
                etag_timeout=PROBE_TIMEOUT_S,
            )
        except Exception as e:  # the hub client raises many types; all mean "not fetched"
            raise FetchError(f"{ck.repo}: {type(e).__name__}: {str(e).splitlines()[0]}") from e
        reports.append(
            export_checkpoint(
                Path(folder), models_dir, fp16=fp16, name=ck.repo.split("/")[-1], on_step=on_step
            )
        )
    return reports
