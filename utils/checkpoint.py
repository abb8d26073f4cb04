"""Checkpoints: complete, self-describing, atomic, loaded strictly; saving and resuming a training run.

A training checkpoint holds: the unwrapped model state, optimizer, grad scaler, global step, epoch, the RNG states of
every rank, the best validation metric so far, the resolved config as a plain dict (so inference can rebuild the
model from the file alone) and `extra` (the stage; stage 3 adds its last validated epoch). It is written atomically
(`utils/files.py`): a kill during the write leaves the previous checkpoint intact, a failed write (a full disk)
removes its temporary file and names the path. `checkpoint_last.pth` keeps its predecessor as
`checkpoint_previous.pth`, which a resume falls back to (and says so) when the last one cannot be read. Loading uses
`weights_only=True`: no pickled code runs.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from utils import dist
from utils.config import config_to_dict
from utils.dist import all_gather_objects, unwrap
from utils.errors import InvalidInputError, MissingFileError
from utils.files import atomic_path
from utils.logs import get_logger
from utils.seed import get_rng_state, set_rng_state

LAST_CHECKPOINT = "checkpoint_last.pth"
PREVIOUS_CHECKPOINT = "checkpoint_previous.pth"  # the checkpoint_last.pth before the latest one
BEST_CHECKPOINT = "checkpoint_best.pth"
FORMAT_VERSION = 1
REQUIRED_KEYS = ("format_version", "model", "step", "epoch", "config")


class CheckpointError(InvalidInputError):
    """A file that is not a readable checkpoint of the kind expected; the message names it."""


# ----------------------------------------------------------------------------------------------------------------------
# The checkpoint dict, on disk
# ----------------------------------------------------------------------------------------------------------------------
def checkpoint_dict(model_state: dict, config: dict, stage: str | None, step: int = 0, epoch: int = 0,
                    best_metric: float | None = None, optimizer: dict | None = None, scaler: dict | None = None,
                    rng_states: list | None = None, extra: dict | None = None) -> dict[str, Any]:
    """The one layout of every checkpoint of this project (training, imported, or written by a test)."""
    return {"format_version": FORMAT_VERSION, "model": model_state, "optimizer": optimizer, "scaler": scaler,
            "step": int(step), "epoch": int(epoch), "best_metric": best_metric, "rng_states": rng_states or [],
            "config": config, "extra": {"stage": stage, **(extra or {})}}


def training_state(model: torch.nn.Module, optimizer: torch.optim.Optimizer | None, scaler: Any | None, step: int,
                   epoch: int, config: dict, stage: str | None = None, best_metric: float | None = None,
                   extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """Everything needed to resume. A collective: every rank must call it (it gathers each rank's RNG state).

    step: the number of optimizer steps done (the next step to run); epoch: the epoch that step belongs to.
    """
    return checkpoint_dict(unwrap(model).state_dict(), config, stage, step, epoch, best_metric,
                           optimizer.state_dict() if optimizer is not None else None,
                           scaler.state_dict() if scaler is not None and scaler.is_enabled() else None,
                           all_gather_objects(get_rng_state()), extra)  # rng_states: index = rank


def save_checkpoint(path: str | os.PathLike, state: dict[str, Any], keep_previous: bool = False) -> None:
    """Write `state` atomically, flushed to the disk; keep_previous first moves an existing `path` to
    PREVIOUS_CHECKPOINT beside it."""
    path = Path(path)
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as handle:
            torch.save(state, handle)
            handle.flush()
            os.fsync(handle.fileno())
        if keep_previous and path.is_file():
            os.replace(path, path.with_name(PREVIOUS_CHECKPOINT))


def read_weights(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> Any:
    """Whatever `torch.save` wrote at `path` (a checkpoint of this project or bare weights), with weights_only=True."""
    path = Path(path)
    if not path.is_file():
        raise MissingFileError(f"checkpoint not found: {path}")
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except Exception as error:  # torch's message advises weights_only=False: never right for a file of unknown origin
        first_line = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        if "weights_only" in first_line or "Weights only load failed" in first_line:
            first_line = "it holds objects other than tensors and plain values"
        raise CheckpointError(f"{path} cannot be read as a checkpoint ({first_line}); expected a .pth written by one "
                              f"of this project's scripts or a released COMEDIAN file") from None


def check_checkpoint(state: Any, path: str | os.PathLike) -> dict[str, Any]:
    """`state` if it is a training checkpoint of this project, else an error naming the file and what was found."""
    if not isinstance(state, dict):
        raise CheckpointError(f"{path}: expected a checkpoint dict, got {type(state).__name__}")
    missing = [key for key in REQUIRED_KEYS if key not in state]
    if missing:
        raise CheckpointError(f"{path}: not a training checkpoint of this project, missing keys {missing} "
                              f"(found {sorted(state)[:10]}); to load bare weights use the model's own loader")
    return state


def load_checkpoint(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Read a checkpoint written by `save_checkpoint`, with weights_only=True. Errors name the file."""
    return check_checkpoint(read_weights(path, map_location), path)


def read_checkpoint_field(path: str | os.PathLike, key: str) -> Any:
    """One top-level value of a checkpoint, memory-mapped so that the weights are not read."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True, mmap=True).get(key)
    except Exception as error:
        raise CheckpointError(f"{path} cannot be read as a checkpoint ({error}); move it away to continue") from None


def stage_of(state: dict[str, Any]) -> str | None:
    return state.get("extra", {}).get("stage")


def restore_training_state(state: dict[str, Any], model: torch.nn.Module, optimizer: torch.optim.Optimizer | None,
                           scaler: Any | None, rank: int, world_size: int) -> None:
    """Load model (strictly), optimizer, scaler and this rank's RNG state from a `training_state` dict."""
    unwrap(model).load_state_dict(state["model"], strict=True)
    if optimizer is not None and state.get("optimizer") is not None:
        optimizer.load_state_dict(state["optimizer"])
    if scaler is not None and state.get("scaler") is not None:
        scaler.load_state_dict(state["scaler"])
    rng_states = state.get("rng_states") or []
    if len(rng_states) == world_size:
        set_rng_state(rng_states[rank])
    else:  # a different number of processes than the killed run: fresh, distinct streams per rank and step
        torch.manual_seed(int(state["step"]) * 1000 + rank)


# ----------------------------------------------------------------------------------------------------------------------
# A training run's checkpoints
# ----------------------------------------------------------------------------------------------------------------------
def resume_candidates(output_dir: str | os.PathLike) -> list[Path]:
    """The checkpoints a resumed run may start from, newest first: checkpoint_last.pth, checkpoint_previous.pth."""
    return [path for path in (Path(output_dir) / LAST_CHECKPOINT, Path(output_dir) / PREVIOUS_CHECKPOINT)
            if path.is_file()]


def save_training(ctx, name: str, model: torch.nn.Module, optimizer: torch.optim.Optimizer, step: int, epoch: int,
                  config: Any, stage: str, best_metric: float | None = None, extra: dict | None = None) -> None:
    """A complete checkpoint under ctx.output_dir/name (collective: every rank calls it; rank 0 writes). The last
    checkpoint keeps its predecessor (checkpoint_previous.pth) to fall back on."""
    state = training_state(model, optimizer, ctx.scaler, step, epoch, config_to_dict(config), stage, best_metric,
                           extra)
    if ctx.info.is_main:
        save_checkpoint(ctx.output_dir / name, state, keep_previous=name == LAST_CHECKPOINT)
    dist.barrier()


def end_epoch_checkpoints(ctx, config: Any, model: torch.nn.Module, optimizer, step: int, done: int, stage: str,
                          best_metric: float | None = None, extra: dict | None = None) -> None:
    """checkpoint_last.pth every run.save_every_epochs and at the end; checkpoint_epochN.pth at snapshot epochs."""
    if done % config.run.save_every_epochs == 0 or done == config.run.epochs:
        save_training(ctx, LAST_CHECKPOINT, model, optimizer, step, done, config, stage, best_metric, extra)
    if done in config.run.snapshot_epochs:
        save_training(ctx, f"checkpoint_epoch{done}.pth", model, optimizer, step, done, config, stage, best_metric,
                      extra)


def resume(ctx, resume_run: bool, model: torch.nn.Module, optimizer: torch.optim.Optimizer,
           stage: str) -> tuple[int, float | None, dict]:
    """Restore ctx.output_dir/checkpoint_last.pth if it exists (and resume_run): returns (step, best metric, extra).

    A checkpoint_last.pth that cannot be read (a disk that filled up, a copy cut short) gives way to the
    checkpoint_previous.pth kept beside it, with a warning saying so; when neither can be read, the error names both.
    """
    candidates = resume_candidates(ctx.output_dir) if resume_run else []
    if not resume_run and (ctx.output_dir / LAST_CHECKPOINT).exists():
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
    if stage_of(state) != stage:
        raise CheckpointError(f"{path} is a {stage_of(state)!r} checkpoint; this is a {stage!r} run: choose another "
                              f"run.output_dir")
    restore_training_state(state, model, optimizer, ctx.scaler, ctx.info.rank, ctx.info.world_size)
    ctx.metrics.truncate_after(state["step"])
    get_logger().info(f"resumed from {path} at step {state['step']} (epoch {state['epoch']})")
    return int(state["step"]), state.get("best_metric"), state.get("extra", {})


def best_so_far(output_dir: Path, best: float | None) -> float | None:
    """The larger of `best` (from the resumed checkpoint) and the metric checkpoint_best.pth stores."""
    path = output_dir / BEST_CHECKPOINT
    if not path.is_file():
        return best
    kept = read_checkpoint_field(path, "best_metric")
    return kept if best is None or (kept is not None and kept > best) else best
