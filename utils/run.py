"""What every stage script does before its first step: read the command line, record the run, derive values.

`parse_command_line` returns the validated config before anything touches the disk, so a typo writes nothing.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

import torch
import yaml

from utils.config import ConfigError, RunConfig, config_to_dict, load_config
from utils.errors import write_error
from utils.schedules import scaled_lr


def parse_command_line(schema: type, description: str, argv: list[str] | None = None) -> Any:
    """`script.py --config FILE [section.key=value ...]` -> a typed config. Config errors exit with status 2."""
    parser = argparse.ArgumentParser(description=description,
                                     epilog="Overrides: any number of section.key=value pairs, e.g. optim.lr=1e-3 "
                                            "run.output_dir=runs/x. They are applied after the YAML file.")
    parser.add_argument("--config", required=True, help="experiment YAML (may inherit from a base with 'base:')")
    parser.add_argument("overrides", nargs="*", help="dotted overrides section.key=value")
    args = parser.parse_args(argv)
    try:
        return load_config(schema, args.config, args.overrides)
    except ConfigError as error:
        parser.exit(2, f"config error: {error}\n")


def git_revision() -> str:
    """`<commit>` of the code, with '-dirty' when the working tree has uncommitted changes; 'unknown' outside git."""
    root = Path(__file__).resolve().parent.parent
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, timeout=10,
                                check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root,
                               capture_output=True, text=True, timeout=10, check=True).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return commit + ("-dirty" if dirty else "")


def check_writable(folder: str | os.PathLike) -> None:
    """Make `folder` if needed and write a probe file in it; a UserError names it when that fails."""
    folder = Path(folder)
    probe = folder / f".write_probe.tmp{os.getpid()}"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as error:
        raise write_error(folder, error) from None


def record_run(config: Any, output_dir: str | Path, argv: list[str] | None = None) -> Path:
    """Write the resolved config, the command line and the git revision into the run's output folder (rank 0 only)."""
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    with open(output_dir / "config.yaml", "w", encoding="utf-8") as handle:
        yaml.safe_dump(config_to_dict(config), handle, sort_keys=False)
    command = " ".join(shlex.quote(part) for part in (argv if argv is not None else [sys.executable, *sys.argv]))
    with open(output_dir / "command.txt", "a", encoding="utf-8") as handle:  # appended: a resumed run adds a line
        handle.write(command + "\n")
    (output_dir / "git_revision.txt").write_text(git_revision() + "\n", encoding="utf-8")
    return output_dir


def derived_values(run: RunConfig, base_lr: float, world_size: int, samples_per_epoch: int) -> dict[str, Any]:
    """The values computed from the config, in one place: per-rank batch, scaled LR, steps per epoch and in total.

    samples_per_epoch: clips (stage 1) or windows (stages 2 and 3) in one epoch, over all ranks.
    The last incomplete global batch of an epoch is dropped, so every step sees a full global batch.
    """
    if run.global_batch_size % world_size:
        raise ConfigError(f"run.global_batch_size={run.global_batch_size} does not divide by the {world_size} "
                          f"processes; choose a multiple of {world_size}")
    steps_per_epoch = samples_per_epoch // run.global_batch_size
    if steps_per_epoch == 0:
        raise ConfigError(f"run.global_batch_size={run.global_batch_size} is larger than one epoch "
                          f"({samples_per_epoch} samples): lower it or add data")
    return {
        "world_size": world_size,
        "global_batch_size": run.global_batch_size,
        "batch_size_per_rank": run.global_batch_size // world_size,
        "base_lr": base_lr,
        "scaled_lr": scaled_lr(base_lr, run.global_batch_size),
        "samples_per_epoch": samples_per_epoch,
        "steps_per_epoch": steps_per_epoch,
        "total_steps": steps_per_epoch * run.epochs,
    }


def format_derived(values: dict[str, Any]) -> str:
    width = max(len(key) for key in values)
    return "derived values:\n" + "\n".join(f"  {key:<{width}} = {value:g}" if isinstance(value, float)
                                           else f"  {key:<{width}} = {value}" for key, value in values.items())


def autocast_dtype(precision: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype for run.precision on `device`; None means full fp32.

    'auto' is bf16 on CUDA and fp32 on CPU (bf16 autocast runs about 4x slower than fp32 on CPUs without native bf16).
    The paper's configs ask for fp16 with a gradient scaler, as the official runs used.
    """
    if precision == "auto":
        return torch.bfloat16 if device.type == "cuda" else None
    if precision == "fp16" and device.type != "cuda":
        raise ConfigError("run.precision=fp16 needs a CUDA device; use fp32 or auto on CPU")
    return {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": None}[precision]


def inference_dtype(precision: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype for inference: run.precision's, except that fp16 (the paper's training precision, which
    needs CUDA) runs in fp32 on a CPU, where nothing needs a gradient scaler and half precision is slow."""
    if precision == "fp16" and device.type != "cuda":
        return None
    return autocast_dtype(precision, device)


def autocast(device: torch.device, dtype: torch.dtype | None):
    """Context manager: autocast to `dtype` on `device`, or nothing when dtype is None."""
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


def grad_scaler(device: torch.device, dtype: torch.dtype | None) -> torch.amp.GradScaler:
    """A gradient scaler, enabled for fp16 only (bf16 has fp32's range and needs none)."""
    return torch.amp.GradScaler(device.type, enabled=dtype == torch.float16)
