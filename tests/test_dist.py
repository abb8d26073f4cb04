"""Distributed helpers: a real 2-process gloo run through torchrun, and the single-process fallback."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from utils import dist

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.slow
def test_two_process_gloo_collectives(tmp_path):
    env = {key: value for key, value in os.environ.items() if key not in ("RANK", "WORLD_SIZE", "LOCAL_RANK")}
    env["OMP_NUM_THREADS"] = "1"
    completed = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
         str(ROOT / "tests" / "dist_worker.py"), str(tmp_path)],
        capture_output=True, text=True, timeout=300, env=env, cwd=ROOT)
    # Judge what the ranks wrote: torchrun on CPU occasionally aborts at exit after correct results (seen in about 1 run in 40 on the 2-core CI machines).
    files = sorted(tmp_path.glob("rank*.json"))
    assert len(files) == 2, f"ranks did not both finish:\n{completed.stdout}\n{completed.stderr}"
    results = [json.loads(path.read_text()) for path in files]
    for rank, result in enumerate(results):
        assert result["rank"] == rank and result["world_size"] == 2
        # run.accumulate_steps: 2 micro-batches on each of 2 ranks step exactly as one batch of all 16 samples, with
        # one gradient all-reduce (no_sync on the first micro-batch)
        assert result["accumulated_vs_one_batch"] < 1e-6 and result["allreduce_calls"] == 1
        assert result["seed"] == 42 + rank
        assert result["gathered"] == [[0.0] * 3, [1.0] * 3, [1.0] * 3]  # rank order, uneven sizes kept
        assert result["mean"] == [0.5, 5.0]
        assert result["objects"] == [{"rank": 0}, {"rank": 1}]
        assert result["broadcast"] == "from rank 0"
    assert results[0]["first_random"] != results[1]["first_random"]  # seed + rank: distinct streams


def test_single_process_fallback(monkeypatch):
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK"):
        monkeypatch.delenv(name, raising=False)
    info = dist.init_distributed(device="cpu")
    assert (info.rank, info.world_size, info.is_main, info.device.type) == (0, 1, True, "cpu")
    assert not dist.is_dist() and dist.get_world_size() == 1
    x = torch.arange(6.0).reshape(3, 2)
    assert torch.equal(dist.all_gather_cat(x), x)
    assert torch.equal(dist.all_reduce_mean(x), x)
    assert dist.all_gather_objects("a") == ["a"] and dist.broadcast_object(3) == 3
    dist.barrier()


def test_unwrap_removes_compile_wrapper():
    module = torch.nn.Linear(2, 2)
    assert dist.unwrap(torch.compile(module)) is module
