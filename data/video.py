"""Video decoding with PyAV at a target frame rate, by presentation timestamp.

Frame k of a half at `fps` is the source frame whose timestamp is nearest to k / fps seconds (ties go to the earlier
frame), measured on the stream's own time base from the stream's first timestamp, never from an assumed frame rate.
This is what ffmpeg's `fps` filter (used by the official frame extraction) does. A half has ceil(duration x fps)
frames, the duration coming from the container.

Reading a window seeks to the keyframe before it and decodes forward; only the frames kept are converted to RGB
(conversion costs more than decoding at 224p), optionally resized by PyAV's scaler on the way.
"""

from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import torch

SEEK_MARGIN_S = 1.0  # seek this far before the first wanted frame: some demuxers land after the requested time


class VideoError(RuntimeError):
    """A video that cannot be opened or decoded as requested; the message names the file and what failed."""


@dataclasses.dataclass(frozen=True)
class VideoInfo:
    path: str
    duration: float  # seconds, from the container (falls back to the stream)
    width: int
    height: int
    average_fps: float  # informative only: frame selection uses timestamps
    start_time: float  # seconds: timestamp of the stream's first frame, subtracted from every timestamp

    def num_frames(self, fps: float) -> int:
        """Frames of this video at `fps`: every k with k / fps < duration."""
        return max(0, math.ceil(self.duration * fps - 1e-6))


def _open(path: str | os.PathLike) -> av.container.InputContainer:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"video not found: {path}")
    try:
        container = av.open(str(path))
    except av.error.FFmpegError as error:
        raise VideoError(f"{path}: cannot open as a video ({error})") from error
    if not container.streams.video:
        container.close()
        raise VideoError(f"{path}: the file has no video stream")
    return container


def _stream_start(stream) -> float:
    if stream.start_time is None:
        return 0.0
    return float(stream.start_time * stream.time_base)


def probe_video(path: str | os.PathLike) -> VideoInfo:
    """Duration, size and rate of the first video stream."""
    with _open(path) as container:
        stream = container.streams.video[0]
        if container.duration is not None:
            duration = container.duration / av.time_base
        elif stream.duration is not None:
            duration = float(stream.duration * stream.time_base)
        else:
            raise VideoError(f"{path}: neither the container nor the stream gives a duration")
        rate = stream.average_rate or stream.guessed_rate or Fraction(0)
        return VideoInfo(str(path), float(duration), stream.codec_context.width, stream.codec_context.height,
                         float(rate), _stream_start(stream))


def iter_frames(path: str | os.PathLike, fps: float, first: int, count: int, info: VideoInfo | None = None,
                threaded: bool = False) -> Iterator[tuple[int, av.VideoFrame]]:
    """Yield (k, source frame nearest to k / fps) for k in [first, first + count), in order, decoding forward only.

    The same source frame may be yielded for several k when the source rate is below fps. threaded=True lets FFmpeg
    decode on several threads (thread_type AUTO): for one long sequential read on a machine with spare cores (spotting
    a whole video), not for data-loader workers, which already use one core each.
    """
    info = info or probe_video(path)
    last = min(first + count, info.num_frames(fps))
    if first >= last:
        return
    with _open(path) as container:
        stream = container.streams.video[0]
        if threaded:
            stream.thread_type = "AUTO"
        time_base = stream.time_base
        start = info.start_time
        target = first
        seek_to = target / fps - SEEK_MARGIN_S
        try:
            if seek_to > 0:
                container.seek(int((seek_to + start) / time_base), stream=stream, backward=True, any_frame=False)
            previous: av.VideoFrame | None = None
            previous_time = -math.inf
            for frame in container.decode(stream):
                if frame.pts is None:
                    continue
                time = float(frame.pts * time_base) - start
                while target < last and target / fps <= time:
                    wanted = target / fps
                    nearest = previous if previous is not None and wanted - previous_time <= time - wanted else frame
                    yield target, nearest
                    target += 1
                if target >= last:
                    return
                previous, previous_time = frame, time
        except av.error.FFmpegError as error:
            raise VideoError(f"{path}: decoding failed near {target / fps:.2f} s ({error})") from error
        # Past the last decoded frame: only a fraction of a source frame may be missing, else the file is cut short.
        if previous is None or (last - 1) / fps - previous_time > max(1.0 / fps, 1.0):
            ended = "no frame decoded" if previous is None else f"the last frame is at {previous_time:.2f} s"
            raise VideoError(f"{path}: frames up to {(last - 1) / fps:.2f} s were requested (duration "
                             f"{info.duration:.2f} s) but {ended}; the file looks truncated or corrupt")
        for k in range(target, last):
            yield k, previous


def frame_to_rgb(frame: av.VideoFrame, size: tuple[int, int] | None = None) -> np.ndarray:
    """(H, W, 3) uint8 RGB, resized to size=(height, width) by PyAV's scaler (bilinear) when given."""
    if size is None:
        return frame.to_ndarray(format="rgb24")
    return frame.to_ndarray(format="rgb24", height=size[0], width=size[1], interpolation="BILINEAR")


def read_frames(path: str | os.PathLike, fps: float = 2.0, first: int = 0, count: int | None = None,
                size: tuple[int, int] | None = None, info: VideoInfo | None = None) -> tuple[torch.Tensor, np.ndarray]:
    """Frames k = first .. first + count - 1 at `fps` as (T, H, W, 3) uint8, and their timestamps k / fps (T,).

    count=None reads to the end of the video; a window that runs past the end is cut at the last frame.
    """
    info = info or probe_video(path)
    if count is None:
        count = info.num_frames(fps) - first
    indices, images = [], []
    last_frame, last_image = None, None
    for k, frame in iter_frames(path, fps, first, count, info):
        if frame is not last_frame:  # one conversion per source frame, however often it is reused
            last_frame, last_image = frame, frame_to_rgb(frame, size)
        indices.append(k)
        images.append(last_image)
    if not images:
        height, width = size or (info.height, info.width)
        return torch.zeros((0, height, width, 3), dtype=torch.uint8), np.zeros(0)
    return torch.from_numpy(np.stack(images)), np.array(indices) / fps


def write_video(path: str | os.PathLike, frames: Iterator[np.ndarray] | np.ndarray, fps: float,
                codec: str = "libx264", gop: int | None = None, options: dict[str, str] | None = None,
                pix_fmt: str = "yuv420p") -> Path:
    """Encode (H, W, 3) uint8 RGB frames with PyAV (no ffmpeg binary). Written to a temporary name, then renamed."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.tmp{path.suffix}")
    with av.open(str(tmp), "w") as container:
        stream = None
        for image in frames:
            if stream is None:
                stream = container.add_stream(codec, rate=Fraction(fps).limit_denominator(1001))
                stream.height, stream.width = image.shape[:2]
                stream.pix_fmt = pix_fmt
                if gop is not None:
                    stream.codec_context.gop_size = gop  # 'keyint' options are ignored by PyAV (ENVIRONMENT.md)
                stream.options = dict(options or {})
            for packet in stream.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="rgb24")):
                container.mux(packet)
        if stream is None:
            raise ValueError(f"{path}: no frame to write")
        for packet in stream.encode():
            container.mux(packet)
    os.replace(tmp, path)
    return path
