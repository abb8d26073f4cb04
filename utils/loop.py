"""The training loop's shared pieces, one shape for the three stages.

Every stage script reads, after its data, model, optimiser and schedules are set up and checked:

    run = TrainingRun(ctx, cfg, {"stage": STAGE}, plan, model, optimizer, schedules)
    progress = run.resume()                                  # the run folder opens here; Progress(step, best)
    batches = batches_from(loader, progress.step)            # one loader iterator for the whole run
    for epoch in range(plan.epoch_of(progress.step), plan.epochs):
        train_one_epoch(run, batches, epoch, progress)       # the stage's own forward and loss
        run.end_epoch(progress)                              # checkpoint_last.pth, snapshots
    run.finish("stage 2")

and its `train_one_epoch`:

    epoch_run = run.epoch(epoch, progress)
    for step, micro_batches in epoch_run.steps(batches):     # run.accumulate_steps batches per step
        values = run.apply_schedules(step)                   # LR, weight decay (and momentum) of this step
        loss, grad_norm = optimizer_step(loss_of, micro_batches, run.model, run.optimizer, run.ctx.scaler,
                                         cfg.optim.clip_grad)
        epoch_run.done(loss=loss, grad_norm=grad_norm, **values)
    epoch_run.finish()                                       # checks the epoch got to its last step
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import time
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import torch
from torch import nn

from utils import dist
from utils.checkpoint import (LAST_CHECKPOINT, Progress, latest_checkpoint, progress_of, restore_training_state,
                              save_checkpoint, training_checkpoint)
from utils.config import config_to_dict
from utils.errors import UserError
from utils.logs import get_logger, progress as progress_bar
from utils.optim import apply_schedules
from utils.plan import RunPlan, check_epoch_end, epoch_steps
from utils.run import RunContext, begin_training, open_run_folder
from utils.run_folder import check_resume_config


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
                   optimizer: torch.optim.Optimizer, scaler: torch.amp.GradScaler,
                   clip_grad: float) -> tuple[torch.Tensor, torch.Tensor]:
    """One optimizer step over k micro-batches: zero_grad; for each, loss_of(batch) and the backward of loss / k,
    under DDP's no_sync but for the last (one gradient all-reduce per step); then unscale, clip, step. With equal
    micro-batches and a loss that is a mean over samples, this is the step of one batch k times larger. Returns the
    mean loss and the gradient norm before clipping, as tensors: nothing here waits for the device (the loss is
    checked for finiteness on logging steps, `EpochRun`)."""
    optimizer.zero_grad(set_to_none=True)
    ddp, count, total = _ddp(model), len(micro_batches), 0.0
    for index, batch in enumerate(micro_batches):
        last = index == count - 1
        with ddp.no_sync() if ddp is not None and not last else contextlib.nullcontext():
            loss = loss_of(batch)
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


@dataclasses.dataclass
class TrainingRun:
    """One stage's training: what its steps run and what its checkpoints hold."""

    ctx: RunContext
    cfg: Any  # the stage's typed config
    carried: dict  # what every checkpoint of the run carries besides its progress: {"stage": ...} (a run folder holds
    # one stage), and stage 3's dataset description
    plan: RunPlan
    model: nn.Module  # what runs the steps (DDP, compiled); checkpoints hold the bare module under it
    optimizer: torch.optim.Optimizer
    schedules: dict[str, np.ndarray]  # per-step values (utils/schedules.py)

    @property
    def module(self) -> nn.Module:
        return dist.unwrap(self.model)

    def resume(self) -> Progress:
        """After every check has passed: with run.resume on, find the folder's checkpoint_last.pth (or the one before
        it) and check that this run's config continues it (utils/run_folder.py), before anything is written; then
        open and lock the run folder, restore the checkpoint, and cut metrics.jsonl back to its step (to nothing on
        a fresh start, so that a run killed before its first checkpoint logs each step once). From here an error
        may be one rank's alone."""
        ctx = self.ctx
        found = latest_checkpoint(ctx.output_dir, self.carried["stage"], ctx.device) if self.cfg.run.resume else None
        changes = check_resume_config(found[1]["config"], config_to_dict(self.cfg), found[0]) if found else {}
        step = int(found[1]["step"]) if found else 0
        open_run_folder(ctx, self.cfg, "resume" if found else "start", step, changes)
        progress = Progress()
        if found is not None:
            path, state = found
            restore_training_state(state, self.model, self.optimizer, ctx.scaler, ctx.info.rank, ctx.info.world_size)
            progress = progress_of(state, ctx.output_dir)
            get_logger().info(f"resumed from {path} at step {progress.step} (epoch {state['epoch']})" +
                              "".join(f"; {key} changed from {old!r} to {new!r}" for key, (old, new) in changes.items()))
        ctx.metrics.truncate_after(progress.step)
        begin_training()
        return progress

    def save(self, name: str, progress: Progress) -> None:
        """A complete checkpoint under the run folder (collective: every rank calls it; rank 0 writes). The last
        checkpoint keeps its predecessor (checkpoint_previous.pth) to fall back on."""
        state = training_checkpoint(self.model, self.optimizer, self.ctx.scaler, config_to_dict(self.cfg), self.carried,
                                    progress, self.plan.epoch_of(progress.step))
        if self.ctx.info.is_main:
            save_checkpoint(self.ctx.output_dir / name, state, keep_previous=name == LAST_CHECKPOINT)
        dist.barrier()

    def end_epoch(self, progress: Progress) -> None:
        """After an epoch: checkpoint_last.pth every run.save_every_epochs and at the end, checkpoint_epochN.pth at
        snapshot epochs."""
        done, run = self.plan.epoch_of(progress.step), self.cfg.run
        if done % run.save_every_epochs == 0 or done == run.epochs:
            self.save(LAST_CHECKPOINT, progress)
        if done in run.snapshot_epochs:
            self.save(f"checkpoint_epoch{done}.pth", progress)

    def apply_schedules(self, step: int) -> dict[str, float]:
        """Set this step's LR and weight decay on the optimizer; returns every schedule's value at `step`."""
        values = {name: float(schedule[step]) for name, schedule in self.schedules.items()}
        apply_schedules(self.optimizer, values["lr"], values["wd"])
        return values

    def epoch(self, epoch: int, progress: Progress) -> EpochRun:
        return EpochRun(self, epoch, progress)

    def finish(self, next_stage: str | None = None) -> None:
        then = f" (initialise {next_stage} with model.init_checkpoint=<that path>)" if next_stage else ""
        get_logger().info(f"done: {self.ctx.output_dir / LAST_CHECKPOINT}{then}")
        dist.cleanup()


