"""Sliding-window inference over a video file as it is decoded (`python evaluate.py spot VIDEO ... --checkpoint CKPT`).

A video is decoded once at the model's data.fps (utils/rates.py; frame k is the source frame FFmpeg's fps filter
picks, as in the official frames), front to back or a minute at a time by several processes (data/decode_pool.py,
the same frames either way), and each frame goes to the model's input size as SoccerNet frames do: a video that is
not 224 pixels high is first scaled to 224p keeping its aspect ratio, the way SoccerNet made its 224p files
(FFmpeg's bicubic `scale=-1:224`); the full RGB frame is then resized by torchvision's antialiased bilinear resize,
as the official code resizes. Frames are pushed into a `HalfSpotter`. The spotter keeps only the last window's
frames (a ring buffer of a window's frames + 1) and runs a window as soon as its last frame has arrived, so memory
stays flat however long the video is; the per-window scores are merged exactly as
`evaluation.inference.predict_half` merges them (same starts, trim and max); unlike the paper's evaluation, the end
of each half is scored by default (`eval.half_end=scored`, evaluation/inference.py: kept_tokens). A half shorter
than one window is padded with its last frame and the padding's scores are cut off.
"""

from __future__ import annotations

from collections import deque
from pathlib import Path

import numpy as np
import torch

from data.decode_pool import DecodePool, model_frames
from data.video import probe_video
from evaluation.inference import Inference
from utils.errors import InvalidInputError
from utils.logs import progress
from utils.rates import FRAMES_PER_TOKEN


class HalfSpotter:
    """Streaming sliding-window inference over one half, fed one (3, S, S) uint8 frame at a time."""

    def __init__(self, inference: Inference):
        self.inference = inference
        self.window = inference.window_tokens
        self.stride = inference.stride_tokens  # tokens between window starts
        self.frames_per_window = FRAMES_PER_TOKEN * self.window
        self.buffer: deque[torch.Tensor] = deque(maxlen=self.frames_per_window + 1)
        self.count = 0  # frames pushed
        self.next_start = 0  # tokens: start of the next regular window
        self.pending: list[tuple[int, torch.Tensor]] = []  # (start, (F, 3, S, S)) windows waiting for a batch
        self.done: list[tuple[int, np.ndarray]] = []  # (start, (T, C)) scores
        self.windows_run = 0

    def push(self, frame: torch.Tensor) -> None:
        self.buffer.append(frame)
        self.count += 1
        # the regular window starting at token next_start is complete when its last frame is in
        if FRAMES_PER_TOKEN * (self.next_start + self.window) == self.count:
            self._queue(self.next_start, list(self.buffer)[-self.frames_per_window:])
            self.next_start += self.stride

    def _queue(self, start: int, frames: list[torch.Tensor]) -> None:
        self.pending.append((start, torch.stack(frames)))
        if len(self.pending) >= self.inference.eval_cfg.batch_size:
            self._run()

    def _run(self) -> None:
        if not self.pending:
            return
        starts = [start for start, _ in self.pending]
        scores = self.inference.scores(torch.stack([frames for _, frames in self.pending]))
        self.done += list(zip(starts, scores))
        self.windows_run += len(starts)
        self.pending = []

    def finish(self) -> np.ndarray:
        """(frames, C) merged scores of the half; the spotter cannot be fed afterwards."""
        if self.count == 0:
            raise ValueError("no frame was decoded for this half")
        num_frames, num_tokens, window_frames = self.count, self.count // FRAMES_PER_TOKEN, self.frames_per_window
        if num_tokens < self.window:  # too short for one window: pad with the last frame, cut the padding's scores
            frames = list(self.buffer) + [self.buffer[-1]] * (window_frames - len(self.buffer))
            self.pending = [(0, torch.stack(frames[:window_frames]))]
            self._run()
            return self.inference.merge(self.done, window_frames)[:num_frames]
        last = num_tokens - self.window  # the end-aligned window, unless a regular one already starts there
        if max(start for start, _ in self.done + self.pending) != last:
            offset = self.count - FRAMES_PER_TOKEN * last  # frames from the last window's first frame to the end
            frames = list(self.buffer)[len(self.buffer) - offset:][:window_frames]
            self.pending.append((last, torch.stack(frames)))
        self._run()
        return self.inference.merge(self.done, num_frames)


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
