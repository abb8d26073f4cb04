"""The toy study: what the features of each stage are worth, probed and fine-tuned (docs/TOY_STUDY.md).

    bash scripts/quickstart.sh                                            # the generated data, stages 1 and 2
    python -m benchmarks.toy_study --quickstart quickstart --doc docs/TOY_STUDY.md   # 47 min on 2 cores

Part 2 (`--parts finetune`, benchmarks/toy_finetune.py) fine-tunes stage 3 from each stage on fewer and fewer
labelled games; with `--recipe scratch`, at one LR and warmup for every row (the recipe check). Part 1 (`--parts
probes`, 1.3 min), below:

The quick start's stage 3a trains a linear head on the frozen stage-2 trunk for 30 steps and reached 4 tight a-mAP on
validation: too few steps to say whether the features are poor or the head unfinished. Here the trunk is frozen as
each stage leaves it: random weights, after stage 1 (SCE: the spatial ViT; the temporal transformer stays random, as
stage 3 would start it), after stage 2 (distillation: the whole ViViT). Its per-second tokens over every training half
(non-overlapping windows of model.window_seconds; no augmentation, the linear-probe protocol) train a linear layer,
full batch, with stage 3's loss (mean BCE against the same targets, data.label_radius); after each of --steps steps
the layer becomes the head of the stage-3 model and the valid split is scored as stage 3 validates it (sliding
windows, merge, NMS, the official metric). A last row probes the feature bank that stage 2 distils (one row per
second), scored the same way: what stage 2 could teach. Every row over --seeds (the random parts' and the head's
initialisation), as mean and spread. Writes `<out>/probes.json` and `<out>/probes.txt` (a Markdown table), and with
--doc the marked sections of that document (`<!-- toy_study: probes -->` ... `<!-- /toy_study: probes -->`).
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from configs.schema import SpottingConfig  # noqa: E402
from benchmarks.toy_finetune import Grid, epochs_for, finetune, plots, summary  # noqa: E402
from benchmarks.toy_response import class_directions, event_seconds, response, response_table  # noqa: E402
from data.augment import resize_frames, to_model_input  # noqa: E402
from data.catalog import checked_labels, load_dataset  # noqa: E402
from data.datasets import half_lengths  # noqa: E402
from data.features import bank_path, open_bank  # noqa: E402
from data.sources import build_source  # noqa: E402
from data.targets import WindowTargets  # noqa: E402
from evaluation.inference import Inference, predict_games, window_starts  # noqa: E402
from evaluation.postprocess import game_predictions  # noqa: E402
from evaluation.predictions import write_game_predictions  # noqa: E402
from evaluation.scoring import score  # noqa: E402
from models.heads import distill_projector  # noqa: E402
from models.loading import init_spotting_model, sub_state  # noqa: E402
from models.registry import build_spotting  # noqa: E402
from models.spotting import linear_head  # noqa: E402
from utils.checkpoint import load_checkpoint, read_checkpoint_field  # noqa: E402
from utils.config import ConfigError, load_config  # noqa: E402
from utils.errors import InvalidInputError, MissingFileError, run_entry_point  # noqa: E402
from utils.rates import FRAMES_PER_TOKEN, Rates  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
CONFIG = ROOT / "configs/spotting/tiny_mini_phase_a.yaml"  # the quick start's stage 3a: model, targets, inference


@torch.no_grad()
def half_features(model, source, game: str, half: int, size: int, window: int) -> torch.Tensor:
    """(tokens, D) the frozen trunk's per-second tokens of a whole half: windows of `window` tokens side by side, the
    last aligned to the half's end (a token in two windows keeps the later one's)."""
    frames = resize_frames(source.read(game, half, 0, source.num_frames(game, half)), size)  # (F, 3, S, S) uint8
    num_tokens = len(frames) // FRAMES_PER_TOKEN
    clips = model.clip_tokens(to_model_input(frames[None, :num_tokens * FRAMES_PER_TOKEN]))[0]  # (T, D)
    tokens = torch.empty_like(clips)
    for start in window_starts(num_tokens, window, window):
        tokens[start:start + window] = model.trunk.temporal(clips[None, start:start + window])[0]
    return tokens


def split_features(model, cfg, source, dataset, games: list[str], targets: WindowTargets, window: int):
    """(N, D) tokens and (N, C) targets of every half of `games`."""
    tokens, labels = [], []
    for game in games:
        for half in dataset.halves:
            features = half_features(model, source, game, half, cfg.model.img_size, window)
            tokens.append(features)
            labels.append(torch.from_numpy(targets.of(game, half, 0, FRAMES_PER_TOKEN * len(features))))
    return torch.cat(tokens), torch.cat(labels)


def train_head(head: torch.nn.Linear, features: torch.Tensor, targets: torch.Tensor, steps: list[int], lr: float,
               evaluate) -> dict:
    """Full-batch Adam on stage 3's loss (mean BCE); after each of `steps`, evaluate() -> {tight, loose}."""
    optimizer = torch.optim.Adam(head.parameters(), lr=lr)
    results, done = {}, 0
    for target in steps:
        for _ in range(target - done):
            loss = torch.nn.functional.binary_cross_entropy_with_logits(head(features), targets)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        done = target
        results[target] = {"loss": loss.item(), **evaluate()}
    return results


