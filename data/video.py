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

This module is the project's one video layer: one probe (`probe_video`: size, exact frame rate, real length, and on
request the packet table), one seek-and-decode (`decode`), one H.264 writer (`VideoWriter`). Everything else (the
frame store, the clips, the spot page, the generated data) keeps only its own policy.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import math
import os
import threading
from collections.abc import Callable, Iterator
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import torch
from av.video.reformatter import VideoReformatter

from data.augment import resize_frames
from utils.errors import MissingFileError, UserError
from utils.files import atomic_path

SEEK_MARGIN_S = 1.0  # seek this far before the first wanted frame: some demuxers land after the requested time
TAIL_SECONDS = 5.0  # probing the real end demuxes the packets of the last few seconds
TRUNCATION_TOLERANCE_S = 1.5  # container duration vs the end of the last video frame (audio may run a little longer)
SOCCERNET_HEIGHT = 224  # SoccerNet's "224p" files: the broadcast scaled to this height
# What Chromium, Firefox and Safari all play: containers by FFmpeg's demuxer name, and per codec whether a stream copy
# of it into mp4 plays too (FFmpeg's mp4 muxer does not take VP8, and VP9 in mp4 is not played everywhere)
BROWSER_CONTAINERS = {"mov,mp4,m4a,3gp,3g2,mj2", "matroska,webm"}
BROWSER_CODECS = {"h264": True, "av1": True, "vp9": False, "vp8": False}


class VideoError(UserError, RuntimeError):
    """A video that cannot be opened or decoded as requested; the message names the file and what failed."""


@dataclasses.dataclass(frozen=True)
class PacketIndex:
    """The video packets of a file in decoding order (demuxed, not decoded)."""

    pts: np.ndarray  # (P,) int64, in the stream's time base
    keyframe: np.ndarray  # (P,) bool


@dataclasses.dataclass(frozen=True)
class VideoInfo:
    path: str
    container: str  # FFmpeg's name of the format ("matroska,webm", "mov,mp4,m4a,3gp,3g2,mj2", "avi", ...)
    codec: str  # of the first video stream
    duration: float  # seconds, as the container states it
    end: Fraction  # seconds from the first frame to the end of the last one, read off the last packets
    width: int
    height: int
    # frames per second, exact: the container's average rate, else its guessed rate, else measured from the packets'
    # timestamps (the one fallback, for files that state no rate); frame selection itself uses timestamps
    rate: Fraction
    start_pts: int  # the stream's first timestamp, subtracted from every timestamp
    time_base: Fraction
    rotation: int = 0  # degrees counter-clockwise the file asks players to turn its frames; frames are read as stored
    packets: PacketIndex | None = None  # every packet, when probed with index=True

    @property
    def browser_playable(self) -> bool:
        return self.container in BROWSER_CONTAINERS and self.codec in BROWSER_CODECS

    def seconds(self, pts: np.ndarray | int) -> np.ndarray | float:
        """Seconds from the stream's start of timestamps in its time base (floats, for comparisons)."""
        return (pts - self.start_pts) * float(self.time_base)

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


def _packets(container: av.container.InputContainer, stream, from_pts: int | None) -> list[av.Packet]:
    """The video packets from the keyframe at or before `from_pts` on (from the start when None), demuxed only."""
    if from_pts is not None:
        container.seek(from_pts, stream=stream, backward=True, any_frame=False)
    return [packet for packet in container.demux(stream) if packet.pts is not None]


def _measured_rate(pts: list[int], time_base: Fraction) -> Fraction | None:
    """Frames per second from the median gap between consecutive timestamps, for a file that states no rate."""
    gaps = np.diff(np.unique(np.asarray(pts, np.int64)))
    return None if len(gaps) == 0 else (1 / (int(np.median(gaps)) * time_base)).limit_denominator(1001)


