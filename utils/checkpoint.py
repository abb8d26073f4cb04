"""Complete, self-describing, atomic checkpoints and automatic resume.

A training checkpoint holds: the unwrapped model state, optimizer, grad scaler, global step, epoch, the RNG states of
every rank, the best validation metric so far and the resolved config as a plain dict (so inference can rebuild the
model from the file alone). It is written to a temporary file in the same folder and `os.replace`d, so a kill during
the write leaves the previous checkpoint intact. Loading uses `weights_only=True`: no pickled code runs.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from utils.dist import all_gather_objects, unwrap
from utils.seed import get_rng_state, set_rng_state

LAST_CHECKPOINT = "checkpoint_last.pth"
BEST_CHECKPOINT = "checkpoint_best.pth"
FORMAT_VERSION = 1
REQUIRED_KEYS = ("format_version", "model", "step", "epoch", "config")


def save_checkpoint(path: str | os.PathLike, state: dict[str, Any]) -> None:
    """Write `state` atomically: temp file in the same folder, flushed to disk, then renamed over `path`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    with open(tmp, "wb") as handle:
        torch.save(state, handle)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)


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
        raise FileNotFoundError(f"checkpoint not found: {path}")
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except Exception as error:
        raise RuntimeError(f"cannot read checkpoint {path}: {type(error).__name__}: {error}") from error


def check_checkpoint(state: Any, path: str | os.PathLike) -> dict[str, Any]:
    """`state` if it is a training checkpoint of this project, else an error naming the file and what was found."""
    if not isinstance(state, dict):
        raise ValueError(f"{path}: expected a checkpoint dict, got {type(state).__name__}")
    missing = [key for key in REQUIRED_KEYS if key not in state]
    if missing:
        raise ValueError(f"{path}: not a training checkpoint of this project, missing keys {missing} "
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


def find_resume_checkpoint(output_dir: str | os.PathLike) -> Path | None:
    """output_dir/checkpoint_last.pth if a previous run left one."""
    path = Path(output_dir) / LAST_CHECKPOINT
    return path if path.is_file() else None