class EpochRun:
    """One epoch of training: its step range, progress bar, data-wait timer, log records and step checkpoints."""

    def __init__(self, run: TrainingRun, epoch: int, progress: Progress):
        self.run, self.epoch, self.progress = run, epoch, progress
        plan = run.plan
        self.range = epoch_steps(plan, epoch, progress.step)
        self.bar = progress_bar(total=plan.steps_per_epoch, desc=f"epoch {epoch}", enabled=run.ctx.info.is_main,
                                initial=progress.step - epoch * plan.steps_per_epoch)
        self.unchecked: list[torch.Tensor] = []  # losses since the last check, still on the device
        self.since_log = (time.perf_counter(), 0, 0.0)  # since the last log: its start, steps, seconds waiting for data

    def steps(self, batches: Iterator) -> Iterator[tuple[int, list]]:
        """(step, its plan.accumulate_steps micro-batches) for the epoch's remaining steps; the waits are timed."""
        plan = self.run.plan
        for step in self.range:
            start = time.perf_counter()
            micro_batches = [next(batches) for _ in range(plan.accumulate_steps)]
            since, steps, waited = self.since_log
            self.since_log = (since, steps + 1, waited + time.perf_counter() - start)
            yield step, micro_batches

    def done(self, loss: torch.Tensor, **values: Any) -> None:
        """The step is done. On logging steps (and the epoch's last), the losses since the last check are averaged
        over ranks and checked (one wait for the device per log, not per step), and `values` with the step's loss go
        to the progress bar and metrics.jsonl; every run.save_every_steps steps, checkpoint_last.pth."""
        self.unchecked.append(loss.detach())
        self.progress.step += 1
        step, run = self.progress.step, self.run.cfg.run
        self.bar.update()
        logging_step = step % run.log_every_steps == 0 or step == self.range.stop
        saving_step = bool(run.save_every_steps) and step % run.save_every_steps == 0
        if logging_step or saving_step:
            losses = self.checked_losses()
            if logging_step:
                clean = {key: float(value.item()) if torch.is_tensor(value) else float(value)
                         for key, value in {"loss": losses[-1], **values, **self.throughput()}.items()}
                self.bar.set_postfix({key: (f"{v:.4g}" if math.isfinite(v) else str(v)) for key, v in clean.items()
                                      if key in ("loss", "lr", "samples_per_s", "data_wait")})
                self.run.ctx.metrics.write({"step": step, "epoch": self.epoch, **clean})
        if saving_step:
            self.run.save(LAST_CHECKPOINT, self.progress)

    def throughput(self) -> dict[str, float]:
        """Samples per second and the share of the time spent waiting for data, since the last log."""
        if self.run.ctx.device.type == "cuda":
            torch.cuda.synchronize(self.run.ctx.device)
        since, steps, waited = self.since_log
        self.since_log = (time.perf_counter(), 0, 0.0)
        elapsed = max(self.since_log[0] - since, 1e-9)
        return {"samples_per_s": steps * self.run.plan.global_batch_size / elapsed, "data_wait": waited / elapsed}

    def checked_losses(self) -> torch.Tensor:
        """The losses since the last check, averaged over ranks; the first that is not finite stops the run (on
        every rank alike) with its step."""
        losses = dist.all_reduce_mean(torch.stack(self.unchecked))
        first = self.progress.step - len(self.unchecked)  # the index of the first unchecked step
        self.unchecked = []
        finite = torch.isfinite(losses)
        if not bool(finite.all()):
            bad = int((~finite).nonzero()[0])
            raise DivergedError(f"the loss is {losses[bad].item()} at step {first + bad}: stopping (lower optim.lr, "
                                f"check the data, or use run.precision=bf16 or fp32; a restart resumes from the last "
                                f"checkpoint)")
        return losses

    def finish(self) -> None:
        """Close the bar, check that the epoch ran all its steps."""
        self.bar.close()
        check_epoch_end(self.run.plan, self.epoch, self.progress.step)
