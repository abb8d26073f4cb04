"""Checkpoints: complete, self-describing, atomic, loaded strictly; what a resumed training run restores.

A training checkpoint holds: the unwrapped model state, optimizer, grad scaler, global step, epoch, the RNG states of
every rank, the best validation metric so far, the resolved config as a plain dict (so inference can rebuild the
model from the file alone) and `extra` (the stage and the last validated epoch). Where a run stands is a `Progress`
(step, best validation): what `training_checkpoint` writes and `progress_of` reads back; utils/loop.py saves and
resumes runs with them. It is written atomically
(`utils/files.py`): a kill during the write leaves the previous checkpoint intact, a failed write (a full disk)
removes its temporary file and names the path. `checkpoint_last.pth` keeps its predecessor as
`checkpoint_previous.pth`, which a resume falls back to (and says so) when the last one cannot be read. Loading uses
`weights_only=True`: no pickled code runs.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any

import torch

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
# Where a run stands, and the checkpoint dict
# ----------------------------------------------------------------------------------------------------------------------
@dataclasses.dataclass
class Best:
    """The best validation so far (stage 3) and the last epoch validated; it travels in every checkpoint, so that a
    resumed run neither forgets the best nor skips an epoch's validation."""

    metric: float | None = None
    validated_epoch: int = 0

    def improved_by(self, value: float) -> bool:
        return self.metric is None or value > self.metric


@dataclasses.dataclass
class Progress:
    """Where a training run stands: optimizer steps done (the index of the next step) and the best validation."""

    step: int = 0
    best: Best = dataclasses.field(default_factory=Best)


def checkpoint_dict(model_state: dict, config: dict, stage: str | None, extra: dict | None = None) -> dict[str, Any]:
    """The one layout of every checkpoint of this project (training, imported, or written by a test); a training
    checkpoint fills in the rest (`training_checkpoint`)."""
    return {"format_version": FORMAT_VERSION, "model": model_state, "optimizer": None, "scaler": None, "step": 0,
            "epoch": 0, "best_metric": None, "rng_states": [], "config": config, "extra": {"stage": stage, **(extra or {})}}


def training_checkpoint(model: torch.nn.Module, optimizer: torch.optim.Optimizer | None, scaler: Any | None,
                        config: dict, carried: dict, progress: Progress, epoch: int = 0) -> dict[str, Any]:
    """Everything needed to resume. A collective: every rank must call it (it gathers each rank's RNG state).

    carried: {"stage": ...} and what else the run's checkpoints carry (stage 3: "dataset", its description);
    epoch: the epoch progress.step belongs to (informative: a resume needs the step only)."""
    carried = dict(carried)
    state = checkpoint_dict(unwrap(model).state_dict(), config, carried.pop("stage"),
                            {**carried, "validated_epoch": progress.best.validated_epoch})
    state.update(step=int(progress.step), epoch=int(epoch), best_metric=progress.best.metric,
                 optimizer=optimizer.state_dict() if optimizer is not None else None,
                 scaler=scaler.state_dict() if scaler is not None and scaler.is_enabled() else None,
                 rng_states=all_gather_objects(get_rng_state()))  # index = rank
    return state


class _KeptWriteError:
    """A binary file that keeps the first OSError of its writes: torch.save turns one into a RuntimeError that names
    neither the file nor the cause ("enforce fail at inline_container.cc"), a full disk included."""

    def __init__(self, handle):
        self.handle, self.error = handle, None

    def write(self, data) -> int:
        try:
            return self.handle.write(data)
        except OSError as error:
            self.error = self.error or error
            raise

    def flush(self) -> None:
        self.handle.flush()


def save_checkpoint(path: str | os.PathLike, state: dict[str, Any], keep_previous: bool = False) -> None:
    """Write `state` atomically, flushed to the disk; keep_previous first moves an existing `path` to
    PREVIOUS_CHECKPOINT beside it. A failed write (a full disk) is an error naming `path` and the cause."""
    path = Path(path)
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as handle:
            writer = _KeptWriteError(handle)
            try:
                torch.save(state, writer)
            except RuntimeError:
                if writer.error is not None:
                    raise writer.error from None  # atomic_path names the path (utils/errors.py: write_error)
                raise
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
    """Load model (strictly), optimizer, scaler and this rank's RNG state from a `training_checkpoint` dict."""
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
# Resuming a training run
# ----------------------------------------------------------------------------------------------------------------------
def latest_checkpoint(output_dir: Path, stage: str, map_location: torch.device) -> tuple[Path, dict] | None:
    """(path, state) of output_dir's newest readable checkpoint, or None when it holds none.

    A checkpoint_last.pth that cannot be read (a disk that filled up, a copy cut short) gives way to the
    checkpoint_previous.pth kept beside it, with a warning saying so; when neither can be read, the error names both.
    """
    candidates = [path for path in (output_dir / LAST_CHECKPOINT, output_dir / PREVIOUS_CHECKPOINT) if path.is_file()]
    if not candidates:
        return None
    problems = []
    for path in candidates:
        try:
            state = load_checkpoint(path, map_location=map_location)
            break
        except CheckpointError as error:
            problems.append(str(error))
    else:
        raise CheckpointError("cannot resume: " + "; ".join(problems) + f". Move them out of {output_dir} to "
                              f"start afresh, or set run.resume=false")
    if problems:
        get_logger().warning(f"{problems[0]}: resuming from {path} (step {state['step']}) instead")
    if stage_of(state) != stage:
        raise CheckpointError(f"{path} is a {stage_of(state)!r} checkpoint; this is a {stage!r} run: choose another "
                              f"run.output_dir")
    return path, state


def progress_of(state: dict, output_dir: Path) -> Progress:
    """The Progress a checkpoint restores. The best metric is the larger of the one it stores and the one
    checkpoint_best.pth stores (a checkpoint_last.pth written before the best was kept knows an older best)."""
    best = state.get("best_metric")
    best_path = output_dir / BEST_CHECKPOINT
    if best_path.is_file():
        kept = read_checkpoint_field(best_path, "best_metric")
        best = kept if best is None or (kept is not None and kept > best) else best
    return Progress(int(state["step"]), Best(best, int(state.get("extra", {}).get("validated_epoch", 0))))
