"""Stage 1: the SCE loss, the queue, the momentum teacher, DDP equivalence, resume, and learning on generated data."""

import json
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from models.losses import sce_loss
from models.registry import build_spatial
from models.sce import SCEModel
from tests.conftest import ROOT, assert_kill_and_resume_is_exact, assert_two_processes_equal_one, run_script
from utils.logs import read_metrics


def sce_loss_loop(q, k, queue, coeff, temp, temp_m):
    """SCE written out term by term for one query at a time (official use_keys=False form)."""
    total = 0.0
    for i in range(len(q)):
        candidates = [k[i]] + list(queue)
        logits_q = torch.stack([q[i] @ c for c in candidates]) / temp
        logits_k = torch.stack([torch.tensor(0.0)] + [k[i] @ c for c in queue]) / temp_m
        p = torch.exp(logits_q) / torch.exp(logits_q).sum()
        s = torch.exp(logits_k) / torch.exp(logits_k).sum()
        w = (1 - coeff) * s
        w[0] += coeff
        w = w / w.sum()
        total += -(w * torch.log(p)).sum()
    return total / len(q)


@pytest.mark.parametrize("coeff", [1.0, 0.5, 0.2])
def test_sce_loss_matches_the_formula(coeff):
    torch.manual_seed(0)
    q, k = F.normalize(torch.randn(5, 8), dim=1), F.normalize(torch.randn(5, 8), dim=1)
    queue = F.normalize(torch.randn(7, 8), dim=1)
    ours = sce_loss(q.double(), k.double(), queue.double(), coeff, 0.1, 0.07)
    torch.testing.assert_close(ours.double(), sce_loss_loop(q.double(), k.double(), queue.double(), coeff, 0.1, 0.07))


def test_coeff_one_is_infonce_with_a_queue():
    torch.manual_seed(1)
    q, k = F.normalize(torch.randn(4, 8), dim=1), F.normalize(torch.randn(4, 8), dim=1)
    queue = F.normalize(torch.randn(6, 8), dim=1)
    logits = torch.cat([(q * k).sum(1, keepdim=True), q @ queue.T], 1) / 0.1
    torch.testing.assert_close(sce_loss(q, k, queue, 1.0, 0.1, 0.07), F.cross_entropy(logits, torch.zeros(4).long()))


def test_momentum_update_is_an_exponential_average():
    model = SCEModel(build_spatial("vit_micro", img_size=32), hidden=16, dim=8, queue_size=16)
    with torch.no_grad():
        for param in model.trunk.parameters():
            param.add_(1.0)
    student = [p.clone() for p in model.trunk.parameters()]
    teacher = [p.clone() for p in model.momentum_trunk.parameters()]
    model.update_teacher(0.9)
    for s, t, new in zip(student, teacher, model.momentum_trunk.parameters()):
        torch.testing.assert_close(new, 0.9 * t + 0.1 * s)
    assert not any(p.requires_grad for p in model.momentum_trunk.parameters())


def test_teacher_runs_in_training_mode_as_in_the_official_code():
    torch.manual_seed(0)
    model = SCEModel(build_spatial("vit_micro", img_size=32, drop_path=0.5), hidden=16, dim=8, queue_size=16)
    clips = torch.randn(6, 3, 2, 32, 32)
    model.train()
    assert model.momentum_trunk.training and model.momentum_projector.training
    assert not torch.equal(model.keys(clips), model.keys(clips))  # its stochastic depth is active
    model.eval()
    assert not model.momentum_trunk.training
    torch.testing.assert_close(model.keys(clips), model.keys(clips))


@pytest.mark.slow
def test_queue_fills_in_rank_order_and_wraps(tmp_path):
    run_script([str(ROOT / "tests" / "queue_worker.py"), str(tmp_path)], nproc=2, check=False)
    results = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in range(2)]
    # 2 steps x 2 ranks x 3 keys = 12 keys into 10 slots: step 0 (rank 0 then 1) fills 0-5, step 1 fills 6-9 then
    # wraps to 0-1, overwriting the oldest keys
    assert results[0]["queue"] == results[1]["queue"] == [111, 112, 2, 100, 101, 102, 10, 11, 12, 110]
    assert results[0]["pointer"] == results[1]["pointer"] == 2


# ----------------------------------------------------------------------------------------------------------------------
# Runs of train_ssl.py on the generated data
# ----------------------------------------------------------------------------------------------------------------------
def tiny_args(mini, out, *extra):
    return ["train_ssl.py", "--config", "configs/ssl/tiny_mini.yaml", f"data.root={mini}", f"run.output_dir={out}",
            "data.source=store", f"data.store={mini / 'store'}", "run.num_workers=0", *extra]


DETERMINISTIC = ["augment.crop_scale=[1.0, 1.0]", "augment.crop_ratio=[1.7768, 1.7768]", "model.drop_path=0.0",
                 *[f"augment.{view}.{key}=0.0" for view in ("view1", "view2")
                   for key in ("jitter_p", "grayscale_p", "blur_p", "solarize_p", "flip_p")]]


@pytest.mark.slow
def test_two_processes_equal_one_process_with_the_same_global_batch(mini_soccernet, tmp_path):
    common = ["run.epochs=1", "run.max_steps_per_epoch=1", "run.global_batch_size=8", "loss.queue_size=64",
              *DETERMINISTIC]
    one = assert_two_processes_equal_one(lambda out: tiny_args(mini_soccernet, out, *common), tmp_path, ("trunk.",))
    before = SCEModel(build_spatial("vit_micro", img_size=64), 256, 256, 64).state_dict()
    moved = sum(not torch.equal(value, before[key]) for key, value in one.items() if key.startswith("trunk."))
    assert moved > 10  # the step really changed the weights


@pytest.mark.slow
def test_killed_run_resumes_exactly_with_loader_workers(mini_soccernet, tmp_path):
    # the crops are drawn in the loader workers: resumed, they must be those of the uninterrupted run
    common = ["run.epochs=8", "run.max_steps_per_epoch=2", "run.global_batch_size=8", "loss.queue_size=64",
              "run.save_every_epochs=1", "run.log_every_steps=1", "run.num_workers=2"]
    assert_kill_and_resume_is_exact(lambda out: tiny_args(mini_soccernet, out, *common), tmp_path, total_steps=16)


@pytest.mark.slow
def test_loss_decreases_on_generated_data(mini_soccernet, tmp_path):
    run_script(tiny_args(mini_soccernet, tmp_path, "run.epochs=12", "run.log_every_steps=1"))
    losses = np.array([r["loss"] for r in read_metrics(tmp_path / "metrics.jsonl")])
    third = len(losses) // 3
    assert losses[-third:].mean() < losses[:third].mean() - 0.05, losses.round(2)
    assert (tmp_path / "checkpoint_last.pth").is_file() and math.isfinite(losses[-1])
