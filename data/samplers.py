"""What each epoch samples, as pure functions of half lengths and a seeded RNG (docs/METHOD.md, section 2.4).

Positions are frame indices at the run's data.fps (utils/rates.py; frame k = k / fps s); a clip or window is (game,
half, first frame). How an epoch's list is shuffled and shared out over ranks is `utils.plan.RunSampler`.
- stage 1: every non-overlapping 1-second clip of every half, once per epoch, shuffled;
- stage 2: per half, `count` windows, one jittered inside each of `count` equal slots (never overlapping);
  evenly spaced overlapping windows when the half is too short for that;
- stage 3 training: per half, the first and the last window always, plus windows drawn uniformly on the frame grid,
  each draw removing the starts within one window length of it, start candidates excluding the first and last
  half-window of the half; with data.event_share > 0, that share of the half's windows are placed around its
  actions instead (`stage3_windows`);
- inference: sliding windows with a stride, the last one aligned to the end (`evaluation.inference.window_starts`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from fractions import Fraction

import numpy as np

from utils.errors import InvalidInputError
from utils.rates import FRAMES_PER_TOKEN


@dataclasses.dataclass(frozen=True)
class Segment:
    game: str
    half: int
    first: int  # first frame, at the run's data.fps


def check_long_enough(halves: dict[tuple[str, int], int], window_frames: int, fps: Fraction) -> None:
    """Every half holds one window, or the first that does not is named (before the run writes anything)."""
    for (game, half), num_frames in sorted(halves.items()):
        if num_frames < window_frames:
            raise InvalidInputError(f"{game} half {half} has {float(num_frames / fps):.1f} s of video, shorter than "
                                    f"one {float(window_frames / fps):g} s window; lower model.window_seconds or drop "
                                    f"the game")


def stage1_clips(halves: dict[tuple[str, int], int], clip_frames: int = FRAMES_PER_TOKEN) -> list[Segment]:
    """Every non-overlapping clip of every half: clips at seconds 0 .. floor(duration) - 1."""
    return [Segment(game, half, first) for (game, half), num_frames in sorted(halves.items())
            for first in range(0, num_frames - clip_frames + 1, clip_frames)]


def jittered_windows(num_frames: int, count: int, window_frames: int, rng: np.random.Generator) -> list[int]:
    """Stage 2: first frames of `count` windows, window i at i * slot + U * (slot - window) (seconds), slot =
    duration / count; evenly spaced (overlapping) windows if a slot is shorter than a window."""
    slot = num_frames / count
    if slot < window_frames:
        return [int(round(x)) for x in np.linspace(0, num_frames - window_frames, count)]
    starts = np.arange(count) * slot + rng.random(count) * (slot - window_frames)
    return [int(s) for s in np.floor(starts)]


def uniform_windows(num_frames: int, count: int, window_frames: int, rng: np.random.Generator) -> list[int]:
    """Stage 3 training: the first and last window, then up to count - 2 random non-overlapping starts."""
    last = num_frames - window_frames
    starts = [0, last] if last > 0 else [0]
    candidates = np.arange(window_frames // 2, last - window_frames // 2 + 1)
    available = np.ones(len(candidates), bool)
    while len(starts) < count and available.any():
        pick = candidates[rng.choice(np.flatnonzero(available))]
        starts.append(int(pick))
        available &= np.abs(candidates - pick) >= window_frames  # random windows never overlap each other
    return sorted(starts)


def stage3_windows(where: tuple[str, int], num_frames: int, rng: np.random.Generator, *, count: int,
                   window_frames: int, events: dict[tuple[str, int], np.ndarray] | None = None,
                   share: float = 0.0) -> list[int]:
    """Stage 3 training windows of the half `where` (game, half): round(share x count) of them around its actions
    (events: the frames of each half's actions), each holding a random action at a uniformly drawn place, the others
    as `uniform_windows`. lRomul's Ball Action Spotting sampler draws half of its clips near actions: at BAS's density
    (about one action every 3 s) uniform windows waste little, but sparse labels (SoccerNet-v2's, a user's) do."""
    frames = events.get(where, np.empty(0, np.int64)) if events else np.empty(0, np.int64)
    near = round(share * count) if len(frames) else 0
    starts = uniform_windows(num_frames, count - near, window_frames, rng) if count - near else []
    if near:  # drawn after the uniform ones, so that share 0 draws exactly what uniform_windows alone draws
        chosen = frames[rng.integers(0, len(frames), near)]
        places = rng.integers(0, window_frames, near)  # where in its window each chosen action falls
        starts += np.clip(chosen - places, 0, num_frames - window_frames).tolist()
    return sorted(starts)


def any_half(sampler: Callable[..., list[int]], where: tuple[str, int], num_frames: int, rng: np.random.Generator,
             **settings) -> list[int]:
    """A per-half sampler that needs no more than the half's length (`jittered_windows`), in `epoch_windows`' form."""
    return sampler(num_frames, rng=rng, **settings)


def epoch_windows(halves: dict[tuple[str, int], int], per_half: Callable[..., list[int]],
                  window_frames: int, seed: int, epoch: int) -> list[Segment]:
    """Windows of every half for one epoch, per_half((game, half), num_frames, rng) each, re-seeded with seed + epoch
    (identical on every rank); every half holds one window (`check_long_enough`)."""
    rng = np.random.default_rng(seed + epoch)
    segments = []
    for (game, half), num_frames in sorted(halves.items()):
        segments += [Segment(game, half, first) for first in per_half((game, half), num_frames, rng)]
    return segments