def probe_video(path: str | os.PathLike, index: bool = False) -> VideoInfo:
    """Container, codec, size, exact rate and real length of the first video stream; with index=True, also every
    packet's timestamp and keyframe flag (one demux of the whole file, no decoding: 0.07 s for a 10-minute half).

    Without the index, the length is read off the last packets (a seek near the end, then demuxing without decoding),
    not taken from the container's header: a file cut short keeps its header's duration. A file whose frames stop
    well before the duration its container states is an error naming both.
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
            tail = None if index or duration is None else start_pts + int((duration - TAIL_SECONDS) / time_base)
            packets = _packets(container, stream, tail if tail and tail > start_pts else None)
            if not packets and tail is not None:  # the seek went past the data: read from the start
                container.seek(0, stream=stream)
                packets = _packets(container, stream, None)
        except av.error.FFmpegError as error:
            raise VideoError(f"{path}: cannot read to the end of the file ({error})") from error
        if not packets:
            raise VideoError(f"{path}: the video stream holds no frame")
        end = (max(packet.pts + (packet.duration or 0) for packet in packets) - start_pts) * time_base
        if duration is None:
            duration = float(end)
        elif float(end) < duration - TRUNCATION_TOLERANCE_S:
            raise VideoError(f"{path}: the container says {duration:.2f} s but its video frames stop at "
                             f"{float(end):.2f} s; the file looks truncated (copy or convert it again)")
        rate = stream.average_rate or stream.guessed_rate or _measured_rate([p.pts for p in packets], time_base)
        if not rate:
            raise VideoError(f"{path}: the file states no frame rate and holds too few frames to measure one")
        rotation = _rotation(container, stream)
        if rotation and str(path) not in _WARNED_ROTATION:
            _WARNED_ROTATION.add(str(path))
            logging.getLogger("comedian").warning(
                f"{path}: the file asks players to turn its frames {rotation} degrees; they are read as stored, not "
                f"turned (re-encode it with the rotation applied if the pitch shows sideways)")
        table = PacketIndex(np.asarray([p.pts for p in packets], np.int64),
                            np.asarray([p.is_keyframe for p in packets], bool)) if index else None
        return VideoInfo(str(path), container.format.name, stream.codec_context.name, float(duration), end,
                         stream.codec_context.width, stream.codec_context.height, Fraction(rate), start_pts,
                         time_base, rotation, table)


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


def decode(path: str | os.PathLike, info: VideoInfo, from_seconds: float = 0.0,
           threaded: bool = False) -> Iterator[av.VideoFrame]:
    """Every frame of the video from the keyframe at or before from_seconds - SEEK_MARGIN_S on, in presentation
    order. threaded=True lets FFmpeg decode on several threads (thread_type AUTO): for one long sequential read on a
    machine with spare cores, not for data-loader workers, which already use one core each."""
    with _open(path) as container:
        stream = container.streams.video[0]
        if threaded:
            stream.thread_type = "AUTO"
        target = from_seconds - SEEK_MARGIN_S
        try:
            container.seek(info.start_pts + (int(target / info.time_base) if target > 0 else 0), stream=stream,
                           backward=True, any_frame=False)
            yield from container.decode(stream)
        except av.error.FFmpegError as error:
            raise VideoError(f"{path}: decoding failed near {max(from_seconds, 0):.2f} s or later ({error})") from error


def frame_at(path: str | os.PathLike, seconds: float, info: VideoInfo | None = None) -> av.VideoFrame:
    """The frame on screen at `seconds` from the stream's start: the last one whose time is not later (the first
    frame for an earlier time)."""
    info = info or probe_video(path)
    shown = None
    for frame in decode(path, info, seconds):
        if frame.pts is None:
            continue
        if shown is not None and info.seconds(frame.pts) > seconds + 1e-9:
            break
        shown = frame
    if shown is None:
        raise VideoError(f"{path}: no frame at {seconds:.2f} s")
    return shown


def _select(frames: Iterator[av.VideoFrame], info: VideoInfo, fps: float, first: int, last: int,
            seeked: bool) -> Iterator[tuple[int, av.VideoFrame]]:
    """Outputs first .. last - 1 from decoded `frames` (which start at a keyframe before `first` if `seeked`)."""
    target, previous, previous_slot = first, None, -1
    for frame in frames:
        if frame.pts is None:
            continue
        slot = info.slot(frame.pts, fps)
        if previous is None and slot > target:
            if seeked:
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
        ended = "no frame decoded" if previous is None else f"the last frame is at {float(previous_slot / fps):.2f} s"
        raise VideoError(f"{info.path}: frames up to {float((last - 1) / fps):.2f} s were requested (the video ends at "
                         f"{float(info.end):.2f} s) but {ended}; the file looks truncated or corrupt")
    for k in range(target, last):
        yield k, previous


def iter_frames(path: str | os.PathLike, fps: float, first: int, count: int, info: VideoInfo | None = None,
                threaded: bool = False) -> Iterator[tuple[int, av.VideoFrame]]:
    """Yield (k, source frame of output k) for k in [first, first + count), in order, decoding forward only.

    The same source frame is yielded for several k where no source frame falls in a slot. threaded: as `decode`.
    """
    info = info or probe_video(path)
    last = min(first + count, info.num_frames(fps))
    if first >= last:
        return
    try:
        yield from _select(decode(path, info, first / fps, threaded), info, fps, first, last, seeked=first > 0)
    except _LandedLate:  # raised before anything was yielded
        yield from _select(decode(path, info, 0.0, threaded), info, fps, first, last, seeked=False)


_REFORMATTERS = threading.local()


def reformat(frame: av.VideoFrame, **kwargs) -> av.VideoFrame:
    """`frame.reformat(**kwargs)` through one swscale context per thread, kept from frame to frame: PyAV's
    `frame.reformat` and `to_ndarray(format=...)` build a new context for every frame, which costs 3x the conversion
    itself at 224p (0.57 against 0.15 ms for 398x224 to RGB here); the pixels are the same bytes."""
    if not hasattr(_REFORMATTERS, "reformatter"):
        _REFORMATTERS.reformatter = VideoReformatter()
    return _REFORMATTERS.reformatter.reformat(frame, **kwargs)


def frame_to_rgb(frame: av.VideoFrame, height: int | None = None) -> np.ndarray:
    """(H, W, 3) uint8 RGB at the frame's own size; with `height`, first scaled to that height keeping the aspect
    ratio with FFmpeg's bicubic scaler, as SoccerNet made its 224p files from the broadcasts (`scale=-1:224`)."""
    if height is None or frame.height == height:
        return reformat(frame, format="rgb24").to_ndarray()
    width = max(1, round(frame.width * height / frame.height))
    return reformat(frame, format="rgb24", width=width, height=height, interpolation="BICUBIC").to_ndarray()


