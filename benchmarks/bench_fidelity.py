"""Fidelity benchmark: how far the frames each source gives are from the official frames, in grey levels and PSNR.

    python benchmarks/bench_fidelity.py [--games 2] [--seconds 60]

Generates --games games of the mini-SoccerNet (398x224, 25 fps H.264, as SoccerNet's 224p files) and compares, frame
for frame over every 2 fps frame of every half:
- the reference: the official preparation without any compression, i.e. the source frame FFmpeg's fps filter picks,
  converted to RGB at full size, resized to 224x224 by torchvision's antialiased bilinear resize;
- the official route: the same frame written as a JPEG at `-q:v 1` (what `ffmpeg -vf fps=2 -q:v 1` writes, and what
  `data.prepare --format jpeg` writes), decoded, then resized the same way;
- the frame store at 224x224 (`data.prepare`, H.264 CRF 20), as stages 2 and 3 read it;
- what this project read before (for the record): the frame nearest k / 2 s resized inside PyAV's scaler while
  converting from YUV.
Each is reported as the mean absolute difference to the reference (0-255 levels), its 99.9th percentile, and PSNR.
Prints a table and one JSON line `BENCH fidelity {...}`.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import av
import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from data.augment import resize_frames  # noqa: E402
from data.catalog import BUILT_IN  # noqa: E402
from data.prepare import Preparation, prepare  # noqa: E402
from data.sources import JpegFolderSource, StoreSource, VideoSource  # noqa: E402
from data.synthetic import generate  # noqa: E402

V2 = BUILT_IN["soccernet_v2"]

SIZE = 224


def nearest_frames_scaled(path: Path, count: int) -> torch.Tensor:
    """The former reading: source frame nearest k / 2 s, resized by PyAV's bilinear scaler from YUV; (T, H, W, 3)."""
    images, times = [], []
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        for frame in container.decode(stream):
            times.append(float(frame.pts * stream.time_base))
            images.append(frame.to_ndarray(format="rgb24", width=SIZE, height=SIZE, interpolation="BILINEAR"))
    times = np.array(times)
    picked = [int(np.argmin(np.abs(times - k / 2))) for k in range(count)]
    return torch.from_numpy(np.stack([images[i] for i in picked]))


def compare(frames: torch.Tensor, reference: torch.Tensor) -> dict[str, float]:
    error = (frames.double() - reference.double()).abs()
    mse = float((error ** 2).mean())
    return {"mean_abs": float(error.mean()), "p999_abs": float(torch.quantile(error.flatten()[::7], 0.999)),
            "psnr_db": 10 * np.log10(255 ** 2 / mse) if mse > 0 else float("inf")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--games", type=int, default=2)
    parser.add_argument("--seconds", type=float, default=60.0, help="length of each generated half")
    args = parser.parse_args()
    torch.set_num_threads(2)
    sums: dict[str, list[torch.Tensor]] = {"official route (JPEG -q:v 1, then resize)": [],
                                           "frame store 224x224 (H.264 CRF 20)": [],
                                           "former reading (nearest frame, PyAV scaler)": []}
    references = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        games = generate(tmp / "videos", args.games, args.seconds, seed=1)
        prepare(V2, tmp / "videos", tmp / "store", games, Preparation(size=(SIZE, SIZE)))
        prepare(V2, tmp / "videos", tmp / "jpeg", games, Preparation("jpeg", size=None))
        video, store, jpeg = VideoSource(V2, tmp / "videos"), StoreSource(tmp / "store"), JpegFolderSource(tmp / "jpeg")
        for game in games:
            for half in (1, 2):
                count = video.num_frames(game, half)
                reference = resize_frames(video.read(game, half, 0, count), SIZE).permute(0, 2, 3, 1)
                references.append(reference)
                sums["official route (JPEG -q:v 1, then resize)"].append(
                    resize_frames(jpeg.read(game, half, 0, count), SIZE).permute(0, 2, 3, 1))
                sums["frame store 224x224 (H.264 CRF 20)"].append(store.read(game, half, 0, count))
                sums["former reading (nearest frame, PyAV scaler)"].append(
                    nearest_frames_scaled(video.path(game, half), count))
    reference = torch.cat(references)
    results = {name: compare(torch.cat(parts), reference) for name, parts in sums.items()}
    results["frame store vs the official route"] = compare(torch.cat(sums["frame store 224x224 (H.264 CRF 20)"]),
                                                           torch.cat(sums["official route (JPEG -q:v 1, then resize)"]))
    print(f"{args.games} generated games, {reference.shape[0]} frames at 2 fps, 224x224; against the official "
          f"preparation without compression (fps-filter frame, full RGB, torchvision antialiased resize)")
    print(f"{'frames':<46} {'mean |d|':>9} {'p99.9 |d|':>10} {'PSNR dB':>8}")
    for name, row in results.items():
        print(f"{name:<46} {row['mean_abs']:9.2f} {row['p999_abs']:10.1f} {row['psnr_db']:8.2f}")
    print("BENCH fidelity " + json.dumps({"frames": int(reference.shape[0]), **results}))


if __name__ == "__main__":
    main()
