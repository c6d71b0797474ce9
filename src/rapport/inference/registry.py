"""The model registry: one folder per model under models/, described by its manifest.json.

models/<slot>/ holds the files the manifest lists and nothing is trusted until each file's sha256
matches. The folder name is the slot the model fills (face-expression, vad, ...); Manifest.name says
which model fills it, and ModelRef.display is what outputs print to say which model made a number.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Final, Literal

from pydantic import BaseModel, ConfigDict, ValidationError, field_validator

from rapport.errors import ModelError

MANIFEST: Final = "manifest.json"
MODEL_FILE: Final = "model.onnx"
"""Every model the offline pack builds is stored under this file name."""

FETCH_HINT: Final = "run `rapport models fetch`"
REFETCH_HINT: Final = "run `rapport models fetch --force`"


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class InputSpec(_Frozen):
    name: str
    shape: tuple[int | str | None, ...]
    """A str is a named dynamic dim (e.g. "N"); None an unnamed dynamic dim."""
    dtype: str
    notes: str = ""


class Source(_Frozen):
    package: str
    version: str
    member: str
    license: str


class Manifest(_Frozen):
    name: str
    version: str
    task: str
    labels: tuple[str, ...] | None
    input: InputSpec
    files: dict[str, str]
    """file name (in the model's folder) -> lowercase hex sha256"""
    source: Source
    engine: Literal["onnx"]
    inputs: tuple[InputSpec, ...] = ()
    """Every input, when the model has more than `input` (token ids and their mask, ...)."""
    variants: dict[str, str] = {}
    """precision -> file, for exports that also ship e.g. an fp16 file for CUDA."""

    @field_validator("files")
    @classmethod
    def _plain_names(cls, files: dict[str, str]) -> dict[str, str]:
        for fname, digest in files.items():
            if fname in ("", ".", "..", MANIFEST) or "/" in fname or "\\" in fname:
                raise ValueError(f"not a plain file name: {fname!r}")
            if len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest):
                raise ValueError(f"not a sha256 hex digest for {fname!r}")
        return files

    def ref(self, device: str) -> ModelRef:
        return ModelRef(self.name, self.engine, device)


@dataclass(slots=True, frozen=True)
class ModelRef:
    name: str
    engine: str
    device: str

    @property
    def display(self) -> str:
        """e.g. 'mini-xception-fer2013@onnx-cpu'"""
        return f"{self.name}@{self.engine}-{self.device}"


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def write_manifest(model_dir: Path, manifest: Manifest) -> None:
    """Write model_dir/manifest.json atomically: readers see the old file or the new, never half."""
    tmp = model_dir / f".{MANIFEST}.tmp"
    tmp.write_text(manifest.model_dump_json(indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, model_dir / MANIFEST)


def load_model_dir(models_dir: Path, name: str, hint: str = FETCH_HINT) -> Manifest:
    """The manifest of models_dir/name, after checking every file it lists against its sha256."""
    model_dir = models_dir / name
    manifest_path = model_dir / MANIFEST
    if not manifest_path.is_file():
        raise ModelError(f"model {name!r} is missing from {models_dir}/: {hint}")
    try:
        manifest = Manifest.model_validate_json(manifest_path.read_bytes())
    except (OSError, ValidationError) as e:
        raise ModelError(f"model {name!r} has an invalid {MANIFEST}: {REFETCH_HINT}") from e
    for fname, expected in manifest.files.items():
        path = model_dir / fname
        if not path.is_file():
            raise ModelError(f"model {name!r} is incomplete, {fname} is missing: {REFETCH_HINT}")
        if sha256_file(path) != expected:
            raise ModelError(f"model {name!r}: checksum mismatch for {fname}: {REFETCH_HINT}")
    return manifest
