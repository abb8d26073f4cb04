"""Spot actions in any video file (`python evaluate.py spot VIDEO ... --checkpoint CKPT`).

A video is decoded once at FPS (utils/rates.py; frame k is the source frame FFmpeg's fps filter picks, as in the
official frames), front to back or a minute at a time by several processes (evaluation/spot_frames.py, the same
frames either way), and each frame goes to the model's input size as SoccerNet frames do: a video that is not 224 pixels
high is first scaled to 224p keeping its aspect ratio, the way SoccerNet made its 224p files (FFmpeg's bicubic
`scale=-1:224`); the full RGB frame is then resized by torchvision's antialiased bilinear resize, as the official
code resizes. Frames are pushed into a `HalfSpotter`. The spotter keeps only the last window's frames (a ring
buffer of FPS x window + 1 frames) and runs a window as soon as its last frame has arrived, so memory stays flat
however long the video is; the per-window scores are merged exactly as `evaluation.inference.predict_half` merges
them (same starts, trim and max); unlike the paper's evaluation, the end of each half is scored by default
(`eval.half_end=scored`, evaluation/inference.py: kept_tokens). A half shorter than one window is padded with its
last frame and the padding's scores are cut off.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from data.labels import CLASSES
from data.video import probe_video
from evaluation.clips import Highlight, select_highlights, write_highlights
from evaluation.inference import merge_window_scores, window_scores
from evaluation.page import HalfVideo, page_videos, write_page
from evaluation.postprocess import nms_predictions, write_raw_meta, write_raw_scores
from evaluation.predictions import write_game_predictions
from evaluation.spot_frames import DecodePool, spot_frames
from evaluation.timeline import write_timeline
from utils.errors import InvalidInputError
from utils.files import write_text
from utils.logs import progress
from utils.rates import FPS

FALLBACK_ROWS = 10  # rows of the human-readable list when no prediction reaches --min-confidence


class HalfSpotter:
    """Streaming sliding-window inference over one half, fed one (3, S, S) uint8 frame at a time."""

    def __init__(self, model: nn.Module, window_seconds: int, stride_seconds: int, trim_seconds: int,
                 batch_size: int, device: torch.device, amp_dtype: torch.dtype | None, half_end: str = "scored"):
        self.model, self.window, self.stride, self.trim = model, window_seconds, stride_seconds, trim_seconds
        self.half_end = half_end
        self.batch_size, self.device, self.amp_dtype = batch_size, device, amp_dtype
        self.frames_per_window = FPS * window_seconds
        self.buffer: deque[torch.Tensor] = deque(maxlen=self.frames_per_window + 1)
        self.count = 0  # frames pushed
        self.next_start = 0  # seconds: start of the next regular window
        self.pending: list[tuple[int, torch.Tensor]] = []  # (start, (F, 3, S, S)) windows waiting for a batch
        self.done: list[tuple[int, np.ndarray]] = []  # (start, (T, C)) scores
        self.windows_run = 0

    def push(self, frame: torch.Tensor) -> None:
        self.buffer.append(frame)
        self.count += 1
        # the regular window starting at next_start is complete when its last frame, FPS (start + window) - 1, is in
        if FPS * (self.next_start + self.window) == self.count:
            self._queue(self.next_start, list(self.buffer)[-self.frames_per_window:])
            self.next_start += self.stride

    def _queue(self, start: int, frames: list[torch.Tensor]) -> None:
        self.pending.append((start, torch.stack(frames)))
        if len(self.pending) >= self.batch_size:
            self._run()

    def _run(self) -> None:
        if not self.pending:
            return
        starts = [start for start, _ in self.pending]
        scores = window_scores(self.model, torch.stack([frames for _, frames in self.pending]), self.device,
                               self.amp_dtype)
        self.done += list(zip(starts, scores))
        self.windows_run += len(starts)
        self.pending = []

    def finish(self) -> np.ndarray:
        """(frames, C) merged scores of the half; the spotter cannot be fed afterwards."""
        if self.count == 0:
            raise ValueError("no frame was decoded for this half")
        num_frames, num_seconds, window_frames = self.count, self.count // FPS, self.frames_per_window
        if num_seconds < self.window:  # too short for one window: pad with the last frame, cut the padding's scores
            frames = list(self.buffer) + [self.buffer[-1]] * (window_frames - len(self.buffer))
            self.pending = [(0, torch.stack(frames[:window_frames]))]
            self._run()
            merged = merge_window_scores(self.done, window_frames, self.trim, self.half_end)
            return merged[:num_frames]
        last = num_seconds - self.window  # the end-aligned window, unless a regular one already starts there
        if max(start for start, _ in self.done + self.pending) != last:
            offset = self.count - FPS * last  # frames from the last window's first frame to the end of the buffer
            frames = list(self.buffer)[len(self.buffer) - offset:][:window_frames]
            self.pending.append((last, torch.stack(frames)))
        self._run()
        return merge_window_scores(self.done, num_frames, self.trim, self.half_end)


def split_frame(second_half_start: float) -> int:
    """The first frame (at FPS) of half 2 in a whole-match file: positions in half 2 count from it."""
    return int(round(second_half_start * FPS))


def half_videos(files: list[tuple[Path, int]], second_half_start: float | None) -> list[HalfVideo]:
    """Where each half of a spotted game lies: a file per half, or one file split at second_half_start."""
    if second_half_start is None:
        return [HalfVideo(half, path, 0.0) for path, half in files]
    (path, _), = files
    return [HalfVideo(1, path, 0.0), HalfVideo(2, path, split_frame(second_half_start) / FPS)]


def spot_file(model: nn.Module, path: Path, model_cfg, eval_cfg, device: torch.device,
              amp_dtype: torch.dtype | None, second_half_start: float | None = None,
              half: int = 1, pool: DecodePool | None = None, threaded_decode: bool = True) -> dict[int, np.ndarray]:
    """{half: (frames, C) scores} of one video: the whole file as `half`, or split into halves 1 and 2 at
    second_half_start seconds. Decoding and model run interleaved, with a progress bar in video seconds; with a
    pool, its processes decode chunks of the video ahead of the model (evaluation/spot_frames.py), to the same
    frames. model_cfg: window and input sizes; eval_cfg: stride, trim, end of half, batch
    (configs/schema.py)."""
    info = probe_video(path)
    total = info.num_frames(FPS)
    split = None if second_half_start is None else split_frame(second_half_start)
    if split is not None and not 0 < split < total:
        raise InvalidInputError(f"{path}: --second-half-start {second_half_start} s is outside the video (0 to "
                                f"{info.duration:.1f} s)")

    def new_spotter():
        return HalfSpotter(model, model_cfg.window_seconds, eval_cfg.window_stride_seconds, eval_cfg.trim_seconds,
                           eval_cfg.batch_size, device, amp_dtype, eval_cfg.half_end)

    spotters = {half if split is None else 1: new_spotter()}
    current = next(iter(spotters))
    bar = progress(total=round(total / FPS, 1), desc=f"spotting {path.name} (video s)")
    frames = spot_frames(path, info, total, model_cfg.img_size, pool, threaded_decode)
    for k, frame in enumerate(frames):  # (3, S, S) uint8
        if split is not None and k == split:
            spotters[2] = new_spotter()
            current = 2
        spotters[current].push(frame)
        bar.update(1 / FPS)
        bar.set_postfix(windows=sum(s.windows_run for s in spotters.values()), refresh=False)
    scores = {number: spotter.finish() for number, spotter in spotters.items()}
    bar.set_postfix(windows=sum(s.windows_run for s in spotters.values()))
    bar.close()
    return scores


def listed_predictions(predictions: list[dict], min_confidence: float) -> tuple[list[dict], str]:
    """The predictions a person gets to see (list and timeline dots), in time order, and a line saying which."""
    rows = [p for p in predictions if p["confidence"] >= min_confidence]
    note = (f"actions with confidence >= {min_confidence} ({len(rows)} of {len(predictions)} predictions; all of them "
            f"are in results_spotting.json)")
    if not rows and predictions:  # a weak or briefly trained model: show its best guesses rather than nothing
        rows = sorted(predictions, key=lambda p: -p["confidence"])[:FALLBACK_ROWS]
        note = (f"no prediction reaches confidence {min_confidence}: the {len(rows)} most confident of "
                f"{len(predictions)} (all of them are in results_spotting.json)")
    return sorted(rows, key=lambda p: (int(p["half"]), int(p["position"]))), note


def write_spotting_list(path: Path, rows: list[dict], note: str) -> Path:
    """A plain-text table, one action per line in time order: half, game time, class, confidence."""
    lines = [f"# {note}", f"{'half':<5} {'time':>8}  {'class':<26} confidence"]
    for p in rows:
        lines.append(f"{p['half']:<5} {p['gameTime'].split(' - ')[1]:>8}  {p['label']:<26} {p['confidence']:.3f}")
    return write_text(path, "\n".join(lines) + "\n")


@dataclass(frozen=True)
class ViewOptions:
    """What a person gets to look at besides results_spotting.json (evaluate.py spot's flags)."""
    min_confidence: float = 0.5  # the list, the timeline's dots and the page slider's start
    copy_video: bool = False  # a copy of the video beside the page instead of a relative path to it
    clips: int | None = None  # the N most confident actions as clips ...
    clips_min_confidence: float | None = None  # ... or those at or above this confidence (both: the N best of them)
    clip_before: float = 5.0  # seconds of a clip before its action
    clip_after: float = 5.0  # and after it

    @property
    def wants_clips(self) -> bool:
        return self.clips is not None or self.clips_min_confidence is not None


def write_outputs(out_dir: Path, name: str, scores: dict[int, np.ndarray], eval_cfg, halves: list[HalfVideo],
                  view: ViewOptions = ViewOptions()) -> tuple[dict[str, Path], list[str]]:
    """Under out_dir/name/: results_spotting.json (official schema, eval_cfg's NMS), raw/scores_half*.npy,
    spotting.txt and timeline.svg (the actions above view.min_confidence), index.html (the page), and with clips
    asked for, clips/*.mp4 and highlights.mp4. Returns the files written and a line per copy made."""
    predictions = nms_predictions(scores, eval_cfg)
    folder = out_dir / name
    write_raw_meta(folder / "raw", FPS)
    for half, half_scores in scores.items():
        write_raw_scores(folder / "raw", ".", half, half_scores)
    rows, note = listed_predictions(predictions, view.min_confidence)
    written = {"results": write_game_predictions(out_dir, name, predictions),
               "list": write_spotting_list(folder / "spotting.txt", rows, note),
               "timeline": write_timeline(folder / "timeline.svg", scores, FPS, CLASSES, rows, note, title=name)}
    clips = []
    if view.wants_clips:
        where = {h.half: h for h in halves}
        chosen = select_highlights(predictions, view.clips, view.clips_min_confidence)
        clips = write_highlights(folder, [Highlight(int(p["half"]), int(p["position"]) / 1000, p["label"],
                                                    float(p["confidence"]), where[int(p["half"])].video,
                                                    where[int(p["half"])].offset) for p in chosen],
                                 view.clip_before, view.clip_after)
        if clips:
            written["highlights"] = folder / "highlights.mp4"
    sources, notes = page_videos(folder, [h.video for h in halves], view.copy_video)
    if view.wants_clips:
        copied = sum(clip["written"] == "copied" for clip in clips)
        notes.append(f"{len(clips)} clip(s) in {folder / 'clips'} ({copied} stream-copied, {len(clips) - copied} "
                     f"re-encoded)" + ("" if clips else ": no action reaches --clips-min-confidence"))
    summary = (f"{len(predictions)} predictions (results_spotting.json, {eval_cfg.nms} NMS); click an action or a "
               f"dot to see it, the slider shows the actions at or above a confidence")
    written["page"] = write_page(folder, name, halves, scores, FPS, CLASSES, predictions, view.min_confidence,
                                 sources, clips, summary)
    return written, notes
