"""Stage 3: fine-tuning to per-second multi-label action spotting (docs/METHOD.md sections 4 and 5).

    # phase a: the head alone on the frozen stage-2 trunk (held in eval mode), 30 epochs; the config names the
    # stage-2 checkpoint (model.init_checkpoint: runs/distill_vivit_tiny/checkpoint_epoch100.pth)
    torchrun --nproc_per_node=2 train_spotting.py --config configs/spotting/vivit_tiny_phase_a.yaml data.root=$R
    # phase b: everything, from phase a's last checkpoint (runs/spot_vivit_tiny_seed42_a/checkpoint_last.pth),
    # 20 epochs, temporal masking 25%
    torchrun --nproc_per_node=2 train_spotting.py --config configs/spotting/vivit_tiny_phase_b.yaml data.root=$R

Each epoch draws 25 windows of 64 s per half (the first and the last always, the rest uniform and non-overlapping),
mixes windows with mixup (lambda ~ Beta(0.1, 0.1) per sample) and trains the mean BCE of the per-second logits, one
per column of the dataset (`data.dataset`, data/catalog.py: SoccerNet-v2's 17 classes, a class and a team each for
Team-BAS). Validation runs the full inference and post-processing on the valid split and scores it with the
dataset's official metric; its first metric (SoccerNet-v2: tight average-mAP; with teams, the team score) selects
checkpoint_best.pth, kept beside checkpoint_last.pth.
"""

from __future__ import annotations

import dataclasses
import functools

import torch

from configs.schema import SpottingConfig
from data.augment import photometric_and_flips
from data.catalog import Dataset, check_disjoint, checked_labels, described_dataset, load_dataset
from data.colour import batch_frames, planes_fit
from data.datasets import WindowDataset, half_lengths
from data.samplers import check_long_enough, epoch_windows, stage3_windows
from data.sources import FrameSource, build_source
from data.targets import WindowTargets, action_frames, mirror_targets
from evaluation.inference import Inference, predict_games
from evaluation.scoring import score
from models.loading import init_spotting_model
from models.losses import mixup_bce
from models.registry import build_spotting
from utils import dist
from utils.checkpoint import BEST_CHECKPOINT, LAST_CHECKPOINT, Progress
from utils.errors import run_entry_point
from utils.logs import get_logger
from utils.loop import TrainingRun, optimizer_step
from utils.optim import build_adamw
from utils.plan import RunSampler, batches_from, build_loader, plan_run
from utils.rates import Rates
from utils.run import autocast, parse_command_line, prepare_model, setup_run
from utils.schedules import build_schedules

STAGE = "spotting"


# ----------------------------------------------------------------------------------------------------------------------
# Validation
# ----------------------------------------------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class Validation:
    """The split that validation scores: its games, their dataset, where their frames come from and at what rate."""

    source: FrameSource
    dataset: Dataset
    games: list[str]
    rates: Rates


def validation_due(cfg: SpottingConfig, done: int) -> bool:
    return bool(cfg.eval.every_epochs and done % cfg.eval.every_epochs == 0) or done == cfg.run.epochs


