"""Video decoding with PyAV at a target frame rate, picking the frames FFmpeg's `fps` filter picks.

The official frames were extracted with `ffmpeg -vf fps=2` (eztorch `parse_utils.py: extract_frames_from_video_ffmpeg`).
That filter gives every source frame i an output slot, its timestamp t_i (seconds) times the output rate rounded to
the nearest integer, halves away from zero (FFmpeg's default `round=near`), and emits as output frame k the last
source frame whose slot is at most k: the last frame shown before k / fps + 0.5 / fps. At 25 fps those are source
frames 6, 18, 31, ... (0.24, 0.72, 1.24 s), not the frames nearest k / 2 s. A slot no source frame reaches repeats the
previous frame (variable frame rates, sources below 2 fps). Output stops at slot round(end x fps), `end` being the
last frame's timestamp plus its duration. `tests/test_video.py` checks this module against the filter itself
(`av.filter`), frame for frame, at 25, 29.97 and 50 fps and on a variable-frame-rate file.

The rule is written here rather than run through `av.filter` because the loaders read windows at random places: a
filter graph only numbers its outputs from where it starts, while this rule gives frame k from a seek anywhere.
Timestamps are the stream's own (pts x time base), measured from the stream's first timestamp, never an assumed rate.

Frames come back as full-size RGB (the conversion from YUV happens only for the frames kept, since converting costs
more than decoding at 224p); resizing is torchvision's job (`data.augment.resize_frames`), as in the official code.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import os
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import torch

from data.augment import resize_frames
from utils.errors import MissingFileError, UserError
from utils.files import atomic_path
from utils.rates import FPS

SEEK_MARGIN_S = 1.0  # seek this far before the first wanted frame: some demuxers land after the requested time
TAIL_SECONDS = 5.0  # probing the real end demuxes the packets of the last few seconds
TRUNCATION_TOLERANCE_S = 1.5  # container duration vs the end of the last video frame (audio may run a little longer)
SOCCERNET_HEIGHT = 224  # SoccerNet's "224p" files: the broadcast scaled to this height


class VideoError(UserError, RuntimeError):
    """A video that cannot be opened or decoded as requested; the message names the file and what failed."""


@dataclasses.dataclass(frozen=True)
class VideoInfo:
    path: str
    duration: float  # seconds, as the container states it
    end: Fraction  # seconds from the first frame to the end of the last one, read off the last packets
    width: int
    height: int
    average_fps: float  # informative only: frame selection uses timestamps
    start_pts: int  # the stream's first timestamp, subtracted from every timestamp
    time_base: Fraction
    rotation: int = 0  # degrees counter-clockwise the file asks players to turn its frames; frames are read as stored

    def num_frames(self, fps: float) -> int:
        """Frames at `fps`, as the fps filter emits them: slots 0 .. round(end x fps) - 1."""
        return max(0, output_slot(self.end * Fraction(fps)))

    def slot(self, pts: int, fps: float) -> int:
        """The fps filter's output slot of a source frame with this timestamp."""
        return output_slot((pts - self.start_pts) * self.time_base * Fraction(fps))


def output_slot(value: Fraction) -> int:
    """Round to the nearest integer, halves away from zero (FFmpeg's AV_ROUND_NEAR_INF), exactly."""
    return math.floor(value + Fraction(1, 2)) if value >= 0 else -math.floor(-value + Fraction(1, 2))


def _open(path: str | os.PathLike) -> av.container.InputContainer:
    path = Path(path)
    if not path.is_file():
        raise MissingFileError(f"video not found: {path}")
    try:
        container = av.open(str(path))
    except av.error.FFmpegError as error:
        raise VideoError(f"{path}: cannot open as a video ({error})") from error
    if not container.streams.video:
        container.close()
        raise VideoError(f"{path}: the file has no video stream")
    return container


def _last_packet_end(container: av.container.InputContainer, stream, from_pts: int | None) -> int | None:
    """Largest pts + duration among the video packets after `from_pts` (from the start when None)."""
    if from_pts is not None:
        container.seek(from_pts, stream=stream, backward=True, any_frame=False)
    end = None
    for packet in container.demux(stream):
        if packet.pts is None:
            continue
        packet_end = packet.pts + (packet.duration or 0)
        end = packet_end if end is None else max(end, packet_end)
    return end


