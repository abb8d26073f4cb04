"""Spotting targets (docs/METHOD.md section 4, "Targets").

Frame targets: frame k of a half (time k / fps) is positive for class c when an annotation of class c in that half
lies within `radius` seconds of it, |position - k / fps| <= radius (radius 0.5 s marks 2 or 3 frames at 2 fps).
Token targets: frame targets OR-pooled over consecutive pairs (the two frames of a 1-second tubelet), so the token of
frames {t, t + 0.5} is positive when an action lies in [t - 0.5, t + 1.0]. There is no background class.
"""

from __future__ import annotations

import math

import numpy as np

from data.labels import NUM_CLASSES, Annotation


def frame_targets(annotations: list[Annotation], half: int, first_frame: int, num_frames: int, fps: float = 2.0,
                  radius: float = 0.5, num_classes: int = NUM_CLASSES) -> np.ndarray:
    """(num_frames, num_classes) float32 multi-hot targets of frames first_frame .. first_frame + num_frames - 1."""
    targets = np.zeros((num_frames, num_classes), np.float32)
    for annotation in annotations:
        if annotation.half != half:
            continue
        # frames k with |position - k / fps| <= radius, in integer milliseconds times fps to stay exact at 2 fps
        low = math.ceil((annotation.position_ms - radius * 1000) * fps / 1000 - 1e-9)
        high = math.floor((annotation.position_ms + radius * 1000) * fps / 1000 + 1e-9)
        low, high = max(low, first_frame), min(high, first_frame + num_frames - 1)
        if low <= high:
            targets[low - first_frame:high - first_frame + 1, annotation.label] = 1.0
    return targets


def pool_tokens(frame_level: np.ndarray) -> np.ndarray:
    """(..., 2T, C) frame targets -> (..., T, C) token targets: OR over the two frames of each tubelet."""
    if frame_level.shape[-2] % 2:
        raise ValueError(f"token pooling needs an even number of frames, got {frame_level.shape[-2]}")
    paired = frame_level.reshape(*frame_level.shape[:-2], frame_level.shape[-2] // 2, 2, frame_level.shape[-1])
    return paired.max(axis=-2)
