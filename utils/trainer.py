"""Loop mechanics shared by the three stage scripts: set-up, loaders, the optimiser step, checkpoints, resume, logs.

The scripts keep what differs between stages (data, model, loss, the body of an epoch); everything here is the same
for all of them, so it is written once.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
from torch import nn

from utils import dist
from utils.checkpoint import (LAST_CHECKPOINT, CheckpointError, load_checkpoint, remove_stale_temporaries,
                              restore_training_state, resume_candidates, save_checkpoint, training_state)
from utils.config import RunConfig, config_to_dict
from utils.errors import UserError, training_started
from utils.logs import MetricsWriter, get_logger, log_to_file, progress, setup_logging
from utils.run import autocast_dtype, check_writable, derived_values, format_derived, grad_scaler, record_run
from utils.schedules import scaled_lr, warmup_cosine
from utils.seed import seed_everything, worker_init_fn


@dataclasses.dataclass
class RunContext:
    """Everything a stage script needs from the run set-up."""

    info: dist.DistInfo
    output_dir: Path
    metrics: MetricsWriter
    amp_dtype: torch.dtype | None
    scaler: torch.amp.GradScaler

    @property
    def device(self) -> torch.device:
        return self.info.device


def setup_run(config: Any) -> RunContext:
    """Join torchrun's group, seed rank r with seed + r, log to the console. Writes nothing: the run folder is
    opened by `open_run_folder` once every input has been checked."""
    run: RunConfig = config.run
    info = dist.init_distributed(run.device)
    seed_everything(run.seed, info.rank)
    output_dir = Path(run.output_dir)
    setup_logging(info.rank)
    amp_dtype = autocast_dtype(run.precision, info.device)
    get_logger().info(f"{info.world_size} process(es) on {info.device}; precision "
                      f"{'fp32' if amp_dtype is None else amp_dtype}; output {output_dir}")
    return RunContext(info, output_dir, MetricsWriter(output_dir / "metrics.jsonl", info.is_main), amp_dtype,
                      grad_scaler(info.device, amp_dtype))


def open_run_folder(ctx: RunContext, config: Any) -> None:
    """After every check has passed: the run folder is made (or found writable), the temporary files of a killed
    run are removed, and rank 0 starts log.txt and records the config, the command line and the git revision."""
    if ctx.info.is_main:
        check_writable(ctx.output_dir)
        for stale in remove_stale_temporaries(ctx.output_dir):
            get_logger().warning(f"removed {stale}, a temporary file of an interrupted write")
        log_to_file(ctx.output_dir)
        record_run(config, ctx.output_dir)
    dist.barrier()


def plan_epochs(config: Any, ctx: RunContext, sampler, samples_per_epoch: int, **context: Any) -> dict:
    """Per-rank batch, scaled LR, steps per epoch (capped by run.max_steps_per_epoch) and in total, printed once.

    The sampler pads short epochs to the planned number of steps (stage 3 draws a variable number of windows)."""
    derived = derived_values(config.run, config.optim.lr, ctx.info.world_size, samples_per_epoch)
    if config.run.max_steps_per_epoch:
        derived["steps_per_epoch"] = min(derived["steps_per_epoch"], config.run.max_steps_per_epoch)
        derived["total_steps"] = derived["steps_per_epoch"] * config.run.epochs
    sampler.min_per_rank = derived["steps_per_epoch"] * derived["batch_size_per_rank"]
    get_logger().info(format_derived({**context, **derived}))
    return derived


def lr_wd_schedules(config: Any, derived: dict) -> dict[str, Any]:
    """Per-step LR (linear warmup, then cosine; every value scaled by global_batch / 256) and weight decay."""
    optim, batch = config.optim, config.run.global_batch_size
    total = derived["total_steps"]
    warmup = int(round(optim.warmup_epochs * derived["steps_per_epoch"]))
    return {
        "lr": warmup_cosine(scaled_lr(optim.lr, batch), scaled_lr(optim.min_lr, batch), total, warmup,
                            scaled_lr(optim.warmup_start_lr, batch)),
        "wd": warmup_cosine(optim.weight_decay, optim.weight_decay_end or optim.weight_decay, total),
    }


def start_epoch(sampler, derived: dict, epoch: int, step: int) -> None:
    """Point the sampler at this epoch, past the batches a resumed run already did."""
    sampler.set_epoch(epoch)
    sampler.skip((step - epoch * derived["steps_per_epoch"]) * derived["batch_size_per_rank"])


class RunSampler(torch.utils.data.Sampler):
    """Every remaining epoch of a ShardedSampler back to back, each cut to exactly steps_per_epoch batches.

    One loader iterator then spans the whole run: the workers prefetch epoch e + 1 while epoch e ends, validates and
    checkpoints. With one iterator per epoch they restarted cold after every epoch, and the first batch of each epoch
    waited for one worker to build it alone (measured on an H200 with 14 workers: ~97% of the first steps of every
    epoch spent waiting, against 0.1% in steady state). `begin(step)` sets where a resumed run starts.
    """

    def __init__(self, sampler, derived: dict, epochs: int):
        super().__init__()
        self.sampler, self.derived, self.epochs, self.first_step = sampler, derived, epochs, 0

    def begin(self, step: int) -> None:
        self.first_step = step

    def __iter__(self) -> Iterator:
        steps, batch = self.derived["steps_per_epoch"], self.derived["batch_size_per_rank"]
        for epoch in range(self.first_step // steps, self.epochs):
            step = max(self.first_step, epoch * steps)
            start_epoch(self.sampler, self.derived, epoch, step)
            yield from itertools.islice(iter(self.sampler), ((epoch + 1) * steps - step) * batch)

    def __len__(self) -> int:
        return (self.derived["steps_per_epoch"] * self.epochs - self.first_step) * self.derived["batch_size_per_rank"]


def run_batches(loader: torch.utils.data.DataLoader, step: int) -> Iterator:
    """The run's single batch iterator over a loader built on a RunSampler, starting at `step` (after resume)."""
    loader.sampler.begin(step)
    return iter(loader)


