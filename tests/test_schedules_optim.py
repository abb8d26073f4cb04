"""Per-step schedules, the linear LR scaling rule, AdamW parameter groups and the plan of a run."""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from tests.conftest import optim_config, run_config
from utils.config import ConfigError
from utils.loop import optimizer_step
from utils.optim import apply_schedules, build_adamw, param_groups
from utils.plan import RunSampler, check_epoch_end, epoch_steps, plan_run
from utils.schedules import build_schedules, warmup_cosine


@pytest.mark.parametrize("base_lr, global_batch, peak", [(5e-4, 1024, 2e-3), (4e-3, 32, 5e-4), (1e-3, 64, 2.5e-4)])
def test_linear_scaling_rule_matches_paper_table_and_the_schedule_reaches_the_planned_lr(base_lr, global_batch, peak):
    plan = plan_run(run_config(epochs=10, global_batch_size=global_batch), base_lr, 1, 100 * global_batch)
    assert plan.scaled_lr == pytest.approx(peak)  # stage 1, 2, 3 of the paper
    schedules = build_schedules(optim_config(lr=base_lr, min_lr=1e-6, warmup_start_lr=1e-7, warmup_epochs=1), plan)
    assert schedules["lr"].max() == plan.scaled_lr  # the value the plan prints is the one the schedule reaches
    assert schedules["lr"][0] == 1e-7 * plan.lr_scale and schedules["lr"][-1] == 1e-6 * plan.lr_scale


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
    optimizer = build_adamw(TinyTransformerLike(), optim_config(weight_decay=0.05))
    apply_schedules(optimizer, lr=1e-4, weight_decay=0.07)
    by_name = {group["name"]: group for group in optimizer.param_groups}
    assert by_name["decay"]["lr"] == by_name["no_decay"]["lr"] == 1e-4
    assert by_name["decay"]["weight_decay"] == 0.07 and by_name["no_decay"]["weight_decay"] == 0.0


def test_weight_decay_really_skips_no_decay_parameters():
    model = TinyTransformerLike()
    nn.init.constant_(model.cls_token, 1.0)
    nn.init.constant_(model.fc.weight, 1.0)
    optimizer = build_adamw(model, optim_config(weight_decay=0.5))
    apply_schedules(optimizer, lr=0.1, weight_decay=0.5)
    for param in model.parameters():  # zero gradients: only decoupled weight decay moves parameters
        param.grad = torch.zeros_like(param)
    optimizer.step()
    assert torch.all(model.cls_token == 1.0)
    assert torch.allclose(model.fc.weight, torch.full_like(model.fc.weight, 1 - 0.1 * 0.5))


def test_the_plan_of_a_run():
    plan = plan_run(run_config(epochs=30, global_batch_size=64), base_lr=1e-3, world_size=2,
                    samples_per_epoch=300 * 50)
    assert plan.batch_size_per_rank == 32
    assert math.isclose(plan.scaled_lr, 2.5e-4)
    assert plan.steps_per_epoch == 234 and plan.total_steps == 234 * 30
    assert plan_run(run_config(max_steps_per_epoch=5), 1e-3, 1, 300 * 50).steps_per_epoch == 5
    with pytest.raises(ConfigError, match="does not divide"):
        plan_run(run_config(global_batch_size=63), 1e-3, 2, 1000)
    with pytest.raises(ConfigError, match="larger than one epoch"):
        plan_run(run_config(global_batch_size=64), 1e-3, 1, 10)


def test_accumulation_splits_the_global_batch_into_micro_batches():
    """run.accumulate_steps: the global batch is per-rank micro-batch x ranks x accumulation steps; the loader reads
    micro-batches, the sampler hands a rank a whole step's samples, and the LR scales with the global batch."""
    plan = plan_run(run_config(epochs=2, global_batch_size=64, accumulate_steps=2), base_lr=1e-3, world_size=2,
                    samples_per_epoch=640)
    assert (plan.batch_size_per_rank, plan.samples_per_rank_step, plan.steps_per_epoch) == (16, 32, 10)
    assert math.isclose(plan.scaled_lr, 2.5e-4)
    assert "= 64 (= 16 per rank x 2 ranks x 2 accumulation steps)" in plan.describe()
    sampler = RunSampler(lambda epoch: list(range(640)), plan, rank=0, seed=0)
    assert len(list(sampler)) == len(sampler) == 2 * 10 * 32
    with pytest.raises(ConfigError, match="processes x run.accumulate_steps=3; choose a multiple of 6"):
        plan_run(run_config(global_batch_size=64, accumulate_steps=3), 1e-3, 2, 1000)


