"""The training loop's shared pieces: an epoch's steps with their progress bar, timing and logs; the optimiser step;
the run of epochs of stages 1 and 2 (`train_epochs`; stage 3 adds validation to it in its own script).

A stage script's `train_one_epoch` reads:

    epoch_run = EpochRun(ctx, plan, epoch, step, cfg.run.log_every_steps)
    for step, batch in epoch_run.steps(batches):    # exactly the epoch's remaining steps
        ...                                         # the stage's own forward and loss
        grad_norm = optimizer_step(loss, model, optimizer, ctx.scaler, cfg.optim.clip_grad, step)
        epoch_run.done(step, loss=..., grad_norm=..., lr=...)
    return epoch_run.finish()                       # checks the epoch got to its last step
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from typing import Any

import torch
from torch import nn

from utils import dist
from utils.checkpoint import LAST_CHECKPOINT, end_epoch_checkpoints, resume
from utils.errors import UserError
from utils.logs import get_logger, progress
from utils.plan import RunPlan, batches_from, check_epoch_end, epoch_steps
from utils.run import begin_training, open_run_folder


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


class EpochRun:
    """One epoch of training: its step range, progress bar, data-wait timer and log records."""

    def __init__(self, ctx, plan: RunPlan, epoch: int, step: int, log_every_steps: int, save_every_steps: int = 0,
                 save: Any = None):
        """save(step) writes checkpoint_last.pth; it is called every save_every_steps steps (0: never)."""
        self.ctx, self.plan, self.epoch, self.log_every_steps = ctx, plan, epoch, log_every_steps
        self.save_every_steps, self.save = save_every_steps, save
        self.range = epoch_steps(plan, epoch, step)
        self.step = step
        self.bar = progress(total=plan.steps_per_epoch, desc=f"epoch {epoch}", enabled=ctx.info.is_main,
                            initial=step - epoch * plan.steps_per_epoch)
        self.timer = StepTimer(ctx.device)

    def steps(self, batches: Iterator) -> Iterator[tuple[int, Any]]:
        """(step, batch) for the epoch's remaining steps; the wait for each batch is timed."""
        for step in self.range:
            start = time.perf_counter()
            batch = next(batches)
            samples = batch.shape[0] if torch.is_tensor(batch) else batch["frames"].shape[0]
            self.timer.waited(time.perf_counter() - start, samples * self.ctx.info.world_size)
            yield step, batch

    def done(self, step: int, **values: Any) -> None:
        """Step `step` is done; on logging steps (and the epoch's last), `values` (the loss averaged over ranks)
        are written to the progress bar and metrics.jsonl."""
        self.step = step + 1
        self.bar.update()
        if self.step % self.log_every_steps == 0 or self.step == self.range.stop:
            values["loss"] = dist.all_reduce_mean(values["loss"].detach())
            clean = {key: float(value.item()) if torch.is_tensor(value) else float(value)
                     for key, value in {**values, **self.timer.report()}.items()}
            self.bar.set_postfix({key: (f"{v:.4g}" if math.isfinite(v) else str(v)) for key, v in clean.items()
                                  if key in ("loss", "lr", "samples_per_s", "data_wait")})
            self.ctx.metrics.write({"step": self.step, "epoch": self.epoch, **clean})
        if self.save_every_steps and self.step % self.save_every_steps == 0:
            self.save(self.step)

    def finish(self) -> int:
        """Close the bar, check that the epoch ran all its steps; returns the steps done."""
        self.bar.close()
        check_epoch_end(self.plan, self.epoch, self.step)
        return self.step


def train_epochs(ctx, cfg: Any, plan: RunPlan, model: nn.Module, module: nn.Module, optimizer: torch.optim.Optimizer,
                 loader: torch.utils.data.DataLoader, stage: str, train_one_epoch: Any, next_stage: str) -> None:
    """Stages 1 and 2 after their set-up: open the run folder (every input is checked by now), resume, then every
    epoch `train_one_epoch(batches, epoch, step) -> step` and its checkpoints. model: what runs the steps (DDP,
    compiled); module: the bare model the checkpoints hold."""
    open_run_folder(ctx, cfg)
    step, _, _ = resume(ctx, cfg.run.resume, module, optimizer, stage)
    batches = batches_from(loader, step)
    begin_training()
    for epoch in range(plan.epoch_of(step), plan.epochs):
        step = train_one_epoch(batches, epoch, step)
        end_epoch_checkpoints(ctx, cfg, model, optimizer, step, epoch + 1, stage)
    get_logger().info(f"done: {ctx.output_dir / LAST_CHECKPOINT} (initialise {next_stage} with "
                      f"model.init_checkpoint=<that path>)")
