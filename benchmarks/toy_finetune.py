"""The toy study, part 2: stage 3 from each stage's checkpoint, on fewer and fewer labelled games (docs/TOY_STUDY.md).

Rows (the quick start's stage-3 recipes, `configs/spotting/tiny_mini_*.yaml`):
- random weights: `tiny_mini_scratch.yaml` (one phase, with its warmup), as the quick start's ablation;
- stage 1 only: phase a (`tiny_mini_phase_a.yaml`, the head on the frozen trunk) from the SCE checkpoint, then phase b
  (`tiny_mini_phase_b.yaml`), as the paper's "stage 1 only" ablation (configs/ablations/*stage1_only*);
- stages 1 and 2: phases a and b from the distilled checkpoint, as the quick start's COMEDIAN.
Columns: stage 3 on the first 1, 2, 4, ... games of the training split (the same games for every seed), stages 1 and
2 having seen every training video. Every run gets the same budget of training windows (phase a's tenth and phase b's
nine tenths for the pretrained rows) at one batch size, so fewer games means more epochs over them, and validates the
whole valid split at 10 evenly spaced points. Runs are train_spotting.py processes, `--jobs` at a time, one thread
each; a run folder that already holds a finished run is resumed (skipped) by train_spotting.py itself.

The recipe check (`--recipe scratch`): the pretrained rows' phase b at the random row's LR and warmup share
(`tiny_mini_scratch.yaml`) instead of phase b's own (a fifth of the LR, no warmup), so that every row differs by its
init only. Phase a is the same under both recipes, so its finished runs are shared; phase b goes to a folder of its
own, and the random row's runs are those of the quick start's recipe.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np

from configs.schema import SpottingConfig
from utils.config import load_config
from utils.convergence import write_convergence
from utils.errors import InvalidInputError
from utils.logs import read_metrics

ROOT = Path(__file__).resolve().parent.parent
SPOTTING = ROOT / "configs" / "spotting"
METRIC = "valid_tight_a_mAP"
PHASE_A_SHARE = 10  # phase a gets 1 / PHASE_A_SHARE of a pretrained row's budget (the quick start: 10 of 190 epochs)
VALIDATIONS = 10


@dataclasses.dataclass(frozen=True)
class Grid:
    """What every run of part 2 shares."""

    common: list[str]  # data.* overrides: where the quick start's store is
    windows_per_half: int  # training windows per half and epoch (the recipe's data.windows_per_half)
    halves: int  # halves per game
    budget: int  # training windows per run
    batch: int  # run.global_batch_size of every run
    out: Path  # run folders and split files go under it
    recipe: str = "quickstart"  # the pretrained rows' phase b: "quickstart" (its own LR), "scratch" (recipe check)


def epochs_for(grid: Grid, games: int) -> int:
    """Epochs of `games` games that make the budget; refused when the budget is not a whole number of them."""
    per_epoch = games * grid.halves * grid.windows_per_half
    if grid.budget % (per_epoch * PHASE_A_SHARE) or per_epoch % grid.batch:
        raise InvalidInputError(f"--budget {grid.budget} windows at {games} game{'s' * (games > 1)} ({per_epoch} "
                                f"windows per epoch, batch {grid.batch}): expected a multiple of "
                                f"{per_epoch * PHASE_A_SHARE} windows and epochs of whole batches, so that every "
                                f"row gets the same steps")
    return grid.budget // per_epoch


def run_plan(grid: Grid, inits: dict[str, Path | None], games: int, seed: int,
             split: Path) -> dict[str, list[list[str]]]:
    """{row: the train_spotting.py argument lists of its phases, in order} for one game count and seed."""
    epochs = epochs_for(grid, games)
    shared = [*grid.common, f"data.train_split={split}", f"run.global_batch_size={grid.batch}", f"run.seed={seed}",
              "run.num_workers=0"]
    plan, scratch = {}, load_config(SpottingConfig, SPOTTING / "tiny_mini_scratch.yaml")
    warmup = scratch.optim.warmup_epochs / scratch.run.epochs  # the ablation's (20 of 190), kept as a share of a run
    for row, init in inits.items():
        folder = grid.out / "runs" / f"{games}games" / f"seed{seed}" / slug(row)
        if init is None:
            every = epochs // VALIDATIONS
            plan[row] = [["--config", str(SPOTTING / "tiny_mini_scratch.yaml"), *shared, f"run.epochs={epochs}",
                          f"eval.every_epochs={every}", f"run.save_every_epochs={every}",
                          f"optim.warmup_epochs={epochs * warmup:g}", f"run.output_dir={folder / 'scratch'}"]]
            continue
        phase_a, phase_b = epochs // PHASE_A_SHARE, epochs - epochs // PHASE_A_SHARE
        every = phase_b // (VALIDATIONS - 1)  # phase a's end is the first point
        recipe, phase_b_dir = [], folder / "phase_b"
        if grid.recipe == "scratch":
            recipe = [f"optim.lr={scratch.optim.lr:g}", f"optim.warmup_epochs={phase_b * warmup:g}"]
            phase_b_dir = folder / "phase_b_scratch_recipe"
        plan[row] = [["--config", str(SPOTTING / "tiny_mini_phase_a.yaml"), *shared, f"run.epochs={phase_a}",
                      f"run.save_every_epochs={phase_a}", f"model.init_checkpoint={init}",
                      f"run.output_dir={folder / 'phase_a'}"],
                     ["--config", str(SPOTTING / "tiny_mini_phase_b.yaml"), *shared, f"run.epochs={phase_b}",
                      f"eval.every_epochs={every}", f"run.save_every_epochs={every}",
                      f"model.init_checkpoint={folder / 'phase_a' / 'checkpoint_last.pth'}", *recipe,
                      f"run.output_dir={phase_b_dir}"]]
    return plan


def slug(name: str) -> str:
    """A folder or file name for a row or world name: 'stage 1 (SCE)' -> 'stage_1_sce'."""
    return re.sub(r"\W+", "_", name).strip("_").lower()


def output_dir(arguments: list[str]) -> Path:
    return Path(next(a for a in arguments if a.startswith("run.output_dir=")).partition("=")[2])


def run_phases(phases: list[list[str]]) -> list[Path]:
    """Run one row's phases in order, one thread each; a failure raises with the end of its log."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    for arguments in phases:
        folder = output_dir(arguments)
        folder.mkdir(parents=True, exist_ok=True)
        done = subprocess.run([sys.executable, str(ROOT / "train_spotting.py"), *arguments], cwd=ROOT, env=env,
                              capture_output=True, text=True)
        (folder.parent / f"{folder.name}.out").write_text(done.stdout + done.stderr)
        if done.returncode:
            log = (done.stdout + done.stderr)[-3000:]
            raise RuntimeError(f"train_spotting.py {' '.join(arguments)} failed:\n{log}")
    return [output_dir(arguments) for arguments in phases]