def test_k_micro_batches_step_as_one_batch_k_times_larger():
    """optimizer_step over micro-batches (loss / k each, gradients summed, then clipping and AdamW) equals the step
    of one batch holding them all, for a loss that is a mean over samples."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(5, 16), nn.GELU(), nn.Linear(16, 2))
    copy = nn.Sequential(nn.Linear(5, 16), nn.GELU(), nn.Linear(16, 2))
    copy.load_state_dict(model.state_dict())
    inputs, targets = torch.randn(12, 5), torch.randn(12, 2)
    scaler = torch.amp.GradScaler("cpu", enabled=False)
    steps = []
    for net, batches in ((model, [(inputs[i:i + 4], targets[i:i + 4]) for i in (0, 4, 8)]), (copy, [(inputs, targets)])):
        optimizer = torch.optim.AdamW(net.parameters(), lr=0.05)
        for step in range(3):
            loss, norm = optimizer_step(lambda batch: F.mse_loss(net(batch[0]), batch[1]), batches, net, optimizer,
                                        scaler, clip_grad=0.5)
            steps.append((loss.item(), norm.item()))
    assert np.allclose(steps[:3], steps[3:], rtol=1e-5)  # the same loss and gradient norm at every step
    for a, b in zip(model.parameters(), copy.parameters()):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


def test_an_epoch_that_ends_early_is_refused():
    """A loop that consumed fewer batches than planned (a `break` for a step budget) stops instead of shifting every
    later epoch; a resumed epoch runs the steps it still has."""
    plan = plan_run(run_config(epochs=3, global_batch_size=4), 1e-3, 1, 40)  # 10 steps per epoch
    assert epoch_steps(plan, 1, 10) == range(10, 20)
    assert epoch_steps(plan, 1, 17) == range(17, 20)  # resumed mid-epoch
    check_epoch_end(plan, 1, 20)
    with pytest.raises(RuntimeError, match="consumed 1 batch"):
        check_epoch_end(plan, 1, 19)
    with pytest.raises(RuntimeError, match="does not lie in epoch 1"):
        epoch_steps(plan, 1, 21)


def test_weight_decay_end_zero_decays_to_zero_and_none_keeps_it_constant():
    plan = plan_run(run_config(epochs=10, global_batch_size=256), 1e-3, 1, 2560)  # 10 steps per epoch, 100 in all
    constant = build_schedules(optim_config(weight_decay=0.05), plan)["wd"]
    to_zero = build_schedules(optim_config(weight_decay=0.05, weight_decay_end=0.0), plan)["wd"]
    assert np.all(constant == 0.05)
    assert to_zero[0] == pytest.approx(0.05) and to_zero[-1] == pytest.approx(0.0)


def test_a_diverged_loss_stops_the_run_on_the_next_logging_step_naming_its_step(tmp_path):
    """The loss is checked for finiteness on logging steps only (no host sync per step), but the error names the
    step where it first stopped being finite, and nothing of that interval is logged."""
    from types import SimpleNamespace

    from utils.checkpoint import Progress
    from utils.dist import init_distributed
    from utils.logs import MetricsWriter, read_metrics
    from utils.loop import DivergedError, TrainingRun
    from utils.run import RunContext

    plan = plan_run(run_config(epochs=1, global_batch_size=1), 1e-3, 1, 6)  # 6 steps
    ctx = RunContext(init_distributed("cpu"), tmp_path, MetricsWriter(tmp_path / "metrics.jsonl"), None,
                     torch.amp.GradScaler("cpu", enabled=False), 0)
    cfg = SimpleNamespace(run=SimpleNamespace(log_every_steps=3, save_every_steps=0))
    run = TrainingRun(ctx, cfg, "test", plan, nn.Linear(1, 1), None, {})
    progress = Progress()
    epoch_run = run.epoch(0, progress)
    losses = iter([1.0, 2.0, 3.0, 4.0, float("nan"), 6.0])
    with pytest.raises(DivergedError, match="the loss is nan at step 4: stopping"):
        for step, _ in epoch_run.steps(iter(range(100))):
            epoch_run.done(loss=torch.tensor(next(losses)))
    assert progress.step == 6 and [r["step"] for r in read_metrics(tmp_path / "metrics.jsonl")] == [3]
