"""Stage 1: SCE self-supervised pretraining of the spatial trunk on 1-second clips (docs/METHOD.md section 2:
sampling, augmentations, model, loss, optimisation, each value with its official source).

    torchrun --nproc_per_node=2 train_ssl.py --config configs/ssl/vit_tiny_soccernet.yaml data.root=/data/soccernet

Every epoch visits every non-overlapping 1-second clip (2 frames at 2 fps) of every training half once; each clip
gives two asymmetric views. The checkpoint's `trunk.*` weights initialise stage 2 (train_distill.py).
"""

from __future__ import annotations

import torch

from configs.schema import SSLConfig
from data.augment import photometric
from data.catalog import load_dataset
from data.datasets import ClipPairDataset, half_lengths
from data.jpeg_batches import clip_views, collate_encoded
from data.samplers import stage1_clips
from data.sources import JpegFolderSource, build_source
from models.losses import sce_loss
from models.registry import build_spatial
from models.sce import SCEModel
from utils.checkpoint import Progress
from utils.errors import run_entry_point
from utils.loop import TrainingRun, optimizer_step
from utils.optim import build_adamw
from utils.plan import RunSampler, batches_from, build_loader, plan_run
from utils.run import autocast, parse_command_line, prepare_model, setup_run
from utils.schedules import build_schedules

STAGE = "ssl"


# ----------------------------------------------------------------------------------------------------------------------
# Training
# ----------------------------------------------------------------------------------------------------------------------
def train_one_epoch(run: TrainingRun, batches, epoch: int, progress: Progress) -> None:
    cfg, ctx, sce = run.cfg, run.ctx, run.module
    run.model.train()  # the momentum teacher too: its stochastic depth is on, as in the official code
    step_keys = []  # the teacher keys of the step's micro-batches: they join the queue after the step

    def loss_of(views: torch.Tensor) -> torch.Tensor:
        views = clip_views(views, ctx.device, cfg.augment.crop_size)  # (B, 2 views, 2 frames, 3, S, S) uint8
        clips = torch.cat([photometric(views[:, 0], cfg.augment.view1),
                           photometric(views[:, 1], cfg.augment.view2)]).transpose(1, 2)  # (2B, 3, 2, S, S)
        with autocast(ctx.device, ctx.amp_dtype):
            queries = run.model(clips)  # both views in one pass: (2B, 256)
            keys = sce.keys(clips)
        q1, q2 = queries.chunk(2)
        k1, k2 = keys.chunk(2)
        step_keys.append((k1, k2))
        # a clip's loss sees its own views' keys and the queue only, so micro-batches sum to the whole batch's
        return 0.5 * (sce_loss(q1, k2, sce.queue.keys, cfg.loss.coeff, cfg.loss.temp, cfg.loss.temp_m)
                      + sce_loss(q2, k1, sce.queue.keys, cfg.loss.coeff, cfg.loss.temp, cfg.loss.temp_m))

    epoch_run = run.epoch(epoch, progress)
    for step, micro_batches in epoch_run.steps(batches):
        values = run.apply_schedules(step)
        step_keys.clear()
        loss, grad_norm = optimizer_step(loss_of, micro_batches, run.model, run.optimizer, ctx.scaler,
                                         cfg.optim.clip_grad)
        sce.update_teacher(values["momentum"])
        # every first view's keys, then every second view's: the order one batch of the same clips enqueues
        sce.queue.enqueue(torch.cat([k1 for k1, _ in step_keys] + [k2 for _, k2 in step_keys]))
        epoch_run.done(loss=loss, grad_norm=grad_norm, **values)
    epoch_run.finish()


def main(cfg: SSLConfig) -> None:
    ctx = setup_run(cfg)

    # ---------------------------------------------------------------- data
    dataset = load_dataset(cfg.data.dataset)
    source = build_source(cfg.data, dataset)
    games = dataset.games(cfg.data.train_split, cfg.data.root)
    clips = stage1_clips(half_lengths(source, games, dataset.halves))
    plan = plan_run(cfg.run, cfg.optim.lr, ctx.info.world_size, len(clips), train_games=len(games))
    # on a GPU, JPEG clips travel encoded and are decoded a batch at a time there (data/jpeg_batches.py)
    encoded = cfg.data.jpeg_on_device and ctx.device.type == "cuda" and isinstance(source, JpegFolderSource)
    pairs = ClipPairDataset(source, cfg.augment.crop_size, cfg.augment.crop_scale, cfg.augment.crop_ratio,
                            encoded=encoded)
    loader = build_loader(pairs, RunSampler(lambda epoch: clips, plan, ctx.info.rank, cfg.run.seed),
                          cfg.run.num_workers, ctx.device, ctx.loader_seed, collate_encoded if encoded else None)

    # ---------------------------------------------------------------- model
    trunk = build_spatial(cfg.model.name, cfg.model.img_size, cfg.model.drop_path, cfg.model.grad_checkpointing)
    sce = SCEModel(trunk, cfg.model.projector_hidden, cfg.loss.dim, cfg.loss.queue_size, cfg.run.seed)
    model = prepare_model(sce, ctx, cfg.run.compile)

    # ---------------------------------------------------------------- optimizer and per-step schedules
    optimizer = build_adamw(sce, cfg.optim)
    schedules = build_schedules(cfg.optim, plan, momentum=(cfg.loss.momentum_start, cfg.loss.momentum_end))

    # ---------------------------------------------------------------- resume, then the epochs
    run = TrainingRun(ctx, cfg, {"stage": STAGE}, plan, model, optimizer, schedules)
    progress = run.resume()
    batches = batches_from(loader, progress.step)
    for epoch in range(plan.epoch_of(progress.step), plan.epochs):
        train_one_epoch(run, batches, epoch, progress)
        run.end_epoch(progress)
    run.finish(next_stage="stage 2")


if __name__ == "__main__":
    run_entry_point(lambda: main(parse_command_line(SSLConfig, __doc__)))
