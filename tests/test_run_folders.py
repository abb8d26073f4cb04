"""One run per folder (utils/run_folder.py): a resume continues the same run or is refused before anything is written,
two runs never share a folder, a fresh start never mixes with an earlier run, the log and the checkpoints agree after
any kill, and a full disk names the file."""

import builtins
import json
import os
import signal
import subprocess
import sys
import time

import pytest
import torch

from tests.conftest import ROOT, kill_when, run_script
from tests.test_user_errors import expect_user_error, spotting_args
from utils import checkpoint
from utils.config import ConfigError
from utils.logs import read_metrics
from utils.run_folder import LOCK_FILE, acquire_lock, check_resume_config, release_lock

pytestmark = pytest.mark.slow


def snapshot(folder):
    """{name: bytes} of every file of a run folder (its 'replaced' runs apart)."""
    return {path.relative_to(folder).as_posix(): path.read_bytes() for path in sorted(folder.rglob("*"))
            if path.is_file()}


def steps(folder):
    return [record["step"] for record in read_metrics(folder / "metrics.jsonl") if "loss" in record]


@pytest.fixture(scope="module")
def finished(mini_soccernet, tmp_path_factory):
    """A finished 2-epoch stage-3 run (log every step, validation at the end)."""
    out = tmp_path_factory.mktemp("runs") / "run"
    run_script(spotting_args(mini_soccernet, out, "run.epochs=2", "run.log_every_steps=1"))
    return out


@pytest.mark.parametrize("change, listed", [
    ("run.global_batch_size=8", "run.global_batch_size: 4 -> 8"),
    ("optim.lr=0.5", "optim.lr: 0.01 -> 0.5"),
    ("model.temporal_depth=3", "model.temporal_depth: 2 -> 3"),
])
def test_a_resume_with_another_config_is_refused_and_writes_nothing(mini_soccernet, finished, tmp_path, change,
                                                                    listed):
    out = tmp_path / "run"
    os.system(f"cp -r '{finished}' '{out}'")
    before = snapshot(out)
    completed = run_script(spotting_args(mini_soccernet, out, "run.epochs=2", "run.log_every_steps=1", change),
                           check=False)
    expect_user_error(completed, f"{out / 'checkpoint_last.pth'} was written with another config", listed,
                      f"run.allow_changes=[{change.split('=')[0]}]")
    assert snapshot(out) == before  # config.yaml, metrics.jsonl, the checkpoints: as they were


def test_allowed_and_free_changes_resume_and_are_recorded(mini_soccernet, finished, tmp_path):
    out = tmp_path / "run"
    os.system(f"cp -r '{finished}' '{out}'")
    # two more epochs (the plan changes: allowed by name), where the data lies and the workers may change freely
    run_script(spotting_args(mini_soccernet, out, "run.epochs=3", "run.log_every_steps=1", "run.num_workers=1",
                             "run.allow_changes=[run.epochs]"))
    history = [json.loads(line) for line in (out / "history.jsonl").read_text().splitlines()]
    assert [entry["event"] for entry in history] == ["start", "resume"]
    changes = history[1]["changes"]
    assert changes.pop("run.output_dir") == [str(finished), str(out)]  # the copied folder: free to move
    assert changes == {"run.allow_changes": [[], ["run.epochs"]], "run.epochs": [2, 3], "run.num_workers": [0, 1]}
    assert history[0]["config"]["run"]["epochs"] == 2 and history[1]["step"] == 6  # 3 steps per epoch
    assert steps(out) == list(range(1, 10))  # each step once
    assert "epochs: 3" in (out / "config.yaml").read_text()


def test_a_checkpoint_of_an_older_version_resumes_without_its_new_keys():
    stored = {"run": {"epochs": 2}, "data": {"root": "a"}}
    new = {"run": {"epochs": 2, "allow_changes": []}, "data": {"root": "b", "dataset": "soccernet_v2"}}
    assert check_resume_config(stored, new, "ckpt") == {"data.root": ("a", "b")}
    with pytest.raises(ConfigError, match="run.allow_changes names 'optim.lrr', which is no key.*'optim.lr'"):
        check_resume_config({}, {"run": {"allow_changes": ["optim.lrr"]}, "optim": {"lr": 1}}, "ckpt")


