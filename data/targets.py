"""Spotting targets (docs/METHOD.md section 4, "Targets").

Frame targets: frame k of a half (time k / fps, fps the run's data.fps) is positive for class c when an annotation
of class c in that half lies within `radius` seconds of it, |position - k / fps| <= radius (radius 0.5 s marks 2 or
3 frames at 2 fps). Token targets: frame targets OR-pooled over the FRAMES_PER_TOKEN frames of each tubelet
(utils/rates.py), so at 2 fps the token of frames {t, t + 0.5} is positive when an action lies in
[t - 0.5, t + 1.0]. There is no background class.
"""

from __future__ import annotations

import dataclasses
import math
from fractions import Fraction

import numpy as np
import torch

from data.labels import Annotation
from utils.rates import FRAMES_PER_TOKEN


def frame_targets(annotations: list[Annotation], half: int, first_frame: int, num_frames: int, num_classes: int,
                  fps: Fraction, radius: float = 0.5) -> np.ndarray:
    """(num_frames, num_classes) float32 multi-hot targets of frames first_frame .. first_frame + num_frames - 1;
    annotation.label is the column (data/catalog.py: Dataset.scored)."""
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


def pool_tokens(frame_level: np.ndarray, frames_per_token: int = FRAMES_PER_TOKEN) -> np.ndarray:
    """(..., F, C) frame targets -> (..., F / frames_per_token, C) token targets: OR over each tubelet's frames."""
    frames = frame_level.shape[-2]
    if frames % frames_per_token:
        raise ValueError(f"token pooling needs a multiple of {frames_per_token} frames, got {frames}")
    grouped = frame_level.reshape(*frame_level.shape[:-2], frames // frames_per_token, frames_per_token,
                                  frame_level.shape[-1])  # (..., T, frames_per_token, C)
    return grouped.max(axis=-2)


def action_frames(labels: dict[str, list[Annotation]], halves: dict[tuple[str, int], int],
                  fps: Fraction) -> dict[tuple[str, int], np.ndarray]:
    """{(game, half): the frames nearest its actions, (N,) int64} for the halves of `halves` (data/samplers.py:
    stage3_windows)."""
    return {(game, half): np.asarray([round(a.position_ms * fps / 1000) for a in labels[game] if a.half == half],
                                     np.int64) for game, half in halves}


def mirror_targets(targets: torch.Tensor, flipped: torch.Tensor, mirrored: list[int] | None) -> torch.Tensor:
    """(B, rows, C) targets of windows, `flipped` (B,) of which were mirrored: their columns permuted by `mirrored`
    (data/catalog.py: Dataset.mirrored_columns, left and right teams trading places), the others unchanged."""
    if mirrored is None:
        return targets
    return torch.where(flipped[:, None, None], targets[..., mirrored], targets)


@dataclasses.dataclass(frozen=True)
class WindowTargets:
    """A window's targets (stage 3): per game, its annotations with their scored column as label (data/catalog.py:
    Dataset.scored), over num_classes columns, positive within radius seconds; a row per token (OR-pooled) or, for
    the frame head (models/spotting.py), a row per frame."""

    labels: dict[str, list[Annotation]]
    num_classes: int
    fps: Fraction  # the run's data.fps
    radius: float = 0.5
    per_frame: bool = False

    def of(self, game: str, half: int, first_frame: int, num_frames: int) -> np.ndarray:
        """(num_frames / FRAMES_PER_TOKEN or num_frames, num_classes) float32 targets of a window."""
        frames = frame_targets(self.labels[game], half, first_frame, num_frames, self.num_classes, self.fps,
                               self.radius)
        return frames if self.per_frame else pool_tokens(frames)