def validate_and_keep_best(run: TrainingRun, validation: Validation, progress: Progress) -> None:
    """Validate the epoch just done: inference and post-processing on the valid split, scored with the official
    metric of the dataset; a better score of the first metric (eval.metrics, else the dataset's: tight for
    SoccerNet-v2, at1 for Ball Action Spotting; with teams, the team score) replaces checkpoint_best.pth.
    progress.best travels in every checkpoint."""
    ctx, cfg, done, dataset = run.ctx, run.cfg, run.plan.epoch_of(progress.step), validation.dataset
    metrics = tuple(cfg.eval.metrics) or dataset.metrics
    inference = Inference(run.module, cfg.model, cfg.eval, dataset, ctx.device, ctx.amp_dtype, validation.rates)
    predictions = predict_games(inference, validation.source, validation.games,
                                ctx.output_dir / "validation" / f"epoch{done}")
    results = dist.broadcast_object(score(dataset, cfg.data.root, predictions, validation.games, metrics, workers=0)
                                    if ctx.info.is_main else None)
    record = {"step": progress.step, "epoch": done}
    for metric in metrics:
        record[f"valid_{metric}_a_mAP"] = results[metric]["a_mAP"]
        if dataset.teams:
            record[f"valid_{metric}_team_a_mAP"] = results[metric]["team_a_mAP"]
    record[f"valid_{metrics[0]}_a_mAP_per_class"] = results[metrics[0]]["a_mAP_per_class"]
    ctx.metrics.write(record)
    selected = f"valid_{metrics[0]}_{'team_' if dataset.teams else ''}a_mAP"
    value = record[selected] if record[selected] is not None else float("-inf")
    get_logger().info(f"epoch {done}: valid " + ", ".join(f"{key[6:-6].replace('_', ' ')} a-mAP {100 * v:.2f}"
                                                            for key, v in record.items() if key.endswith("_a_mAP")))
    progress.best.validated_epoch = done
    if progress.best.improved_by(value):
        progress.best.metric = value
        run.save(BEST_CHECKPOINT, progress)
        get_logger().info(f"new best {selected[6:-6].replace('_', ' ')} a-mAP {100 * value:.2f}: "
                          f"{ctx.output_dir / BEST_CHECKPOINT}")


def finish_interrupted_validation(run: TrainingRun, validation: Validation, progress: Progress) -> None:
    """A run killed after an epoch's last checkpoint, before that epoch's validation completed, validates it now
    (the record a killed validation may have logged goes: it is run again)."""
    done = run.plan.epoch_of(progress.step)
    run.ctx.metrics.remove(lambda r: any(key.startswith("valid_") for key in r)
                           and r["epoch"] > progress.best.validated_epoch)
    at_epoch_end = progress.step == done * run.plan.steps_per_epoch
    if at_epoch_end and done and validation_due(run.cfg, done) and progress.best.validated_epoch < done:
        validate_and_keep_best(run, validation, progress)
        run.save(LAST_CHECKPOINT, progress)


# ----------------------------------------------------------------------------------------------------------------------
# Training
# ----------------------------------------------------------------------------------------------------------------------
def train_one_epoch(run: TrainingRun, batches, epoch: int, progress: Progress) -> None:
    cfg, ctx, spotting = run.cfg, run.ctx, run.module
    spotting.train()
    if cfg.model.freeze_trunk:
        spotting.trunk.eval()  # phase a: no masking, no stochastic depth in the frozen trunk
    beta = torch.distributions.Beta(cfg.augment.mixup_alpha, cfg.augment.mixup_alpha) \
        if cfg.augment.mixup_alpha > 0 else None
    mirrored = described_dataset(run.carried["dataset"]).mirrored_columns()  # Team-BAS: flips swap left and right

    def loss_of(batch: dict) -> torch.Tensor:
        frames = batch_frames(batch, ctx.device)  # (B, F, 3, S, S) uint8, converted here from a store's YUV
        targets = batch["targets"].to(ctx.device, non_blocking=True)  # (B, T or F, C), C the dataset's columns
        video, flipped = photometric_and_flips(frames, cfg.augment.view)  # (B, F, 3, S, S), (B,)
        targets = mirror_targets(targets, flipped, mirrored)  # a mirrored window's left-team actions are on the right
        permutation = lam = None
        if beta is not None:  # mixup: x = lam x + (1 - lam) x[perm], one lam per sample, within the micro-batch
            lam = beta.sample((video.shape[0],)).to(ctx.device)
            permutation = torch.randperm(video.shape[0], device=ctx.device)
            video = lam.view(-1, 1, 1, 1, 1) * video + (1 - lam.view(-1, 1, 1, 1, 1)) * video[permutation]
        with autocast(ctx.device, ctx.amp_dtype):
            logits = run.model(video.transpose(1, 2))  # (B, T or F, C): a row per token or per frame
        return mixup_bce(logits, targets, permutation, lam)

    epoch_run = run.epoch(epoch, progress)
    for step, micro_batches in epoch_run.steps(batches):
        values = run.apply_schedules(step)
        loss, grad_norm = optimizer_step(loss_of, micro_batches, run.model, run.optimizer, ctx.scaler,
                                         cfg.optim.clip_grad)
        epoch_run.done(loss=loss, grad_norm=grad_norm, **values)
    epoch_run.finish()


