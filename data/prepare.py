"""One-time, resumable conversion of a dataset's videos into the frames the loaders read fast, at any frame rate.

    python -m data.prepare --root /data/soccernet --out /data/soccernet_store [--dataset soccernet_v2]
                           [--split train valid test] [--games FILE] [--resolution 224p] [--format store|jpeg]
                           [--size 224x224|native] [--fps 2] [--workers 8]

Both formats hold exactly the frames the official extraction (`ffmpeg -vf fps=2`) holds: frame k is the source frame
FFmpeg's fps filter picks for output k (`data/video.py`), at `--fps` (default 2, COMEDIAN's; any exact rate: 12.5,
25, 30000/1001). A frame at another size is resized the official way: the full RGB frame, then torchvision's
antialiased bilinear resize. The games and their videos are the dataset's (data/catalog.py: a video per half for
SoccerNet-v2, one per game for Ball Action Spotting, a manifest's files).

- `--format store` (default, what stages 2 and 3 read: `data.source=store`): `<out>/<game>/{1,2}.mkv`, the frames as
  H.264 (CRF 20 without mb-tree, `tune=fastdecode`) with a keyframe every 8 frames, so a 64-second window decodes
  128 small frames plus at most 7 before it; default size 224x224, the model input. H.264 needs even sizes. The same
  frames give the same bytes (STORE_ENCODING).
- `--format jpeg` (what the paper's stage 1 reads: `data.source=frames`, native 398x224 frames to crop from):
  `<out>/<game>/{1,2}/%08d.jpg` numbered from 1, the official layout, encoded by PyAV's MJPEG encoder with the
  official `-q:v 1` (fixed quantiser; libavcodec's minimum of 2 applies, as for the official files); default size
  native. At native size the decoded YUV frame is encoded as it is, as `ffmpeg` does.

Measured speeds, sizes and the error each format adds against the official frames are in docs/DATA.md.

Each half is written under a temporary name and renamed, then `{1,2}.json` (frame count, rate, sizes, source) is written
last, so an interrupted run resumes where it stopped: a half whose JSON exists is skipped. The frames written are
counted against the frames the video holds, so an entry with a JSON is whole. A half that fails is reported with its
file and the others are still converted; the command then lists every failure and exits with status 1.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import dataclasses
import multiprocessing
import os
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
from tqdm import tqdm

from data.catalog import Dataset, SoccerNetDataset, load_dataset
from data.video import (Encoding, VideoError, VideoInfo, VideoWriter, iter_frames, probe_video, reformat,
                        resized_rgb)
from utils.errors import MissingFileError, UserError, run_entry_point
from utils.files import atomic_path, remove_stale_temporaries, write_json
from utils.rates import DEFAULT_FPS  # the official extraction's rate

STORE_FORMAT = "comedian-frame-store-v1"
JPEG_FORMAT = "comedian-jpeg-frames-v1"
STORE_GOP = 8
# mbtree=0: with x264's macroblock-tree rate control, encoding the same frames twice gave different streams, even
# single-threaded (decoded frames of one game's store differed in 2.5% of their values, by up to 9 levels; 2 to 9
# distinct files in 8-12 encodings of 64x64, 224x224 and 398x224 frames, PyAV 18.1's libx264); without it, the same
# bytes every time. CRF 20 without mb-tree gives the files of CRF 17 with it: the same error against the frames
# (1.61 against 1.60 mean levels on generated 224x224 frames) at 6% more bytes.
STORE_ENCODING = Encoding(options={"crf": "20", "preset": "medium", "tune": "fastdecode", "x264-params": "mbtree=0"},
                          gop=STORE_GOP)
FF_QP2LAMBDA = 118  # libavcodec's lambda per quantiser step: `-q:v 1` sets global_quality = 1 x 118
JPEG_QSCALE = 1  # the official extraction's -q:v


class PrepareError(UserError, ValueError):
    """A half that cannot be converted; the message names the file."""


def stored_frame(frame: av.VideoFrame, size: tuple[int, int] | None) -> av.VideoFrame:
    """The frame at `size` (height, width) before encoding: the full RGB frame resized by torchvision, as the
    official code resizes (`data.video.resized_rgb`); the decoded frame itself when it is already at that size."""
    if size is None or (frame.height, frame.width) == size:
        return frame
    resized = resized_rgb(frame, size).permute(1, 2, 0).numpy()  # (h, w, 3)
    return av.VideoFrame.from_ndarray(np.ascontiguousarray(resized), format="rgb24")


@dataclasses.dataclass(frozen=True)
class Preparation:
    """What `prepare` writes: the format (store or jpeg), the frame size (height, width; None: native), the exact
    frame rate, and which of the dataset's videos it reads."""

    kind: str = "store"
    size: tuple[int, int] | None = (224, 224)
    fps: Fraction = DEFAULT_FPS
    resolution: str = "224p"


