"""Still frames of real faces, shared by the stability, latency and agreement sections, and the
sensor noise and dimming laid on them."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

NOISE_SIGMA = 2.0
"""Sensor noise on still frames: Gaussian, standard deviation in 8-bit levels, fresh per frame."""
DIM_GAIN, DIM_SIGMA = 0.3, 5.0
"""The dim still: every level times DIM_GAIN, then noise of DIM_SIGMA (a dark room's gain)."""


@dataclass
class StillScene:
    name: str
    rgb: NDArray[np.uint8]
    faces: list[tuple[float, float, float, float]]
    """Ground-truth face boxes (x0, y0, x1, y1)."""
    sources: list[str]
    """Which photograph each face is."""
    owner: str | None = "p"
    """The stream's participant; None for a shared room camera (galleries)."""
    sigma: float = NOISE_SIGMA
    """Sensor noise, sd in 8-bit levels, fresh per frame."""


def still_scenes() -> list[StillScene]:
    """Still frames: the sample recording's face (rapport.samples.FaceLayout at t=0), the same
    dimmed, one small face and two galleries of rapport.scenes (different people per tile)."""
    from rapport.samples import FaceLayout
    from rapport.scenes import Scene, gallery, scene

    def of(name: str, sc: Scene, owner: str | None) -> StillScene:
        boxes = [(f.box.x0, f.box.y0, f.box.x1, f.box.y1) for f in sc.faces]
        return StillScene(name, sc.rgb, boxes, [f.source for f in sc.faces], owner)

    rgb, boxes = FaceLayout(640, 360, 1).render(0.0, False)
    one = StillScene("one face", rgb, [(b.x0, b.y0, b.x1, b.y1) for b in boxes], ["astronaut"])
    dim = (one.rgb.astype(np.float32) * DIM_GAIN).astype(np.uint8)
    return [
        one,
        StillScene("one face, dim", dim, one.faces, one.sources, sigma=DIM_SIGMA),
        of("one face, 40 px", scene([40], seed=7, backdrop="office"), "p"),
        of("gallery 2x2 (room camera)", gallery(4, seed=3), None),
        of("gallery 3x3 (room camera)", gallery(9, seed=4), None),
    ]
