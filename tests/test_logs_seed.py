"""Metrics file, rank-safe logging and seeding."""

import logging
import random

import numpy as np
import torch

from utils.logs import MetricsWriter, read_metrics, setup_logging
from utils.seed import get_rng_state, seed_everything, set_rng_state, worker_init_fn


def test_metrics_file_appends_and_truncates_on_resume(tmp_path):
    writer = MetricsWriter(tmp_path / "metrics.jsonl")
    for step in range(5):
        writer.write({"step": step, "loss": torch.tensor(1.0 / (step + 1)), "lr": np.float64(0.1)})
    writer.truncate_after(2)  # a resume from the checkpoint at step 2 drops what the killed run wrote later
    writer.write({"step": 3, "loss": 0.0})
    records = read_metrics(tmp_path / "metrics.jsonl")
    assert [r["step"] for r in records] == [0, 1, 2, 3]
    assert records[1]["loss"] == 0.5 and records[0]["lr"] == 0.1


def test_torn_last_line_is_skipped_but_corruption_elsewhere_is_an_error(tmp_path):
    path = tmp_path / "metrics.jsonl"
    path.write_text('{"step": 0}\n{"step": 1, "lo')
    assert read_metrics(path) == [{"step": 0}]
    path.write_text('{"step": 0}\n{"st\n{"step": 2}\n')
    try:
        read_metrics(path)
    except ValueError as error:
        assert "line 2" in str(error)
    else:
        raise AssertionError("a corrupt middle line must raise")


def test_non_main_rank_writes_no_metrics_and_logs_warnings_only(tmp_path):
    MetricsWriter(tmp_path / "m.jsonl", enabled=False).write({"step": 0})
    assert not (tmp_path / "m.jsonl").exists()
    assert setup_logging(rank=1).level == logging.WARNING
    logger = setup_logging(rank=0, output_dir=tmp_path)
    logger.info("hello")
    assert "hello" in (tmp_path / "log.txt").read_text()


def test_seed_plus_rank_and_state_round_trip():
    seed_everything(7, rank=1)
    a = torch.rand(3)
    seed_everything(8, rank=0)
    assert torch.equal(torch.rand(3), a)  # seed + rank is the only thing that matters
    state = get_rng_state()
    expected = (random.random(), np.random.rand(), torch.rand(1).item())
    seed_everything(0)
    set_rng_state(state)
    assert (random.random(), np.random.rand(), torch.rand(1).item()) == expected


def test_worker_seeds_differ_per_worker():
    draws = []
    for worker_id in range(2):
        torch.manual_seed(1000 + worker_id)  # what the DataLoader does: base_seed + worker_id
        worker_init_fn(worker_id)
        draws.append((np.random.rand(), random.random()))
    assert draws[0] != draws[1]
