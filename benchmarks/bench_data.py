"""Data benchmark: stage-1 clips and stage-2/3 windows per second per core, from every frame source.

    python benchmarks/bench_data.py [--minutes 10] [--windows 12] [--clips 300]

Generates one game of the mini-SoccerNet (two halves of --minutes, 398x224 at 25 fps like SoccerNet's 224p files),
writes it with `python -m data.prepare` in each format, then, in this single process (one core: torch and PyAV
single-threaded), times what a loader worker does, through the datasets themselves:
- stage-1 clips (`ClipPairDataset`): 1 s = 2 frames at a random place, two random resized crops to 224x224 (the
  paper's scale 0.2-1 and ratio 1.33-2.21 of the native frame);
- stage-2/3 windows (`WindowDataset`): 64 s = 128 frames at a random place, resized to (128, 3, 224, 224) uint8;
- the ceiling: PyAV decoding the whole original video without any colour conversion, as windows' worth of source
  frames (1,600 per 64 s at 25 fps) per second.
- stage-2/3 windows from the 224x224 store as YUV 4:2:0 planes (`WindowDataset(yuv420=True)`, the default for a
  store at the model's size), and what their conversion to RGB costs per window on this CPU (data/colour.py);
- Ball Action Spotting windows: the same 25 fps source in a 224x224 store at 12.5 fps, windows of 128 frames
  (10.24 s: the 64 tokens of a v2 window), RGB and YUV planes, against the 2 fps store's 64-s windows;
- stage-1 clips from the JPEG folders sent encoded (`ClipPairDataset(encoded=True)`, what a GPU run does), and what
  decoding a batch of them in one call and cropping costs per clip on this CPU (data/jpeg_batches.py).
Sources: the original video; the store at 224x224 (stages 2 and 3); the store at native size; JPEG folders at native
size (`--format jpeg`, the official layout and quality). Prints a table and one JSON line `BENCH data {...}` with
every rate and its ratio to the original video and to the 224x224 store, all measured in this run.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from data.colour import batch_frames  # noqa: E402
from data.jpeg_batches import clip_views, collate_encoded  # noqa: E402
from data.datasets import ClipPairDataset, WindowDataset  # noqa: E402
from data.catalog import BUILT_IN  # noqa: E402
from data.prepare import Preparation, prepare  # noqa: E402
from data.samplers import Segment  # noqa: E402
from utils.plan import Sample  # noqa: E402
from data.sources import JpegFolderSource, StoreSource, VideoSource  # noqa: E402
from data.synthetic import generate  # noqa: E402
from data.video import probe_video  # noqa: E402
from utils.rates import DEFAULT_FPS, FRAMES_PER_TOKEN  # noqa: E402

V2 = BUILT_IN["soccernet_v2"]

FPS = int(DEFAULT_FPS)  # SoccerNet-v2's rate: the paper's windows
WINDOW_FRAMES = 64 * FPS  # a 64-second window
CLIP_FRAMES = FRAMES_PER_TOKEN  # a 1-second clip
BAS_FPS = Fraction(25, 2)  # Ball Action Spotting's rate: 128 frames are 10.24 s


def rate(dataset, source, game: str, length: int, repeats: int, rng: np.random.Generator) -> float:
    """Samples per second of `length` frames at random places of both halves, through `dataset`."""
    segments = [Segment(game, int(half), int(rng.integers(0, source.num_frames(game, int(half)) - length + 1)))
                for half in rng.integers(1, 3, repeats)]
    dataset[segments[0]]  # opens files, fills caches
    begin = time.perf_counter()
    for segment in segments:
        dataset[segment]
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


def conversion_ms(dataset: WindowDataset, segment: Segment, repeats: int = 3) -> float:
    """Milliseconds to convert one window's YUV planes to RGB on this CPU (data/colour.py: what the main process
    does per batch when there is no GPU; on a GPU it is negligible)."""
    planes = {key: value[None] for key, value in dataset[segment].items()}
    begin = time.perf_counter()
    for _ in range(repeats):
        batch_frames(planes, torch.device("cpu"))
    return (time.perf_counter() - begin) / repeats * 1000


def decode_ms(dataset: ClipPairDataset, game: str, rng: np.random.Generator, clips: int = 64) -> float:
    """Milliseconds per clip to decode a batch of `clips` encoded clips in one call and crop their views, on this CPU
    (data/jpeg_batches.py: on a GPU, nvJPEG does it)."""
    items = [dataset[Sample(Segment(game, int(half), int(rng.integers(0, 100))), int(seed))]
             for half, seed in zip(rng.integers(1, 3, clips), rng.integers(0, 2**31, clips))]
    batch = collate_encoded(items)
    begin = time.perf_counter()
    clip_views(batch, torch.device("cpu"), 224)
    return (time.perf_counter() - begin) / clips * 1000


def folder_bytes(folder: Path) -> int:
    return sum(path.stat().st_size for path in folder.rglob("*") if path.is_file())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=10.0, help="length of each generated half")
    parser.add_argument("--windows", type=int, default=12, help="64 s windows timed per source")
    parser.add_argument("--clips", type=int, default=300, help="1 s clips timed per source")
    args = parser.parse_args()
    torch.set_num_threads(1)
    rng = np.random.default_rng(0)

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        root = tmp / "videos"
        game = generate(root, 1, args.minutes * 60, seed=0)[0]
        prepare(V2, root, tmp / "store224", [game], Preparation(size=(224, 224)))
        prepare(V2, root, tmp / "store_native", [game], Preparation(size=None))
        prepare(V2, root, tmp / "jpeg_native", [game], Preparation("jpeg", size=None))
        sources = {"original 25 fps video": VideoSource(V2, root),
                   "store 224x224 (H.264)": StoreSource(tmp / "store224"),
                   "store native (H.264)": StoreSource(tmp / "store_native"),
                   "JPEG native (-q:v 1)": JpegFolderSource(tmp / "jpeg_native")}
        results = {}
        for name, source in sources.items():
            clips = ClipPairDataset(source, 224)
            windows = WindowDataset(source, WINDOW_FRAMES, 224)
            results[name] = {"clips_per_s": rate(clips, source, game, CLIP_FRAMES, args.clips, rng),
                             "windows_per_s": rate(windows, source, game, WINDOW_FRAMES, args.windows, rng)}
        store = sources["store 224x224 (H.264)"]
        yuv_windows = WindowDataset(store, WINDOW_FRAMES, 224, yuv420=True)
        planes = {"windows_per_s": rate(yuv_windows, store, game, WINDOW_FRAMES, args.windows, rng),
                  "conversion_ms_per_window": conversion_ms(yuv_windows, Segment(game, 1, 0))}
        prepare(V2, root, tmp / "store224_bas", [game], Preparation(size=(224, 224), fps=BAS_FPS))
        bas_store = StoreSource(tmp / "store224_bas", BAS_FPS)
        bas = {"windows_per_s": rate(WindowDataset(bas_store, WINDOW_FRAMES, 224), bas_store, game, WINDOW_FRAMES,
                                     args.windows, rng),
               "yuv420_windows_per_s": rate(WindowDataset(bas_store, WINDOW_FRAMES, 224, yuv420=True), bas_store,
                                            game, WINDOW_FRAMES, args.windows, rng)}
        jpeg = sources["JPEG native (-q:v 1)"]
        encoded_clips = ClipPairDataset(jpeg, 224, encoded=True)
        encoded = {"clips_per_s": rate(encoded_clips, jpeg, game, CLIP_FRAMES, args.clips, rng),
                   "decode_ms_per_clip": decode_ms(encoded_clips, game, rng)}
        video = sources["original 25 fps video"]
        source_fps = float(probe_video(video.path(game, 1)).rate)
        ceiling = raw_decode_ceiling(video.path(game, 1)) / (WINDOW_FRAMES / FPS * source_fps)
        folders = {"original 25 fps video": root / game, "store 224x224 (H.264)": tmp / "store224" / game,
                   "store native (H.264)": tmp / "store_native" / game,
                   "JPEG native (-q:v 1)": tmp / "jpeg_native" / game}
        for name, folder in folders.items():
            results[name]["mb_per_45min_half"] = folder_bytes(folder) / 2 * 45 / args.minutes / 1e6

    original, store = results["original 25 fps video"], results["store 224x224 (H.264)"]
    for row in results.values():
        for key in ("clips_per_s", "windows_per_s"):
            row[f"{key}_vs_original"] = row[key] / original[key]
            row[f"{key}_vs_store224"] = row[key] / store[key]
    print(f"one core, halves of {args.minutes:g} min, 398x224 25 fps source; clips = 2 frames + two 224x224 random "
          f"resized crops; windows = 128 frames resized to 224x224")
    print(f"{'source':<24} {'clips/s':>8} {'vs store224':>11} {'windows/s':>10} {'vs original':>11} {'MB/45-min':>10}")
    for name, row in results.items():
        print(f"{name:<24} {row['clips_per_s']:8.1f} {row['clips_per_s_vs_store224']:10.2f}x "
              f"{row['windows_per_s']:10.2f} {row['windows_per_s_vs_original']:10.2f}x {row['mb_per_45min_half']:10.1f}")
    print(f"{'PyAV raw decode ceiling':<24} {'':>8} {'':>11} {ceiling:10.2f}")
    planes["vs_store224_rgb"] = planes["windows_per_s"] / store["windows_per_s"]
    print(f"store 224x224, windows as YUV 4:2:0 planes (data.colour_on_device, the default): "
          f"{planes['windows_per_s']:.2f} windows/s ({planes['vs_store224_rgb']:.2f}x the RGB windows above); "
          f"their conversion on the training device, here this CPU: {planes['conversion_ms_per_window']:.0f} ms "
          f"per window")
    bas["vs_store224_rgb"] = bas["windows_per_s"] / store["windows_per_s"]
    bas["yuv420_vs_store224_yuv420"] = bas["yuv420_windows_per_s"] / planes["windows_per_s"]
    print(f"Ball Action Spotting, store 224x224 at 12.5 fps, windows of 128 frames (10.24 s): "
          f"{bas['windows_per_s']:.2f} windows/s RGB ({bas['vs_store224_rgb']:.2f}x the 2 fps store's 64-s windows), "
          f"{bas['yuv420_windows_per_s']:.2f} as YUV planes ({bas['yuv420_vs_store224_yuv420']:.2f}x)")
    encoded["vs_jpeg_decoded_in_worker"] = encoded["clips_per_s"] / results["JPEG native (-q:v 1)"]["clips_per_s"]
    print(f"JPEG native, clips sent encoded (data.jpeg_on_device on a GPU): {encoded['clips_per_s']:.1f} clips/s per "
          f"loader core ({encoded['vs_jpeg_decoded_in_worker']:.2f}x the JPEG clips above); their batched decode and "
          f"crops on the training device, here this CPU: {encoded['decode_ms_per_clip']:.2f} ms per clip")
    print("BENCH data " + json.dumps({"results": results, "raw_decode_ceiling_windows_per_s": ceiling,
                                      "store224_yuv420_windows": planes, "jpeg_encoded_clips": encoded,
                                      "ball_action_spotting_12_5fps_windows": bas}))


if __name__ == "__main__":
    main()
