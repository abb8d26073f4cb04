"""Epoch and loader accounting, in one place: the run's plan, the sampler that follows it, the loader over it.

`plan_run` computes once what the config implies (per-rank batch, steps per epoch and in total, the LR scale) as a
frozen `RunPlan`, and prints it; the schedules (utils/schedules.py) read their scale from it. `RunSampler` hands this rank exactly `plan.samples_per_rank` samples per epoch (a
short epoch is padded, a long one cut: stage 3 draws a variable number of windows, and `run.max_steps_per_epoch`
caps an epoch), for every epoch of the run, from any step on: one loader iterator then spans the whole run, so the
workers prefetch the next epoch while one ends, validates and checkpoints. Each sample carries a seed that depends
on the run's seed and the sample's place in the run only, so random draws made in the workers repeat exactly after a
resume, whatever the number of workers. The loop asks `epoch_steps` for an epoch's step range and `check_epoch_end`
that it got there: a loop that consumed fewer batches (a `break` for a step budget) stops rather than shift every
later epoch.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import torch

from utils.config import ConfigError
from utils.logs import get_logger
from utils.seed import worker_init_fn


@dataclasses.dataclass(frozen=True)
class RunPlan:
    """What a run does, step by step. Steps are optimizer steps; every step sees a full global batch, in
    accumulate_steps micro-batches of batch_size_per_rank on each rank."""

    world_size: int
    global_batch_size: int
    accumulate_steps: int
    batch_size_per_rank: int  # one micro-batch: what one forward pass of one rank sees (the loader's batch)
    samples_per_epoch: int  # clips (stage 1) or windows (stages 2, 3) of one epoch, over all ranks
    steps_per_epoch: int
    epochs: int
    base_lr: float  # optim.lr, the LR of a global batch of 256
    lr_scale: float  # the paper's linear scaling rule: global batch / 256, applied to every LR of the schedule

    @property
    def scaled_lr(self) -> float:
        """The peak LR the schedule reaches."""
        return self.base_lr * self.lr_scale

    @property
    def total_steps(self) -> int:
        return self.steps_per_epoch * self.epochs

    @property
    def samples_per_rank_step(self) -> int:
        """What each rank reads per optimizer step."""
        return self.batch_size_per_rank * self.accumulate_steps

    @property
    def samples_per_rank(self) -> int:
        """What each rank reads per epoch."""
        return self.steps_per_epoch * self.samples_per_rank_step

    def epoch_of(self, step: int) -> int:
        """The epoch the next step (`step` steps done) belongs to."""
        return step // self.steps_per_epoch

    def describe(self, **context: Any) -> str:
        values = {**context, **dataclasses.asdict(self), "scaled_lr": self.scaled_lr, "total_steps": self.total_steps}
        values["global_batch_size"] = (f"{self.global_batch_size} (= {self.batch_size_per_rank} per rank x "
                                       f"{self.world_size} ranks x {self.accumulate_steps} accumulation steps)")
        width = max(len(key) for key in values)
        lines = [f"  {key:<{width}} = {value:g}" if isinstance(value, float) else f"  {key:<{width}} = {value}"
                 for key, value in values.items()]
        return "the plan of the run:\n" + "\n".join(lines)


def plan_run(run, base_lr: float, world_size: int, samples_per_epoch: int, **context: Any) -> RunPlan:
    """The plan of `run` (a RunConfig) over `samples_per_epoch`, logged once with `context` (games, ...).

    The last incomplete global batch of an epoch is dropped; run.max_steps_per_epoch caps an epoch's steps."""
    shares = world_size * run.accumulate_steps
    if run.global_batch_size % shares:
        raise ConfigError(f"run.global_batch_size={run.global_batch_size} does not divide by the {world_size} "
                          f"processes x run.accumulate_steps={run.accumulate_steps}; choose a multiple of {shares}")
    steps = samples_per_epoch // run.global_batch_size
    if steps == 0:
        raise ConfigError(f"run.global_batch_size={run.global_batch_size} is larger than one epoch "
                          f"({samples_per_epoch} samples): lower it or add data")
    if run.max_steps_per_epoch:
        steps = min(steps, run.max_steps_per_epoch)
    plan = RunPlan(world_size, run.global_batch_size, run.accumulate_steps, run.global_batch_size // shares,
                   samples_per_epoch, steps, run.epochs, base_lr, run.global_batch_size / 256)
    get_logger().info(plan.describe(**context))
    return plan