def scored(data: dict, predictions: Path) -> dict:
    scores = score(data["dataset"], data["root"], predictions, data["valid"], ("tight", "loose"), workers=0)
    return {"tight": 100 * scores["tight"]["a_mAP"], "loose": 100 * scores["loose"]["a_mAP"]}


def probe_trunk(cfg, init: str | None, seed: int, steps: list[int], data: dict, out: Path) -> dict:
    """Valid a-mAP of a linear head trained on the trunk `init` leaves (None: random), after each of `steps`."""
    dataset, rates, source = data["dataset"], data["rates"], data["source"]
    torch.manual_seed(seed)
    model = build_spotting(cfg.model, len(dataset.columns), rates)
    init_spotting_model(model, init, cfg.model.name)
    model.eval()
    window = rates.tokens(cfg.model.window_seconds, "model.window_seconds")
    features, targets = split_features(model, cfg, source, dataset, data["train"], data["targets"], window)
    inference = Inference(model, cfg.model, cfg.eval, dataset, torch.device("cpu"), None, rates)
    return train_head(model.head, features, targets, steps, data["lr"],
                      lambda: scored(data, predict_games(inference, source, data["valid"], out)))


def half_bank(data: dict, game: str, half: int) -> tuple[np.ndarray, int]:
    """A half's bank rows (one per second, the teacher of stage 2) cut to its whole tokens, and its frames."""
    frames = data["source"].num_frames(game, half)
    bank = open_bank(bank_path(Path(data["root"]), game, half, data["bank"]))
    return np.array(bank[:frames // FRAMES_PER_TOKEN], np.float32), frames  # a copy: the bank is memory-mapped


def projector_rows(cfg, checkpoint: Path, data: dict):
    """(game, half) -> (rows, frames) like `half_bank`, the rows being stage 2's projector output for each second of
    the half (L2-normalised, what the distillation loss compares with the bank's rows), from a stage-2 checkpoint."""
    dataset, rates = data["dataset"], data["rates"]
    model = build_spotting(cfg.model, len(dataset.columns), rates)
    init_spotting_model(model, checkpoint, cfg.model.name)
    model.eval()
    state = load_checkpoint(checkpoint)  # a stage-2 checkpoint (main checks, before any probe)
    config = state["config"]
    projector = distill_projector(model.trunk.out_dim, config["model"]["projector_hidden"], config["loss"]["dim"])
    projector.load_state_dict(sub_state(state["model"], "projector."))
    window = rates.tokens(cfg.model.window_seconds, "model.window_seconds")

    @torch.no_grad()
    def rows_of(game: str, half: int) -> tuple[np.ndarray, int]:
        tokens = half_features(model, data["source"], game, half, cfg.model.img_size, window)  # (T, D)
        return F.normalize(projector(tokens), dim=1).numpy(), data["source"].num_frames(game, half)

    return rows_of


def probe_bank(cfg, seed: int, steps: list[int], data: dict, out: Path, rows_of=None) -> dict:
    """Valid a-mAP of a linear head trained on the feature bank's rows themselves: what stage 2 can teach; or on
    other per-second rows, `rows_of(game, half) -> (rows, frames)` (`projector_rows`)."""
    rows_of = rows_of or (lambda game, half: half_bank(data, game, half))
    dataset, train_rows, train_targets = data["dataset"], [], []
    for game in data["train"]:
        for half in dataset.halves:
            rows, _ = rows_of(game, half)
            train_rows.append(torch.from_numpy(rows))
            train_targets.append(torch.from_numpy(data["targets"].of(game, half, 0, FRAMES_PER_TOKEN * len(rows))))
    torch.manual_seed(seed)
    head = linear_head(train_rows[0].shape[1], len(dataset.columns), cfg.model.head_bias_prior)

    @torch.no_grad()
    def evaluate() -> dict:
        for game in data["valid"]:
            halves = {}
            for half in dataset.halves:
                rows, frames = rows_of(game, half)
                halves[half] = np.zeros((frames, len(dataset.columns)), np.float32)
                halves[half][::FRAMES_PER_TOKEN][:len(rows)] = torch.sigmoid(head(torch.from_numpy(rows))).numpy()
            write_game_predictions(out, game, game_predictions(halves, cfg.eval, dataset, data["rates"].fps))
        return scored(data, out)

    return train_head(head, torch.cat(train_rows), torch.cat(train_targets), steps, data["lr"], evaluate)


def table(rows: dict, steps: list[int]) -> str:
    """Markdown: a row per trunk, a column per step count, mean +- spread (max - min over seeds) of tight a-mAP."""
    lines = ["| frozen features | " + " | ".join(f"tight after {s} steps" for s in steps) + " | loose, last |",
             "|---|" + "---|" * (len(steps) + 1)]
    for name, seeds in rows.items():
        cells = []
        for key, step in [("tight", s) for s in steps] + [("loose", steps[-1])]:
            values = np.array([result[step][key] for result in seeds.values()])
            cells.append(f"{values.mean():.2f} +- {np.ptp(values) / 2:.2f}")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def marks(name: str, world: str) -> tuple[str, str]:
    tag = f"{name} ({world})" if world else name
    return f"<!-- toy_study: {tag} -->", f"<!-- /toy_study: {tag} -->"


def write_section(doc: Path, name: str, world: str, text: str) -> None:
    """Replace what lies between `<!-- toy_study: NAME -->` and `<!-- /toy_study: NAME -->` in `doc`."""
    begin, end = marks(name, world)
    content = doc.read_text(encoding="utf-8")
    head, _, rest = content.partition(begin)
    _, _, tail = rest.partition(end)
    doc.write_text(f"{head}{begin}\n{text.strip()}\n{end}{tail}", encoding="utf-8")


def check_doc(doc: Path | None, parts: list[str], world: str) -> None:
    for name in parts if doc else []:
        content = doc.read_text(encoding="utf-8") if doc.is_file() else ""
        begin, end = marks(name, world)
        if begin not in content or end not in content:
            raise InvalidInputError(f"--doc {doc}: expected a file with the lines {begin} and {end} around the "
                                    f"section the study writes")


def parse_arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quickstart", type=Path, default=Path("quickstart"), help="a quick start's folder")
    parser.add_argument("--parts", nargs="+", choices=("probes", "finetune", "response"),
                        default=["probes", "finetune"], help="response: does stage 2's student respond to the "
                                                              "bank's events (benchmarks/toy_response.py)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--steps", type=int, nargs="+", default=[30, 300, 3000], help="the probes' Adam steps")
    parser.add_argument("--lr", type=float, default=1e-2, help="the probes' Adam LR, full batch")
    parser.add_argument("--trunk", action="append", default=[], metavar="NAME=CHECKPOINT",
                        help="another frozen trunk to probe (a stage-1, 2 or 3 checkpoint), as a row of its own")
    parser.add_argument("--projector", action="append", default=[], metavar="NAME=CHECKPOINT",
                        help="a stage-2 checkpoint whose projector output (what the distillation loss sees) is "
                             "probed like the bank, as a row of its own")
    parser.add_argument("--bank", default="bank_pca64.npy", help="the bank stage 2 distils (the quick start's)")
    parser.add_argument("--games", type=int, nargs="+", default=None,
                        help="fine-tuning: labelled training games per column (default: 1 2 4 and all)")
    parser.add_argument("--budget", type=int, default=7200, help="fine-tuning: training windows per run")
    parser.add_argument("--batch", type=int, default=6, help="fine-tuning: every run's global batch (1 game: 6 "
                                                              "windows per epoch)")
    parser.add_argument("--recipe", choices=["quickstart", "scratch"], default="quickstart",
                        help="fine-tuning: the pretrained rows' phase b at its own LR (the quick start's) or at the "
                             "random row's LR and warmup (the recipe check; benchmarks/toy_finetune.py)")
    parser.add_argument("--jobs", type=int, default=2, help="fine-tuning runs at a time, one thread each")
    parser.add_argument("--doc", type=Path, default=None,
                        help="a Markdown file whose marked sections get the tables (docs/TOY_STUDY.md), the plots "
                             "going to a toy_study/ folder beside it")
    parser.add_argument("--world", default="", help="a name for the generated world, when the doc holds several: "
                                                     "its sections are marked 'toy_study: probes (NAME)'")
    parser.add_argument("--out", type=Path, default=None, help="default: <quickstart>/toy_study")
    parser.add_argument("overrides", nargs="*", help="section.key=value for the stage-3 config")
    return parser.parse_args()


def main() -> None:
    args = parse_arguments()
    data_root, runs = args.quickstart / "mini_soccernet", args.quickstart / "runs"
    common = [f"data.root={data_root}", "data.source=store", f"data.store={data_root / 'store'}"]
    cfg = load_config(SpottingConfig, CONFIG, [*common, *args.overrides])
    dataset, rates = load_dataset(cfg.data.dataset), Rates.of(cfg.data.fps)
    source = build_source(cfg.data, dataset)
    train, valid = (dataset.games(split, cfg.data.root) for split in (cfg.data.train_split, cfg.data.valid_split))
    labels = checked_labels(dataset, cfg.data.root, half_lengths(source, train, dataset.halves), rates.fps, "training")
    data = {"dataset": dataset, "rates": rates, "source": source, "train": train, "valid": valid, "lr": args.lr,
            "root": cfg.data.root, "bank": args.bank,
            "targets": WindowTargets(labels, len(dataset.columns), rates.fps, cfg.data.label_radius)}
    inits = {"random": None, "stage 1 (SCE)": runs / "ssl" / "checkpoint_last.pth",
             "stages 1 and 2 (distillation)": runs / "distill" / "checkpoint_last.pth"}
    inits.update(named_paths("--trunk", args.trunk))
    projectors = named_paths("--projector", args.projector)
    for path in [*inits.values(), *projectors.values()]:
        if path is not None and not path.is_file():  # found before the first probe writes anything
            raise MissingFileError(f"{path} not found: the probes read a finished quick start's checkpoints (bash "
                                   f"scripts/quickstart.sh {args.quickstart})")
    for path in projectors.values():
        if (stage := (read_checkpoint_field(path, "extra") or {}).get("stage")) != "distill":
            raise InvalidInputError(f"--projector {path}: expected a stage-2 checkpoint (train_distill.py), which "
                                    f"holds the projector; this one is from stage {stage!r}")
    out = args.out or args.quickstart / "toy_study"
    games = sorted(set(args.games or [count for count in (1, 2, 4) if count < len(train)] + [len(train)]))
    if "finetune" in args.parts and (games[0] < 1 or games[-1] > len(train)):
        raise ConfigError(f"--games {' '.join(map(str, games))}: expected counts from 1 to {len(train)}, the "
                          f"training split's games")
    grid = Grid(common, cfg.data.windows_per_half, len(dataset.halves), args.budget, args.batch, out / "finetune",
                args.recipe)
    for count in games if "finetune" in args.parts else []:
        epochs_for(grid, count)
    # the recipe check's tables, files and plots sit beside the quick start recipe's, under names of their own
    sections = {part: f"{part}_scratch_recipe" if part == "finetune" and args.recipe == "scratch" else part
                for part in args.parts}
    check_doc(args.doc, list(sections.values()), args.world)
    if "probes" in args.parts:
        started = time.perf_counter()
        steps = sorted(args.steps)
        rows = {name: {seed: probe_trunk(cfg, init, seed, steps, data, out / "probes" / f"{index}_{seed}")
                       for seed in args.seeds} for index, (name, init) in enumerate(inits.items())}
        for index, (name, path) in enumerate(projectors.items()):
            rows_of = functools.cache(projector_rows(cfg, path, data))  # computed once for every seed
            rows[name] = {seed: probe_bank(cfg, seed, steps, data, out / "probes" / f"projector{index}_{seed}",
                                           rows_of) for seed in args.seeds}
        rows[f"the feature bank ({args.bank}), stage 2's teacher"] = {
            seed: probe_bank(cfg, seed, steps, data, out / "probes" / f"bank_{seed}") for seed in args.seeds}
        out.mkdir(parents=True, exist_ok=True)
        (out / "probes.json").write_text(json.dumps(rows, indent=1))
        text = (f"Linear probes on the frozen trunk, valid split ({len(valid)} games), average-mAP in %, mean +- half "
                f"the range over seeds {args.seeds} ({minutes(started)} on {os.cpu_count()} cores):\n\n"
                f"{table(rows, steps)}\n")
        (out / "probes.txt").write_text(text)
        print(text)
        if args.doc:
            write_section(args.doc, "probes", args.world, text)
    if "finetune" in args.parts:
        started = time.perf_counter()
        fine = {"random": None, **{name: init for name, init in list(inits.items())[1:3]}}
        results = finetune(grid, fine, games, args.seeds, train, args.jobs)
        name = sections["finetune"]
        recipe = ", the pretrained rows' phase b at the random row's LR and warmup" if args.recipe == "scratch" else ""
        (out / f"{name}.json").write_text(json.dumps(results, indent=1))
        svgs = plots(results, args.doc.parent / "toy_study" if args.doc else out, args.world, name,
                     "the recipe check: stage 3" if args.recipe == "scratch" else "stage 3")
        text = (f"Stage 3 from each init{recipe}, valid split ({len(valid)} games), tight average-mAP in % after "
                f"{args.budget:,} training windows (batch {args.batch}), mean +- half the range over seeds "
                f"{args.seeds} ({minutes(started)} on {os.cpu_count()} cores, {args.jobs} runs at a time):\n\n"
                f"{summary(results, 'random')}\n\nConvergence (mean curves): "
                + ", ".join(f"[{path.stem}]({path.relative_to(args.doc.parent) if args.doc else path})"
                            for path in svgs)
                + "\n")
        (out / f"{name}.txt").write_text(text)
        print(text)
        if args.doc:
            write_section(args.doc, name, args.world, text)
    if "response" in args.parts:
        stage2 = {"stage 2's projector output, as in the quick start": inits["stages 1 and 2 (distillation)"],
                  **projectors}
        text = event_response(cfg, data, stage2, args.bank)
        out.mkdir(parents=True, exist_ok=True)
        (out / "response.txt").write_text(text)
        print(text)
        if args.doc:
            write_section(args.doc, "response", args.world, text)


def event_response(cfg, data: dict, stage2: dict[str, Path], bank: str) -> str:
    """The bank's and each stage-2 checkpoint's event response and own-row shares on the valid split, as Markdown."""
    started, dataset, rates = time.perf_counter(), data["dataset"], data["rates"]
    bank_of = functools.cache(lambda game, half: half_bank(data, game, half))
    directions = class_directions(bank_of, event_seconds(data["targets"].labels, dataset.halves), len(dataset.columns))
    valid = checked_labels(dataset, data["root"], half_lengths(data["source"], data["valid"], dataset.halves),
                           rates.fps, "validation")
    events = event_seconds(valid, dataset.halves)
    window = rates.tokens(cfg.model.window_seconds, "model.window_seconds")
    sets = {f"the feature bank ({bank}), stage 2's teacher": bank_of,
            **{name: projector_rows(cfg, path, data) for name, path in stage2.items()}}
    results = {name: response(rows_of, bank_of, events, directions, window) for name, rows_of in sets.items()}
    return (f"Stage 2's student against its teacher, valid split ({len(data['valid'])} games, "
            f"{sum(map(len, events.values()))} events), rows L2-normalised ({time.perf_counter() - started:.0f} s on "
            f"{os.cpu_count()} cores):\n\n{response_table(results, window)}\n")


def named_paths(flag: str, entries: list[str]) -> dict[str, Path]:
    """{NAME: CHECKPOINT} of repeated `flag NAME=CHECKPOINT` arguments."""
    named = {}
    for entry in entries:
        name, separator, path = entry.partition("=")
        if not separator or not name or not path:
            raise ConfigError(f"{flag} {entry!r}: expected NAME=CHECKPOINT")
        named[name] = Path(path)
    return named


def minutes(started: float) -> str:
    return f"{(time.perf_counter() - started) / 60:.1f} min"


if __name__ == "__main__":
    run_entry_point(main)