def main(cfg: SpottingConfig) -> None:
    ctx = setup_run(cfg)

    # ---------------------------------------------------------------- data
    dataset, rates = load_dataset(cfg.data.dataset), Rates.of(cfg.data.fps)
    window_frames = rates.frames(cfg.model.window_seconds, "model.window_seconds")
    rates.tokens(cfg.eval.window_stride_seconds, "eval.window_stride_seconds")  # checked now, not at validation
    source = build_source(cfg.data, dataset)
    games = dataset.games(cfg.data.train_split, cfg.data.root)
    validation = Validation(source, dataset, dataset.games(cfg.data.valid_split, cfg.data.root), rates)
    check_disjoint(games, validation.games, cfg.data.train_split, cfg.data.valid_split)
    halves = half_lengths(source, games, dataset.halves)
    valid_halves = half_lengths(source, validation.games, dataset.halves)  # every validation half readable now
    check_long_enough(halves, window_frames, rates.fps)
    labels = checked_labels(dataset, cfg.data.root, halves, rates.fps, "training")  # {game: annotations, label: column}
    checked_labels(dataset, cfg.data.root, valid_halves, rates.fps, "validation")
    per_half = functools.partial(stage3_windows, count=cfg.data.windows_per_half, window_frames=window_frames,
                                 events=action_frames(labels, halves, rates.fps), share=cfg.data.event_share)
    windows = functools.partial(epoch_windows, halves, per_half, window_frames, cfg.run.seed)
    plan = plan_run(cfg.run, cfg.optim.lr, ctx.info.world_size, len(windows(0)), train_games=len(games),
                    valid_games=len(validation.games))
    yuv420 = cfg.data.colour_on_device and planes_fit(source, halves, cfg.model.img_size)
    targets = WindowTargets(labels, len(dataset.columns), rates.fps, cfg.data.label_radius, cfg.model.head == "frame")
    window_data = WindowDataset(source, window_frames, cfg.model.img_size, targets, yuv420=yuv420)
    loader = build_loader(window_data, RunSampler(windows, plan, ctx.info.rank, cfg.run.seed), cfg.run.num_workers,
                          ctx.device, ctx.loader_seed)

    # ---------------------------------------------------------------- model
    spotting = build_spotting(cfg.model, len(dataset.columns), rates)
    init_spotting_model(spotting, cfg.model.init_checkpoint, cfg.model.name)
    if cfg.model.freeze_trunk:
        spotting.trunk.requires_grad_(False)
    model = prepare_model(spotting, ctx, cfg.run.compile)

    # ---------------------------------------------------------------- optimizer and per-step schedules
    optimizer = build_adamw(spotting, cfg.optim)  # frozen parameters are left out
    schedules = build_schedules(cfg.optim, plan)

    # ---------------------------------------------------------------- resume, then the epochs
    run = TrainingRun(ctx, cfg, {"stage": STAGE, "dataset": dataset.describe()}, plan, model, optimizer, schedules)
    progress = run.resume()
    batches = batches_from(loader, progress.step)
    finish_interrupted_validation(run, validation, progress)
    for epoch in range(plan.epoch_of(progress.step), plan.epochs):
        train_one_epoch(run, batches, epoch, progress)
        if validation_due(cfg, epoch + 1):
            validate_and_keep_best(run, validation, progress)
        run.end_epoch(progress)
    run.finish()


if __name__ == "__main__":
    run_entry_point(lambda: main(parse_command_line(SpottingConfig, __doc__)))