def test_two_runs_never_share_a_folder(mini_soccernet, tmp_path):
    out = tmp_path / "run"
    first = subprocess.Popen([sys.executable, *spotting_args(mini_soccernet, out, "run.epochs=40")], cwd=ROOT,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 120
        while not (out / "metrics.jsonl").exists() and time.time() < deadline:
            time.sleep(0.05)
        second = run_script(spotting_args(mini_soccernet, out, "run.epochs=40"), check=False)
        expect_user_error(second, f"{out} is in use by process {first.pid}", "give another run.output_dir")
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait()
    # the killed run's lock is stale: the next run takes the folder over, says so, and resumes
    assert json.loads((out / LOCK_FILE).read_text())["pid"] == first.pid
    fresh = run_script(spotting_args(mini_soccernet, out, "run.epochs=1", "run.resume=false"))
    assert f"took over {out / LOCK_FILE} from process {first.pid}" in fresh.stdout + fresh.stderr
    assert not (out / LOCK_FILE).exists()  # released at exit


def test_lock_of_a_live_process_on_this_host_is_kept(tmp_path):
    assert acquire_lock(tmp_path) == []
    holder = subprocess.run([sys.executable, "-c", f"from utils.run_folder import acquire_lock; from pathlib import "
                             f"Path; acquire_lock(Path({str(tmp_path)!r}))"], cwd=ROOT, capture_output=True, text=True)
    assert holder.returncode != 0 and f"is in use by process {os.getpid()}" in holder.stderr
    release_lock(tmp_path)
    assert not (tmp_path / LOCK_FILE).exists()


def test_a_fresh_start_moves_the_earlier_run_aside(mini_soccernet, finished, tmp_path):
    out = tmp_path / "run"
    os.system(f"cp -r '{finished}' '{out}'")
    before = snapshot(out)
    completed = run_script(spotting_args(mini_soccernet, out, "run.epochs=1", "run.resume=false",
                                         "run.log_every_steps=1", "model.temporal_depth=1"))
    moved = next((out / "replaced").iterdir())
    assert f"what an earlier run left in {out} is now in {moved}" in completed.stdout + completed.stderr
    assert snapshot(moved) == before  # the earlier run whole, in its own folder
    assert steps(out) == [1, 2, 3]  # the new run's steps only
    best = torch.load(out / "checkpoint_best.pth", weights_only=True)
    assert best["config"]["model"]["temporal_depth"] == 1  # the new run's best, not the old one's
    assert [json.loads(line)["event"] for line in (out / "history.jsonl").read_text().splitlines()] == ["start"]


def test_a_kill_before_the_first_checkpoint_logs_each_step_once(mini_soccernet, tmp_path):
    out = tmp_path / "run"
    args = spotting_args(mini_soccernet, out, "run.epochs=2", "run.log_every_steps=1", "eval.every_epochs=0")
    kill_when(args, lambda: len(steps(out)) >= 2 if (out / "metrics.jsonl").exists() else False)
    assert not (out / "checkpoint_last.pth").exists() and steps(out)
    run_script(args)
    assert steps(out) == list(range(1, 7))


def test_a_full_disk_names_the_checkpoint(tmp_path, monkeypatch):
    real_open = builtins.open

    def full_disk(path, mode="r", *args, **kwargs):  # the kernel's own ENOSPC, as on a full disk
        return real_open("/dev/full", "wb", buffering=0) if "w" in mode else real_open(path, mode, *args, **kwargs)

    monkeypatch.setattr(checkpoint, "open", full_disk, raising=False)
    with pytest.raises(Exception) as error:
        checkpoint.save_checkpoint(tmp_path / "checkpoint_last.pth", {"model": torch.zeros(100_000)})
    assert str(error.value) == f"cannot write {tmp_path / 'checkpoint_last.pth'}: the disk is full (No space left on " \
                               f"device)"
    assert list(tmp_path.iterdir()) == []  # no temporary file left behind
