"""Stage 2: the token SCE loss, window sampling, bank alignment, streaming PCA, and train_distill.py runs."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from data.datasets import WindowDataset
from data import features
from data.features import FeatureBank, Reduction, fit_pca, reduce_bank, reduce_banks
from data.catalog import BUILT_IN
from data.samplers import Segment, jittered_windows
from data.sources import StoreSource
from models.losses import sce_token_loss
from tests.conftest import assert_kill_and_resume_is_exact, assert_two_processes_equal_one, run_script
from utils.logs import read_metrics

V2 = BUILT_IN["soccernet_v2"]
split_games = V2.games


def token_loss_loop(q, k, tokens, queue, coeff, temp, temp_m):
    """The official token loss, one token at a time, from the definition in docs/METHOD.md section 3."""
    total = 0.0
    n = len(q)
    for i in range(n):
        window = i // tokens
        same = [j for j in range(n) if j // tokens == window]
        candidates = [k[j] for j in same] + list(queue)  # bank rows of the same window, then the queue
        p = torch.softmax(torch.stack([q[i] @ c for c in candidates]) / temp, 0)
        # relational target: the other seconds of the window and the queue, not the aligned row
        others = [j for j in same if j != i]
        s_logits = torch.stack([k[i] @ k[j] for j in others] + [k[i] @ c for c in queue]) / temp_m
        s = torch.softmax(s_logits, 0)
        w = torch.zeros(len(candidates), dtype=q.dtype)
        position = 0
        for j in same:
            if j == i:
                w[position] = coeff
            else:
                w[position] = (1 - coeff) * s[others.index(j)]
            position += 1
        w[len(same):] = (1 - coeff) * s[len(others):]
        total += -(w * torch.log(p)).sum()
    return total / n


@pytest.mark.parametrize("coeff", [0.5, 1.0, 0.0])
def test_token_loss_matches_the_definition(coeff):
    torch.manual_seed(0)
    tokens, windows = 3, 2  # two windows of three seconds: the other window's rows must be masked out
    q = F.normalize(torch.randn(tokens * windows, 6, dtype=torch.float64), dim=1)
    k = F.normalize(torch.randn(tokens * windows, 6, dtype=torch.float64), dim=1)
    queue = F.normalize(torch.randn(5, 6, dtype=torch.float64), dim=1)
    ours = sce_token_loss(q, k, tokens, queue, coeff, 0.1, 0.05).double()
    torch.testing.assert_close(ours, token_loss_loop(q, k, tokens, queue, coeff, 0.1, 0.05), rtol=1e-5, atol=1e-6)


def test_jittered_windows_count_non_overlap_and_slots():
    rng = np.random.default_rng(0)
    frames, window = 5400, 128  # a 45-minute half, 64 s windows
    for _ in range(20):
        starts = jittered_windows(frames, 38, window, rng)
        assert len(starts) == 38
        slot = frames / 38
        for index, start in enumerate(starts):
            assert int(index * slot) <= start <= (index + 1) * slot - window  # jittered inside its own slot
        assert all(b - a >= window for a, b in zip(starts, starts[1:]))  # never overlapping
    assert jittered_windows(frames, 38, window, np.random.default_rng(1)) != \
        jittered_windows(frames, 38, window, np.random.default_rng(2))  # re-seeded per epoch


def test_jittered_windows_on_short_halves_are_evenly_spaced():
    starts = jittered_windows(1000, 38, 128, np.random.default_rng(0))  # 500 s: slots shorter than a window
    assert len(starts) == 38 and starts[0] == 0 and starts[-1] == 1000 - 128
    assert np.all(np.diff(starts) >= 0)


def test_streaming_pca_equals_a_direct_fit(tmp_path, monkeypatch):
    rng = np.random.default_rng(0)
    games = ["a/b/c", "a/b/d"]
    mixing = rng.normal(size=(40, 40))
    banks = {}
    for game in games:
        for half in (1, 2):
            bank = (rng.normal(size=(120, 40)) @ mixing + rng.normal(size=40) * 5).astype(np.float32)
            (tmp_path / game).mkdir(parents=True, exist_ok=True)
            np.save(tmp_path / game / f"{half}_bank.npy", bank)
            banks[(game, half)] = bank
    monkeypatch.setattr(features, "CHUNK_ROWS", 17)  # chunks smaller than a half
    pca = fit_pca(V2, tmp_path, games, Reduction("bank.npy", dim=8))
    everything = np.concatenate(list(banks.values())).astype(np.float64)
    standardised = (everything - everything.mean(0)) / everything.std(0)
    values, vectors = np.linalg.eigh(np.cov(standardised.T, bias=True))
    top = vectors[:, np.argsort(values)[::-1][:8]].T
    np.testing.assert_allclose(pca["mean"], everything.mean(0), rtol=1e-9)
    np.testing.assert_allclose(np.abs(pca["components"] @ top.T), np.eye(8), atol=1e-6)  # same axes, up to sign
    reduced = reduce_bank(banks[("a/b/c", 1)], pca)
    direct = ((banks[("a/b/c", 1)] - everything.mean(0)) / everything.std(0)) @ pca["components"].T
    np.testing.assert_allclose(reduced, direct, rtol=1e-4, atol=1e-4)


def test_bank_of_the_wrong_width_is_named(tmp_path):
    for game, widths in (("a/b/c", (10, 10)), ("a/b/d", (12, 10))):
        (tmp_path / game).mkdir(parents=True)
        for half, width in zip((1, 2), widths):
            np.save(tmp_path / game / f"{half}_bank.npy", np.zeros((30, width), np.float32))
    with pytest.raises(ValueError, match="a/b/d/1_bank.npy: 12-d rows, but 3 of 4 banks are 10-d"):
        reduce_banks(V2, tmp_path, ["a/b/c", "a/b/d"], ["a/b/c"], Reduction("bank.npy", "out.npy", dim=4))


@pytest.mark.slow
def test_bank_length_must_match_its_video(mini_soccernet, tmp_path):
    game = split_games("train.txt", mini_soccernet)[0]
    (tmp_path / game).mkdir(parents=True)
    for half in (1, 2):
        (tmp_path / game / f"{half}_224p.mkv").symlink_to(mini_soccernet / game / f"{half}_224p.mkv")
        np.save(tmp_path / game / f"{half}_bank.npy", np.zeros((25, 8), np.float32))  # 25 s for a 40 s video
    with pytest.raises(ValueError, match="1_bank.npy: 25 rows at 1 fps cover 25.0 s but .* lasts 40.0 s"):
        reduce_banks(V2, tmp_path, [game], [game], Reduction("bank.npy", "out.npy", dim=2))


@pytest.mark.slow
def test_window_tokens_are_aligned_with_bank_rows(mini_soccernet):
    game = split_games("train.txt", mini_soccernet)[0]
    bank = FeatureBank(mini_soccernet, "baidu_soccer_embeddings.npy")
    dataset = WindowDataset(StoreSource(mini_soccernet / "store"), window_frames=16, size=32, bank=bank)
    item = dataset[Segment(game, 2, 20)]  # frames 20..35 = seconds 10..17.5: token s <-> bank row 10 + s
    raw = np.load(mini_soccernet / game / "2_baidu_soccer_embeddings.npy")
    assert item["bank"].shape == (8, 64) and item["frames"].shape == (16, 3, 32, 32)
    np.testing.assert_array_equal(item["bank"].numpy(), raw[10:18])


# ----------------------------------------------------------------------------------------------------------------------
# train_distill.py on the generated data
# ----------------------------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def reduced_bank(mini_soccernet):
    games = [g for split in ("train", "valid", "test") for g in split_games(f"{split}.txt", mini_soccernet)]
    reduce_banks(V2, mini_soccernet, split_games("train.txt", mini_soccernet), games,
                 Reduction(out_name="bank_pca32.npy", dim=32))
    return mini_soccernet


def distill_args(root, out, *extra):
    return ["train_distill.py", "--config", "configs/distill/tiny_mini.yaml", f"data.root={root}",
            f"run.output_dir={out}", "data.source=store", f"data.store={root / 'store'}", "run.num_workers=0",
            "data.bank.name=bank_pca32.npy", "loss.dim=32", "model.init_checkpoint=", *extra]


@pytest.mark.slow
def test_distillation_loss_decreases(reduced_bank, tmp_path):
    run_script(distill_args(reduced_bank, tmp_path, "run.epochs=20", "run.log_every_steps=1",
                            "data.windows_per_half=4", "run.global_batch_size=4", "model.window_seconds=8"))
    losses = np.array([r["loss"] for r in read_metrics(tmp_path / "metrics.jsonl")])
    third = len(losses) // 3
    assert losses[-third:].mean() < losses[:third].mean() - 0.1, losses.round(2)
    state = torch.load(tmp_path / "checkpoint_last.pth", weights_only=True)
    assert state["extra"]["stage"] == "distill" and any(k.startswith("trunk.temporal.") for k in state["model"])


@pytest.mark.slow
def test_two_processes_equal_one_process(reduced_bank, tmp_path):
    common = ["run.epochs=1", "run.max_steps_per_epoch=1", "run.global_batch_size=4", "model.window_seconds=8",
              "model.mask_ratio=0.0", *[f"augment.view.{key}=0.0" for key in ("jitter_p", "grayscale_p", "blur_p",
                                                                              "solarize_p", "flip_p")]]
    assert_two_processes_equal_one(lambda out: distill_args(reduced_bank, out, *common), tmp_path,
                                   ("trunk.", "projector."))


@pytest.mark.slow
def test_killed_run_resumes_exactly_with_loader_workers(reduced_bank, tmp_path):
    common = ["run.epochs=6", "run.max_steps_per_epoch=2", "run.global_batch_size=4", "model.window_seconds=8",
              "data.windows_per_half=4", "run.save_every_epochs=1", "run.log_every_steps=1", "run.num_workers=2"]
    assert_kill_and_resume_is_exact(lambda out: distill_args(reduced_bank, out, *common), tmp_path, total_steps=12)
