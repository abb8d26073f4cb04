"""Shared fixtures: one generated mini-SoccerNet (and its frame store) per test session."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from data.prepare import prepare
from data.synthetic import generate

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def mini_soccernet(tmp_path_factory) -> Path:
    """4 games of two 40-second halves (train 2, valid 1, test 1), with a 64-d feature bank and a frame store."""
    root = tmp_path_factory.mktemp("mini_soccernet")
    games = generate(root, games=4, seconds=40, seed=3, bank_dim=64, progress=False)
    prepare(root, root / "store", games, progress=False)
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


def kill_after_first_checkpoint(args: list[str], output_dir: Path, timeout: int = 300) -> None:
    """Start a training script and SIGKILL it as soon as it has written checkpoint_last.pth, as a crash would."""
    process = subprocess.Popen([sys.executable, *args], cwd=ROOT, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    deadline = time.time() + timeout
    while not (output_dir / "checkpoint_last.pth").exists() and process.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait()
