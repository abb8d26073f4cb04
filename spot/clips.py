"""Highlight clips of spotted actions (`evaluate.py spot --clips N`), a reel of them, and browser-playable copies.

A clip asked for [start, end) seconds holds exactly the source frames whose presentation time t is in
start <= t < end, timed from 0. It is written by stream copy when the packets allow it: the first of those frames is
a keyframe and a run of packets that begins at it, in decoding order, holds exactly those frames (so nothing is
decoded that refers to a frame outside the clip). Otherwise, as with most broadcast files whose keyframes are seconds
apart, the clip is decoded and re-encoded (H.264). Both are exact to the frame; the packet table is read once per file
(`data.video.probe_video(index=True)`: demuxing only, no decoding) so the choice costs nothing per clip.

Only the video stream is written: sound is not carried over (the README says so).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from data.video import BROWSER_CODECS, Encoding, VideoInfo, VideoWriter, decode, probe_video
from utils.errors import InvalidInputError
from utils.files import atomic_path

REEL_TIME_BASE = Fraction(1, 90000)  # the reel's clock (MPEG's 90 kHz): fine enough for any source rate
REEL_ENCODING = Encoding(options={"preset": "veryfast", "crf": "20"})  # libx264: near-transparent, a few MB a minute


def frames_in(info: VideoInfo, start: float, end: float) -> np.ndarray:
    """Sorted pts of the frames shown in [start, end) seconds from the stream's start."""
    times = info.seconds(info.packets.pts)
    return np.sort(info.packets.pts[(times >= start - 1e-9) & (times < end - 1e-9)])


def copy_run(info: VideoInfo, frames: np.ndarray) -> slice | None:
    """The packets (decoding order) whose stream copy is exactly `frames`, or None when no such run exists."""
    pts = info.packets.pts
    if len(frames) == 0 or not BROWSER_CODECS.get(info.codec):
        return None
    first = int(np.flatnonzero(pts == frames[0])[0])
    if not info.packets.keyframe[first]:
        return None
    wanted, found = set(frames.tolist()), 0
    for index in range(first, len(pts)):
        if int(pts[index]) not in wanted:
            return None  # a frame outside the clip comes first: cutting here would leave undecodable frames
        found += 1
        if found == len(wanted):
            return slice(first, index + 1)
    return None


def even_size(width: int, height: int) -> tuple[int, int]:
    """H.264 in 4:2:0 needs even sides."""
    return width - width % 2, height - height % 2


def _decoded(path: Path, info: VideoInfo, frames: np.ndarray):
    """The decoded frames whose pts are in `frames` (sorted), in presentation order."""
    wanted = set(frames.tolist())
    for frame in decode(path, info, info.seconds(int(frames[0])), threaded=True):
        pts = frame.pts  # read first: the caller may retime the frame it is given
        if pts in wanted:
            yield frame
        if pts is not None and pts >= frames[-1]:
            return


def _copy(path: Path, out: Path, info: VideoInfo, run: slice, origin: int) -> None:
    """Stream-copy the packets info.packets.pts[run] (decoding order) into the mp4 `out`, retimed to start at pts
    `origin`."""
    wanted = info.packets.pts[run].tolist()
    with av.open(str(path)) as source, atomic_path(out) as tmp, av.open(str(tmp), "w", format="mp4") as target:
        stream = source.streams.video[0]
        copied = target.add_stream_from_template(stream)
        source.seek(wanted[0], stream=stream, backward=True)  # lands on the run's keyframe or an earlier one
        position = 0
        for packet in source.demux(stream):
            if packet.pts is None or (position == 0 and packet.pts != wanted[0]):
                continue  # before the run
            if packet.pts != wanted[position]:
                raise RuntimeError(f"{path}: packet pts {packet.pts} where the index has {wanted[position]}")
            packet.pts -= origin
            packet.dts = None if packet.dts is None else packet.dts - origin
            packet.stream = copied
            target.mux(packet)
            position += 1
            if position == len(wanted):
                return
        raise RuntimeError(f"{path}: the demuxer gave {position} of the {len(wanted)} packets to copy")


