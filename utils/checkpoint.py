"""Complete, self-describing, atomic checkpoints and automatic resume.

A training checkpoint holds: the unwrapped model state, optimizer, grad scaler, global step, epoch, the RNG states of
every rank, the best validation metric so far and the resolved config as a plain dict (so inference can rebuild the
model from the file alone). It is written to a temporary file in the same folder and `os.replace`d, so a kill during
the write leaves the previous checkpoint intact; a write that fails (a full disk) removes its temporary file and names
the path. `checkpoint_last.pth` keeps its predecessor as `checkpoint_previous.pth`, which a resume falls back to (and
says so) when the last one cannot be read. Loading uses `weights_only=True`: no pickled code runs.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from utils.dist import all_gather_objects, unwrap
from utils.errors import InvalidInputError, MissingFileError, is_write_error, write_error
from utils.seed import get_rng_state, set_rng_state

LAST_CHECKPOINT = "checkpoint_last.pth"
PREVIOUS_CHECKPOINT = "checkpoint_previous.pth"  # the checkpoint_last.pth before the latest one
BEST_CHECKPOINT = "checkpoint_best.pth"
TEMPORARY_MARK = ".tmp"  # in the names of files being written: `.<name>.tmp<pid>`
FORMAT_VERSION = 1
REQUIRED_KEYS = ("format_version", "model", "step", "epoch", "config")


def save_checkpoint(path: str | os.PathLike, state: dict[str, Any], keep_previous: bool = False) -> None:
    """Write `state` atomically: temp file in the same folder, flushed to disk, then renamed over `path`.

    keep_previous: first move the existing `path` to PREVIOUS_CHECKPOINT beside it. A failed write (a full disk, an
    unwritable folder) removes the temporary file and raises a UserError naming `path`.
    """
    path = Path(path)
    tmp = path.with_name(f".{path.name}{TEMPORARY_MARK}{os.getpid()}")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(tmp, "wb") as handle:
            torch.save(state, handle)
            handle.flush()
            os.fsync(handle.fileno())
        if keep_previous and path.is_file():
            os.replace(path, path.with_name(PREVIOUS_CHECKPOINT))
        os.replace(tmp, path)
    except BaseException as error:
        tmp.unlink(missing_ok=True)
        if is_write_error(error):
            raise write_error(path, error) from None
        raise


def remove_stale_temporaries(folder: str | os.PathLike) -> list[Path]:
    """Delete the temporary files a killed run left in `folder` (`.<name>.tmp<pid>`); returns them."""
    folder = Path(folder)
    stale = sorted(path for path in folder.glob(f".*{TEMPORARY_MARK}*") if path.is_file()) if folder.is_dir() else []
    for path in stale:
        path.unlink(missing_ok=True)
    return stale


def training_state(model: torch.nn.Module, optimizer: torch.optim.Optimizer | None, scaler: Any | None, step: int,
                   epoch: int, config: dict, best_metric: float | None = None,
                   extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """Everything needed to resume. A collective: every rank must call it (it gathers each rank's RNG state).

    step: the number of optimizer steps done (the next step to run); epoch: the epoch that step belongs to.
    """
    return {
        "format_version": FORMAT_VERSION,
        "model": unwrap(model).state_dict(),
        "optimizer": optimizer.state_dict() if optimizer is not None else None,
        "scaler": scaler.state_dict() if scaler is not None and scaler.is_enabled() else None,
        "step": int(step),
        "epoch": int(epoch),
        "best_metric": best_metric,
        "rng_states": all_gather_objects(get_rng_state()),  # index = rank
        "config": config,
        "extra": extra or {},
    }


def load_checkpoint(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Read a checkpoint written by `save_checkpoint`, with weights_only=True. Errors name the file."""
    return check_checkpoint(read_weights(path, map_location), path)


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


class CheckpointError(InvalidInputError):
    """A file that is not a readable checkpoint of the kind expected; the message names it."""


def read_checkpoint_field(path: str | os.PathLike, key: str) -> Any:
    """One top-level value of a checkpoint, memory-mapped so that the weights are not read."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True, mmap=True).get(key)
    except Exception as error:
        raise CheckpointError(f"{path} cannot be read as a checkpoint ({error}); move it away to continue") from None


def check_checkpoint(state: Any, path: str | os.PathLike) -> dict[str, Any]:
    """`state` if it is a training checkpoint of this project, else an error naming the file and what was found."""
    if not isinstance(state, dict):
        raise CheckpointError(f"{path}: expected a checkpoint dict, got {type(state).__name__}")
    missing = [key for key in REQUIRED_KEYS if key not in state]
    if missing:
        raise CheckpointError(f"{path}: not a training checkpoint of this project, missing keys {missing} "
                         f"(found {sorted(state)[:10]}); to load bare weights use the model's own loader")
    return state


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


def resume_candidates(output_dir: str | os.PathLike) -> list[Path]:
    """The checkpoints a resumed run may start from, newest first: checkpoint_last.pth, checkpoint_previous.pth."""
    return [path for path in (Path(output_dir) / LAST_CHECKPOINT, Path(output_dir) / PREVIOUS_CHECKPOINT)
            if path.is_file()]
