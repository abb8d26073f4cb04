"""What each epoch samples, as pure functions of half lengths and a seeded RNG, and the rank sharding (section 2.4).

Positions are frame indices at 2 fps (frame k = k / 2 s); a clip or window is (game, half, first frame).
- stage 1: every non-overlapping 1-second clip of every half, once per epoch, shuffled;
- stage 2: per half, `count` windows, one jittered inside each of `count` equal slots (never overlapping);
  evenly spaced overlapping windows when the half is too short for that;
- stage 3 training: per half, the first and the last window always, plus windows drawn uniformly on the 2 fps grid,
  each draw removing the starts within one window length of it, start candidates excluding the first and last
  half-window of the half;
- inference: sliding windows with a stride, the last one aligned to the end (`evaluation.inference.window_starts`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator

import numpy as np
import torch
from utils.errors import InvalidInputError

FPS = 2


@dataclasses.dataclass(frozen=True)
class Segment:
    game: str
    half: int
    first: int  # first frame at 2 fps


@dataclasses.dataclass(frozen=True)
class Sample:
    """What the loader hands a dataset: an epoch's item and the seed of the random draws made for it in the data
    workers (stage 1's crops). The seed is a function of the run's seed and the item's place in the run (epoch,
    position in the shuffled epoch), never of which worker reads it, so a resumed run draws the same crops with any
    number of workers."""

    item: object
    seed: int


def sample_seed(seed: int, epoch: int, position: int) -> int:
    return int(np.random.SeedSequence([seed, epoch, position]).generate_state(1)[0])


def check_long_enough(game: str, half: int, num_frames: int, window_frames: int) -> None:
    if num_frames < window_frames:
        raise InvalidInputError(f"{game} half {half} has {num_frames / FPS:.1f} s of video, shorter than one "
                         f"{window_frames / FPS:.0f} s window; lower model.window_seconds or drop the game")


def stage1_clips(halves: dict[tuple[str, int], int], clip_frames: int = 2) -> list[Segment]:
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


def epoch_windows(halves: dict[tuple[str, int], int], per_half: Callable[..., list[int]],
                  window_frames: int, seed: int, epoch: int) -> list[Segment]:
    """Windows of every half for one epoch, re-seeded with seed + epoch (identical on every rank)."""
    rng = np.random.default_rng(seed + epoch)
    segments = []
    for (game, half), num_frames in sorted(halves.items()):
        check_long_enough(game, half, num_frames, window_frames)
        segments += [Segment(game, half, first) for first in per_half(num_frames, rng=rng)]
    return segments


class ShardedSampler(torch.utils.data.Sampler):
    """This rank's share of an epoch's items, each as a `Sample` with its own seed (the DataLoader passes them to the
    dataset).

    items(epoch) builds the epoch's list, the same on every rank; it is shuffled with seed + epoch, cut to a multiple
    of world_size, and rank r takes positions r, r + world, ... `skip(n)` starts the epoch after n items (a resumed
    run that stopped mid-epoch). `min_per_rank` pads an epoch that came out shorter (stage 3 draws a random number of
    windows in short halves) by repeating its first items, so that every epoch has the same number of steps.
    """

    def __init__(self, items: Callable[[int], list], rank: int, world_size: int, seed: int, shuffle: bool = True):
        super().__init__()
        self.items, self.rank, self.world_size, self.seed, self.shuffle = items, rank, world_size, seed, shuffle
        self.epoch, self.start, self.min_per_rank = 0, 0, 0
        self._cache: tuple[int, list] | None = None

    def set_epoch(self, epoch: int) -> None:
        self.epoch, self.start = epoch, 0

    def skip(self, count: int) -> None:
        self.start = count

    def _epoch_items(self) -> list[Sample]:
        if self._cache is None or self._cache[0] != self.epoch:
            items = self.items(self.epoch)
            if self.shuffle:
                order = np.random.default_rng(self.seed + self.epoch).permutation(len(items))
                items = [items[i] for i in order]
            usable = len(items) // self.world_size * self.world_size
            positions = list(range(self.rank, usable, self.world_size))  # places in the shuffled epoch
            if positions and len(positions) < self.min_per_rank:
                positions = [positions[i % len(positions)] + usable * (i // len(positions))
                             for i in range(self.min_per_rank)]  # padding repeats items, with fresh draws
            mine = [Sample(items[p % usable], sample_seed(self.seed, self.epoch, p)) for p in positions]
            self._cache = (self.epoch, mine)
        return self._cache[1]

    def __iter__(self) -> Iterator:
        return iter(self._epoch_items()[self.start:])

    def __len__(self) -> int:
        return len(self._epoch_items()) - self.start

    def per_epoch(self) -> int:
        """Items this rank sees in a full epoch."""
        return len(self._epoch_items())
