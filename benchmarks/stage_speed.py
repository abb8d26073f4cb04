"""Training speed of stage runs, read off their metrics.jsonl: steady samples/s, the share of time waiting for data,
and what the paper's schedule would take at that speed on this machine.
    python benchmarks/stage_speed.py RUN_DIR [RUN_DIR ...]      (benchmarks/gpu_figures.sh runs it)
The first logged interval is left out (compilation and the loader's start). The paper's epochs are those of the
stage's paper config; its samples per epoch come from SoccerNet-v2's train split (300 games): stage 1 draws one
1-second clip per second of video (about 1.6 M), stage 2 76 windows per game, stage 3 50 windows per game
(docs/TRAINING.md). Prints a table and one JSON line `BENCH stages {...}`.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
PAPER = {  # stage: (paper config, samples per epoch on SoccerNet-v2's train split)
    "ssl": ("configs/ssl/vit_tiny_soccernet.yaml", 1_600_000),
    "distill": ("configs/distill/vivit_tiny_soccernet.yaml", 300 * 76),
    "spotting": ("configs/spotting/vivit_tiny_phase_b.yaml", 300 * 50),
}


def speed(run: Path) -> dict:
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines() if line.strip()]
    steady = [row for row in rows if "samples_per_s" in row][1:]
    if not steady:
        raise SystemExit(f"{run}: fewer than two logged intervals in metrics.jsonl: run more steps")
    stage = stage_of(run)
    config, samples_per_epoch = PAPER[stage]
    epochs = yaml.safe_load((ROOT / config).read_text())["run"]["epochs"]
    per_s = sum(row["samples_per_s"] for row in steady) / len(steady)
    return {"run": str(run), "stage": stage, "samples_per_s": per_s,
            "data_wait": sum(row["data_wait"] for row in steady) / len(steady),
            "paper_epochs": epochs, "paper_hours": samples_per_epoch * epochs / per_s / 3600}


def stage_of(run: Path) -> str:
    """The stage of a run folder, from the keys of the config.yaml it holds (only stage 1 has two views, only stage
    2 a feature bank)."""
    config = yaml.safe_load((run / "config.yaml").read_text())
    if "view1" in config.get("augment", {}):
        return "ssl"
    return "distill" if "bank" in config.get("data", {}) else "spotting"


def main() -> None:
    results = [speed(Path(run)) for run in sys.argv[1:]]
    print(f"{'stage':<9} {'samples/s':>10} {'data wait':>10} {'paper epochs':>13} {'paper schedule':>15}")
    for r in results:
        print(f"{r['stage']:<9} {r['samples_per_s']:10.1f} {r['data_wait']:10.1%} {r['paper_epochs']:13d} "
              f"{r['paper_hours']:13.1f} h")
    print("BENCH stages " + json.dumps(results))


if __name__ == "__main__":
    main()
