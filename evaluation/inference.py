"""Sliding-window inference of a spotting model over whole halves, shared by validation during training,
`evaluate.py predict/test` and `evaluate.py spot` (docs/METHOD.md, "Inference and post-processing").

Positions here are in tokens of the half (utils/rates.py: a token is FRAMES_PER_TOKEN = 2 frames at data.fps, 1 s at
SoccerNet-v2's 2 fps, 0.16 s at Ball Action Spotting's 12.5 fps). Per half: windows of model.window_seconds every
eval.window_stride_seconds (64 s every 32 s in the paper), the last one aligned to the end; the model in eval mode
gives sigmoid scores (T, C) per window (C: the dataset's columns, 17 for SoccerNet-v2). Token j of a window starting
at token s stands for frames {2(s + j), 2(s + j) + 1}, at time (s + j) x token + 0.5 / fps (the mean of its two
frames' times), and is placed on the frame grid at slot 2 (s + j) (at 2 fps, integer seconds: the official
`torch.round((t + 0.25) / 0.5)` rounds half to even). Inside a window the tokens of the first and last trim seconds
(12 s in the paper) are dropped, except near the half's edges (`kept_tokens`); overlapping windows are merged by max.
The result is one (frames, C) raw-score array per half, saved for NMS sweeps and ensembles.
"""

from __future__ import annotations

import dataclasses
from collections import deque
from collections.abc import Iterable
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from data.augment import resize_frames, to_model_input
from data.catalog import Dataset
from data.sources import FrameSource
from evaluation.postprocess import game_predictions, write_raw_meta, write_raw_scores
from evaluation.predictions import write_game_predictions
from utils import dist
from utils.logs import progress
from utils.rates import FRAMES_PER_TOKEN, Rates
from utils.run import autocast


def window_starts(num_tokens: int, window_tokens: int, stride_tokens: int) -> list[int]:
    """Start tokens: 0, stride, 2 stride, ... and the half's whole tokens - window for the last one (the windows a
    `HalfSpotter` runs, as it learns the half's length)."""
    if num_tokens < window_tokens:
        raise ValueError(f"a half of {num_tokens} tokens is shorter than one {window_tokens}-token window")
    last = num_tokens - window_tokens
    starts = list(range(0, last + 1, stride_tokens))
    if starts[-1] != last:
        starts.append(last)
    return starts


HALF_END_MODES = ("official", "scored")