def _converted(source: Path, info: VideoInfo, size: tuple[int, int],
               fps: Fraction) -> Iterator[tuple[int, av.VideoFrame]]:
    """(k, frame k at `size`) for every output frame of the half at `fps`."""
    last_source, last_converted = None, None
    for index, frame in iter_frames(source, fps, 0, info.num_frames(fps), info):
        if frame is not last_source:  # a source frame repeated over several slots is converted once
            last_source, last_converted = frame, stored_frame(frame, size)
        yield index, last_converted


def _write_store(path: Path, frames: Iterator[tuple[int, av.VideoFrame]], fps: Fraction) -> int:
    """H.264 frames into one .mkv file at `fps`; returns the frames the file holds."""
    with VideoWriter(path, fps, STORE_ENCODING) as writer:
        for index, frame in frames:
            writer.add(reformat(frame, format="yuv420p"), index)
    return probe_video(path).num_frames(fps)


def _write_jpegs(folder: Path, frames: Iterator[tuple[int, av.VideoFrame]], size: tuple[int, int],
                 fps: Fraction) -> int:
    """%08d.jpg files numbered from 1 into one folder, with a fixed quantiser as `-q:v` asks; returns their count."""
    folder.mkdir()
    encoder = av.CodecContext.create("mjpeg", "w")
    encoder.height, encoder.width = size
    encoder.pix_fmt = "yuvj420p"
    encoder.time_base = 1 / fps
    encoder.qscale = True
    encoder.global_quality = JPEG_QSCALE * FF_QP2LAMBDA
    for index, frame in frames:
        frame = reformat(frame, format="yuvj420p")  # limited -> full range, as ffmpeg's auto-inserted scaler does
        frame.pts, frame.time_base = index, 1 / fps
        (folder / f"{index + 1:08d}.jpg").write_bytes(b"".join(bytes(packet) for packet in encoder.encode(frame)))
    encoder.encode(None)
    return sum(1 for name in os.listdir(folder) if name.endswith(".jpg"))


def prepare_half(source: Path, out_dir: Path, half: int, preparation: Preparation) -> dict:
    """Convert one half into `out_dir` (the game's folder of the output); returns the metadata written beside it."""
    info, kind, fps = probe_video(source), preparation.kind, preparation.fps
    num_frames = info.num_frames(fps)
    height, width = preparation.size or (info.height, info.width)
    if kind == "store" and (height % 2 or width % 2):
        raise PrepareError(f"{source}: frames of {width}x{height} cannot be stored as H.264, which needs even "
                           f"sizes; give --size HEIGHTxWIDTH with even numbers, or use --format jpeg")
    target = out_dir / (f"{half}.mkv" if kind == "store" else str(half))
    with atomic_path(target) as tmp:
        frames = _converted(source, info, (height, width), fps)
        stored = _write_store(tmp, frames, fps) if kind == "store" else _write_jpegs(tmp, frames, (height, width), fps)
        if stored != num_frames:
            raise PrepareError(f"{source}: {num_frames} frames expected at {fps} fps, {stored} written; the entry "
                               f"was not kept")
    meta = {"format": STORE_FORMAT if kind == "store" else JPEG_FORMAT, "num_frames": num_frames, "fps": str(fps),
            "width": width, "height": height, "source": str(source), "source_width": info.width,
            "source_height": info.height, "source_duration": info.duration,
            **({"gop": STORE_GOP, "crf": int(STORE_ENCODING.options["crf"])} if kind == "store"
               else {"qscale": JPEG_QSCALE})}
    write_json(out_dir / f"{half}.json", meta, indent=1)
    return meta


def _job(args: tuple[str, str, int, Preparation]) -> str | None:
    """One half in a worker process: None when it was converted, else the message saying why not."""
    source, out_dir, half, preparation = args
    try:
        prepare_half(Path(source), Path(out_dir), half, preparation)
    except (VideoError, PrepareError, FileNotFoundError) as error:  # their messages name the file
        return str(error)
    except (av.error.FFmpegError, OSError) as error:
        return f"{source}: {error}"
    return None


def parse_size(text: str) -> tuple[int, int] | None:
    """'224x224' -> (224, 224) as (height, width); 'native' -> None."""
    if text == "native":
        return None
    try:
        height, width = (int(part) for part in text.lower().split("x"))
    except ValueError:
        raise PrepareError(f"--size {text!r}: expected HEIGHTxWIDTH (e.g. 224x224) or 'native'") from None
    if height <= 0 or width <= 0:
        raise PrepareError(f"--size {text!r}: sizes must be positive")
    return height, width


