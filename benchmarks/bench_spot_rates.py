"""What a Ball Action Spotting model costs `evaluate.py spot` against a SoccerNet-v2 model, per minute of video.

    python benchmarks/bench_spot_rates.py                        # GPU: ViViT-T at the paper's shapes, bf16
    python benchmarks/bench_spot_rates.py --device cpu --model vivit_micro --minutes 3

One generated half (398x224, 25 fps H.264, as SoccerNet's and BAS's 224p files; bench_inference.py's) is spotted end
to end by `evaluation.streaming.spot_file` twice, with the same trunk (random weights: speed does not depend on them):
- SoccerNet-v2: 2 fps, token head, 64-token windows of 64 s every 32 s (configs/spotting/vivit_tiny_phase_b.yaml);
- Ball Action Spotting: 12.5 fps, frame head, 64-token windows of 10.24 s every 5.12 s
  (configs/ball/spotting/vivit_tiny_2025.yaml): 6.25x the frames and 6.25x the windows per minute.
Both decode every frame of the 25 fps file (H.264 cannot skip), so decoding costs about the same; the model's share
grows 6.25x. Prints seconds per video minute, their ratio and one JSON line `BENCH spot_rates {...}`.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.bench_inference import make_half  # noqa: E402
from configs.schema import SpottingConfig, SpottingModelConfig  # noqa: E402
from data.catalog import BUILT_IN  # noqa: E402
from evaluation.inference import Inference  # noqa: E402
from evaluation.streaming import spot_file  # noqa: E402
from models.registry import build_spotting  # noqa: E402
from utils.config import load_config  # noqa: E402
from utils.rates import Rates  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
RECIPES = {"SoccerNet-v2": ROOT / "configs/spotting/vivit_tiny_phase_b.yaml",
           "Ball Action Spotting": ROOT / "configs/ball/spotting/vivit_tiny_2025.yaml"}


def recipe(path: Path, name: str, tiny: bool) -> SpottingConfig:
    """A recipe's model and eval sections; at the micro model's size, its windows scaled down 4x (16 tokens)."""
    cfg = load_config(SpottingConfig, path)
    if tiny:
        model = dataclasses.replace(cfg.model, name=name, img_size=64, window_seconds=cfg.model.window_seconds / 4,
                                    temporal_depth=2)
        window = model.window_seconds
        cfg = dataclasses.replace(cfg, model=model, eval=dataclasses.replace(
            cfg.eval, window_stride_seconds=window / 2, trim_seconds=window * 3 / 16))
    return cfg


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--model", default=None, help="default: vivit_tiny on GPU, vivit_micro on CPU")
    parser.add_argument("--batch", type=int, default=16, help="windows per forward pass")
    parser.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()) / "comedian_bench_inference")
    args = parser.parse_args()
    device = torch.device(args.device)
    gpu = device.type == "cuda"
    name = args.model or ("vivit_tiny" if gpu else "vivit_micro")
    amp_dtype = torch.bfloat16 if gpu else None
    video = make_half(args.workdir, args.minutes)
    results = {"device": torch.cuda.get_device_name(device) if gpu else f"CPU, {torch.get_num_threads()} threads",
               "model": name, "minutes": args.minutes}
    for label, path in RECIPES.items():
        cfg = recipe(path, name, tiny=name == "vivit_micro")
        rates = Rates.of(cfg.data.fps)
        columns = len(BUILT_IN[cfg.data.dataset].columns)
        model = build_spotting(cfg.model, columns, rates).to(device).eval()
        inference = Inference(model, cfg.model, dataclasses.replace(cfg.eval, batch_size=args.batch),
                              BUILT_IN[cfg.data.dataset], device, amp_dtype, rates)
        with torch.no_grad(), torch.autocast(device.type, dtype=amp_dtype, enabled=amp_dtype is not None):
            frames = inference.window_tokens * rates.frames_per_token
            model(torch.zeros(1, 3, frames, cfg.model.img_size, cfg.model.img_size, device=device))  # warm-up
        start = time.perf_counter()
        scores = spot_file(inference, video)
        seconds = time.perf_counter() - start
        results[label] = {"fps": float(rates.fps), "window_s": cfg.model.window_seconds,
                          "stride_s": cfg.eval.window_stride_seconds, "head": cfg.model.head,
                          "score_rows": len(scores[1]), "seconds": seconds,
                          "seconds_per_video_minute": seconds / args.minutes}
    v2, ball = (results[label]["seconds_per_video_minute"] for label in RECIPES)
    results["ratio"] = ball / v2
    print(f"{results['device']}; {name}; one {args.minutes:g}-minute half, 398x224 25 fps H.264")
    print(f"{'recipe':<22} {'fps':>5} {'window s':>9} {'stride s':>9} {'s / video minute':>17}")
    for label in RECIPES:
        row = results[label]
        print(f"{label:<22} {row['fps']:>5g} {row['window_s']:>9g} {row['stride_s']:>9g} "
              f"{row['seconds_per_video_minute']:>17.2f}")
    print(f"Ball Action Spotting costs {results['ratio']:.2f}x SoccerNet-v2 per video minute")
    print("BENCH spot_rates " + json.dumps(results))


if __name__ == "__main__":
    main()
