"""One-time, resumable conversion of SoccerNet videos into the FPS frames (utils/rates.py) the loaders read fast.

    python -m data.prepare --root /data/soccernet --out /data/soccernet_store [--split train valid test]
                           [--games FILE] [--resolution 224p] [--format store|jpeg] [--size 224x224|native]
                           [--workers 8]

Both formats hold exactly the frames the official extraction (`ffmpeg -vf fps=2`) holds: frame k is the source frame
FFmpeg's fps filter picks for output k (`data/video.py`). A frame at another size is resized the official way: the
full RGB frame, then torchvision's antialiased bilinear resize.

- `--format store` (default, what stages 2 and 3 read: `data.source=store`): `<out>/<game>/{1,2}.mkv`, the frames as
  H.264 (CRF 17, `tune=fastdecode`) with a keyframe every 8 frames, so a 64-second window decodes 128 small frames
  plus at most 7 before it; default size 224x224, the model input. H.264 needs even sizes.
- `--format jpeg` (what the paper's stage 1 reads: `data.source=frames`, native 398x224 frames to crop from):
  `<out>/<game>/{1,2}/%08d.jpg` numbered from 1, the official layout, encoded by PyAV's MJPEG encoder with the
  official `-q:v 1` (fixed quantiser; libavcodec's minimum of 2 applies, as for the official files); default size
  native. At native size the decoded YUV frame is encoded as it is, as `ffmpeg` does.

Measured speeds, sizes and the error each format adds against the official frames are in docs/DATA.md.

Each half is written under a temporary name and renamed, then `{1,2}.json` (frame count, sizes, source) is written
last, so an interrupted run resumes where it stopped: a half whose JSON exists is skipped. The frames written are
counted against the frames the video holds, so an entry with a JSON is whole. A half that fails is reported with its
file and the others are still converted; the command then lists every failure and exits with status 1.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import multiprocessing
import os
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
from tqdm import tqdm

from data.games import check_games_exist, discover_games, split_games
from data.video import Encoding, VideoError, VideoInfo, VideoWriter, iter_frames, probe_video, resized_rgb
from utils.errors import UserError, run_entry_point
from utils.files import atomic_path, write_json
from utils.rates import FPS  # the official extraction's rate

STORE_FORMAT = "comedian-frame-store-v1"
JPEG_FORMAT = "comedian-jpeg-frames-v1"
STORE_GOP = 8
STORE_ENCODING = Encoding(options={"crf": "17", "preset": "medium", "tune": "fastdecode"}, gop=STORE_GOP)
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


def _converted(source: Path, info: VideoInfo, size: tuple[int, int]) -> Iterator[tuple[int, av.VideoFrame]]:
    """(k, frame k at `size`) for every output frame of the half."""
    last_source, last_converted = None, None
    for index, frame in iter_frames(source, FPS, 0, info.num_frames(FPS), info):
        if frame is not last_source:  # a source frame repeated over several slots is converted once
            last_source, last_converted = frame, stored_frame(frame, size)
        yield index, last_converted


def _write_store(path: Path, frames: Iterator[tuple[int, av.VideoFrame]]) -> int:
    """H.264 frames into one .mkv file; returns the frames the file holds."""
    with VideoWriter(path, Fraction(FPS), STORE_ENCODING) as writer:
        for index, frame in frames:
            writer.add(frame.reformat(format="yuv420p"), index)
    return probe_video(path).num_frames(FPS)


def _write_jpegs(folder: Path, frames: Iterator[tuple[int, av.VideoFrame]], size: tuple[int, int]) -> int:
    """%08d.jpg files numbered from 1 into one folder, with a fixed quantiser as `-q:v` asks; returns their count."""
    folder.mkdir()
    encoder = av.CodecContext.create("mjpeg", "w")
    encoder.height, encoder.width = size
    encoder.pix_fmt = "yuvj420p"
    encoder.time_base = Fraction(1, FPS)
    encoder.qscale = True
    encoder.global_quality = JPEG_QSCALE * FF_QP2LAMBDA
    for index, frame in frames:
        frame = frame.reformat(format="yuvj420p")  # limited -> full range, as ffmpeg's auto-inserted scaler does
        frame.pts, frame.time_base = index, Fraction(1, FPS)
        (folder / f"{index + 1:08d}.jpg").write_bytes(b"".join(bytes(packet) for packet in encoder.encode(frame)))
    encoder.encode(None)
    return sum(1 for name in os.listdir(folder) if name.endswith(".jpg"))


def prepare_half(source: Path, out_dir: Path, half: int, size: tuple[int, int] | None, kind: str = "store") -> dict:
    """Convert one half into `out_dir` (the game's folder of the output); returns the metadata written beside it."""
    info = probe_video(source)
    num_frames = info.num_frames(FPS)
    height, width = size or (info.height, info.width)
    if kind == "store" and (height % 2 or width % 2):
        raise PrepareError(f"{source}: frames of {width}x{height} cannot be stored as H.264, which needs even "
                           f"sizes; give --size HEIGHTxWIDTH with even numbers, or use --format jpeg")
    target = out_dir / (f"{half}.mkv" if kind == "store" else str(half))
    with atomic_path(target) as tmp:
        frames = _converted(source, info, (height, width))
        stored = _write_store(tmp, frames) if kind == "store" else _write_jpegs(tmp, frames, (height, width))
        if stored != num_frames:
            raise PrepareError(f"{source}: {num_frames} frames expected at {FPS} fps, {stored} written; the entry "
                               f"was not kept")
    meta = {"format": STORE_FORMAT if kind == "store" else JPEG_FORMAT, "num_frames": num_frames, "fps": FPS,
            "width": width, "height": height, "source": str(source), "source_width": info.width,
            "source_height": info.height, "source_duration": info.duration,
            **({"gop": STORE_GOP, "crf": int(STORE_ENCODING.options["crf"])} if kind == "store"
               else {"qscale": JPEG_QSCALE})}
    write_json(out_dir / f"{half}.json", meta, indent=1)
    return meta


def _job(args: tuple[str, str, int, tuple[int, int] | None, str]) -> str | None:
    """One half in a worker process: None when it was converted, else the message saying why not."""
    source, out_dir, half, size, kind = args
    try:
        prepare_half(Path(source), Path(out_dir), half, size, kind)
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


def prepare(root: str | Path, out: str | Path, games: list[str], resolution: str = "224p",
            size: tuple[int, int] | None = (224, 224), kind: str = "store", workers: int = 1) -> int:
    """Convert every half of `games` not yet in `out`. Returns the number of halves converted; raises PrepareError
    listing every half that failed, after converting all the others."""
    root, out = Path(root), Path(out)
    if kind == "store" and size is not None and (size[0] % 2 or size[1] % 2):
        raise PrepareError(f"--size {size[0]}x{size[1]}: H.264 needs even sizes (or use --format jpeg)")
    for half in (1, 2):
        check_games_exist(root, games, f"{half}_{resolution}.mkv")
    jobs = [(str(root / game / f"{half}_{resolution}.mkv"), str(out / game), half, size, kind)
            for game in games for half in (1, 2) if not (out / game / f"{half}.json").is_file()]
    bar = tqdm(total=2 * len(games), initial=2 * len(games) - len(jobs), desc=f"{kind} (halves)",
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


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", type=Path, required=True, help="SoccerNet root (league/season/game/)")
    parser.add_argument("--out", type=Path, required=True, help="folder to write")
    selection = parser.add_mutually_exclusive_group()
    selection.add_argument("--split", nargs="+", help="official split names (train valid test challenge) or games "
                                                      "files; default: every game folder under --root")
    selection.add_argument("--games", help="text file with one league/season/game per line")
    parser.add_argument("--resolution", default="224p", help="which videos to read: 224p or 720p")
    parser.add_argument("--format", dest="kind", choices=("store", "jpeg"), default="store",
                        help="store: H.264 per half (stages 2 and 3); jpeg: %%08d.jpg folders (stage 1)")
    parser.add_argument("--size", default=None,
                        help="frame size HEIGHTxWIDTH or 'native' (default: 224x224 for store, native for jpeg)")
    parser.add_argument("--workers", type=int, default=1, help="halves converted in parallel (one core each)")
    args = parser.parse_args(argv)
    size = parse_size(args.size or ("224x224" if args.kind == "store" else "native"))
    if args.split:
        games = [game for split in args.split for game in split_games(split, args.root)]
    elif args.games:
        games = split_games(args.games, args.root)
    else:
        games = discover_games(args.root, f"1_{args.resolution}.mkv")
    converted = prepare(args.root, args.out, games, args.resolution, size, args.kind, args.workers)
    print(f"{converted} halves converted, {2 * len(games) - converted} already in {args.out}")


if __name__ == "__main__":
    run_entry_point(main)