def probe_video(path: str | os.PathLike) -> VideoInfo:
    """Size, rate and real length of the first video stream.

    The length is read off the last packets (a seek near the end, then demuxing without decoding), not taken from the
    container's header: a file cut short keeps its header's duration. A file whose frames stop well before the
    duration its container states is an error naming both.
    """
    with _open(path) as container:
        stream = container.streams.video[0]
        time_base = stream.time_base
        start_pts = stream.start_time or 0
        if container.duration is not None:
            duration = container.duration / av.time_base
        elif stream.duration is not None:
            duration = float(stream.duration * time_base)
        else:
            duration = None
        try:
            tail = None if duration is None else start_pts + int((duration - TAIL_SECONDS) / time_base)
            end_pts = _last_packet_end(container, stream, tail if tail and tail > start_pts else None)
            if end_pts is None and tail is not None:  # the seek went past the data: read from the start
                container.seek(0, stream=stream)
                end_pts = _last_packet_end(container, stream, None)
        except av.error.FFmpegError as error:
            raise VideoError(f"{path}: cannot read to the end of the file ({error})") from error
        if end_pts is None:
            raise VideoError(f"{path}: the video stream holds no frame")
        end = (end_pts - start_pts) * time_base
        if duration is None:
            duration = float(end)
        elif float(end) < duration - TRUNCATION_TOLERANCE_S:
            raise VideoError(f"{path}: the container says {duration:.2f} s but its video frames stop at "
                             f"{float(end):.2f} s; the file looks truncated (copy or convert it again)")
        rate = stream.average_rate or stream.guessed_rate or Fraction(0)
        rotation = _rotation(container, stream)
        if rotation and str(path) not in _WARNED_ROTATION:
            _WARNED_ROTATION.add(str(path))
            logging.getLogger("comedian").warning(
                f"{path}: the file asks players to turn its frames {rotation} degrees; they are read as stored, not "
                f"turned (re-encode it with the rotation applied if the pitch shows sideways)")
        return VideoInfo(str(path), float(duration), end, stream.codec_context.width, stream.codec_context.height,
                         float(rate), start_pts, time_base, rotation)


_WARNED_ROTATION: set[str] = set()


def _rotation(container, stream) -> int:
    """The rotation a player would apply (the display matrix of the first frame), in degrees."""
    try:
        container.seek(stream.start_time or 0, stream=stream, backward=True, any_frame=False)
        frame = next(container.decode(stream), None)
    except av.error.FFmpegError:
        return 0  # an unreadable start is reported by the decoding itself
    return int(round(frame.rotation)) % 360 if frame is not None and frame.rotation else 0


class _LandedLate(Exception):
    """The seek landed after the frame that the first wanted output shows."""


def _select(container, stream, info: VideoInfo, fps: float, first: int, last: int,
            seek: bool) -> Iterator[tuple[int, av.VideoFrame]]:
    """Outputs first .. last - 1 from one forward decode (after a seek to the keyframe before `first` if `seek`)."""
    seek_to = first / fps - SEEK_MARGIN_S
    container.seek(info.start_pts + (int(seek_to / info.time_base) if seek and seek_to > 0 else 0), stream=stream,
                   backward=True, any_frame=False)
    target, previous, previous_slot = first, None, -1
    for frame in container.decode(stream):
        if frame.pts is None:
            continue
        slot = info.slot(frame.pts, fps)
        if previous is None and slot > target:
            if seek:
                raise _LandedLate
            previous, previous_slot = frame, target  # nothing before the first frame: it stands for the earlier slots
        while target < last and target < slot:  # `previous` is the last frame whose slot is <= target
            yield target, previous
            target += 1
        if target >= last:
            return
        previous, previous_slot = frame, slot
    # past the last decoded frame: the end rounds up by at most a slot, anything more means frames went missing
    if previous is None or last - 1 - previous_slot > max(1, fps):
        ended = "no frame decoded" if previous is None else f"the last frame is at {previous_slot / fps:.2f} s"
        raise VideoError(f"{info.path}: frames up to {(last - 1) / fps:.2f} s were requested (the video ends at "
                         f"{float(info.end):.2f} s) but {ended}; the file looks truncated or corrupt")
    for k in range(target, last):
        yield k, previous


