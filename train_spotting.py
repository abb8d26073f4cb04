"""Stage 3: fine-tuning to per-second multi-label action spotting (docs/METHOD.md sections 4 and 5).

    # phase a: the head alone on the frozen stage-2 trunk (held in eval mode), 30 epochs
    torchrun --nproc_per_node=2 train_spotting.py --config configs/spotting/vivit_tiny_phase_a.yaml \\
        data.root=/data/soccernet model.init_checkpoint=runs/distill_vivit_tiny/checkpoint_epoch100.pth
    # phase b: everything, from phase a's last checkpoint, 20 epochs, temporal masking 25%
    torchrun --nproc_per_node=2 train_spotting.py --config configs/spotting/vivit_tiny_phase_b.yaml \\
        data.root=/data/soccernet model.init_checkpoint=runs/spot_vivit_tiny_a/checkpoint_last.pth

Each epoch draws 25 windows of 64 s per half (the first and the last always, the rest uniform and non-overlapping),
mixes windows with mixup (lambda ~ Beta(0.1, 0.1) per sample) and trains the mean BCE of the 17 per-second logits.
Validation runs the full inference and post-processing on the valid split and scores it with the official metric;
tight average-mAP selects checkpoint_best.pth, kept beside checkpoint_last.pth.
"""

from __future__ import annotations

import dataclasses
import functools
import itertools
import time
from typing import Literal

import torch

from data.augment import STAGE3, PhotometricConfig, photometric
from data.datasets import WindowDataset, half_lengths
from data.games import split_games
from data.labels import LABELS_FILE, parse_labels
from data.samplers import FPS, ShardedSampler, epoch_windows, uniform_windows
from data.sources import build_source
from evaluation.inference import predict_games
from evaluation.scoring import score
from models.heads import SpottingModel
from models.loading import load_spotting, load_stage1_into_video, load_stage2_into_spotting
from models.losses import mixup_bce
from models.registry import ModelConfig, build_video
from utils import dist
from utils.checkpoint import BEST_CHECKPOINT, LAST_CHECKPOINT, load_checkpoint, read_checkpoint_field
from utils.config import FRACTION, DataConfig, OptimConfig, RunConfig, bounded
from utils.logs import get_logger
from utils.optim import apply_schedules, build_adamw
from utils.run import autocast, parse_command_line
from utils.errors import run_entry_point
from utils.trainer import (RunContext, RunSampler, StepTimer, begin_training, build_loader, end_epoch_checkpoints,
                           epoch_progress, log_step, lr_wd_schedules, open_run_folder, optimizer_step, plan_epochs,
                           resume, run_batches, save_training, setup_run, wrap_ddp)

STAGE = "spotting"


# ----------------------------------------------------------------------------------------------------------------------
# Config: the defaults are the paper's ViViT-T phase b (section 5, stage-3 columns)
# ----------------------------------------------------------------------------------------------------------------------
@dataclasses.dataclass
class SpottingDataConfig(DataConfig):
    windows_per_half: int = bounded(25, low=1)  # 50 per game per epoch
    label_radius: float = bounded(0.5, low=0.0)  # a frame is positive within 0.5 s of an action


@dataclasses.dataclass
class SpottingModelConfig(ModelConfig):
    init_checkpoint: str = ""  # stage 2 (phase a), stage 3a (phase b), stage 1 or '' (ablations)
    freeze_trunk: bool = False  # phase a: train the head alone, the trunk frozen and in eval mode
    # > 0: start the head at this probability per class (0: the official zero bias)
    head_bias_prior: float = bounded(0.0, **FRACTION)


@dataclasses.dataclass
class SpottingAugmentConfig:
    photometric: PhotometricConfig = dataclasses.field(default_factory=lambda: dataclasses.replace(STAGE3))
    mixup_alpha: float = bounded(0.1, low=0.0)  # lambda ~ Beta(alpha, alpha) per sample; 0 disables mixup


@dataclasses.dataclass
class EvalConfig:
    every_epochs: int = bounded(5, low=0)  # validate every N epochs and after the last (0: only after the last)
    window_stride_seconds: int = bounded(32, low=1)
    trim_seconds: int = bounded(12, low=0)  # dropped at both ends of each window, except at the half's edges
    nms: Literal["soft", "hard", "none"] = "soft"
    nms_window: int = bounded(20, low=1)  # in 0.5 s slots: +-5 s
    nms_threshold: float = bounded(0.001, low=0.0)
    batch_size: int = bounded(4, low=1)  # windows per inference forward pass
    # the last trim_seconds of every half: "official" scores them 0, as the official code does (a quirk its paper
    # numbers include, evaluation/inference.py:kept_tokens); "scored" keeps the end-aligned window's last seconds
    half_end: Literal["official", "scored"] = "official"


