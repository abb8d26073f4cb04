"""Augmentation benchmark: the photometric augmentation of each stage's paper view, per sample, against the version
before it worked in place (kept below as the reference), same inputs, same random draws, same run.

    python benchmarks/bench_augment.py [--device cpu|cuda] [--batch 4] [--repeats 3]

Stage 3 (and 2): a batch of 64 s windows (128 frames at 224x224, uint8) through `data.augment.photometric` with the
view of configs/spotting/vivit_tiny_phase_b.yaml (colour jitter 0.8, blur 0.5, flip 0.5); stage 1: a batch of
1-second clips (2 frames) through the two views of configs/ssl/vit_tiny_soccernet.yaml. The outputs of the two
versions must be equal, bit for bit (the same operations on the same floats, in place). Prints a table and one JSON
line `BENCH augment {...}`.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from configs.schema import SpottingConfig, SSLConfig  # noqa: E402
from data import augment  # noqa: E402
from utils.config import load_config  # noqa: E402


def reference_color_jitter(x: torch.Tensor, config, apply: torch.Tensor) -> torch.Tensor:
    """data.augment.color_jitter before it worked in place (a new tensor per step)."""
    n, device = x.shape[0], x.device
    one = torch.ones(n, device=device)
    factors = {
        "brightness": torch.where(apply, augment._uniform(n, max(0, 1 - config.brightness), 1 + config.brightness,
                                                          device), one),
        "contrast": torch.where(apply, augment._uniform(n, max(0, 1 - config.contrast), 1 + config.contrast, device),
                                one),
        "saturation": torch.where(apply, augment._uniform(n, max(0, 1 - config.saturation), 1 + config.saturation,
                                                          device), one),
        "hue": torch.where(apply, augment._uniform(n, -config.hue, config.hue, device), 0 * one),
    }
    for index in torch.randperm(4).tolist():
        name = ("brightness", "contrast", "saturation", "hue")[index]
        f = augment._per_sample(factors[name], x)
        if name == "brightness" and config.brightness:
            x = (x * f).clamp(0, 1)
        elif name == "contrast" and config.contrast:
            mean = augment._grayscale(x).mean(dim=(-3, -2, -1), keepdim=True)
            x = (f * x + (1 - f) * mean).clamp(0, 1)
        elif name == "saturation" and config.saturation:
            x = (f * x + (1 - f) * augment._grayscale(x)).clamp(0, 1)
        elif name == "hue" and config.hue:
            chosen = apply.nonzero().squeeze(1)
            hsv = augment._rgb_to_hsv(x[chosen])
            hsv = torch.cat([((hsv[..., :1, :, :] + f[chosen]) % 1.0), hsv[..., 1:, :, :]], dim=-3)
            x = x.index_copy(0, chosen, augment._hsv_to_rgb(hsv))
    return x


def timed(views: list, frames: torch.Tensor, repeats: int, seed: int) -> tuple[float, list[torch.Tensor]]:
    """Seconds per call of photometric over `views` (one after the other, as stage 1 does its two), and the outputs
    of the first call."""
    outputs = []
    torch.manual_seed(seed)
    outputs = [augment.photometric(frames, view) for view in views]
    if frames.is_cuda:
        torch.cuda.synchronize()
    begin = time.perf_counter()
    for _ in range(repeats):
        for view in views:
            augment.photometric(frames, view)
    if frames.is_cuda:
        torch.cuda.synchronize()
    return (time.perf_counter() - begin) / repeats, outputs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--batch", type=int, default=4, help="windows per batch (stage 1: 64 x as many clips)")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    device = torch.device(args.device)
    stage3 = load_config(SpottingConfig, ROOT / "configs/spotting/vivit_tiny_phase_b.yaml").augment.view
    stage1 = load_config(SSLConfig, ROOT / "configs/ssl/vit_tiny_soccernet.yaml").augment
    cases = {"stage 3 windows (128 frames)": ([stage3], (args.batch, 128, 3, 224, 224)),
             "stage 1 clips (2 frames, two views)": ([stage1.view1, stage1.view2], (64 * args.batch, 2, 3, 224, 224))}
    results = {}
    for name, (views, shape) in cases.items():
        frames = torch.randint(0, 256, shape, dtype=torch.uint8, generator=torch.Generator().manual_seed(0)).to(device)
        ours, ours_out = timed(views, frames, args.repeats, seed=1)
        current = augment.color_jitter
        augment.color_jitter = reference_color_jitter
        try:
            reference, reference_out = timed(views, frames, args.repeats, seed=1)
        finally:
            augment.color_jitter = current
        difference = max(float((a - b).abs().max()) for a, b in zip(ours_out, reference_out))
        results[name] = {"ms_per_sample": 1000 * ours / shape[0],
                         "reference_ms_per_sample": 1000 * reference / shape[0], "speedup": reference / ours, "max_difference": difference}
        if difference:
            sys.exit(f"error: {name}: the two versions differ by up to {difference:.2e}; they must be equal")
    print(f"{args.device}, {torch.get_num_threads()} threads; ms per sample (window or clip), photometric only")
    print(f"{'case':<38} {'now':>9} {'before':>9} {'speed-up':>9} {'max diff':>9}")
    for name, row in results.items():
        print(f"{name:<38} {row['ms_per_sample']:9.2f} {row['reference_ms_per_sample']:9.2f} "
              f"{row['speedup']:8.2f}x {row['max_difference']:9.1e}")
    print("BENCH augment " + json.dumps({"device": args.device, "results": results}))


if __name__ == "__main__":
    main()