def resized_rgb(frame: av.VideoFrame, size: tuple[int, int], height: int | None = None) -> torch.Tensor:
    """(3, size[0], size[1]) uint8: the frame as the official code prepares it, the full RGB frame (first brought to
    `height` by `frame_to_rgb` when given) resized by torchvision's antialiased bilinear resize."""
    rgb = torch.from_numpy(frame_to_rgb(frame, height))[None]  # (1, H, W, 3)
    return resize_frames(rgb, size)[0]


def read_frames(path: str | os.PathLike, fps: float, first: int = 0, count: int | None = None,
                info: VideoInfo | None = None,
                pixels: Callable[[av.VideoFrame], np.ndarray] = frame_to_rgb) -> tuple[torch.Tensor, np.ndarray]:
    """Frames k = first .. first + count - 1 at `fps` as (T, H, W, 3) uint8 RGB at the video's size, and their times
    k / fps (T,). count=None reads to the end of the video; a window that runs past the end is cut at the last frame.
    pixels: what each source frame becomes (another layout: the store's YUV planes, data/sources.py).
    """
    info = info or probe_video(path)
    if count is None:
        count = info.num_frames(fps) - first
    indices, images = [], []
    last_frame, last_image = None, None
    for k, frame in iter_frames(path, fps, first, count, info):
        if frame is not last_frame:  # one conversion per source frame, however often it is reused
            last_frame, last_image = frame, pixels(frame)
        indices.append(k)
        images.append(last_image)
    if not images:
        return torch.zeros((0, info.height, info.width, 3), dtype=torch.uint8), np.zeros(0)
    return torch.from_numpy(np.stack(images)), np.array(indices) / float(fps)


