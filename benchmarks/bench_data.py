"""Data benchmark: window and clip loading per core, from the original videos, the frame store and JPEG folders.

    python benchmarks/bench_data.py [--minutes 10] [--windows 12] [--clips 200]

Generates one game of the mini-SoccerNet (two halves of --minutes), builds its frame store and a JPEG folder copy,
then, in this single process (one core, torch and PyAV single-threaded), times:
- stage-3 windows: 64 s = 128 frames at 2 fps, random starts, decoded and resized to (128, 224, 224, 3) uint8
  (the store holds 224x224 frames; the others resize while decoding);
- stage-1 clips: 1 s = 2 frames at 2 fps, random starts, at the source's own size (stage 1 crops on the device);
- the ceiling: PyAV decoding the whole original video without any colour conversion, expressed as how many windows'
  worth of source frames (1,600 per 64 s at 25 fps) it decodes per second.
Prints a table and one JSON line `BENCH data {...}` with rates and the store/original ratios.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import av
import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from data.prepare import prepare_store  # noqa: E402
from data.sources import JpegFolderSource, StoreSource, VideoSource  # noqa: E402
from data.synthetic import generate  # noqa: E402
from data.video import probe_video  # noqa: E402

WINDOW_FRAMES = 128


def write_jpeg_folders(source: VideoSource, out: Path, game: str) -> None:
    import torchvision
    for half in (1, 2):
        frames = source.read(game, half, 0, source.num_frames(game, half))
        folder = out / game / str(half)
        folder.mkdir(parents=True, exist_ok=True)
        for index, frame in enumerate(frames):
            torchvision.io.write_jpeg(frame.permute(2, 0, 1).contiguous(), str(folder / f"{index + 1:08d}.jpg"),
                                      quality=95)


def rate(source, game: str, length: int, repeats: int, rng: np.random.Generator) -> float:
    """Reads per second of `length` consecutive frames at random positions of both halves."""
    starts = [(half, int(rng.integers(0, source.num_frames(game, half) - length + 1)))
              for half in rng.integers(1, 3, repeats)]
    begin = time.perf_counter()
    for half, first in starts:
        frames = source.read(game, half, first, length)
        assert frames.shape[0] == length
    return repeats / (time.perf_counter() - begin)


def raw_decode_ceiling(path: Path) -> float:
    """Source frames decoded per second by PyAV alone (no RGB conversion, no seeking)."""
    begin = time.perf_counter()
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        stream.thread_type = "SLICE"
        stream.codec_context.thread_count = 1
        count = sum(1 for _ in container.decode(stream))
    return count / (time.perf_counter() - begin)


def folder_bytes(folder: Path) -> int:
    return sum(path.stat().st_size for path in folder.rglob("*") if path.is_file())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=10.0, help="length of each generated half")
    parser.add_argument("--windows", type=int, default=12, help="64 s windows timed per source")
    parser.add_argument("--clips", type=int, default=200, help="1 s clips timed per source")
    args = parser.parse_args()
    torch.set_num_threads(1)
    rng = np.random.default_rng(0)

    with tempfile.TemporaryDirectory() as tmp:
        root, store, jpegs = Path(tmp) / "videos", Path(tmp) / "store", Path(tmp) / "jpegs"
        game = generate(root, 1, args.minutes * 60, seed=0, progress=False)[0]
        prepare_store(root, store, [game], progress=False)
        video = VideoSource(root)
        write_jpeg_folders(video, jpegs, game)
        window_sources = {"original 25 fps video": VideoSource(root, size=(224, 224)),
                          "frame store (2 fps H.264)": StoreSource(store),
                          "JPEG folders (2 fps)": JpegFolderSource(jpegs, size=(224, 224))}
        clip_sources = {"original 25 fps video": video, "frame store (2 fps H.264)": StoreSource(store),
                        "JPEG folders (2 fps)": JpegFolderSource(jpegs)}
        results = {}
        for name in window_sources:
            results[name] = {"windows_per_s": rate(window_sources[name], game, WINDOW_FRAMES, args.windows, rng),
                             "clips_per_s": rate(clip_sources[name], game, 2, args.clips, rng)}
        source_fps = probe_video(video.path(game, 1)).average_fps
        ceiling = raw_decode_ceiling(video.path(game, 1)) / (WINDOW_FRAMES / 2 * source_fps)
        sizes = {"original 25 fps video": folder_bytes(root / game) // 2,
                 "frame store (2 fps H.264)": folder_bytes(store / game) // 2,
                 "JPEG folders (2 fps)": folder_bytes(jpegs / game) // 2}
        minutes = args.minutes

    print(f"one core, halves of {minutes:g} min, 398x224; windows = 128 frames (64 s), clips = 2 frames (1 s)")
    print(f"{'source':<28} {'windows/s':>10} {'clips/s':>9} {'MB per 45-min half':>19}")
    for name, row in results.items():
        per_half = sizes[name] * 45 / minutes / 1e6
        row["bytes_per_45min_half"] = int(sizes[name] * 45 / minutes)
        print(f"{name:<28} {row['windows_per_s']:10.2f} {row['clips_per_s']:9.1f} {per_half:19.1f}")
    print(f"{'PyAV raw decode ceiling':<28} {ceiling:10.2f}")
    base = results["original 25 fps video"]
    ratios = {"store_vs_original_windows": results["frame store (2 fps H.264)"]["windows_per_s"] / base["windows_per_s"],
              "store_vs_original_clips": results["frame store (2 fps H.264)"]["clips_per_s"] / base["clips_per_s"],
              "jpeg_vs_original_windows": results["JPEG folders (2 fps)"]["windows_per_s"] / base["windows_per_s"]}
    print("ratios: " + ", ".join(f"{key} {value:.2f}x" for key, value in ratios.items()))
    print("BENCH data " + json.dumps({"results": results, "raw_decode_ceiling_windows_per_s": ceiling,
                                      **ratios}))


if __name__ == "__main__":
    main()
