"""Datasets indexed by `Segment`s (game, half, first frame): the samplers decide what an epoch holds.

- `ClipPairDataset` (stage 1): two independently cropped views of one 1-second clip, uint8 (2, 2, 3, S, S), or, from
  JPEG folders for a GPU, the clip's files and crops (data/jpeg_batches.py).
- `WindowDataset` (stages 2 and 3): a window's frames resized to S x S, uint8 (F, 3, S, S), or, from a store at
  S x S, their YUV 4:2:0 planes (F, 3S/2, S) for the training device to convert (data/colour.py), with its token
  targets (stage 3) and/or the feature-bank rows of its seconds (stage 2).
Photometric augmentations happen later, batched on the training device.
"""

from __future__ import annotations

import numpy as np
import torch

from data.augment import apply_crop, crop_params, resize_frames
from data.colour import YUV420_KEY
from data.jpeg_batches import ENCODED_KEY
from data.samplers import Segment
from data.sources import FrameSource, read_jpeg_file
from data.targets import WindowTargets
from utils.errors import InvalidInputError, MissingFileError, UserError
from utils.plan import Sample
from utils.rates import FRAMES_PER_TOKEN


def half_lengths(source: FrameSource, games: list[str], halves: tuple[int, ...]) -> dict[tuple[str, int], int]:
    """Frames of every half of `games` (halves: the dataset's). Every half that cannot be read is listed in one
    error."""
    lengths, problems = {}, []
    for game in games:
        for half in halves:
            try:
                lengths[(game, half)] = source.num_frames(game, half)
            except (UserError, OSError) as error:  # missing, unreadable, corrupt or truncated
                problems.append(f"{game} half {half}: {error}")
    if problems:
        raise MissingFileError(f"{len(problems)} of {len(halves) * len(games)} halves cannot be read:\n  "
                                + "\n  ".join(problems))
    return lengths


class ClipPairDataset(torch.utils.data.Dataset):
    """Two random resized crops of one clip, (2 views, T, 3, S, S) uint8; with `encoded` (a JPEG folder source), the
    clip's files and the two crops instead, for the training device to decode and crop (data/jpeg_batches.py)."""

    def __init__(self, source: FrameSource, size: int = 224, scale: tuple[float, float] = (0.2, 1.0),
                 ratio: tuple[float, float] = (1.3275, 2.2125), clip_frames: int = FRAMES_PER_TOKEN,
                 encoded: bool = False):
        self.source, self.size, self.scale, self.ratio, self.clip_frames = source, size, scale, ratio, clip_frames
        self.encoded = encoded

    def __getitem__(self, sample: Sample | Segment) -> torch.Tensor | dict:
        segment, seed = (sample.item, sample.seed) if isinstance(sample, Sample) else (sample, None)
        game, half, first = segment.game, segment.half, segment.first
        if self.encoded:
            paths = self.source.paths(game, half, first, self.clip_frames)
            files, frame_size = [read_jpeg_file(path) for path in paths], self.source.frame_size(game, half)
        else:
            frames = self.source.read(game, half, first, self.clip_frames)  # (T, H, W, 3)
            frame_size = frames.shape[1:3]
        aspect = self.source.pixel_aspect(game, half)
        with torch.random.fork_rng(devices=[], enabled=seed is not None):  # the crops: a function of the sample alone
            if seed is not None:
                torch.manual_seed(seed)
            crops = [crop_params(frame_size, self.scale, self.ratio, aspect) for _ in range(2)]
        if self.encoded:
            return {ENCODED_KEY: files, "paths": [str(path) for path in paths], "crops": torch.tensor(crops)}  # (2, 4)
        frames = frames.permute(0, 3, 1, 2)  # (T, 3, H, W)
        return torch.stack([apply_crop(frames, crop, self.size) for crop in crops])  # (views, T, 3, S, S)


class WindowDataset(torch.utils.data.Dataset):
    """window_frames frames from segment.first, resized; optional targets and bank rows.

    targets: the windows' token targets (stage 3, data/targets.py); bank: an object with rows(game, half,
    first_row, count) returning (count, D) float32 (stage 2), one row per token: token j of the half (frames
    FRAMES_PER_TOKEN j onwards) is aligned with bank row j; train_distill.py runs it at 1-s tokens (1 fps banks).
    """

    def __init__(self, source: FrameSource, window_frames: int, size: int = 224,
                 targets: WindowTargets | None = None, bank=None, yuv420: bool = False):
        self.source, self.window_frames, self.size = source, window_frames, size
        self.targets, self.bank = targets, bank
        self.yuv420 = yuv420  # frames as YUV planes of a size x size store, converted per batch (data/colour.py)

    def __getitem__(self, sample: Sample | Segment) -> dict[str, torch.Tensor]:
        segment = sample.item if isinstance(sample, Sample) else sample  # windows draw nothing at random here
        read = self.source.read_yuv420 if self.yuv420 else self.source.read
        frames = read(segment.game, segment.half, segment.first, self.window_frames)
        if frames.shape[0] != self.window_frames:
            raise InvalidInputError(f"{segment.game} half {segment.half}: window at frame {segment.first} has only "
                                    f"{frames.shape[0]} of {self.window_frames} frames")
        if self.yuv420:
            item = {YUV420_KEY: frames}  # (F, 3S/2, S) uint8
        else:
            item = {"frames": resize_frames(frames, self.size)}  # (F, 3, S, S) uint8
        if self.targets is not None:
            item["targets"] = torch.from_numpy(self.targets.of(segment.game, segment.half, segment.first,
                                                               self.window_frames))  # (T or F, C)
        if self.bank is not None:
            item["bank"] = torch.from_numpy(np.asarray(
                self.bank.rows(segment.game, segment.half, segment.first // FRAMES_PER_TOKEN,
                               self.window_frames // FRAMES_PER_TOKEN)))
        return item
