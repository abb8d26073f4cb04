"""Stage 2: token-level SCE distillation of the spatio-temporal trunk from a pre-computed feature bank
(docs/METHOD.md section 3).

    python -m data.features --root /data/soccernet                   # once: standardise + PCA the bank to 512-d
    torchrun --nproc_per_node=2 train_distill.py --config configs/distill/vivit_tiny_soccernet.yaml \\
        data.root=/data/soccernet model.init_checkpoint=runs/ssl_vit_tiny/checkpoint_epoch100.pth

Every epoch draws 38 jittered, non-overlapping 64-second windows per half (re-seeded per epoch). Each second's token
is trained to pick its own bank row among the other seconds of its window and a queue of 65,536 past rows, with
25% of the seconds masked before the spatial trunk. The checkpoint's `trunk.*` initialises stage 3.
"""

from __future__ import annotations

import dataclasses
import functools
import itertools
import time

import torch
import torch.nn.functional as F

from data.augment import STAGE2, PhotometricConfig, photometric
from data.datasets import WindowDataset, half_lengths
from data.features import FeatureBank
from data.games import split_games
from data.samplers import ShardedSampler, epoch_windows, jittered_windows
from data.sources import build_source
from models.distill import DistillModel
from models.loading import load_stage1_into_video
from models.losses import sce_token_loss
from models.registry import ModelConfig, build_video
from utils import dist
from utils.config import POSITIVE, PROBABILITY, DataConfig, OptimConfig, RunConfig, bounded
from utils.logs import get_logger
from utils.optim import apply_schedules, build_adamw
from utils.run import autocast, parse_command_line
from utils.errors import run_entry_point
from utils.trainer import (RunContext, RunSampler, StepTimer, begin_training, build_loader, end_epoch_checkpoints,
                           epoch_progress, log_step, lr_wd_schedules, open_run_folder, optimizer_step, plan_epochs,
                           resume, run_batches, save_training, setup_run, wrap_ddp)

STAGE = "distill"


# ----------------------------------------------------------------------------------------------------------------------
# Config: the defaults are the paper's ViViT-T run (section 5, stage-2 column)
# ----------------------------------------------------------------------------------------------------------------------
@dataclasses.dataclass
class BankConfig:
    name: str = "baidu_pca512.npy"  # per-half reduced bank files written by python -m data.features
    fps: float = bounded(1.0, **POSITIVE)  # rows per second (Baidu: 1; 2 fps banks are sub-sampled)


@dataclasses.dataclass
class DistillDataConfig(DataConfig):
    windows_per_half: int = bounded(38, low=1)  # 76 per game per epoch
    bank: BankConfig = dataclasses.field(default_factory=BankConfig)


@dataclasses.dataclass
class DistillModelConfig(ModelConfig):
    init_checkpoint: str = ""  # stage-1 checkpoint ('' = random initialisation, the no-pretraining ablation)
    projector_hidden: int = bounded(1024, low=1)


@dataclasses.dataclass
class TokenSCEConfig:
    coeff: float = bounded(0.5, **PROBABILITY)  # lambda
    temp: float = bounded(0.1, **POSITIVE)
    temp_m: float = bounded(0.05, **POSITIVE)
    queue_size: int = bounded(65536, low=1)
    dim: int = bounded(512, low=1)  # the bank's reduced width


@dataclasses.dataclass
class DistillConfig:
    run: RunConfig = dataclasses.field(default_factory=lambda: RunConfig(epochs=100, global_batch_size=32,
                                                                         save_every_epochs=10))
    data: DistillDataConfig = dataclasses.field(default_factory=DistillDataConfig)
    model: DistillModelConfig = dataclasses.field(default_factory=DistillModelConfig)
    optim: OptimConfig = dataclasses.field(default_factory=lambda: OptimConfig(
        lr=4e-3, warmup_epochs=10.0, warmup_start_lr=4e-5, min_lr=4e-5))
    augment: PhotometricConfig = dataclasses.field(default_factory=lambda: dataclasses.replace(STAGE2))
    loss: TokenSCEConfig = dataclasses.field(default_factory=TokenSCEConfig)


