"""The training loop's shared pieces: an epoch's steps with their progress bar, timing and logs; the optimiser step;
the run of epochs of stages 1 and 2 (`train_epochs`; stage 3 adds validation to it in its own script).

A stage script's `train_one_epoch` reads:

    epoch_run = EpochRun(ctx, plan, epoch, step, cfg.run.log_every_steps)
    for step, micro_batches in epoch_run.steps(batches):  # the epoch's remaining steps, run.accumulate_steps
        def loss_of(batch): ...                           # batches each; the stage's own forward and loss
        loss, grad_norm = optimizer_step(loss_of, micro_batches, model, optimizer, ctx.scaler, cfg.optim.clip_grad,
                                         step)
        epoch_run.done(step, loss=loss, grad_norm=grad_norm, lr=...)
    return epoch_run.finish()                             # checks the epoch got to its last step
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable, Iterator
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


def _ddp(model: nn.Module) -> nn.parallel.DistributedDataParallel | None:
    """The DistributedDataParallel wrapper in `model` (under torch.compile's), if any."""
    while True:
        if isinstance(model, nn.parallel.DistributedDataParallel):
            return model
        if not hasattr(model, "_orig_mod"):
            return None
        model = model._orig_mod


def optimizer_step(loss_of: Callable[[Any], torch.Tensor], micro_batches: list, model: nn.Module,
                   optimizer: torch.optim.Optimizer, scaler: torch.amp.GradScaler, clip_grad: float,
                   step: int) -> tuple[torch.Tensor, torch.Tensor]:
    """One optimizer step over k micro-batches: zero_grad; for each, loss_of(batch) (finiteness checked) and the
    backward of loss / k, under DDP's no_sync but for the last (one gradient all-reduce per step); then unscale,
    clip, step. With equal micro-batches and a loss that is a mean over samples, this is the step of one batch k
    times larger. Returns the mean loss and the gradient norm before clipping."""
    optimizer.zero_grad(set_to_none=True)
    ddp, count, total = _ddp(model), len(micro_batches), 0.0
    for index, batch in enumerate(micro_batches):
        last = index == count - 1
        with ddp.no_sync() if ddp is not None and not last else contextlib.nullcontext():
            loss = loss_of(batch)
            if not torch.isfinite(loss).item():
                raise DivergedError(f"the loss is {loss.item()} at step {step}: stopping (lower optim.lr, check the "
                                    f"data, or use run.precision=bf16 or fp32; a restart resumes from the last "
                                    f"checkpoint)")
            scaler.scale(loss / count).backward()
        total = total + loss.detach()
    scaler.unscale_(optimizer)
    parameters = [p for group in optimizer.param_groups for p in group["params"]]
    if clip_grad > 0:
        norm = torch.nn.utils.clip_grad_norm_(parameters, clip_grad)
    else:
        norm = torch.norm(torch.stack([p.grad.norm() for p in parameters if p.grad is not None]))
    scaler.step(optimizer)
    scaler.update()
    return total / count, norm


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

    def steps(self, batches: Iterator) -> Iterator[tuple[int, list]]:
        """(step, its plan.accumulate_steps micro-batches) for the epoch's remaining steps; the waits are timed."""
        for step in self.range:
            start = time.perf_counter()
            micro_batches = [next(batches) for _ in range(self.plan.accumulate_steps)]
            samples = sum(batch.shape[0] if torch.is_tensor(batch) else batch["frames"].shape[0]
                          for batch in micro_batches)
            self.timer.waited(time.perf_counter() - start, samples * self.ctx.info.world_size)
            yield step, micro_batches

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
