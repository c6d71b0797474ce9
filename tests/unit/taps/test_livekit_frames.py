"""Frames as the LiveKit SDK hands them to the bot: any buffer type, through I420, to RGB."""

from __future__ import annotations

import cv2
import numpy as np
from livekit import rtc

from rapport.taps.livekit import to_rgb


def _image(w: int, h: int) -> np.ndarray:
    y, x = np.mgrid[0:h, 0:w]
    return np.stack([x * 255 // w, y * 255 // h, np.full_like(x, 128)], -1).astype(np.uint8)


def test_i420_frames_convert_to_rgb_and_downscale() -> None:
    rgb = _image(320, 180)
    i420 = cv2.cvtColor(rgb, cv2.COLOR_RGB2YUV_I420)
    frame = rtc.VideoFrame(320, 180, rtc.VideoBufferType.I420, i420.tobytes())
    out = to_rgb(frame, max_side=640)
    assert out.shape == (180, 320, 3) and out.dtype == np.uint8
    assert np.abs(out.astype(int) - rgb.astype(int)).mean() < 4  # chroma subsampling only
    small = to_rgb(frame, max_side=160)
    assert small.shape == (90, 160, 3)


def test_rgba_frames_go_through_i420_first() -> None:
    rgb = _image(64, 48)
    rgba = np.concatenate([rgb, np.full((48, 64, 1), 255, np.uint8)], -1)
    frame = rtc.VideoFrame(64, 48, rtc.VideoBufferType.RGBA, rgba.tobytes())
    out = to_rgb(frame, max_side=640)
    assert out.shape == (48, 64, 3)
    assert np.abs(out.astype(int) - rgb.astype(int)).mean() < 6
