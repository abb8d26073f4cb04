"""One-time, resumable conversion of SoccerNet videos into the 2 fps frame store read by `data.source=store`.

    python -m data.prepare --root /data/soccernet --out /data/soccernet_store [--split train valid test]
                           [--games FILE] [--resolution 224p] [--size 224x224] [--workers 8]

Why a store: the loaders need 2 frames per second, but the 25 fps originals must be decoded whole, 12.5 source frames
per frame kept. The store keeps exactly the 2 fps frames (chosen by timestamp, as the loaders would), already resized
to the model's 224x224 input (the squash every stage applies; stage 1 crops convert their aspect ratios, see
`StoreSource.pixel_aspect`), re-encoded as H.264 (CRF 17, near transparent; `tune=fastdecode`) with a keyframe every
8 frames, so a 64-second window decodes 128 small frames plus at most 7 before it. Measured figures (windows per
second per core, bytes per half) are in docs/DATA.md.

Each half becomes `<out>/<game>/{1,2}.mkv` and `{1,2}.json`. Both are written under temporary names and renamed, the
JSON last, so an interrupted run resumes where it stopped: a half whose JSON exists is skipped.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import os
from fractions import Fraction
from pathlib import Path

import av
from tqdm import tqdm

from data.games import check_games_exist, discover_games, split_games
from data.sources import STORE_FPS
from data.video import iter_frames, probe_video

STORE_FORMAT = "comedian-frame-store-v1"
STORE_GOP = 8
STORE_CRF = "17"


def store_half(source: Path, target_video: Path, target_meta: Path, size: tuple[int, int] | None) -> dict:
    """Encode one half's 2 fps frames into the store (resized to size=(height, width), or native); returns the
    metadata written beside it."""
    info = probe_video(source)
    num_frames = info.num_frames(STORE_FPS)
    height, width = size or (info.height, info.width - info.width % 2)  # H.264 needs even sizes
    target_video.parent.mkdir(parents=True, exist_ok=True)
    tmp = target_video.with_name(f".{target_video.stem}.tmp.mkv")
    with av.open(str(tmp), "w") as container:
        stream = container.add_stream("libx264", rate=Fraction(2, 1))
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.codec_context.gop_size = STORE_GOP
        stream.options = {"crf": STORE_CRF, "preset": "medium", "tune": "fastdecode"}
        for index, frame in iter_frames(source, STORE_FPS, 0, num_frames, info):
            converted = frame.reformat(width=width, height=height, format="yuv420p", interpolation="BILINEAR")
            converted.pts = index
            converted.time_base = Fraction(1, 2)
            for packet in stream.encode(converted):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    os.replace(tmp, target_video)
    meta = {"format": STORE_FORMAT, "num_frames": num_frames, "fps": STORE_FPS, "width": width, "height": height,
            "source": str(source), "source_width": info.width, "source_height": info.height,
            "source_duration": info.duration, "gop": STORE_GOP, "crf": int(STORE_CRF)}
    tmp_meta = target_meta.with_name(f".{target_meta.name}.tmp")
    tmp_meta.write_text(json.dumps(meta, indent=1))
    os.replace(tmp_meta, target_meta)
    return meta


def _job(args: tuple[str, str, str, tuple[int, int] | None]) -> str:
    source, video, meta, size = args
    store_half(Path(source), Path(video), Path(meta), size)
    return source


def parse_size(text: str) -> tuple[int, int] | None:
    """'224x224' -> (224, 224) as (height, width); 'native' -> None."""
    if text == "native":
        return None
    try:
        height, width = (int(part) for part in text.lower().split("x"))
    except ValueError:
        raise ValueError(f"size {text!r}: expected HEIGHTxWIDTH (e.g. 224x224) or 'native'") from None
    if height % 2 or width % 2 or height <= 0 or width <= 0:
        raise ValueError(f"size {text!r}: H.264 needs positive even sizes")
    return height, width


def prepare_store(root: str | Path, out: str | Path, games: list[str], resolution: str = "224p",
                  size: tuple[int, int] | None = (224, 224), workers: int = 1, progress: bool = True) -> int:
    """Convert every half of `games` not yet in the store. Returns the number of halves converted."""
    root, out = Path(root), Path(out)
    for half in (1, 2):
        check_games_exist(root, games, f"{half}_{resolution}.mkv")
    jobs = [(str(root / game / f"{half}_{resolution}.mkv"), str(out / game / f"{half}.mkv"),
             str(out / game / f"{half}.json"), size)
            for game in games for half in (1, 2) if not (out / game / f"{half}.json").is_file()]
    done = 2 * len(games) - len(jobs)
    bar = tqdm(total=2 * len(games), initial=done, desc="frame store (halves)", disable=not progress)
    if workers <= 1:
        for job in jobs:
            _job(job)
            bar.update()
    else:
        with concurrent.futures.ProcessPoolExecutor(workers) as pool:
            for _ in pool.map(_job, jobs):
                bar.update()
    bar.close()
    return len(jobs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", type=Path, required=True, help="SoccerNet root (league/season/game/)")
    parser.add_argument("--out", type=Path, required=True, help="frame store folder to write")
    selection = parser.add_mutually_exclusive_group()
    selection.add_argument("--split", nargs="+", help="official split names (train valid test challenge) or games "
                                                      "files; default: every game folder under --root")
    selection.add_argument("--games", help="text file with one league/season/game per line")
    parser.add_argument("--resolution", default="224p", help="which videos to read: 224p or 720p")
    parser.add_argument("--size", default="224x224", type=parse_size,
                        help="stored frame size HEIGHTxWIDTH (default 224x224, the model input) or 'native'")
    parser.add_argument("--workers", type=int, default=1, help="halves converted in parallel (one core each)")
    args = parser.parse_args()
    if args.split:
        games = [game for split in args.split for game in split_games(split)]
    elif args.games:
        games = split_games(args.games)
    else:
        games = discover_games(args.root, f"1_{args.resolution}.mkv")
    converted = prepare_store(args.root, args.out, games, args.resolution, args.size, args.workers)
    print(f"{converted} halves converted, {2 * len(games) - converted} already in {args.out}")


if __name__ == "__main__":
    main()