@dataclasses.dataclass
class SpottingConfig:
    run: RunConfig = dataclasses.field(default_factory=lambda: RunConfig(epochs=20, global_batch_size=64,
                                                                         save_every_epochs=5))
    data: SpottingDataConfig = dataclasses.field(default_factory=SpottingDataConfig)
    model: SpottingModelConfig = dataclasses.field(default_factory=SpottingModelConfig)
    optim: OptimConfig = dataclasses.field(default_factory=lambda: OptimConfig(lr=1e-3, min_lr=1e-5))
    augment: SpottingAugmentConfig = dataclasses.field(default_factory=SpottingAugmentConfig)
    eval: EvalConfig = dataclasses.field(default_factory=EvalConfig)


# ----------------------------------------------------------------------------------------------------------------------
# Model initialisation and validation
# ----------------------------------------------------------------------------------------------------------------------
def build_model(cfg: SpottingConfig) -> SpottingModel:
    """The spotting model, initialised from whatever stage the checkpoint comes from."""
    model = SpottingModel(build_video(cfg.model), bias_prior=cfg.model.head_bias_prior)
    path = cfg.model.init_checkpoint
    if not path:
        get_logger().warning("model.init_checkpoint is empty: training from random weights (the no-pretraining "
                             "ablation)")
        return model
    stage = load_checkpoint(path)["extra"].get("stage")
    if stage == "distill":
        load_stage2_into_spotting(model, path, cfg.model.name)
    elif stage == "spotting":
        load_spotting(model, path, cfg.model.name)
    elif stage == "ssl":
        load_stage1_into_video(model.trunk, path, cfg.model.name)
    else:
        raise ValueError(f"{path}: unknown stage {stage!r}; expected a stage 1, 2 or 3 checkpoint")
    get_logger().info(f"initialised from the {stage} checkpoint {path}")
    return model


def set_train_mode(model: SpottingModel, freeze_trunk: bool) -> None:
    model.train()
    if freeze_trunk:
        model.trunk.eval()  # phase a: no masking, no stochastic depth in the frozen trunk


def validate(ctx: RunContext, cfg: SpottingConfig, model: SpottingModel, source, games: list[str],
             epoch: int) -> dict:
    """Inference + post-processing on the valid split, scored with the official metric (tight and loose)."""
    out = ctx.output_dir / "validation" / f"epoch{epoch}"
    predictions = predict_games(model, source, games, out, cfg.model.window_seconds, cfg.model.img_size, ctx.device,
                                ctx.amp_dtype, cfg.eval.window_stride_seconds, cfg.eval.trim_seconds, cfg.eval.nms,
                                cfg.eval.nms_window, cfg.eval.nms_threshold, cfg.eval.batch_size, cfg.eval.half_end)
    results = score(cfg.data.root, predictions, games, ("tight", "loose"), workers=0) if ctx.info.is_main else None
    return dist.broadcast_object(results)