def end_epoch_checkpoints(ctx: RunContext, config: Any, model: nn.Module, optimizer, step: int, done: int,
                          stage: str, best_metric: float | None = None, extra: dict | None = None) -> None:
    """checkpoint_last.pth every run.save_every_epochs and at the end; checkpoint_epochN.pth at snapshot epochs."""
    if done % config.run.save_every_epochs == 0 or done == config.run.epochs:
        save_training(ctx, LAST_CHECKPOINT, model, optimizer, step, done, config, stage, best_metric, extra)
    if done in config.run.snapshot_epochs:
        save_training(ctx, f"checkpoint_epoch{done}.pth", model, optimizer, step, done, config, stage, best_metric,
                      extra)


def build_loader(dataset: torch.utils.data.Dataset, sampler: torch.utils.data.Sampler, batch_size: int,
                 num_workers: int, device: torch.device, collate_fn=None) -> torch.utils.data.DataLoader:
    """A loader over this rank's sampler: full batches only, pinned memory on GPU, persistent seeded workers.

    The workers' base seed comes from the loader's own generator, seeded from the global RNG now: starting an
    iterator then draws nothing from the global RNG, so a resumed run (which starts its iterator after restoring the
    RNG state) and a straight run (which started it at step 0) see the same random augmentations."""
    generator = torch.Generator().manual_seed(int(torch.randint(0, 2**62, ()).item()))
    return torch.utils.data.DataLoader(
        dataset, batch_size=batch_size, sampler=sampler, num_workers=num_workers, drop_last=True,
        pin_memory=device.type == "cuda", persistent_workers=num_workers > 0, worker_init_fn=worker_init_fn,
        prefetch_factor=4 if num_workers > 0 else None, collate_fn=collate_fn, generator=generator)


def wrap_ddp(model: nn.Module, info: dist.DistInfo) -> nn.Module:
    """DistributedDataParallel when torchrun started several processes. Buffers (queues) are kept in sync by the
    method itself, so DDP does not broadcast them."""
    if info.world_size == 1:
        return model
    with warnings.catch_warnings():
        # torch 2.14 deprecates broadcast_buffers for forward_sync_buffers, which older torch lacks; the queues are
        # identical on every rank by construction, so either keeps them right: silence the notice for users
        warnings.filterwarnings("ignore", message="`broadcast_buffers` is deprecated", category=FutureWarning)
        return nn.parallel.DistributedDataParallel(model, device_ids=[info.device.index] if info.device.type == "cuda"
                                                   else None, broadcast_buffers=False)


class DivergedError(UserError, FloatingPointError):
    """The loss became NaN or infinite; the message gives the step and what to try."""


def optimizer_step(loss: torch.Tensor, model: nn.Module, optimizer: torch.optim.Optimizer,
                   scaler: torch.amp.GradScaler, clip_grad: float, step: int) -> torch.Tensor:
    """Finiteness check, zero_grad, backward, unscale, clip, step. Returns the gradient norm before clipping."""
    if not torch.isfinite(loss).item():
        raise DivergedError(f"the loss is {loss.item()} at step {step}: stopping (lower optim.lr, check the data, "
                            f"or use run.precision=bf16 or fp32; a restart resumes from the last checkpoint)")
    optimizer.zero_grad(set_to_none=True)
    scaler.scale(loss).backward()
    scaler.unscale_(optimizer)
    parameters = [p for group in optimizer.param_groups for p in group["params"]]
    if clip_grad > 0:
        norm = torch.nn.utils.clip_grad_norm_(parameters, clip_grad)
    else:
        norm = torch.norm(torch.stack([p.grad.norm() for p in parameters if p.grad is not None]))
    scaler.step(optimizer)
    scaler.update()
    return norm