def prepare(dataset: Dataset, root: str | Path, out: str | Path, games: list[str],
            preparation: Preparation = Preparation(), workers: int = 1) -> int:
    """Convert every half of `games` not yet in `out`. Returns the number of halves converted; raises PrepareError
    listing every half that failed, after converting all the others."""
    root, out, size = Path(root), Path(out), preparation.size
    if preparation.kind == "store" and size is not None and (size[0] % 2 or size[1] % 2):
        raise PrepareError(f"--size {size[0]}x{size[1]}: H.264 needs even sizes (or use --format jpeg)")
    videos = {(game, half): dataset.video_path(root, game, half, preparation.resolution) for game in games
              for half in dataset.halves}
    missing = [str(path) for path in videos.values() if not path.is_file()]
    if missing:
        raise MissingFileError(f"{len(missing)} of {len(videos)} videos are missing:\n  " + "\n  ".join(missing))
    for (game, _), path in videos.items():
        if dataset.declared_rate(game) is not None:
            dataset.check_rate(game, probe_video(path).rate)
    stale = [path for game in games for path in remove_stale_temporaries(out / game)]
    if stale:  # a killed run's partial halves (its live writes are left alone)
        print(f"removed {len(stale)} temporary files of an interrupted run, e.g. {stale[0]}")
    jobs = [(str(path), str(out / game), half, preparation) for (game, half), path in videos.items()
            if not (out / game / f"{half}.json").is_file()]
    kind = preparation.kind
    bar = tqdm(total=len(videos), initial=len(videos) - len(jobs), desc=f"{kind} (halves)",
               disable=None)  # a bar on a terminal only
    failures = []
    if workers <= 1:
        outcomes = map(_job, jobs)
    else:
        # spawned, not forked: a fork of a process whose torch thread pool has run can hang in the child's first resize
        pool = concurrent.futures.ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"))
        outcomes = pool.map(_job, jobs)
    for outcome in outcomes:
        if outcome is not None:
            failures.append(outcome)
        bar.update()
    if workers > 1:
        pool.shutdown()
    bar.close()
    if failures:
        raise PrepareError(f"{len(failures)} of {len(jobs)} halves could not be converted (the others were):\n  "
                           + "\n  ".join(failures))
    return len(jobs)


def parse_fps(text: str) -> Fraction:
    """'2', '12.5', '30000/1001' -> an exact positive frame rate."""
    try:
        fps = Fraction(text)
    except (ValueError, ZeroDivisionError):
        fps = Fraction(0)
    if fps <= 0:
        raise PrepareError(f"--fps {text!r}: expected a positive frame rate, e.g. 2, 12.5 or 30000/1001")
    return fps


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", type=Path, required=True, help="the dataset's root (league/season/game/)")
    parser.add_argument("--out", type=Path, required=True, help="folder to write")
    parser.add_argument("--dataset", default="soccernet_v2", help="a built-in dataset or a manifest file (.json)")
    selection = parser.add_mutually_exclusive_group()
    selection.add_argument("--split", nargs="+", help="official split names (train valid test challenge), games "
                                                      "files or split manifests; default: every game under --root")
    selection.add_argument("--games", help="text file with one league/season/game per line")
    parser.add_argument("--resolution", default="224p", help="which videos to read: 224p or 720p")
    parser.add_argument("--format", dest="kind", choices=("store", "jpeg"), default="store",
                        help="store: H.264 per half (stages 2 and 3); jpeg: %%08d.jpg folders (stage 1)")
    parser.add_argument("--size", default=None,
                        help="frame size HEIGHTxWIDTH or 'native' (default: 224x224 for store, native for jpeg)")
    parser.add_argument("--fps", default=str(DEFAULT_FPS),
                        help=f"frames per second, exact: the runs' data.fps (default {DEFAULT_FPS}; 12.5, 30000/1001)")
    parser.add_argument("--workers", type=int, default=1, help="halves converted in parallel (one core each)")
    args = parser.parse_args(argv)
    dataset = load_dataset(args.dataset, "--dataset")
    preparation = Preparation(args.kind, parse_size(args.size or ("224x224" if args.kind == "store" else "native")),
                              parse_fps(args.fps), args.resolution)
    if args.split or args.games:
        games = list(dict.fromkeys(game for split in (args.split or [args.games])
                                   for game in dataset.games(split, args.root)))
    elif isinstance(dataset, SoccerNetDataset):
        games = dataset.discover(args.root, dataset.video_path("", "", 1, args.resolution).name)
    else:
        raise PrepareError(f"{args.dataset}: name the split manifests to prepare (--split)")
    converted = prepare(dataset, args.root, args.out, games, preparation, args.workers)
    halves = len(games) * len(dataset.halves)
    print(f"{converted} videos converted, {halves - converted} already in {args.out}")


if __name__ == "__main__":
    run_entry_point(main)