# ----------------------------------------------------------------------------------------------------------------------
# Training
# ----------------------------------------------------------------------------------------------------------------------
def train_one_epoch(ctx: RunContext, cfg: SpottingConfig, model, spotting: SpottingModel, batches, optimizer,
                    schedules: dict, epoch: int, step: int, steps_per_epoch: int, record: dict) -> int:
    set_train_mode(spotting, cfg.model.freeze_trunk)
    first = step - epoch * steps_per_epoch
    bar = epoch_progress(ctx, steps_per_epoch, epoch, first)
    timer, end = StepTimer(ctx.device), time.perf_counter()
    beta = torch.distributions.Beta(cfg.augment.mixup_alpha, cfg.augment.mixup_alpha) \
        if cfg.augment.mixup_alpha > 0 else None
    for batch in itertools.islice(batches, steps_per_epoch - first):
        timer.waited(time.perf_counter() - end, batch["frames"].shape[0] * ctx.info.world_size)
        apply_schedules(optimizer, schedules["lr"][step], schedules["wd"][step])

        frames = batch["frames"].to(ctx.device, non_blocking=True)  # (B, F, 3, S, S) uint8
        targets = batch["targets"].to(ctx.device, non_blocking=True)  # (B, T, 17)
        video = photometric(frames, cfg.augment.photometric)  # (B, F, 3, S, S)
        permutation = lam = None
        if beta is not None:  # mixup: x = lam x + (1 - lam) x[perm], one lam per sample
            lam = beta.sample((video.shape[0],)).to(ctx.device)
            permutation = torch.randperm(video.shape[0], device=ctx.device)
            video = lam.view(-1, 1, 1, 1, 1) * video + (1 - lam.view(-1, 1, 1, 1, 1)) * video[permutation]
        with autocast(ctx.device, ctx.amp_dtype):
            logits = model(video.transpose(1, 2))  # (B, T, 17)
        loss = mixup_bce(logits, targets, permutation, lam)
        grad_norm = optimizer_step(loss, model, optimizer, ctx.scaler, cfg.optim.clip_grad, step)
        step += 1
        bar.update()

        if step % cfg.run.log_every_steps == 0 or step == (epoch + 1) * steps_per_epoch:
            log_step(ctx, bar, step, epoch, {"loss": dist.all_reduce_mean(loss.detach()), "grad_norm": grad_norm,
                                             "lr": schedules["lr"][step - 1], **timer.report()})
        if cfg.run.save_every_steps and step % cfg.run.save_every_steps == 0:
            save_training(ctx, LAST_CHECKPOINT, model, optimizer, step, epoch, cfg, STAGE, record["best"],
                          {"validated_epoch": record["validated_epoch"]})
        end = time.perf_counter()
    bar.close()
    return step


def validation_due(cfg: SpottingConfig, done: int) -> bool:
    return bool(cfg.eval.every_epochs and done % cfg.eval.every_epochs == 0) or done == cfg.run.epochs


def validate_and_keep_best(ctx: RunContext, cfg: SpottingConfig, model, spotting: SpottingModel, optimizer, source,
                           valid_games: list[str], step: int, done: int, record: dict) -> None:
    """Validate after epoch `done`; a better tight a-mAP replaces checkpoint_best.pth. `record` (best metric, last
    validated epoch) travels in every checkpoint, so that a resumed run neither forgets the best nor skips an epoch's
    validation."""
    results = validate(ctx, cfg, spotting, source, valid_games, done)
    tight, loose = results["tight"]["a_mAP"], results["loose"]["a_mAP"]
    ctx.metrics.write({"step": step, "epoch": done, "valid_tight_a_mAP": tight, "valid_loose_a_mAP": loose,
                       "valid_tight_a_mAP_per_class": results["tight"]["a_mAP_per_class"]})
    get_logger().info(f"epoch {done}: valid tight a-mAP {100 * tight:.2f}, loose {100 * loose:.2f}")
    if record["best"] is None or tight > record["best"]:
        record["best"] = tight
        save_training(ctx, BEST_CHECKPOINT, model, optimizer, step, done, cfg, STAGE, tight, {"validated_epoch": done})
        get_logger().info(f"new best tight a-mAP {100 * tight:.2f}: {ctx.output_dir / BEST_CHECKPOINT}")
    record["validated_epoch"] = done


def stored_best(output_dir, best: float | None) -> float | None:
    """The larger of `best` (from the resumed checkpoint) and the metric checkpoint_best.pth stores."""
    path = output_dir / BEST_CHECKPOINT
    if not path.is_file():
        return best
    kept = read_checkpoint_field(path, "best_metric")
    return kept if best is None or (kept is not None and kept > best) else best


def warn_events_past_the_end(labels: dict, halves: dict[tuple[str, int], int], split: str) -> None:
    """Annotations after the end of their half's video are never targets: count them, name the halves."""
    late = {}
    for (game, half), num_frames in halves.items():
        count = sum(1 for a in labels[game] if a.half == half and a.position_ms / 1000 * FPS >= num_frames)
        if count:
            late[f"{game} half {half}"] = count
    if late:
        listed = ", ".join(f"{where} ({count})" for where, count in list(late.items())[:5])
        get_logger().warning(f"{sum(late.values())} {split} annotations lie after the end of their half's video and "
                             f"are never targets: {listed}{' ...' if len(late) > 5 else ''}")


