"""Setting a run up: the command line, the processes and their seeds, precision, the model's wrapping, the run folder.

Every stage script calls, in this order (each step writes nothing until `open_run_folder`):

    cfg = parse_command_line(Schema, __doc__)       # validated config (or --print-config and exit)
    ctx = setup_run(cfg)                            # torchrun group, seeds, console log, precision, loader seed
    ... data, plan, model, optimiser: every input checked ...
    open_run_folder(ctx, cfg, ...)                  # only now: run.lock, log.txt, config.yaml, command.txt,
                                                    # git_revision.txt, history.jsonl (utils/run_folder.py)
    ... resume, then begin_training() and the loop
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import os
import shlex
import subprocess
import sys
import warnings
from pathlib import Path
from typing import Any

import torch
from torch import nn

from utils import dist
from utils.config import ConfigError, config_to_dict, config_to_yaml, load_config
from utils.errors import training_started, write_error
from utils.files import remove_stale_temporaries, write_text
from utils.logs import MetricsWriter, get_logger, log_to_file, setup_logging
from utils.run_folder import acquire_lock, append_history, move_aside
from utils.seed import seed_everything


# ----------------------------------------------------------------------------------------------------------------------
# The command line
# ----------------------------------------------------------------------------------------------------------------------
def parse_command_line(schema: type, description: str, argv: list[str] | None = None) -> Any:
    """`script.py --config FILE [section.key=value ...] [--print-config]` -> a typed config. Config errors exit with
    status 2; --print-config prints the resolved YAML and exits."""
    parser = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog="Overrides: any number of section.key=value pairs, e.g. optim.lr=1e-3 "
                                            "run.output_dir=runs/x. They are applied after the YAML file.")
    parser.add_argument("--config", required=True, help="experiment YAML (may inherit from a base with 'base:')")
    parser.add_argument("--print-config", action="store_true",
                        help="print the resolved config (defaults <- YAML chain <- overrides) as YAML and exit")
    parser.add_argument("overrides", nargs="*", help="dotted overrides section.key=value")
    args = parser.parse_args(argv)
    try:
        config = load_config(schema, args.config, args.overrides)
    except ConfigError as error:
        parser.exit(2, f"config error: {error}\n")
    if args.print_config:  # on stdout, so that `... --print-config > run.yaml` gives a config to start from
        sys.stdout.write(config_to_yaml(config))
        parser.exit(0)
    return config


# ----------------------------------------------------------------------------------------------------------------------
# Processes, seeds, precision
# ----------------------------------------------------------------------------------------------------------------------
@dataclasses.dataclass
class RunContext:
    """Everything a stage script needs from the run set-up."""

    info: dist.DistInfo
    output_dir: Path
    metrics: MetricsWriter
    amp_dtype: torch.dtype | None
    scaler: torch.amp.GradScaler
    loader_seed: int  # drawn once here: building the loader reads nothing of the global RNG

    @property
    def device(self) -> torch.device:
        return self.info.device


def setup_run(config: Any) -> RunContext:
    """Join torchrun's group, seed rank r with seed + r, log to the console, choose the precision. Writes nothing:
    the run folder is opened by `open_run_folder` once every input has been checked."""
    run = config.run
    info = dist.init_distributed(run.device)
    seed_everything(run.seed, info.rank)
    loader_seed = int(torch.randint(0, 2**62, ()).item())
    setup_logging(info.rank)
    amp_dtype = autocast_dtype(run.precision, info.device)
    output_dir = Path(run.output_dir)
    get_logger().info(f"{info.world_size} process(es) on {info.device}; precision "
                      f"{'fp32' if amp_dtype is None else amp_dtype}; output {output_dir}")
    return RunContext(info, output_dir, MetricsWriter(output_dir / "metrics.jsonl", info.is_main), amp_dtype,
                      grad_scaler(info.device, amp_dtype), loader_seed)


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


def prepare_model(module: nn.Module, ctx: RunContext, compile_model: bool) -> nn.Module:
    """The module on its device, inside DistributedDataParallel when torchrun started several processes (buffers,
    the queues, are kept in sync by the method itself, so DDP does not broadcast them), compiled if asked."""
    module.to(ctx.device)
    model = module
    if ctx.info.world_size > 1:
        with warnings.catch_warnings():
            # torch 2.14 deprecates broadcast_buffers for forward_sync_buffers, which older torch lacks; the queues
            # are identical on every rank by construction, so either keeps them right: silence the notice for users
            warnings.filterwarnings("ignore", message="`broadcast_buffers` is deprecated", category=FutureWarning)
            model = nn.parallel.DistributedDataParallel(
                module, device_ids=[ctx.device.index] if ctx.device.type == "cuda" else None, broadcast_buffers=False)
    return torch.compile(model) if compile_model else model


# ----------------------------------------------------------------------------------------------------------------------
# The run folder
# ----------------------------------------------------------------------------------------------------------------------
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


def record_run(config: Any, output_dir: str | Path, argv: list[str] | None = None, event: str = "start",
               step: int = 0, changes: dict | None = None) -> Path:
    """Write the resolved config (the one now in force), the command line and the git revision into the run's output
    folder, and append the start or resume to its history (utils/run_folder.py; rank 0 only)."""
    output_dir = Path(output_dir)
    write_text(output_dir / "config.yaml", config_to_yaml(config))
    command = " ".join(shlex.quote(part) for part in (argv if argv is not None else [sys.executable, *sys.argv]))
    with open(output_dir / "command.txt", "a", encoding="utf-8") as handle:  # appended: a resumed run adds a line
        handle.write(command + "\n")
    revision = git_revision()
    write_text(output_dir / "git_revision.txt", revision + "\n")
    append_history(output_dir, event, step, config_to_dict(config), revision, changes, argv)
    return output_dir


def open_run_folder(ctx: RunContext, config: Any, event: str = "start", step: int = 0,
                    changes: dict | None = None) -> None:
    """After every check has passed: the run folder is made (or found writable) and locked for this run; a fresh
    start (run.resume=false) moves what an earlier run left there aside; the temporary files of a killed run are
    removed, and rank 0 starts log.txt and records the config, the command line, the git revision and the history
    line of this start or resume (event, step, the config changes allowed)."""
    if ctx.info.is_main:
        check_writable(ctx.output_dir)
        notes = acquire_lock(ctx.output_dir)
        if not config.run.resume and (moved := move_aside(ctx.output_dir)) is not None:
            notes.append(f"run.resume=false: what an earlier run left in {ctx.output_dir} is now in {moved}")
        notes += [f"removed {stale}, a temporary file of an interrupted write"
                  for stale in remove_stale_temporaries(ctx.output_dir)]
        log_to_file(ctx.output_dir)
        for note in notes:
            get_logger().warning(note)
        record_run(config, ctx.output_dir, event=event, step=step, changes=changes)
    dist.barrier()


def begin_training() -> None:
    """Everything is checked and the run folder is open: from here an error may be one rank's alone."""
    training_started()
