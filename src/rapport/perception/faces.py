"""The face head's detection and tracking stages, under one import.

Detection (BlazeFace short-range) lives in face_detection.py, tracking in face_tracking.py.
"""

from __future__ import annotations

from rapport.perception.face_detection import FaceDetector
from rapport.perception.face_tracking import FaceTracker, TrackUpdate

__all__ = ["FaceDetector", "FaceTracker", "TrackUpdate"]
