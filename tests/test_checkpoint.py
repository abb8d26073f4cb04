"""Checkpoints: complete, atomic, loaded with weights_only=True, and a resumed run continuing exactly."""

import random

import numpy as np
import pytest
import torch
from torch import nn

from utils.checkpoint import (LAST_CHECKPOINT, Best, CheckpointError, Progress, latest_checkpoint, load_checkpoint,
                              restore_training_state, save_checkpoint, training_checkpoint)
from tests.conftest import optim_config
from utils.optim import apply_schedules, build_adamw
from utils.schedules import warmup_cosine
from utils.seed import seed_everything

TOTAL_STEPS = 8


def make_model() -> nn.Module:
    # Dropout makes every step depend on the torch RNG, so a resume that loses the RNG state would diverge.
    return nn.Sequential(nn.Linear(6, 16), nn.GELU(), nn.Dropout(0.3), nn.LayerNorm(16), nn.Linear(16, 1))


def train(model, optimizer, start_step, stop_step, lrs):
    losses = []
    for step in range(start_step, stop_step):
        apply_schedules(optimizer, lrs[step], 0.05)
        # Batches drawn from python, numpy and torch RNGs: all three must be restored.
        x = torch.randn(4, 6) + float(np.random.rand()) + random.random()
        loss = model(x).pow(2).mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    return losses


def fresh(seed):
    seed_everything(seed)
    model = make_model()
    return model, build_adamw(model, optim_config())


def test_killed_and_resumed_run_matches_uninterrupted_run(tmp_path):
    lrs = warmup_cosine(1e-2, 1e-4, TOTAL_STEPS, warmup_steps=2)
    model, optimizer = fresh(0)
    reference_losses = train(model, optimizer, 0, TOTAL_STEPS, lrs)
    reference = {k: v.clone() for k, v in model.state_dict().items()}

    model, optimizer = fresh(0)
    first = train(model, optimizer, 0, 3, lrs)
    save_checkpoint(tmp_path / LAST_CHECKPOINT, training_checkpoint(model, optimizer, None, {"run": {"seed": 0}},
                                                                    {"stage": None}, Progress(3, Best(0.5))))
    del model, optimizer  # the "kill"

    model, optimizer = fresh(123)  # a new process starts from other RNG states and weights
    _, state = latest_checkpoint(tmp_path, None, "cpu")
    restore_training_state(state, model, optimizer, None, rank=0, world_size=1)
    second = train(model, optimizer, state["step"], TOTAL_STEPS, lrs)

    assert first + second == pytest.approx(reference_losses, abs=0, rel=0)
    for key, value in model.state_dict().items():
        assert torch.equal(value, reference[key]), key
    assert state["best_metric"] == 0.5 and state["config"] == {"run": {"seed": 0}}


def test_checkpoint_is_self_describing_and_loads_with_weights_only(tmp_path):
    model, optimizer = fresh(0)
    path = tmp_path / "ckpt.pth"
    save_checkpoint(path, training_checkpoint(model, optimizer, None, {"model": {"name": "x"}}, {"stage": None},
                                              Progress(7), epoch=2))
    raw = torch.load(path, weights_only=True)  # would raise on any pickled object
    assert {"model", "optimizer", "scaler", "step", "epoch", "rng_states", "best_metric", "config"} <= set(raw)
    assert raw["step"] == 7 and raw["epoch"] == 2 and len(raw["rng_states"]) == 1
    assert list(tmp_path.iterdir()) == [path]  # no temporary file left behind


def test_interrupted_write_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    path = tmp_path / LAST_CHECKPOINT
    save_checkpoint(path, {"format_version": 1, "model": {}, "step": 1, "epoch": 0, "config": {}})

    def killed_save(obj, handle):
        handle.write(b"partial")
        raise KeyboardInterrupt

    monkeypatch.setattr(torch, "save", killed_save)
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint(path, {"format_version": 1, "model": {}, "step": 2, "epoch": 0, "config": {}})
    monkeypatch.undo()
    assert load_checkpoint(path)["step"] == 1


def test_unreadable_or_foreign_checkpoint_names_the_file(tmp_path):
    garbage = tmp_path / "garbage.pth"
    garbage.write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="garbage.pth cannot be read as a checkpoint") as raised:
        load_checkpoint(garbage)
    assert "weights_only" not in str(raised.value)  # not torch's advice to unpickle a file of unknown origin
    foreign = tmp_path / "foreign.pth"
    torch.save({"weight": torch.zeros(2)}, foreign)
    with pytest.raises(ValueError, match="foreign.pth.*missing keys"):
        load_checkpoint(foreign)
    with pytest.raises(FileNotFoundError, match="absent.pth"):
        load_checkpoint(tmp_path / "absent.pth")
    assert latest_checkpoint(tmp_path / "empty_run", "spotting", "cpu") is None