def main(cfg: SpottingConfig) -> None:
    ctx = setup_run(cfg)
    logger = get_logger()

    # ---------------------------------------------------------------- data
    source = build_source(cfg.data.source, cfg.data.root, cfg.data.store, cfg.data.frames_root, cfg.data.resolution)
    games = split_games(cfg.data.train_split, cfg.data.root)
    valid_games = split_games(cfg.data.valid_split, cfg.data.root)
    halves = half_lengths(source, games)
    valid_halves = half_lengths(source, valid_games)  # every validation half readable before the first epoch
    labels = {game: parse_labels(f"{cfg.data.root}/{game}/{LABELS_FILE}").annotations for game in games}
    valid_labels = {game: parse_labels(f"{cfg.data.root}/{game}/{LABELS_FILE}").annotations for game in valid_games}
    warn_events_past_the_end(labels, halves, "training")
    warn_events_past_the_end(valid_labels, valid_halves, "validation")
    window_frames = 2 * cfg.model.window_seconds
    windows = functools.partial(epoch_windows, halves, functools.partial(
        uniform_windows, count=cfg.data.windows_per_half, window_frames=window_frames), window_frames, cfg.run.seed)
    sampler = ShardedSampler(windows, ctx.info.rank, ctx.info.world_size, cfg.run.seed)
    derived = plan_epochs(cfg, ctx, sampler, len(windows(0)), train_games=len(games),
                          valid_games=len(valid_games))
    steps_per_epoch = derived["steps_per_epoch"]
    dataset = WindowDataset(source, window_frames, cfg.model.img_size, labels=labels, radius=cfg.data.label_radius)
    loader = build_loader(dataset, RunSampler(sampler, derived, cfg.run.epochs), derived["batch_size_per_rank"],
                          cfg.run.num_workers, ctx.device)  # one loader iterator for the whole run: run_batches

    # ---------------------------------------------------------------- model
    spotting = build_model(cfg)
    if cfg.model.freeze_trunk:
        spotting.trunk.requires_grad_(False)
    spotting.to(ctx.device)
    model = wrap_ddp(spotting, ctx.info)
    if cfg.run.compile:
        model = torch.compile(model)

    # ---------------------------------------------------------------- optimizer and per-step schedules
    optimizer = build_adamw(spotting, cfg.optim)  # frozen parameters are left out
    schedules = lr_wd_schedules(cfg, derived)

    # ---------------------------------------------------------------- resume
    open_run_folder(ctx, cfg)
    step, best, extra = resume(ctx, cfg.run, spotting, optimizer, STAGE)
    record = {"best": stored_best(ctx.output_dir, best), "validated_epoch": int(extra.get("validated_epoch", 0))}
    # a validation the kill interrupted may have logged its record: it is run again, so its record goes
    ctx.metrics.remove(lambda r: "valid_tight_a_mAP" in r and r["epoch"] > record["validated_epoch"])
    batches = run_batches(loader, step)
    begin_training()

    # ---------------------------------------------------------------- loop
    done = step // steps_per_epoch
    if step == done * steps_per_epoch and done and validation_due(cfg, done) and record["validated_epoch"] < done:
        # killed after epoch `done`'s last step checkpoint, before its validation completed: validate it now
        validate_and_keep_best(ctx, cfg, model, spotting, optimizer, source, valid_games, step, done, record)
        save_training(ctx, LAST_CHECKPOINT, model, optimizer, step, done, cfg, STAGE, record["best"],
                      {"validated_epoch": record["validated_epoch"]})
    for epoch in range(done, cfg.run.epochs):
        step = train_one_epoch(ctx, cfg, model, spotting, batches, optimizer, schedules, epoch, step, steps_per_epoch,
                               record)
        done = epoch + 1
        if validation_due(cfg, done):
            validate_and_keep_best(ctx, cfg, model, spotting, optimizer, source, valid_games, step, done, record)
        end_epoch_checkpoints(ctx, cfg, model, optimizer, step, done, STAGE, record["best"],
                              {"validated_epoch": record["validated_epoch"]})
    logger.info(f"done: {ctx.output_dir / LAST_CHECKPOINT}, best {ctx.output_dir / BEST_CHECKPOINT}")
    dist.cleanup()


if __name__ == "__main__":
    run_entry_point(lambda: main(parse_command_line(SpottingConfig, __doc__)))