class Reel:
    """Frames of several sources on one H.264 stream (at the size and rate of `first`), timed end to end."""

    def __init__(self, out: Path, first: VideoInfo):
        self.width, self.height = even_size(first.width, first.height)
        self.elapsed = Fraction(0)
        self.writer = VideoWriter(out, first.rate.limit_denominator(1001), REEL_ENCODING, REEL_TIME_BASE, "mp4")

    def __enter__(self) -> Reel:
        self.writer.__enter__()
        return self

    def add(self, path: Path, info: VideoInfo, frames: np.ndarray, duration: float, origin: int | None = None):
        """Append the frames (pts in info.time_base), timed from the reel's current end (frame pts minus origin,
        the first frame's by default); then move the end by `duration` seconds (the range asked for, so that the
        reel's clock stays that of the clips)."""
        origin = int(frames[0]) if origin is None else origin
        for frame in _decoded(path, info, frames):
            seconds = Fraction(int(frame.pts - origin)) * info.time_base
            image = frame.reformat(width=self.width, height=self.height, format="yuv420p")
            self.writer.add(image, round((self.elapsed + seconds) / REEL_TIME_BASE))
        self.elapsed += Fraction(duration)

    def __exit__(self, kind, value, traceback) -> bool:
        return self.writer.__exit__(kind, value, traceback)


def write_clip(path: Path, start: float, end: float, out: Path, info: VideoInfo | None = None) -> str:
    """Write the frames of `path` shown in [start, end) seconds to the mp4 `out`; returns 'copied' or 're-encoded'.
    info: the file's probe with its packet index (read here when not given)."""
    info = info or probe_video(path, index=True)
    frames = frames_in(info, start, end)
    if len(frames) == 0:
        raise InvalidInputError(f"{path}: no frame between {start:.2f} s and {end:.2f} s")
    run = copy_run(info, frames)
    if run is not None:
        _copy(path, out, info, run, origin=int(frames[0]))
        return "copied"
    with Reel(out, info) as reel:
        reel.add(path, info, frames, end - start)
    return "re-encoded"


def playable_copy(path: Path, out: Path) -> Path:
    """Re-encode the whole video stream of `path` as H.264 mp4 (what every browser plays), same frames at the same
    times (so that a page's seek lands where it would in the original)."""
    info = probe_video(path, index=True)
    with Reel(out, info) as reel:
        reel.add(path, info, np.sort(info.packets.pts), 0, origin=info.start_pts)
    return out


@dataclass(frozen=True)
class Highlight:
    """One spotted action chosen for a clip, with where its half lies in which file."""
    half: int
    seconds: float  # in the half
    label: str
    confidence: float
    video: Path
    offset: float  # seconds into `video` where the half begins

    def file_name(self) -> str:
        minutes, seconds = divmod(self.seconds, 60)
        label = re.sub(r"[^A-Za-z0-9]+", "-", self.label).strip("-")
        return f"half{self.half}_{int(minutes):02d}m{seconds:04.1f}s_{label}.mp4"


def select_highlights(predictions: list[dict], count: int | None, min_confidence: float | None) -> list[dict]:
    """The `count` most confident predictions at or above `min_confidence` (either may be None), in time order."""
    chosen = [p for p in predictions if min_confidence is None or p["confidence"] >= min_confidence]
    chosen = sorted(chosen, key=lambda p: -p["confidence"])[:count]
    return sorted(chosen, key=lambda p: (int(p["half"]), int(p["position"])))


def merged_ranges(ranges: list[tuple[Path, float, float]]) -> list[tuple[Path, float, float]]:
    """Overlapping (file, start, end) ranges of one file joined, so the reel shows no moment twice; time order kept."""
    merged: list[tuple[Path, float, float]] = []
    for video, start, end in ranges:
        if merged and merged[-1][0] == video and start <= merged[-1][2]:
            merged[-1] = (video, merged[-1][1], max(end, merged[-1][2]))
        else:
            merged.append((video, start, end))
    return merged


def write_highlights(folder: Path, highlights: list[Highlight], before: float, after: float) -> list[dict]:
    """folder/clips/<half>_<time>_<class>.mp4 per highlight and folder/highlights.mp4, the reel in time order.
    Returns per clip: file (relative to folder), start and end in its video, and how it was written."""
    if not highlights:
        return []
    infos = {video: probe_video(video, index=True) for video in dict.fromkeys(h.video for h in highlights)}
    written, ranges = [], []
    with atomic_path(folder / "clips") as clips:  # the whole folder at once: no clip of an earlier run stays beside
        clips.mkdir()
        for highlight in highlights:
            info = infos[highlight.video]
            moment = highlight.offset + highlight.seconds
            start, end = max(moment - before, 0.0), min(moment + after, float(info.end))
            how = write_clip(highlight.video, start, end, clips / highlight.file_name(), info)
            written.append({"file": f"clips/{highlight.file_name()}", "start": start, "end": end, "written": how,
                            "half": highlight.half, "seconds": highlight.seconds, "label": highlight.label})
            ranges.append((highlight.video, start, end))
    with Reel(folder / "highlights.mp4", infos[highlights[0].video]) as reel:
        for video, start, end in merged_ranges(ranges):
            reel.add(video, infos[video], frames_in(infos[video], start, end), end - start)
    return written