# ----------------------------------------------------------------------------------------------------------------------
# Training
# ----------------------------------------------------------------------------------------------------------------------
def train_one_epoch(ctx: RunContext, cfg: DistillConfig, model, distill: DistillModel, batches, optimizer,
                    schedules: dict, epoch: int, step: int, steps_per_epoch: int) -> int:
    model.train()
    first = step - epoch * steps_per_epoch
    bar = epoch_progress(ctx, steps_per_epoch, epoch, first)
    timer, end = StepTimer(ctx.device), time.perf_counter()
    tokens_per_window = cfg.model.window_seconds
    for batch in itertools.islice(batches, steps_per_epoch - first):
        timer.waited(time.perf_counter() - end, batch["frames"].shape[0] * ctx.info.world_size)
        apply_schedules(optimizer, schedules["lr"][step], schedules["wd"][step])

        frames = batch["frames"].to(ctx.device, non_blocking=True)  # (B, F, 3, S, S) uint8
        video = photometric(frames, cfg.augment).transpose(1, 2)  # (B, 3, F, S, S), one draw per window
        targets = F.normalize(batch["bank"].to(ctx.device, non_blocking=True).flatten(0, 1), dim=1)  # (B*T, dim)
        with autocast(ctx.device, ctx.amp_dtype):
            queries = model(video)  # (B*T, dim)
        loss = sce_token_loss(queries, targets, tokens_per_window, distill.queue.keys, cfg.loss.coeff,
                              cfg.loss.temp, cfg.loss.temp_m)
        grad_norm = optimizer_step(loss, model, optimizer, ctx.scaler, cfg.optim.clip_grad, step)
        distill.queue.enqueue(targets)
        step += 1
        bar.update()

        if step % cfg.run.log_every_steps == 0 or step == (epoch + 1) * steps_per_epoch:
            log_step(ctx, bar, step, epoch, {"loss": dist.all_reduce_mean(loss.detach()), "grad_norm": grad_norm,
                                             "lr": schedules["lr"][step - 1], "wd": schedules["wd"][step - 1],
                                             **timer.report()})
        if cfg.run.save_every_steps and step % cfg.run.save_every_steps == 0:
            save_training(ctx, "checkpoint_last.pth", model, optimizer, step, epoch, cfg, STAGE)
        end = time.perf_counter()
    bar.close()
    return step


def main(cfg: DistillConfig) -> None:
    ctx = setup_run(cfg)
    logger = get_logger()
    # ---------------------------------------------------------------- data
    source = build_source(cfg.data.source, cfg.data.root, cfg.data.store, cfg.data.frames_root, cfg.data.resolution)
    games = split_games(cfg.data.train_split, cfg.data.root)
    halves = half_lengths(source, games)
    bank = FeatureBank(cfg.data.root, cfg.data.bank.name, cfg.data.bank.fps)
    bank.check(halves, cfg.loss.dim)  # every bank there, as wide as the projector's output, as long as its video
    window_frames = 2 * cfg.model.window_seconds
    windows = functools.partial(epoch_windows, halves, functools.partial(
        jittered_windows, count=cfg.data.windows_per_half, window_frames=window_frames), window_frames, cfg.run.seed)
    sampler = ShardedSampler(windows, ctx.info.rank, ctx.info.world_size, cfg.run.seed)
    derived = plan_epochs(cfg, ctx, sampler, len(windows(0)), train_games=len(games),
                          tokens_per_step=cfg.run.global_batch_size * cfg.model.window_seconds)
    steps_per_epoch = derived["steps_per_epoch"]
    dataset = WindowDataset(source, window_frames, cfg.model.img_size, bank=bank)
    loader = build_loader(dataset, RunSampler(sampler, derived, cfg.run.epochs), derived["batch_size_per_rank"],
                          cfg.run.num_workers, ctx.device)  # one loader iterator for the whole run: run_batches

    # ---------------------------------------------------------------- model
    trunk = build_video(cfg.model)
    if cfg.model.init_checkpoint:
        load_stage1_into_video(trunk, cfg.model.init_checkpoint, cfg.model.name)
        logger.info(f"trunk initialised from stage 1: {cfg.model.init_checkpoint}")
    else:
        logger.warning("model.init_checkpoint is empty: the trunk starts from random weights")
    distill = DistillModel(trunk, cfg.loss.dim, cfg.model.projector_hidden, cfg.loss.queue_size, cfg.run.seed)
    distill.to(ctx.device)
    model = wrap_ddp(distill, ctx.info)
    if cfg.run.compile:
        model = torch.compile(model)

    # ---------------------------------------------------------------- optimizer and per-step schedules
    optimizer = build_adamw(distill, cfg.optim)
    schedules = lr_wd_schedules(cfg, derived)

    # ---------------------------------------------------------------- resume
    open_run_folder(ctx, cfg)
    step, _, _ = resume(ctx, cfg.run, distill, optimizer, STAGE)
    batches = run_batches(loader, step)
    begin_training()

    # ---------------------------------------------------------------- loop
    for epoch in range(step // steps_per_epoch, cfg.run.epochs):
        step = train_one_epoch(ctx, cfg, model, distill, batches, optimizer, schedules, epoch, step, steps_per_epoch)
        end_epoch_checkpoints(ctx, cfg, model, optimizer, step, epoch + 1, STAGE)
    logger.info(f"done: {ctx.output_dir / 'checkpoint_last.pth'} (initialise stage 3 with "
                f"model.init_checkpoint=<that path>)")
    dist.cleanup()


if __name__ == "__main__":
    run_entry_point(lambda: main(parse_command_line(DistillConfig, __doc__)))