def epoch_steps(plan: RunPlan, epoch: int, step: int) -> range:
    """The steps epoch `epoch` still has to run when `step` steps are done (all of them, or the rest after a
    resume)."""
    end = (epoch + 1) * plan.steps_per_epoch
    if not epoch * plan.steps_per_epoch <= step <= end:
        raise RuntimeError(f"step {step} does not lie in epoch {epoch} ({epoch * plan.steps_per_epoch} to {end})")
    return range(step, end)


def check_epoch_end(plan: RunPlan, epoch: int, step: int) -> None:
    """An epoch consumes exactly plan.steps_per_epoch batches; anything else would shift every later epoch."""
    if step != (epoch + 1) * plan.steps_per_epoch:
        raise RuntimeError(f"epoch {epoch} ended at step {step}, not {(epoch + 1) * plan.steps_per_epoch}: the loop "
                           f"consumed {(epoch + 1) * plan.steps_per_epoch - step} batch(es) fewer than planned")


# ----------------------------------------------------------------------------------------------------------------------
# Samples and the sampler of a run
# ----------------------------------------------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class Sample:
    """What the loader hands a dataset: an epoch's item and the seed of the random draws made for it in the data
    workers (stage 1's crops)."""

    item: object
    seed: int


def sample_seed(seed: int, epoch: int, position: int) -> int:
    return int(np.random.SeedSequence([seed, epoch, position]).generate_state(1)[0])


class RunSampler(torch.utils.data.Sampler):
    """This rank's samples of every epoch of the run, back to back, from `first_step` on.

    items(epoch) builds the epoch's list, the same on every rank; it is shuffled with seed + epoch, cut to a multiple
    of the world size, and rank r takes positions r, r + world, ...; that share is padded (items repeated, with fresh
    seeds) or cut to exactly plan.samples_per_rank.
    """

    def __init__(self, items: Callable[[int], list], plan: RunPlan, rank: int, seed: int):
        super().__init__()
        self.items, self.plan, self.rank, self.seed = items, plan, rank, seed
        self.first_step = 0

    def epoch_samples(self, epoch: int) -> list[Sample]:
        items = self.items(epoch)
        order = np.random.default_rng(self.seed + epoch).permutation(len(items))
        world = self.plan.world_size
        usable = len(items) // world * world
        positions = list(range(self.rank, usable, world))  # places in the shuffled epoch
        wanted = self.plan.samples_per_rank
        positions = [positions[i % len(positions)] + usable * (i // len(positions)) for i in range(wanted)]
        return [Sample(items[order[p % usable]], sample_seed(self.seed, epoch, p)) for p in positions]

    def start_at(self, step: int) -> None:
        self.first_step = step

    def __iter__(self) -> Iterator[Sample]:
        per_step = self.plan.samples_per_rank_step
        for epoch in range(self.plan.epoch_of(self.first_step), self.plan.epochs):
            done = max(0, self.first_step - epoch * self.plan.steps_per_epoch)
            yield from self.epoch_samples(epoch)[done * per_step:]

    def __len__(self) -> int:
        return (self.plan.total_steps - self.first_step) * self.plan.samples_per_rank_step


def build_loader(dataset: torch.utils.data.Dataset, sampler: RunSampler, num_workers: int, device: torch.device,
                 loader_seed: int, collate_fn=None) -> torch.utils.data.DataLoader:
    """A loader over this rank's run sampler: full batches only, pinned memory on GPU, persistent seeded workers.
    loader_seed (drawn when the run was set up) seeds the workers, so nothing here reads the global RNG."""
    return torch.utils.data.DataLoader(
        dataset, batch_size=sampler.plan.batch_size_per_rank, sampler=sampler, num_workers=num_workers,
        collate_fn=collate_fn,
        drop_last=True, pin_memory=device.type == "cuda", persistent_workers=num_workers > 0,
        worker_init_fn=worker_init_fn, prefetch_factor=4 if num_workers > 0 else None,
        generator=torch.Generator().manual_seed(loader_seed))


def batches_from(loader: torch.utils.data.DataLoader, step: int) -> Iterator:
    """The run's one batch iterator, starting after `step` steps (0, or where a resumed run stopped)."""
    loader.sampler.start_at(step)
    return iter(loader)
