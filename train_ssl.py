"""Stage 1: SCE self-supervised pretraining of the spatial trunk on 1-second clips (docs/METHOD.md section 2:
sampling, augmentations, model, loss, optimisation, each value with its official source).

    torchrun --nproc_per_node=2 train_ssl.py --config configs/ssl/vit_tiny_soccernet.yaml data.root=/data/soccernet

Every epoch visits every non-overlapping 1-second clip (2 frames at 2 fps) of every training half once; each clip
gives two asymmetric views. The checkpoint's `trunk.*` weights initialise stage 2 (train_distill.py).
"""

from __future__ import annotations

import dataclasses
import itertools
import time

import torch

from data.augment import STAGE1_VIEW1, STAGE1_VIEW2, PhotometricConfig, photometric
from data.datasets import ClipPairDataset, half_lengths
from data.games import split_games
from data.samplers import ShardedSampler, stage1_clips
from data.sources import build_source
from models.losses import sce_loss
from models.registry import HEAD_HIDDEN, ModelConfig, build_spatial
from models.sce import SCEModel
from utils import dist
from utils.config import POSITIVE, PROBABILITY, DataConfig, OptimConfig, RunConfig, bounded, ordered_pair
from utils.logs import get_logger
from utils.optim import apply_schedules, build_adamw
from utils.run import autocast, parse_command_line
from utils.schedules import warmup_cosine
from utils.errors import run_entry_point
from utils.trainer import (RunContext, RunSampler, StepTimer, begin_training, build_loader, end_epoch_checkpoints,
                           epoch_progress, log_step, lr_wd_schedules, open_run_folder, optimizer_step, plan_epochs,
                           resume, run_batches, save_training, setup_run, wrap_ddp)

STAGE = "ssl"


# ----------------------------------------------------------------------------------------------------------------------
# Config: the defaults are the paper's ViT-T run (section 5, stage-1 column)
# ----------------------------------------------------------------------------------------------------------------------
@dataclasses.dataclass
class AugmentConfig:
    crop_size: int = bounded(224, low=1)
    crop_scale: tuple[float, float] = bounded((0.2, 1.0), low=0.0, high=1.0, low_open=True, check=ordered_pair,
                                              expected="(low, high) with 0 < low <= high <= 1")
    # 398/224 x [0.75, 1.245], on the original frame's pixels
    crop_ratio: tuple[float, float] = bounded((1.3275, 2.2125), **POSITIVE, check=ordered_pair,
                                              expected="(low, high) with 0 < low <= high")
    view1: PhotometricConfig = dataclasses.field(default_factory=lambda: dataclasses.replace(STAGE1_VIEW1))
    view2: PhotometricConfig = dataclasses.field(default_factory=lambda: dataclasses.replace(STAGE1_VIEW2))


@dataclasses.dataclass
class SCEConfig:
    coeff: float = bounded(1.0, **PROBABILITY)  # lambda: 1 makes SCE an InfoNCE with a queue (the paper's stage 1)
    temp: float = bounded(0.1, **POSITIVE)
    temp_m: float = bounded(0.07, **POSITIVE)  # plays no role when coeff = 1
    queue_size: int = bounded(65536, low=1)
    dim: int = bounded(256, low=1)
    momentum_start: float = bounded(0.99, **PROBABILITY)  # teacher EMA, cosine to momentum_end over the whole run
    momentum_end: float = bounded(1.0, **PROBABILITY)


@dataclasses.dataclass
class SSLConfig:
    run: RunConfig = dataclasses.field(default_factory=lambda: RunConfig(
        epochs=200, global_batch_size=1024, save_every_epochs=10, snapshot_epochs=[100]))
    data: DataConfig = dataclasses.field(default_factory=DataConfig)
    model: ModelConfig = dataclasses.field(default_factory=lambda: ModelConfig(name="vit_tiny"))
    optim: OptimConfig = dataclasses.field(default_factory=lambda: OptimConfig(lr=5e-4, warmup_epochs=10.0))
    augment: AugmentConfig = dataclasses.field(default_factory=AugmentConfig)
    loss: SCEConfig = dataclasses.field(default_factory=SCEConfig)


