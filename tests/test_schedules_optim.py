"""Per-step schedules, the linear LR scaling rule, AdamW parameter groups and derived values."""

import math

import numpy as np
import pytest
import torch
from torch import nn

from utils.config import ConfigError, OptimConfig, RunConfig
from utils.optim import apply_schedules, build_adamw, param_groups
from utils.run import derived_values
from utils.schedules import scaled_lr, warmup_cosine


def test_linear_scaling_rule_matches_paper_table():
    assert scaled_lr(5e-4, 1024) == pytest.approx(2e-3)  # stage 1
    assert scaled_lr(4e-3, 32) == pytest.approx(5e-4)  # stage 2
    assert scaled_lr(1e-3, 64) == pytest.approx(2.5e-4)  # stage 3


def test_warmup_then_cosine_endpoints():
    schedule = warmup_cosine(base=1.0, final=0.1, total_steps=110, warmup_steps=10, warmup_start=0.2)
    assert schedule.shape == (110,)
    assert schedule[0] == pytest.approx(0.2)
    assert schedule[5] == pytest.approx(0.2 + 0.8 * 5 / 10)  # linear in between
    assert schedule[10] == pytest.approx(1.0)  # peak right after warmup
    assert schedule[-1] == pytest.approx(0.1)  # exactly the final value at the last step
    assert np.all(np.diff(schedule[:11]) > 0) and np.all(np.diff(schedule[10:]) < 0)
    midpoint = 10 + (100 - 1) / 2
    assert np.interp(midpoint, np.arange(110), schedule) == pytest.approx(0.55, abs=1e-3)


def test_no_warmup_starts_at_base():
    schedule = warmup_cosine(2e-3, 0.0, 50)
    assert schedule[0] == pytest.approx(2e-3) and schedule[-1] == pytest.approx(0.0)


def test_ema_momentum_schedule_follows_the_paper_formula():
    total = 101
    schedule = warmup_cosine(0.99, 1.0, total)
    t = np.arange(total)
    expected = 1 - (1 - 0.99) * (np.cos(np.pi * t / (total - 1)) + 1) / 2
    np.testing.assert_allclose(schedule, expected, rtol=0, atol=1e-15)


def test_bad_schedule_arguments_are_refused():
    with pytest.raises(ValueError, match="warmup_steps"):
        warmup_cosine(1.0, 0.0, total_steps=5, warmup_steps=6)
    with pytest.raises(ValueError, match="total_steps"):
        warmup_cosine(1.0, 0.0, total_steps=0)


class TinyTransformerLike(nn.Module):
    def __init__(self):
        super().__init__()
        self.cls_token = nn.Parameter(torch.zeros(1, 1, 8))
        self.pos_embed = nn.Parameter(torch.zeros(1, 5, 8))
        self.time_embed = nn.Parameter(torch.zeros(1, 4, 8))
        self.temporal_mask_token = nn.Parameter(torch.zeros(1, 1, 8))
        self.norm = nn.LayerNorm(8)
        self.fc = nn.Linear(8, 8)
        self.proj = nn.Conv3d(3, 8, kernel_size=(2, 4, 4))
        self.frozen = nn.Linear(8, 8)
        self.frozen.requires_grad_(False)


def test_param_groups_exclude_norms_biases_embeddings_and_tokens():
    groups = {group["name"]: set(group["param_names"]) for group in param_groups(TinyTransformerLike(), 0.05)}
    assert groups["decay"] == {"fc.weight", "proj.weight"}
    assert groups["no_decay"] == {"cls_token", "pos_embed", "time_embed", "temporal_mask_token", "norm.weight",
                                  "norm.bias", "fc.bias", "proj.bias"}


def test_swin_relative_position_bias_tables_decay_as_in_the_official_code():
    from models.registry import build_spatial

    groups = {group["name"]: set(group["param_names"]) for group in param_groups(build_spatial("swin_tiny"), 0.05)}
    tables = {name for name in groups["decay"] | groups["no_decay"] if name.endswith("relative_position_bias_table")}
    assert len(tables) == 12 and tables <= groups["decay"]  # one per Swin block, all 2-D, none in the no-decay list
    assert "norm.weight" in groups["no_decay"] and "patch_embed.proj.weight" in groups["decay"]


def test_apply_schedules_sets_lr_everywhere_and_weight_decay_only_on_decay_group():
    optimizer = build_adamw(TinyTransformerLike(), OptimConfig(weight_decay=0.05))
    apply_schedules(optimizer, lr=1e-4, weight_decay=0.07)
    by_name = {group["name"]: group for group in optimizer.param_groups}
    assert by_name["decay"]["lr"] == by_name["no_decay"]["lr"] == 1e-4
    assert by_name["decay"]["weight_decay"] == 0.07 and by_name["no_decay"]["weight_decay"] == 0.0


def test_weight_decay_really_skips_no_decay_parameters():
    model = TinyTransformerLike()
    nn.init.constant_(model.cls_token, 1.0)
    nn.init.constant_(model.fc.weight, 1.0)
    optimizer = build_adamw(model, OptimConfig(weight_decay=0.5))
    apply_schedules(optimizer, lr=0.1, weight_decay=0.5)
    for param in model.parameters():  # zero gradients: only decoupled weight decay moves parameters
        param.grad = torch.zeros_like(param)
    optimizer.step()
    assert torch.all(model.cls_token == 1.0)
    assert torch.allclose(model.fc.weight, torch.full_like(model.fc.weight, 1 - 0.1 * 0.5))


def test_derived_values():
    values = derived_values(RunConfig(output_dir="x", epochs=30, global_batch_size=64), base_lr=1e-3, world_size=2,
                            samples_per_epoch=300 * 50)
    assert values["batch_size_per_rank"] == 32
    assert math.isclose(values["scaled_lr"], 2.5e-4)
    assert values["steps_per_epoch"] == 234 and values["total_steps"] == 234 * 30
    with pytest.raises(ConfigError, match="does not divide"):
        derived_values(RunConfig(output_dir="x", global_batch_size=63), 1e-3, 2, 1000)
    with pytest.raises(ConfigError, match="larger than one epoch"):
        derived_values(RunConfig(output_dir="x", global_batch_size=64), 1e-3, 1, 10)
