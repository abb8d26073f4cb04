"""The model-input frames of a whole video for `evaluate.py spot`, decoded in order by one process or, in parallel,
by several (evaluation/streaming.py spots them).

Decoding is what a spot run waits on (a 45-minute half: 22 of its 24 s on an H200 machine, docs/PERFORMANCE.md), and
one decoder uses about one core. With a `DecodePool` the video is cut into chunks of CHUNK_SECONDS; each worker
process seeks to its chunk (data/video.py: iter_frames, which picks by timestamp the same source frames a front-to-back
read picks) and returns the chunk's frames resized to the model's input, as uint8. The chunks come back in order,
with at most 2 x workers of them in flight, so memory stays bounded whatever the video's length. A decoder started
at a keyframe gives the same pixels as one that decoded everything before it, so both paths hand the model the same
frames (tests/test_spot.py checks the frames, benchmarks/bench_inference.py the scores).
"""

from __future__ import annotations

import multiprocessing
import signal
from collections import deque
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from fractions import Fraction
from pathlib import Path

import torch

from data.video import SOCCERNET_HEIGHT, VideoInfo, iter_frames, probe_video, resized_rgb
from utils.errors import UserError

CHUNK_SECONDS = 60  # per task: long enough that a seek (about a GOP decoded for nothing) costs little
MIN_CHUNKS = 3  # below this, starting worker processes (importing torch: seconds) costs more than it saves


def _resized(path: str, info: VideoInfo, fps: Fraction, frames: range, size: int,
             threaded: bool) -> Iterator[torch.Tensor]:
    """(3, size, size) uint8 frames `frames` of the video at fps, in order."""
    last_frame = last_tensor = None
    for _, frame in iter_frames(path, fps, frames.start, len(frames), info, threaded=threaded):
        if frame is not last_frame:  # sources below fps repeat a frame: convert it once
            last_frame = frame
            last_tensor = resized_rgb(frame, (size, size), SOCCERNET_HEIGHT)
        yield last_tensor


def _chunk(path: str, info: VideoInfo, fps: Fraction, frames: range, size: int) -> torch.Tensor:
    """(len(frames), 3, size, size) uint8: one worker's task (one core: FFmpeg's threads off)."""
    return torch.stack(list(_resized(path, info, fps, frames, size, threaded=False)))


def _worker_start() -> None:
    torch.set_num_threads(1)  # one core per worker: the workers are the parallelism
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the main process's to handle: no traceback per worker


def _ready() -> bool:
    return True


def worth_a_pool(path: Path) -> bool:
    """Whether the video is long enough for parallel decoding (a file that cannot be read says so when it is
    spotted)."""
    try:
        return probe_video(path).duration >= MIN_CHUNKS * CHUNK_SECONDS
    except UserError:
        return False


class DecodePool:
    """The processes that decode for a whole spot run, started at once (each imports torch and PyAV: seconds) so
    that they are ready by the time the checkpoint is loaded."""

    def __init__(self, workers: int):
        self.workers = workers
        context = multiprocessing.get_context("spawn")  # never fork a process that holds torch's thread pools
        self.executor = ProcessPoolExecutor(workers, mp_context=context, initializer=_worker_start)
        self._warm = [self.executor.submit(_ready) for _ in range(workers)]

    def ready(self) -> None:
        """Wait until every process has started."""
        for future in self._warm:
            future.result()

    def __enter__(self) -> DecodePool:
        return self

    def __exit__(self, *exc) -> None:
        self.executor.shutdown(cancel_futures=True)


def model_frames(path: Path, info: VideoInfo, fps: Fraction, total: int, size: int, pool: DecodePool | None = None,
                threaded: bool = True) -> Iterator[torch.Tensor]:
    """(3, size, size) uint8 frames 0 .. total - 1 of the video at fps, in order: decoded by the pool's processes, or
    without one (or for a video of fewer than MIN_CHUNKS chunks) by one front-to-back read, where `threaded` lets
    FFmpeg use its own decoding threads."""
    chunk = round(fps * CHUNK_SECONDS)  # frames per task
    if pool is None or -(-total // chunk) < MIN_CHUNKS:
        yield from _resized(str(path), info, fps, range(total), size, threaded)
        return
    starts = deque(range(0, total, chunk))
    pending = deque()
    while starts or pending:
        while starts and len(pending) < 2 * pool.workers:  # bounded: at most 2 chunks per worker decoded ahead
            start = starts.popleft()
            pending.append(pool.executor.submit(_chunk, str(path), info, fps, range(start, min(start + chunk, total)),
                                                size))
        yield from pending.popleft().result()
