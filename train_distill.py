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

import functools

import torch
import torch.nn.functional as F

from configs.schema import DistillConfig
from data.augment import photometric
from data.catalog import load_dataset
from data.colour import batch_frames, planes_fit
from data.datasets import WindowDataset, half_lengths
from data.features import FeatureBank
from data.samplers import any_half, check_long_enough, epoch_windows, jittered_windows
from data.sources import build_source
from models.distill import DistillModel
from models.loading import load_stage1_into_video
from models.losses import sce_token_loss
from models.registry import build_video
from utils.checkpoint import Progress
from utils.config import ConfigError
from utils.errors import run_entry_point
from utils.logs import get_logger
from utils.loop import TrainingRun, optimizer_step
from utils.optim import build_adamw
from utils.plan import RunSampler, batches_from, build_loader, plan_run
from utils.rates import Rates
from utils.run import autocast, parse_command_line, prepare_model, setup_run
from utils.schedules import build_schedules

STAGE = "distill"


# ----------------------------------------------------------------------------------------------------------------------
# Training
# ----------------------------------------------------------------------------------------------------------------------
def train_one_epoch(run: TrainingRun, batches, epoch: int, progress: Progress) -> None:
    cfg, ctx, distill = run.cfg, run.ctx, run.module
    run.model.train()
    tokens_per_window = Rates.of(cfg.data.fps).tokens(cfg.model.window_seconds, "model.window_seconds")
    step_targets = []  # the bank rows of the step's micro-batches: they join the queue after the step

    def loss_of(batch: dict) -> torch.Tensor:
        frames = batch_frames(batch, ctx.device)  # (B, F, 3, S, S) uint8, converted here from a store's YUV
        video = photometric(frames, cfg.augment.view).transpose(1, 2)  # (B, 3, F, S, S), one draw per window
        targets = F.normalize(batch["bank"].to(ctx.device, non_blocking=True).flatten(0, 1), dim=1)  # (B*T, dim)
        step_targets.append(targets)
        with autocast(ctx.device, ctx.amp_dtype):
            queries = run.model(video)  # (B*T, dim)
        # a window's loss sees its own bank rows and the queue only, so micro-batches sum to the whole batch's
        return sce_token_loss(queries, targets, tokens_per_window, distill.queue.keys, cfg.loss.coeff,
                              cfg.loss.temp, cfg.loss.temp_m)

    epoch_run = run.epoch(epoch, progress)
    for step, micro_batches in epoch_run.steps(batches):
        values = run.apply_schedules(step)
        step_targets.clear()
        loss, grad_norm = optimizer_step(loss_of, micro_batches, run.model, run.optimizer, ctx.scaler,
                                         cfg.optim.clip_grad)
        distill.queue.enqueue(torch.cat(step_targets))
        epoch_run.done(loss=loss, grad_norm=grad_norm, **values)
    epoch_run.finish()


def main(cfg: DistillConfig) -> None:
    ctx = setup_run(cfg)

    # ---------------------------------------------------------------- data
    dataset = load_dataset(cfg.data.dataset)
    source = build_source(cfg.data, dataset)
    games = dataset.games(cfg.data.train_split, cfg.data.root)
    rates = Rates.of(cfg.data.fps)
    if rates.token_seconds != 1:
        raise ConfigError(f"data.fps={cfg.data.fps}: stage 2 aligns each token with one feature-bank row per second, "
                          f"so a token must be 1 s (data.fps=2); {dataset.name} has no feature banks at another rate")
    halves = half_lengths(source, games, dataset.halves)
    bank = FeatureBank(cfg.data.root, cfg.data.bank.name, cfg.data.bank.fps)
    bank.check(halves, cfg.loss.dim, rates.fps)  # every bank there, as wide as the projector's output and its video
    window_frames = rates.frames(cfg.model.window_seconds, "model.window_seconds")
    check_long_enough(halves, window_frames, rates.fps)
    windows = functools.partial(epoch_windows, halves, functools.partial(
        any_half, jittered_windows, count=cfg.data.windows_per_half, window_frames=window_frames), window_frames,
        cfg.run.seed)
    plan = plan_run(cfg.run, cfg.optim.lr, ctx.info.world_size, len(windows(0)), train_games=len(games),
                    tokens_per_step=cfg.run.global_batch_size * window_frames // rates.frames_per_token)
    yuv420 = cfg.data.colour_on_device and planes_fit(source, halves, cfg.model.img_size)
    window_data = WindowDataset(source, window_frames, cfg.model.img_size, bank=bank, yuv420=yuv420)
    loader = build_loader(window_data, RunSampler(windows, plan, ctx.info.rank, cfg.run.seed), cfg.run.num_workers,
                          ctx.device, ctx.loader_seed)

    # ---------------------------------------------------------------- model
    trunk = build_video(cfg.model, rates)
    if cfg.model.init_checkpoint:
        load_stage1_into_video(trunk, cfg.model.init_checkpoint, cfg.model.name)
        get_logger().info(f"trunk initialised from stage 1: {cfg.model.init_checkpoint}")
    else:
        get_logger().warning("model.init_checkpoint is empty: the trunk starts from random weights")
    distill = DistillModel(trunk, cfg.loss.dim, cfg.model.projector_hidden, cfg.loss.queue_size, cfg.run.seed)
    model = prepare_model(distill, ctx, cfg.run.compile)

    # ---------------------------------------------------------------- optimizer and per-step schedules
    optimizer = build_adamw(distill, cfg.optim)
    schedules = build_schedules(cfg.optim, plan)

    # ---------------------------------------------------------------- resume, then the epochs
    run = TrainingRun(ctx, cfg, {"stage": STAGE}, plan, model, optimizer, schedules)
    progress = run.resume()
    batches = batches_from(loader, progress.step)
    for epoch in range(plan.epoch_of(progress.step), plan.epochs):
        train_one_epoch(run, batches, epoch, progress)
        run.end_epoch(progress)
    run.finish(next_stage="stage 3")


if __name__ == "__main__":
    run_entry_point(lambda: main(parse_command_line(DistillConfig, __doc__)))
