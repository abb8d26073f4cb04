"""Sliding-window inference over a video file as it is decoded (`python evaluate.py spot VIDEO ... --checkpoint CKPT`).

A video is decoded once at the model's data.fps (utils/rates.py; frame k is the source frame FFmpeg's fps filter
picks, as in the official frames), front to back or a minute at a time by several processes (data/decode_pool.py,
the same frames either way), and each frame goes to the model's input size as SoccerNet frames do: a video that is
not 224 pixels high is first scaled to 224p keeping its aspect ratio, the way SoccerNet made its 224p files
(FFmpeg's bicubic `scale=-1:224`); the full RGB frame is then resized by torchvision's antialiased bilinear resize,
as the official code resizes. Frames are pushed into a `HalfSpotter` (evaluation/inference.py), as
`predict_half` pushes a stored half's: each clip's spatial token is computed once, the windows run a batch at a time,
memory stays flat however long the video is, and the scores are merged with the same starts, trim and max; unlike
the paper's evaluation, the end of each half is scored by default (`eval.half_end=scored`, evaluation/inference.py:
kept_tokens). A half shorter than one window is padded with its last frame and the padding's scores are cut off.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from data.decode_pool import DecodePool, model_frames
from data.video import probe_video
from evaluation.inference import HalfSpotter, Inference
from utils.errors import InvalidInputError
from utils.logs import progress


def spot_file(inference: Inference, path: Path, half: int = 1, second_half_start: float | None = None,
              pool: DecodePool | None = None, threaded_decode: bool = True) -> dict[int, np.ndarray]:
    """{half: (frames, C) scores} of one video: the whole file as `half`, or split into halves 1 and 2 at
    second_half_start seconds (half 2 from the frame nearest it, utils/rates.py: Rates.frame_at). Decoding and model run
    interleaved, with a progress bar in video seconds; with a pool, its processes decode chunks of the video ahead of
    the model (data/decode_pool.py), to the same frames."""
    info, rates = probe_video(path), inference.rates
    total = info.num_frames(rates.fps)
    split = None if second_half_start is None else rates.frame_at(second_half_start)
    if split is not None and not 0 < split < total:
        raise InvalidInputError(f"{path}: --second-half-start {second_half_start} s is outside the video (0 to "
                                f"{info.duration:.1f} s)")
    spotters = {half if split is None else 1: HalfSpotter(inference)}
    current = next(iter(spotters))
    bar = progress(total=round(float(total / rates.fps), 1), desc=f"spotting {path.name} (video s)")
    frames = model_frames(path, info, rates.fps, total, inference.model_cfg.img_size, pool, threaded_decode)
    for k, frame in enumerate(frames):  # (3, S, S) uint8
        if split is not None and k == split:
            spotters[2] = HalfSpotter(inference)
            current = 2
        spotters[current].push(frame)
        bar.update(float(1 / rates.fps))
        bar.set_postfix(windows=sum(s.windows_run for s in spotters.values()), refresh=False)
    scores = {number: spotter.finish() for number, spotter in spotters.items()}
    bar.set_postfix(windows=sum(s.windows_run for s in spotters.values()))
    bar.close()
    return scores


def spot_files(inference: Inference, files: list[tuple[Path, int]], second_half_start: float | None = None,
               pool: DecodePool | None = None) -> dict[int, np.ndarray]:
    """{half: (frames, C) scores} of one game's files, each (path, the half it holds): `spot_file` on each."""
    return {half: scores for path, number in files
            for half, scores in spot_file(inference, path, number, second_half_start, pool).items()}