def iter_frames(path: str | os.PathLike, fps: float, first: int, count: int, info: VideoInfo | None = None,
                threaded: bool = False) -> Iterator[tuple[int, av.VideoFrame]]:
    """Yield (k, source frame of output k) for k in [first, first + count), in order, decoding forward only.

    The same source frame is yielded for several k where no source frame falls in a slot. threaded=True lets FFmpeg
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
        try:
            try:
                yield from _select(container, stream, info, fps, first, last, seek=True)
            except _LandedLate:  # raised before anything was yielded
                yield from _select(container, stream, info, fps, first, last, seek=False)
        except av.error.FFmpegError as error:
            raise VideoError(f"{path}: decoding failed near {first / fps:.2f} s or later ({error})") from error


def frame_to_rgb(frame: av.VideoFrame, height: int | None = None) -> np.ndarray:
    """(H, W, 3) uint8 RGB at the frame's own size; with `height`, first scaled to that height keeping the aspect
    ratio with FFmpeg's bicubic scaler, as SoccerNet made its 224p files from the broadcasts (`scale=-1:224`)."""
    if height is None or frame.height == height:
        return frame.to_ndarray(format="rgb24")
    width = max(1, round(frame.width * height / frame.height))
    return frame.to_ndarray(format="rgb24", width=width, height=height, interpolation="BICUBIC")


def resized_rgb(frame: av.VideoFrame, size: tuple[int, int], height: int | None = None) -> torch.Tensor:
    """(3, size[0], size[1]) uint8: the frame as the official code prepares it, the full RGB frame (first brought to
    `height` by `frame_to_rgb` when given) resized by torchvision's antialiased bilinear resize."""
    rgb = torch.from_numpy(frame_to_rgb(frame, height))[None]  # (1, H, W, 3)
    return resize_frames(rgb, size)[0]


def read_frames(path: str | os.PathLike, fps: float = FPS, first: int = 0, count: int | None = None,
                info: VideoInfo | None = None) -> tuple[torch.Tensor, np.ndarray]:
    """Frames k = first .. first + count - 1 at `fps` as (T, H, W, 3) uint8 RGB at the video's size, and their times
    k / fps (T,). count=None reads to the end of the video; a window that runs past the end is cut at the last frame.
    """
    info = info or probe_video(path)
    if count is None:
        count = info.num_frames(fps) - first
    indices, images = [], []
    last_frame, last_image = None, None
    for k, frame in iter_frames(path, fps, first, count, info):
        if frame is not last_frame:  # one conversion per source frame, however often it is reused
            last_frame, last_image = frame, frame_to_rgb(frame)
        indices.append(k)
        images.append(last_image)
    if not images:
        return torch.zeros((0, info.height, info.width, 3), dtype=torch.uint8), np.zeros(0)
    return torch.from_numpy(np.stack(images)), np.array(indices) / fps


def write_video(path: str | os.PathLike, frames: Iterator[np.ndarray] | np.ndarray, fps: float,
                codec: str = "libx264", gop: int | None = None, options: dict[str, str] | None = None,
                pix_fmt: str = "yuv420p") -> Path:
    """Encode (H, W, 3) uint8 RGB frames with PyAV (no ffmpeg binary). Written to a temporary name, then renamed."""
    with atomic_path(path) as tmp, av.open(str(tmp), "w") as container:
        stream = None
        for image in frames:
            if stream is None:
                stream = container.add_stream(codec, rate=Fraction(fps).limit_denominator(1001))
                stream.height, stream.width = image.shape[:2]
                stream.pix_fmt = pix_fmt
                if gop is not None:
                    stream.codec_context.gop_size = gop  # PyAV ignores libx264's own 'keyint' option
                stream.options = dict(options or {})
            for packet in stream.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="rgb24")):
                container.mux(packet)
        if stream is None:
            raise ValueError(f"{path}: no frame to write")
        for packet in stream.encode():
            container.mux(packet)
    return Path(path)