@dataclasses.dataclass(frozen=True)
class Encoding:
    """How VideoWriter encodes: the codec, its options, the keyframe interval and the pixel format."""

    codec: str = "libx264"
    options: dict[str, str] = dataclasses.field(default_factory=dict)
    gop: int | None = None  # frames between keyframes (PyAV ignores libx264's own 'keyint' option)
    pix_fmt: str = "yuv420p"


class VideoWriter:
    """The project's one video writer: one encoded stream into a file named `path`, written under a temporary name
    and renamed when the `with` block ends without error (utils/files.py). The stream takes the size of the first
    frame; frames are av.VideoFrames or (H, W, 3) uint8 RGB arrays. With `time_base`, the encoder counts in it and
    `add(frame, pts)` times a frame in it (a reel of several sources); without it, in 1 / rate."""

    def __init__(self, path: str | os.PathLike, rate: Fraction, encoding: Encoding = Encoding(),
                 time_base: Fraction | None = None, container_format: str | None = None):
        self.path, self.rate, self.encoding = Path(path), Fraction(rate), encoding
        self.time_base, self.container_format = time_base, container_format
        self.stream = None

    def __enter__(self) -> VideoWriter:
        self._files = contextlib.ExitStack()
        tmp = self._files.enter_context(atomic_path(self.path))
        # bitexact: no random segment id and no date in the file, so that the same frames give the same bytes
        self.container = self._files.enter_context(av.open(str(tmp), "w", format=self.container_format,
                                                           container_options={"fflags": "+bitexact"}))
        return self

    def add(self, frame: av.VideoFrame | np.ndarray, pts: int | None = None) -> None:
        if isinstance(frame, np.ndarray):
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")
        if self.stream is None:
            self.stream = self.container.add_stream(self.encoding.codec, rate=self.rate)
            self.stream.height, self.stream.width = frame.height, frame.width
            self.stream.pix_fmt = self.encoding.pix_fmt
            if self.time_base is not None:
                self.stream.codec_context.time_base = self.time_base
            if self.encoding.gop is not None:
                self.stream.codec_context.gop_size = self.encoding.gop  # PyAV ignores libx264's 'keyint' option
            self.stream.options = dict(self.encoding.options)
        if pts is not None:
            frame.pts, frame.time_base = pts, self.time_base or 1 / self.rate
        for packet in self.stream.encode(frame):
            self.container.mux(packet)

    def __exit__(self, kind, value, traceback) -> bool:
        if kind is None:
            try:
                if self.stream is None:
                    raise ValueError(f"{self.path}: no frame to write")
                for packet in self.stream.encode():  # flush the encoder
                    self.container.mux(packet)
            except BaseException as error:
                self._files.__exit__(type(error), error, error.__traceback__)  # the temporary file goes
                raise
        return self._files.__exit__(kind, value, traceback)  # closes the file, then renames it into place


def write_video(path: str | os.PathLike, frames: Iterator[np.ndarray] | np.ndarray, fps: float,
                codec: str = "libx264", gop: int | None = None, options: dict[str, str] | None = None,
                pix_fmt: str = "yuv420p") -> Path:
    """Encode (H, W, 3) uint8 RGB frames at `fps` (PyAV, no ffmpeg binary), atomically."""
    with VideoWriter(path, Fraction(fps).limit_denominator(1001), Encoding(codec, dict(options or {}), gop,
                                                                            pix_fmt)) as writer:
        for image in frames:
            writer.add(image)
    return Path(path)