# ----------------------------------------------------------------------------------------------------------------------
# Training
# ----------------------------------------------------------------------------------------------------------------------
def train_one_epoch(ctx: RunContext, cfg: SSLConfig, model, sce: SCEModel, batches, optimizer, schedules: dict,
                    epoch: int, step: int, steps_per_epoch: int) -> int:
    model.train()
    first = step - epoch * steps_per_epoch
    bar = epoch_progress(ctx, steps_per_epoch, epoch, first)
    timer, end = StepTimer(ctx.device), time.perf_counter()
    for views in itertools.islice(batches, steps_per_epoch - first):
        timer.waited(time.perf_counter() - end, views.shape[0] * ctx.info.world_size)
        apply_schedules(optimizer, schedules["lr"][step], schedules["wd"][step])

        views = views.to(ctx.device, non_blocking=True)  # (B, 2 views, 2 frames, 3, S, S) uint8
        clips = torch.cat([photometric(views[:, 0], cfg.augment.view1),
                           photometric(views[:, 1], cfg.augment.view2)]).transpose(1, 2)  # (2B, 3, 2, S, S)
        with autocast(ctx.device, ctx.amp_dtype):
            queries = model(clips)  # both views in one pass: (2B, 256)
            keys = sce.keys(clips)
        q1, q2 = queries.chunk(2)
        k1, k2 = keys.chunk(2)
        loss = 0.5 * (sce_loss(q1, k2, sce.queue.keys, cfg.loss.coeff, cfg.loss.temp, cfg.loss.temp_m)
                      + sce_loss(q2, k1, sce.queue.keys, cfg.loss.coeff, cfg.loss.temp, cfg.loss.temp_m))
        grad_norm = optimizer_step(loss, model, optimizer, ctx.scaler, cfg.optim.clip_grad, step)
        sce.update_teacher(schedules["momentum"][step])
        sce.queue.enqueue(torch.cat([k1, k2]))
        step += 1
        bar.update()

        if step % cfg.run.log_every_steps == 0 or step == (epoch + 1) * steps_per_epoch:
            log_step(ctx, bar, step, epoch, {"loss": dist.all_reduce_mean(loss.detach()), "grad_norm": grad_norm,
                                             "lr": schedules["lr"][step - 1], "wd": schedules["wd"][step - 1],
                                             "momentum": schedules["momentum"][step - 1], **timer.report()})
        if cfg.run.save_every_steps and step % cfg.run.save_every_steps == 0:
            save_training(ctx, "checkpoint_last.pth", model, optimizer, step, epoch, cfg, STAGE)
        end = time.perf_counter()
    bar.close()
    return step


def main(cfg: SSLConfig) -> None:
    ctx = setup_run(cfg)
    logger = get_logger()

    # ---------------------------------------------------------------- data
    source = build_source(cfg.data.source, cfg.data.root, cfg.data.store, cfg.data.frames_root, cfg.data.resolution)
    games = split_games(cfg.data.train_split, cfg.data.root)
    clips = stage1_clips(half_lengths(source, games))
    sampler = ShardedSampler(lambda epoch: clips, ctx.info.rank, ctx.info.world_size, cfg.run.seed)
    derived = plan_epochs(cfg, ctx, sampler, len(clips), train_games=len(games))
    steps_per_epoch = derived["steps_per_epoch"]
    dataset = ClipPairDataset(source, cfg.augment.crop_size, cfg.augment.crop_scale, cfg.augment.crop_ratio)
    loader = build_loader(dataset, RunSampler(sampler, derived, cfg.run.epochs), derived["batch_size_per_rank"],
                          cfg.run.num_workers, ctx.device)  # one loader iterator for the whole run: run_batches

    # ---------------------------------------------------------------- model
    trunk = build_spatial(cfg.model.name, cfg.model.img_size, cfg.model.drop_path, cfg.model.grad_checkpointing)
    sce = SCEModel(trunk, HEAD_HIDDEN[cfg.model.name], cfg.loss.dim, cfg.loss.queue_size, cfg.run.seed)
    sce.to(ctx.device)
    model = wrap_ddp(sce, ctx.info)
    if cfg.run.compile:
        model = torch.compile(model)

    # ---------------------------------------------------------------- optimizer and per-step schedules
    optimizer = build_adamw(sce, cfg.optim)
    schedules = lr_wd_schedules(cfg, derived)
    schedules["momentum"] = warmup_cosine(cfg.loss.momentum_start, cfg.loss.momentum_end,
                                          derived["total_steps"])

    # ---------------------------------------------------------------- resume
    open_run_folder(ctx, cfg)
    step, _, _ = resume(ctx, cfg.run, sce, optimizer, STAGE)
    batches = run_batches(loader, step)
    begin_training()

    # ---------------------------------------------------------------- loop
    for epoch in range(step // steps_per_epoch, cfg.run.epochs):
        step = train_one_epoch(ctx, cfg, model, sce, batches, optimizer, schedules, epoch, step, steps_per_epoch)
        end_epoch_checkpoints(ctx, cfg, model, optimizer, step, epoch + 1, STAGE)
    logger.info(f"done: {ctx.output_dir / 'checkpoint_last.pth'} (initialise stage 2 with "
                f"model.init_checkpoint=<that path>)")
    dist.cleanup()


if __name__ == "__main__":
    run_entry_point(lambda: main(parse_command_line(SSLConfig, __doc__)))