def kept_tokens(start: int, rows: int, num_frames: int, trim_seconds: float, half_end: str, rates: Rates = Rates(),
                frames_per_row: int = FRAMES_PER_TOKEN) -> np.ndarray:
    """(rows,) bool: which rows of scores of the window starting at token `start` are kept, by the official rule; a
    row is a token (frames_per_row = FRAMES_PER_TOKEN, the paper's head) or a frame (1, the frame head).

    eztorch (`datasets/soccernet_utils/predictions.py: add_clips_predictions`) drops a token whose time t lies within
    trim seconds of its window's first token unless t <= trim (the half's start), and one within trim seconds of
    its window's last token unless the half ends within trim seconds of t. Its end test compares trim with
    `half_num_timestamps * step_timestamp - t`, a count of frames times the token step (at 2 fps: 0.5-s frames times
    1 s): twice the half's length, so the exception never fires and the last `trim` seconds of every half score 0.
    half_end="official" keeps that quirk (the paper's numbers and the released checkpoints' scores include it);
    "scored" measures the half's end where the last window ends (its whole tokens), as intended. A row's time is the
    mean of its frames' times.
    """
    if half_end not in HALF_END_MODES:
        raise ValueError(f"half_end {half_end!r}: expected one of {HALF_END_MODES}")
    keep = np.ones(rows, bool)
    if trim_seconds <= 0 or rows < 2:
        return keep
    # times in units of half a frame, 1 / (2 fps) s, where every row's time is a whole number: comparisons at 12.5
    # fps are then as exact as they are in seconds at 2 fps (0.88 s - 0.56 s is not 0.32 in floats)
    first_frames = start * rates.frames_per_token + np.arange(rows) * frames_per_row  # (rows,)
    times = 2 * first_frames + (frames_per_row - 1)  # (rows,): the mean of the row's frames' times (a token's: +0.25 s)
    trim = float(Fraction(str(trim_seconds)) * 2 * rates.fps)
    # the official end: frames x the token step (at 2 fps, 0.5-s frames x 1 s); scored: the last window's end
    half_end_value = 2 * rates.frames_per_token * (num_frames if half_end == "official"
                                                   else num_frames // rates.frames_per_token)
    before = (times - times[0] < trim) & (times > trim)
    after = (times[-1] - times < trim) & (half_end_value - times > trim)
    return ~(before | after)


def merge_window_scores(window_scores: Iterable[tuple[int, np.ndarray]], num_frames: int, trim_seconds: float,
                        half_end: str = "official", rates: Rates = Rates(),
                        frames_per_row: int = FRAMES_PER_TOKEN) -> np.ndarray:
    """Place (start token, (rows, C) scores) windows on the frame grid, each row at its first frame (a token's:
    frames_per_row = FRAMES_PER_TOKEN; a frame's: 1): trim (`kept_tokens`), then max-merge. Returns (num_frames, C);
    slots no kept row reaches stay 0 (with the token head, every second frame)."""
    merged = None
    for start, scores in window_scores:
        rows = scores.shape[0]
        if merged is None:
            merged = np.zeros((num_frames, scores.shape[1]), np.float32)
        keep = kept_tokens(start, rows, num_frames, trim_seconds, half_end, rates, frames_per_row)
        slots = start * rates.frames_per_token + np.flatnonzero(keep) * frames_per_row  # (kept,): first frames
        valid = slots < num_frames
        merged[slots[valid]] = np.maximum(merged[slots[valid]], scores[keep][valid])
    return merged


@torch.no_grad()
def window_scores(model: nn.Module, frames: torch.Tensor, device: torch.device,
                  amp_dtype: torch.dtype | None) -> np.ndarray:
    """(B, F, 3, S, S) uint8 windows -> (B, rows, C) float32 sigmoid scores (a row per token or frame), the model in
    whatever mode it is in."""
    with autocast(device, amp_dtype):
        logits = model(to_model_input(frames.to(device, non_blocking=True)))
    return torch.sigmoid(logits.float()).cpu().numpy()


@dataclasses.dataclass(frozen=True)
class Inference:
    """A spotting model and how it runs over whole halves: model_cfg gives the window and input sizes
    (window_seconds, img_size), eval_cfg the stride, trim, end of half and batch (configs/schema.py: EvalConfig),
    rates the frame rate (the run's data.fps). Window and stride are checked to hold whole tokens when it is made."""

    model: nn.Module
    model_cfg: Any
    eval_cfg: Any
    dataset: Dataset  # its halves, and the columns the model's scores stand for
    device: torch.device = torch.device("cpu")
    amp_dtype: torch.dtype | None = None
    rates: Rates = Rates()

    def __post_init__(self):
        self.window_tokens, self.stride_tokens  # a duration that is not whole tokens: a ConfigError now

    @property
    def window_tokens(self) -> int:
        return self.rates.tokens(self.model_cfg.window_seconds, "model.window_seconds")

    @property
    def stride_tokens(self) -> int:
        return self.rates.tokens(self.eval_cfg.window_stride_seconds, "eval.window_stride_seconds")

    @property
    def frames_per_row(self) -> int:
        """Frames per row of the model's scores: a token's (the paper's head) or one (model.head=frame)."""
        return 1 if getattr(self.model_cfg, "head", "token") == "frame" else self.rates.frames_per_token

    def merge(self, window_scores: Iterable[tuple[int, np.ndarray]], num_frames: int) -> np.ndarray:
        """(num_frames, C): (start token, (rows, C) scores) windows merged as eval_cfg says (`merge_window_scores`)."""
        return merge_window_scores(window_scores, num_frames, self.eval_cfg.trim_seconds, self.eval_cfg.half_end,
                                   self.rates, self.frames_per_row)

    def scores(self, frames: torch.Tensor) -> np.ndarray:
        """(B, F, 3, S, S) uint8 windows -> (B, rows, C) sigmoid scores (`window_scores`)."""
        return window_scores(self.model, frames, self.device, self.amp_dtype)

    @torch.no_grad()
    def clip_tokens(self, frames: torch.Tensor) -> torch.Tensor:
        """(F, 3, S, S) uint8 consecutive frames, F even -> (F / 2, D) spatial tokens, on the device."""
        with autocast(self.device, self.amp_dtype):
            return self.model.clip_tokens(to_model_input(frames[None].to(self.device, non_blocking=True)))[0]

    @torch.no_grad()
    def token_scores(self, tokens: torch.Tensor) -> np.ndarray:
        """(B, T, D) windows of clip tokens -> (B, rows, C) float32 sigmoid scores."""
        with autocast(self.device, self.amp_dtype):
            logits = self.model.token_logits(tokens)
        return torch.sigmoid(logits.float()).cpu().numpy()


class HalfSpotter:
    """Sliding-window inference over one half, fed one (3, S, S) uint8 frame at a time, in order, and read once.

    The windows are those of `window_starts` (every stride tokens, the last aligned to the half's end), merged by
    `Inference.merge`. A clip's spatial token does not depend on its window (models/video.py: clip_tokens), so each
    is computed once, however many windows hold it: with the half-window stride of every recipe, half the trunk's
    work of running whole windows. The spotter keeps the frames and tokens that a later window still needs (at most
    about batch_size x stride tokens), so memory stays flat however long the half is. A half shorter than one window
    is padded with its last frame and the padding's scores are cut off."""

    def __init__(self, inference: Inference):
        self.inference = inference
        self.window = inference.window_tokens
        self.stride = inference.stride_tokens  # tokens between window starts
        self.frames_per_window = FRAMES_PER_TOKEN * self.window
        self.recent: deque[torch.Tensor] = deque(maxlen=self.frames_per_window)  # for a half shorter than a window
        self.unencoded: list[torch.Tensor] = []  # frames pushed since the last encoding, (3, S, S) each
        self.tokens: torch.Tensor | None = None  # (n, D) clip tokens first_token .. first_token + n - 1
        self.first_token = 0
        self.count = 0  # frames pushed
        self.next_start = 0  # tokens: start of the next regular window
        self.pending: list[int] = []  # starts of the windows waiting for a batch
        self.done: list[tuple[int, np.ndarray]] = []  # (start, (rows, C) scores)
        self.windows_run = 0

    def push(self, frame: torch.Tensor) -> None:
        self.recent.append(frame)
        self.unencoded.append(frame)
        self.count += 1
        # the regular window starting at token next_start is complete when its last frame is in
        if FRAMES_PER_TOKEN * (self.next_start + self.window) == self.count:
            self.pending.append(self.next_start)
            self.next_start += self.stride
            if len(self.pending) >= self.inference.eval_cfg.batch_size:
                self._run()

    def _encode(self) -> None:
        """Clip tokens of every whole token pushed and not encoded yet, at most a batch of windows' frames per call
        (the memory of running a batch of windows)."""
        whole = len(self.unencoded) - len(self.unencoded) % FRAMES_PER_TOKEN
        most = self.frames_per_window * self.inference.eval_cfg.batch_size
        encoded = [self.inference.clip_tokens(torch.stack(self.unencoded[first:min(first + most, whole)]))
                   for first in range(0, whole, most)]  # (frames / 2, D) each
        self.unencoded = self.unencoded[whole:]
        self.tokens = torch.cat(([] if self.tokens is None else [self.tokens]) + encoded)

    def _run(self) -> None:
        if not self.pending:
            return
        self._encode()
        offsets = [start - self.first_token for start in self.pending]
        windows = torch.stack([self.tokens[offset:offset + self.window] for offset in offsets])  # (B, T, D)
        self.done += list(zip(self.pending, self.inference.token_scores(windows)))
        self.windows_run += len(self.pending)
        # every later window starts at or after the last one run (the end-aligned one too): older tokens go
        self.tokens, self.first_token = self.tokens[offsets[-1]:], self.pending[-1]
        self.pending = []

    def finish(self) -> np.ndarray:
        """(frames, C) merged scores of the half; the spotter cannot be fed afterwards."""
        if self.count == 0:
            raise ValueError("no frame was decoded for this half")
        num_frames, num_tokens, window_frames = self.count, self.count // FRAMES_PER_TOKEN, self.frames_per_window
        if num_tokens < self.window:  # too short for one window: pad with the last frame, cut the padding's scores
            frames = list(self.recent) + [self.recent[-1]] * (window_frames - len(self.recent))
            self.done = [(0, self.inference.scores(torch.stack(frames)[None])[0])]
            self.windows_run = 1
            return self.inference.merge(self.done, window_frames)[:num_frames]
        last = num_tokens - self.window  # the end-aligned window, unless a regular one already starts there
        if max([start for start, _ in self.done] + self.pending) != last:
            self.pending.append(last)
        self._run()
        return self.inference.merge(self.done, num_frames)


@torch.no_grad()
def predict_half(inference: Inference, source: FrameSource, game: str, half: int) -> np.ndarray:
    """(frames at data.fps, C) max-merged sigmoid scores of one half: its frames read once, in chunks of a window's
    frames, through a `HalfSpotter`."""
    num_frames, size = source.num_frames(game, half), inference.model_cfg.img_size
    spotter, chunk = HalfSpotter(inference), FRAMES_PER_TOKEN * inference.window_tokens
    for first in range(0, num_frames, chunk):
        for frame in resize_frames(source.read(game, half, first, min(chunk, num_frames - first)), size):
            spotter.push(frame)  # (3, S, S) uint8
    return spotter.finish()


def predict_games(inference: Inference, source: FrameSource, games: list[str], out_dir: str | Path) -> Path:
    """Raw scores and results_spotting.json of every game: games are shared out over ranks, gathered on rank 0,
    which writes `<out>/raw/...` and `<out>/predictions/<game>/results_spotting.json`. Returns the predictions dir."""
    model = inference.model
    was_training = model.training
    model.eval()
    rank, world = dist.get_rank(), dist.get_world_size()
    local = {}
    for game in progress(games[rank::world], desc="inference (games)", enabled=rank == 0):
        local[game] = {half: predict_half(inference, source, game, half) for half in inference.dataset.halves}
    gathered = {}
    for part in dist.all_gather_objects(local):
        gathered.update(part)
    out_dir = Path(out_dir)
    if dist.is_main_process():
        raw_dir = out_dir / "raw"
        write_raw_meta(raw_dir, inference.rates.fps, inference.dataset)
        for game in games:
            for half, scores in gathered[game].items():
                write_raw_scores(raw_dir, game, half, scores)
            write_game_predictions(out_dir / "predictions", game,
                                   game_predictions(gathered[game], inference.eval_cfg, inference.dataset,
                                                    inference.rates.fps))
    dist.barrier()
    model.train(was_training)
    return out_dir / "predictions"
