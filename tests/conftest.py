"""Shared fixtures: one generated mini-SoccerNet (and its frame store) per test session."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from data.catalog import BUILT_IN
from data.prepare import Preparation, prepare
from data.synthetic import generate

ROOT = Path(__file__).resolve().parent.parent
V2 = BUILT_IN["soccernet_v2"]


def optim_config(**changes):
    """An OptimConfig for unit tests (the recipe's values have no defaults: they live in the paper YAMLs)."""
    from configs.schema import OptimConfig

    values = dict(lr=1e-3, min_lr=0.0, warmup_start_lr=0.0, warmup_epochs=0.0, weight_decay=0.05, clip_grad=1.0)
    return OptimConfig(**{**values, **changes})


def spotting_checkpoint(path: Path, *overrides: str, seed: int = 0) -> Path:
    """An untrained stage-3 checkpoint as train_spotting.py writes one: the tiny phase-b config with `overrides`
    (section.key=value), its model at random weights (seeded)."""
    import torch

    from configs.schema import SpottingConfig
    from data.catalog import load_dataset
    from models.registry import build_spotting
    from utils.checkpoint import checkpoint_dict, save_checkpoint
    from utils.config import config_to_dict, load_config

    cfg = load_config(SpottingConfig, ROOT / "configs" / "spotting" / "tiny_mini_phase_b.yaml", list(overrides))
    torch.manual_seed(seed)
    dataset = load_dataset(cfg.data.dataset)
    model = build_spotting(cfg.model, len(dataset.columns))
    save_checkpoint(path, checkpoint_dict(model.state_dict(), config_to_dict(cfg), "spotting",
                                          {"dataset": dataset.describe()}))
    return path


def run_config(**changes):
    from configs.schema import RunConfig

    return RunConfig(**{"output_dir": "x", "epochs": 100, "global_batch_size": 256, "seed": 42, **changes})


@pytest.fixture(scope="session")
def mini_soccernet(tmp_path_factory) -> Path:
    """4 games of two 40-second halves (train 2, valid 1, test 1), with a 64-d feature bank and a 64x64 frame store
    (the tiny models' input size)."""
    root = tmp_path_factory.mktemp("mini_soccernet")
    games = generate(root, games=4, seconds=40, seed=3, bank_dim=64, workers=2)
    prepare(V2, root, root / "store", games, Preparation(size=(64, 64)), workers=2)
    return root


def run_script(args: list[str], nproc: int = 1, timeout: int = 600, check: bool = True,
               env: dict | None = None) -> subprocess.CompletedProcess:
    """Run a stage script as a user would: `python script.py ...` or `torchrun --nproc_per_node=N script.py ...`."""
    environment = {key: value for key, value in os.environ.items() if key not in ("RANK", "WORLD_SIZE", "LOCAL_RANK")}
    environment.update({"OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1", **(env or {})})
    prefix = [sys.executable] if nproc == 1 else [sys.executable, "-m", "torch.distributed.run", "--standalone",
                                                   f"--nproc_per_node={nproc}"]
    completed = subprocess.run(prefix + args, cwd=ROOT, capture_output=True, text=True, timeout=timeout,
                               env=environment)
    if check and completed.returncode != 0:
        raise AssertionError(f"{' '.join(args)} failed ({completed.returncode}):\n{completed.stdout[-3000:]}\n"
                             f"{completed.stderr[-5000:]}")
    return completed


def kill_when(args: list[str], condition, timeout: int = 300, poll: float = 0.01) -> None:
    """Start a training script and SIGKILL it as soon as condition() holds, as a crash would."""
    process = subprocess.Popen([sys.executable, *args], cwd=ROOT, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    deadline = time.time() + timeout
    while process.poll() is None and time.time() < deadline and not condition():
        time.sleep(poll)
    process.send_signal(signal.SIGKILL)
    process.wait()


def kill_after_first_checkpoint(args: list[str], output_dir: Path, timeout: int = 300) -> None:
    """Start a training script and SIGKILL it as soon as it has written checkpoint_last.pth."""
    kill_when(args, lambda: (output_dir / "checkpoint_last.pth").exists(), timeout)


def losses_by_step(out: Path) -> dict[int, float]:
    from utils.logs import read_metrics

    return {record["step"]: record["loss"] for record in read_metrics(out / "metrics.jsonl") if "loss" in record}


def assert_kill_and_resume_is_exact(args, tmp_path: Path, total_steps: int) -> None:
    """A run SIGKILLed after its first checkpoint and started again logs, step for step, the losses of an
    uninterrupted run. args(out) -> the script's command line writing into `out`."""
    import torch

    run_script(args(tmp_path / "straight"))
    reference = losses_by_step(tmp_path / "straight")
    assert sorted(reference) == list(range(1, total_steps + 1))
    out = tmp_path / "killed"
    kill_after_first_checkpoint(args(out), out)
    saved = torch.load(out / "checkpoint_last.pth", weights_only=True)["step"]
    assert saved < total_steps, "the run finished before it could be killed"
    run_script(args(out))
    resumed = losses_by_step(out)
    assert sorted(resumed) == list(range(1, total_steps + 1))  # one record per step, none duplicated by the restart
    for step in range(saved + 1, total_steps + 1):
        assert resumed[step] == pytest.approx(reference[step], rel=1e-6, abs=1e-7), (step, saved, resumed, reference)


def assert_two_processes_equal_one(args, tmp_path: Path, prefixes: tuple[str, ...]) -> dict:
    """Run args(out) with one process and with two (torchrun; the same global batch): every tensor of the final
    checkpoint whose name starts with one of `prefixes` agrees. Returns the one-process model state."""
    import torch

    run_script(args(tmp_path / "one"))
    run_script(args(tmp_path / "two"), nproc=2, check=False)  # the checkpoint, or its absence, is what is tested
    one = torch.load(tmp_path / "one" / "checkpoint_last.pth", weights_only=True)["model"]
    two = torch.load(tmp_path / "two" / "checkpoint_last.pth", weights_only=True)["model"]
    compared = [key for key in one if key.startswith(prefixes)]
    assert compared, f"no tensor starts with {prefixes}"
    for key in compared:
        torch.testing.assert_close(one[key], two[key], rtol=1e-4, atol=1e-5, msg=key)
    return one