def save_training(ctx: RunContext, name: str, model: nn.Module, optimizer: torch.optim.Optimizer, step: int,
                  epoch: int, config: Any, stage: str, best_metric: float | None = None,
                  extra: dict | None = None) -> None:
    """A complete checkpoint under output_dir/name (collective: every rank calls it; rank 0 writes). The last
    checkpoint keeps its predecessor (checkpoint_previous.pth) to fall back on."""
    state = training_state(model, optimizer, ctx.scaler, step, epoch, config_to_dict(config), best_metric,
                           {"stage": stage, **(extra or {})})
    if ctx.info.is_main:
        save_checkpoint(ctx.output_dir / name, state, keep_previous=name == LAST_CHECKPOINT)
    dist.barrier()


def resume(ctx: RunContext, run: RunConfig, model: nn.Module, optimizer: torch.optim.Optimizer,
           stage: str) -> tuple[int, float | None, dict]:
    """Restore output_dir/checkpoint_last.pth if it exists (and run.resume): returns (step, best metric, extra).

    A checkpoint_last.pth that cannot be read (a disk that filled up, a copy cut short) gives way to the
    checkpoint_previous.pth kept beside it, with a warning saying so; when neither can be read, the error names both.
    """
    candidates = resume_candidates(ctx.output_dir) if run.resume else []
    if not run.resume and (ctx.output_dir / LAST_CHECKPOINT).exists():
        get_logger().warning(f"run.resume=false: ignoring {ctx.output_dir / LAST_CHECKPOINT}")
    if not candidates:
        return 0, None, {}
    problems = []
    for path in candidates:
        try:
            state = load_checkpoint(path, map_location=ctx.device)
            break
        except CheckpointError as error:
            problems.append(str(error))
    else:
        raise CheckpointError("cannot resume: " + "; ".join(problems) + f". Move them out of {ctx.output_dir} to "
                              f"start afresh, or set run.resume=false")
    if problems:
        get_logger().warning(f"{problems[0]}: resuming from {path} (step {state['step']}) instead")
    if state.get("extra", {}).get("stage") != stage:
        raise CheckpointError(f"{path} is a {state.get('extra', {}).get('stage')!r} checkpoint; this is a "
                              f"{stage!r} run: choose another run.output_dir")
    restore_training_state(state, model, optimizer, ctx.scaler, ctx.info.rank, ctx.info.world_size)
    ctx.metrics.truncate_after(state["step"])
    get_logger().info(f"resumed from {path} at step {state['step']} (epoch {state['epoch']})")
    return int(state["step"]), state.get("best_metric"), state.get("extra", {})


def begin_training() -> None:
    """Everything is checked and the run folder is open: from here an error may be one rank's alone."""
    training_started()


class StepTimer:
    """Throughput and the share of each step spent waiting for data, over the last logging interval."""

    def __init__(self, device: torch.device):
        self.device = device
        self.reset()

    def reset(self) -> None:
        self.start = time.perf_counter()
        self.waiting = 0.0
        self.samples = 0

    def waited(self, seconds: float, samples: int) -> None:
        self.waiting += seconds
        self.samples += samples

    def report(self) -> dict[str, float]:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        elapsed = max(time.perf_counter() - self.start, 1e-9)
        values = {"samples_per_s": self.samples / elapsed, "data_wait": self.waiting / elapsed}
        self.reset()
        return values


def epoch_progress(ctx: RunContext, steps: int, epoch: int, first_step: int = 0):
    return progress(total=steps, desc=f"epoch {epoch}", enabled=ctx.info.is_main, initial=first_step)


def log_step(ctx: RunContext, bar, step: int, epoch: int, values: dict[str, float]) -> None:
    """Progress-bar postfix and one metrics record (rank 0)."""
    clean = {key: (float(value.item()) if torch.is_tensor(value) else float(value)) for key, value in values.items()}
    bar.set_postfix({key: (f"{v:.4g}" if math.isfinite(v) else str(v)) for key, v in clean.items()
                     if key in ("loss", "lr", "samples_per_s", "data_wait")})
    ctx.metrics.write({"step": step, "epoch": epoch, **clean})