def curve(folders: list[Path], batch: int) -> list[tuple[int, float]]:
    """(training windows seen, valid tight a-mAP %) of chained phases: a phase's steps count after the one before."""
    points, offset = [], 0
    for folder in folders:
        records = read_metrics(folder / "metrics.jsonl")
        points += [(batch * (offset + int(r["step"])), 100 * float(r[METRIC])) for r in records if METRIC in r]
        offset += max(int(r["step"]) for r in records)
    return points


def split_file(grid: Grid, train_games: list[str], games: int) -> Path:
    path = grid.out / "splits" / f"train_first{games}.txt"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(f"{game}\n" for game in train_games[:games]), encoding="utf-8")
    return path


def finetune(grid: Grid, inits: dict[str, Path | None], game_counts: list[int], seeds: list[int], train_games:
             list[str], jobs: int) -> dict:
    """{games: {row: {seed: [(windows, tight), ...]}}}, every run of the grid done, `jobs` processes at a time. The
    caller checks every count's budget (`epochs_for`) before anything runs."""
    tasks = {}
    with concurrent.futures.ThreadPoolExecutor(jobs) as pool:
        for games in game_counts:
            split = split_file(grid, train_games, games)
            for seed in seeds:
                for row, phases in run_plan(grid, inits, games, seed, split).items():
                    tasks[games, row, seed] = pool.submit(run_phases, phases)
        results: dict = {}
        for (games, row, seed), task in tasks.items():
            points = curve(task.result(), grid.batch)
            if points[-1][0] != grid.budget:  # the sampler drew fewer windows per half than the recipe asks for
                raise InvalidInputError(f"stage 3 on {games} games, {row}, seed {seed}: {points[-1][0]} training "
                                        f"windows instead of --budget {grid.budget}; are the halves shorter than "
                                        f"data.windows_per_half={grid.windows_per_half} windows?")
            results.setdefault(games, {}).setdefault(row, {})[seed] = points
    return results


def windows_to_reach(points: list[tuple[int, float]], level: float) -> int | None:
    return next((windows for windows, value in points if value >= level), None)


def summary(results: dict, reference: str) -> str:
    """Markdown: final valid tight a-mAP per row and game count (mean +- half range over seeds), and the training
    windows each row's mean curve takes to reach the `reference` row's final mean."""
    counts = list(results)
    columns = ["| stage 3 from | " + " | ".join(f"{g} game{'s' * (g > 1)}" for g in counts) + " |",
               "|---|" + "---|" * len(counts)]
    lines, reach = list(columns), []
    for row in results[counts[0]]:
        cells, when = [], []
        for games in counts:
            finals = np.array([points[-1][1] for points in results[games][row].values()])
            cells.append(f"{finals.mean():.2f} +- {np.ptp(finals) / 2:.2f}")
            target = np.mean([points[-1][1] for points in results[games][reference].values()])
            found = windows_to_reach(mean_curve(results[games][row]), target)
            when.append("never" if found is None else f"{found:,}")
        lines.append(f"| {row} | " + " | ".join(cells) + " |")
        reach.append(f"| {row} | " + " | ".join(when) + " |")
    header = ["", f"Training windows until the mean curve first reaches {reference}'s final mean (same game count):",
              "", *columns]
    return "\n".join(lines + header + reach)


def mean_curve(seeds: dict) -> list[tuple[int, float]]:
    """The seeds' curves averaged point by point (every seed validates at the same windows)."""
    curves = list(seeds.values())
    return [(windows, float(np.mean([c[index][1] for c in curves]))) for index, (windows, _) in enumerate(curves[0])]


def plots(results: dict, out: Path, world: str = "", stem: str = "finetune", what: str = "stage 3") -> list[Path]:
    """One SVG per game count, STEM_<N>games[_WORLD].svg titled 'WHAT on N labelled games': each row's mean curve
    over the seeds."""
    written = []
    for games, rows in results.items():
        curves = {row: (mean_curve(seeds), []) for row, seeds in rows.items()}
        name = f"{stem}_{games}games" + ("_" + slug(world) if world else "")
        written.append(write_convergence(out / f"{name}.svg", curves,
                                         title=f"{what} on {games} labelled game{'s' * (games > 1)}: valid tight "
                                               f"a-mAP, mean of {len(next(iter(rows.values())))} seeds",
                                         x_label="training windows seen"))
    return written
