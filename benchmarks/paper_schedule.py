"""The paper's schedule on paper: wall-clock hours of every stage of the ViViT-T and ViSwin-T pipelines on 1, 2 and
8 H200s, computed from measured figures, with the bound of each stage.

    python benchmarks/paper_schedule.py [BENCH_FILE ...]    (default: benchmarks/measured/*.txt)

A BENCH file holds the lines the benchmarks print: `BENCH data` (benchmarks/bench_data.py: the loader's samples/s per
core) and `BENCH model` (benchmarks/bench_model.py on a GPU: the compiled stage-3 step and the stage-3 augmentation).
benchmarks/gpu_figures.sh writes both into gpu_figures/summary.txt; the latest measured ones are kept in
benchmarks/measured/. Per stage:
- samples per epoch: stage 1 one 1-second clip per second of SoccerNet-v2's 300 training games (stage_speed.py),
  stages 2 and 3 `data.windows_per_half` x 2 halves x 300 games; epochs: the paper config's (stage 1: the epoch of
  the snapshot stage 2 starts from, `run.snapshot_epochs`);
- the loader: samples/s per core x 14 workers per GPU (16 cores, less the main process and one spare): stage 1 the
  JPEG clips sent encoded to the GPU (`data.jpeg_on_device`), stages 2 and 3 the 224x224 store's windows as YUV
  planes (`data.colour_on_device`);
- the GPU: the compiled model step, then the augmentation, one after the other. Stage 3 is measured; stage 2 is taken
  as stage 3's step (same trunk and windows; its projector is small); stage 1's step is estimated from its FLOPs per
  clip (counted here, torch.utils.flop_counter) at the TFLOP/s the compiled stage-3 step of the same blocks achieved.
  Stage 1's augmentation and nvJPEG decode are not measured yet and are left out (the table says so).
More GPUs scale the GPU side and the loader linearly (data-parallel, no communication cost): a lower bound.
Prints a Markdown table and one JSON line `BENCH schedule {...}`.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.stage_speed import PAPER  # noqa: E402
from configs.schema import DistillConfig, SpottingConfig, SSLConfig  # noqa: E402
from models.registry import build_spatial  # noqa: E402
from models.sce import SCEModel  # noqa: E402
from utils.config import load_config  # noqa: E402

TRAIN_GAMES = 300  # SoccerNet-v2's training split
WORKERS_PER_GPU = 14  # of 16 cores per GPU: the main process and one spare
GPUS = (1, 2, 8)
PIPELINES = {  # pipeline: (model name in BENCH model, [(stage, phase, config)])
    "ViViT-T": ("vivit_tiny", [("ssl", "", "configs/ssl/vit_tiny_soccernet.yaml"),
                               ("distill", "", "configs/distill/vivit_tiny_soccernet.yaml"),
                               ("spotting", "a", "configs/spotting/vivit_tiny_phase_a.yaml"),
                               ("spotting", "b", "configs/spotting/vivit_tiny_phase_b.yaml")]),
    "ViSwin-T": ("viswin_tiny", [("ssl", "", "configs/ssl/swin_tiny_soccernet.yaml"),
                                 ("distill", "", "configs/distill/viswin_tiny_soccernet.yaml"),
                                 ("spotting", "a", "configs/spotting/viswin_tiny_phase_a.yaml"),
                                 ("spotting", "b", "configs/spotting/viswin_tiny_phase_b.yaml")]),
}
SCHEMAS = {"ssl": SSLConfig, "distill": DistillConfig, "spotting": SpottingConfig}


def bench_lines(paths: list[Path]) -> dict[str, dict]:
    """{name: record} of the last `BENCH name {...}` line of each kind in the files."""
    found = {}
    for path in paths:
        for line in path.read_text().splitlines():
            match = re.match(r"BENCH (\w+) (\{.*\})$", line.strip())
            if match:
                found[match.group(1)] = {**json.loads(match.group(2)), "file": str(path)}
    return found


def stage1_tflops_per_clip(config) -> float:
    """Forward + backward FLOPs of one stage-1 clip: the student on its two views, the momentum teacher's keys on
    them (counted on the CPU at batch 1; compile does not change the arithmetic)."""
    trunk = build_spatial(config.model.name, config.model.img_size, 0.0, False)
    sce = SCEModel(trunk, config.model.projector_hidden, config.loss.dim, 16, 0)
    size = config.augment.crop_size
    clips = torch.randn(2, 3, 2, size, size)  # one clip's two views, (views, 3, frames, S, S)
    counter = FlopCounterMode(display=False)
    with counter:
        sce(clips).sum().backward()
        with torch.no_grad():
            sce.keys(clips)
    return counter.get_total_flops() / 1e12


def stage_row(stage: str, phase: str, path: str, model: str, bench: dict) -> dict:
    config = load_config(SCHEMAS[stage], ROOT / path)
    epochs = min(config.run.snapshot_epochs) if stage == "ssl" and config.run.snapshot_epochs else config.run.epochs
    samples = PAPER["ssl"][1] if stage == "ssl" else TRAIN_GAMES * 2 * config.data.windows_per_half
    data = bench["data"]
    loader_per_core = data["jpeg_encoded_clips"]["clips_per_s"] if stage == "ssl" else \
        data["store224_yuv420_windows"]["windows_per_s"]
    rows = {row["model"]: row for row in bench["model"]["rows"] if row["compile"]}
    step = rows[model]
    notes = []
    if stage == "ssl":
        per_clip = stage1_tflops_per_clip(config)
        model_rate = step["achieved_tflops"] / per_clip
        augment_rate = None
        notes.append(f"model estimated: {per_clip * 1e3:.1f} GFLOP per clip at the stage-3 step's "
                     f"{step['achieved_tflops']:.0f} TFLOP/s; augmentation and nvJPEG decode not measured")
    else:
        model_rate = step["windows_per_s"]
        # the augmentation does not depend on the model: windows per second of whichever batch was timed
        timed = [(name, ms) for name, ms in bench["model"].get("augment_ms", {}).items() if name in rows]
        augment_rate = rows[timed[0][0]]["batch"] / (timed[0][1] / 1000) if timed else None
        if stage == "distill":
            notes.append("stage 3's step and augmentation")
        if augment_rate is None:
            notes.append("augmentation not measured")
    gpu_rate = 1 / (1 / model_rate + (1 / augment_rate if augment_rate else 0))
    loader_rate = loader_per_core * WORKERS_PER_GPU
    if loader_rate < gpu_rate:
        bound = "loader (decode)"
    elif augment_rate:  # the GPU: how its time splits between the step and the augmentation
        bound = f"GPU: model {gpu_rate / model_rate:.0%}, augmentation {gpu_rate / augment_rate:.0%}"
    else:
        bound = "GPU: model"
    per_gpu = min(loader_rate, gpu_rate)
    return {"stage": stage + (f" {phase}" if phase else ""), "config": path, "samples_per_epoch": samples,
            "epochs": epochs, "loader_per_core": loader_per_core, "loader_per_gpu": loader_rate,
            "model_per_s": model_rate, "augment_per_s": augment_rate, "gpu_per_s": gpu_rate, "bound": bound,
            "hours": {gpus: samples * epochs / (per_gpu * gpus) / 3600 for gpus in GPUS}, "notes": notes}


def main() -> None:
    paths = [Path(arg) for arg in sys.argv[1:]] or sorted((ROOT / "benchmarks" / "measured").glob("*.txt"))
    bench = bench_lines(paths)
    missing = {"data", "model"} - set(bench)
    if missing:
        sys.exit(f"error: no BENCH {' or '.join(sorted(missing))} line in {', '.join(map(str, paths))}: run "
                 f"benchmarks/bench_data.py and benchmarks/bench_model.py (benchmarks/gpu_figures.sh runs both)")
    print(f"inputs: BENCH data from {bench['data']['file']}, BENCH model from {bench['model']['file']} "
          f"({bench['model']['device']})")
    results = {}
    compiled = {row["model"] for row in bench["model"]["rows"] if row["compile"]}
    for pipeline, (model, stages) in PIPELINES.items():
        if model not in compiled:  # e.g. benchmarks/gpu_figures.sh's DRY run, on a CPU with a toy model
            print(f"\n{pipeline}: no compiled step of {model} in BENCH model: left out")
            continue
        rows = [stage_row(stage, phase, path, model, bench) for stage, phase, path in stages]
        results[pipeline] = rows
        print(f"\n{pipeline}\n")
        print("| stage | samples/epoch | epochs | loader /s per core | loader /s per GPU | model /s | augmentation /s "
              "| bound | " + " | ".join(f"hours on {gpus}" for gpus in GPUS) + " |")
        print("|---" * (8 + len(GPUS)) + "|")
        for row in rows:
            augment = f"{row['augment_per_s']:.0f}" if row["augment_per_s"] else "n/m"
            print(f"| {row['stage']} | {row['samples_per_epoch']:,} | {row['epochs']} | {row['loader_per_core']:.1f} | "
                  f"{row['loader_per_gpu']:.0f} | {row['model_per_s']:.0f} | {augment} | {row['bound']} | "
                  + " | ".join(f"{row['hours'][gpus]:.1f}" for gpus in GPUS) + " |")
        totals = [sum(row["hours"][gpus] for row in rows) for gpus in GPUS]
        print(f"| **all stages** | | | | | | | | " + " | ".join(f"**{total:.1f}**" for total in totals) + " |")
        for row in rows:
            for note in row["notes"]:
                print(f"- {row['stage']}: {note}")
    print("BENCH schedule " + json.dumps(results))


if __name__ == "__main__":
    main()
