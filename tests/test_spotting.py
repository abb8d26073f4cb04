"""Stage 3 and inference: sampling, window coverage, trimming and merging, mixup, the frozen phase, learning."""

import dataclasses
import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from data.samplers import uniform_windows
from evaluation.inference import HALF_END_MODES, kept_tokens, merge_window_scores, window_starts
from models.losses import mixup_bce
from tests.conftest import assert_kill_and_resume_is_exact, assert_two_processes_equal_one, kill_when, run_script
from utils.logs import read_metrics


def test_uniform_windows_keep_edges_and_never_overlap():
    rng = np.random.default_rng(0)
    frames, window = 5400, 128
    for _ in range(20):
        starts = uniform_windows(frames, 25, window, rng)
        assert starts[0] == 0 and starts[-1] == frames - window  # first and last window always there
        assert len(starts) <= 25
        random_ones = starts[1:-1]
        assert all(b - a >= window for a, b in zip(random_ones, random_ones[1:]))
        assert all(window // 2 <= s <= frames - window - window // 2 for s in random_ones)


def test_every_second_is_predicted_by_a_window_centre_except_the_official_end_of_half():
    for seconds in (64, 65, 70, 100, 2700, 2731):
        num_frames = 2 * seconds + seconds % 2  # odd frame counts too
        starts = window_starts(seconds, 64, 32)
        assert starts[0] == 0 and starts[-1] == seconds - 64
        covered = {mode: np.zeros(seconds, bool) for mode in HALF_END_MODES}
        for mode in HALF_END_MODES:
            for start in starts:
                covered[mode][start + np.flatnonzero(kept_tokens(start, 64, num_frames, 12, mode))] = True
        assert covered["scored"].all(), f"{seconds} s: uncovered seconds {np.flatnonzero(~covered['scored'])}"
        # the official rule never keeps the last 12 seconds of a half, and keeps everything before them
        assert not covered["official"][seconds - 12:].any() and covered["official"][:seconds - 12].all()


def official_merge(windows: list[tuple[int, np.ndarray]], num_frames: int, trim: float) -> np.ndarray:
    """A transcription of eztorch's `add_clips_predictions` + `aggregate_predictions` (datasets/soccernet_utils/
    predictions.py), torch ops and all, for windows of 2-frame tokens: the reference of `kept_tokens`."""
    merged = torch.zeros(num_frames, windows[0][1].shape[1])
    for start, scores in windows:
        tokens = scores.shape[0]
        frame_times = (2 * start + torch.arange(2 * tokens)) * 0.5  # the window's frame timestamps
        token_times = frame_times.view(tokens, 2).mean(1)  # BatchReduceTimestamps: the mean of each pair
        half_num_timestamps = num_frames  # the dataset's count of 2 fps timestamps in the half
        step_timestamp = token_times[1] - token_times[0]
        remove_before = torch.logical_and(token_times - token_times[0] < trim, token_times > trim)
        remove_after = torch.logical_and(token_times[-1] - token_times < trim,
                                         half_num_timestamps * step_timestamp - token_times > trim)
        keep = torch.logical_not(torch.logical_or(remove_before, remove_after)).nonzero(as_tuple=True)
        kept_scores, kept_times = torch.from_numpy(scores)[keep], token_times[keep]
        indexes = torch.round(kept_times / 0.5).to(torch.long).clamp(0, num_frames - 1)
        merged[indexes] = torch.maximum(merged[indexes], kept_scores.float())
    return merged.numpy()


@pytest.mark.parametrize("seconds, window, stride, trim", [(300, 64, 32, 12), (70, 64, 32, 12), (101, 16, 8, 3),
                                                             (20, 10, 5, 2)])
def test_official_end_of_half_equals_the_transcribed_official_rule(seconds, window, stride, trim):
    rng = np.random.default_rng(seconds)
    num_frames = 2 * seconds + 1
    windows = [(start, rng.random((window, 17)).astype(np.float32)) for start in window_starts(seconds, window, stride)]
    ours = merge_window_scores(windows, num_frames, trim, half_end="official")
    np.testing.assert_array_equal(ours, official_merge(windows, num_frames, trim))
    assert not ours[2 * (seconds - trim):].any()  # the quirk: the end of the half scores 0
    scored = merge_window_scores(windows, num_frames, trim, half_end="scored")
    assert scored[2 * (seconds - trim):2 * seconds:2].all()  # the sensible behaviour scores it
    np.testing.assert_array_equal(scored[:2 * (seconds - trim)], ours[:2 * (seconds - trim)])


def test_trim_and_max_merge_on_hand_made_scores():
    # a 20 s half, 10 s windows every 5 s (starts 0, 5, 10), trimming 2 s at inner window edges
    windows = [(0, np.full((10, 1), 0.1)), (5, np.full((10, 1), 0.5)), (10, np.full((10, 1), 0.3))]
    windows[1][1][3, 0] = 0.9  # second 8
    merged = merge_window_scores(windows, num_frames=40, trim_seconds=2, half_end="scored")
    per_second = merged[::2, 0]
    assert merged[1::2].sum() == 0  # predictions sit on integer seconds
    expected = [0.1] * 7 + [0.5, 0.9, 0.5, 0.5, 0.5, 0.5] + [0.3] * 7
    # window 0 keeps 0-7, window 1 keeps 7-12, window 2 (the last) keeps 12-19; overlaps take the max
    np.testing.assert_allclose(per_second, expected)
    official = merge_window_scores(windows, num_frames=40, trim_seconds=2, half_end="official")[::2, 0]
    np.testing.assert_allclose(official, expected[:18] + [0, 0])  # the official rule drops the last window's end


def test_mixup_loss_matches_its_definition():
    torch.manual_seed(0)
    logits, targets = torch.randn(4, 6, 17), (torch.rand(4, 6, 17) > 0.8).float()
    permutation, lam = torch.tensor([2, 0, 3, 1]), torch.tensor([0.9, 0.1, 0.5, 1.0])
    expected = sum(lam[b] * F.binary_cross_entropy_with_logits(logits[b], targets[b], reduction="sum")
                   + (1 - lam[b]) * F.binary_cross_entropy_with_logits(logits[b], targets[permutation[b]],
                                                                        reduction="sum")
                   for b in range(4)) / logits.numel()
    torch.testing.assert_close(mixup_bce(logits, targets, permutation, lam), expected)
    torch.testing.assert_close(mixup_bce(logits, targets, None, None),
                               F.binary_cross_entropy_with_logits(logits, targets))


# ----------------------------------------------------------------------------------------------------------------------
# train_spotting.py and evaluate.py on the generated data
# ----------------------------------------------------------------------------------------------------------------------
def spot_args(root, out, config, *extra):
    return ["train_spotting.py", "--config", f"configs/spotting/{config}", f"data.root={root}",
            f"run.output_dir={out}", "data.source=store", f"data.store={root / 'store'}", "run.num_workers=0",
            "model.window_seconds=8", "eval.window_stride_seconds=4", "eval.trim_seconds=2", "run.global_batch_size=4",
            *extra]


@pytest.fixture(scope="module")
def trained(mini_soccernet, tmp_path_factory):
    """A short run from scratch (a known trunk), phase a on it, then phase b from phase a, as a user runs them."""
    out = tmp_path_factory.mktemp("spotting")
    run_script(spot_args(mini_soccernet, out / "scratch", "tiny_mini_phase_b.yaml", "model.init_checkpoint=",
                         "run.epochs=1", "eval.every_epochs=0"))
    run_script(spot_args(mini_soccernet, out / "a", "tiny_mini_phase_a.yaml",
                         f"model.init_checkpoint={out / 'scratch' / 'checkpoint_last.pth'}", "run.epochs=2"))
    run_script(spot_args(mini_soccernet, out / "b", "tiny_mini_phase_b.yaml",
                         f"model.init_checkpoint={out / 'a' / 'checkpoint_last.pth'}", "run.epochs=2",
                         "eval.every_epochs=1"))
    return out


@pytest.mark.slow
def test_frozen_phase_leaves_the_trunk_bit_identical(trained):
    start = torch.load(trained / "scratch" / "checkpoint_last.pth", weights_only=True)["model"]
    a = torch.load(trained / "a" / "checkpoint_last.pth", weights_only=True)["model"]
    b = torch.load(trained / "b" / "checkpoint_last.pth", weights_only=True)["model"]
    assert set(start) == set(a) == set(b)
    for key, value in a.items():
        if key.startswith("trunk."):
            assert torch.equal(value, start[key]), key  # phase a never touched the trunk
    assert not torch.equal(a["head.weight"], start["head.weight"])  # but trained the head
    assert any(not torch.equal(b[k], a[k]) for k in a if k.startswith("trunk.spatial."))  # phase b trains it


@pytest.mark.slow
def test_validation_is_recorded_and_selects_the_best(trained):
    records = [r for r in read_metrics(trained / "b" / "metrics.jsonl") if "valid_tight_a_mAP" in r]
    assert [r["epoch"] for r in records] == [1, 2]
    best = max(r["valid_tight_a_mAP"] for r in records)
    assert torch.load(trained / "b" / "checkpoint_best.pth", weights_only=True)["best_metric"] == pytest.approx(best)


@pytest.mark.slow
def test_evaluate_test_command_and_official_acceptance(trained, mini_soccernet, tmp_path):
    completed = run_script(["evaluate.py", "--checkpoint", str(trained / "b" / "checkpoint_best.pth"),
                            "--split", "test.txt", f"data.root={mini_soccernet}", "data.source=video",
                            "--out", str(trained / "test")])
    assert "tight" in completed.stdout and "loose" in completed.stdout
    scores = json.loads((trained / "test" / "scores.json").read_text())
    assert 0 <= scores["tight"]["a_mAP"] <= 1
    raw = sorted((trained / "test" / "raw").rglob("scores_half*.npy"))
    assert len(raw) == 2 and np.load(raw[0]).shape[1] == 17
    action_spotting = pytest.importorskip("SoccerNet.Evaluation.ActionSpotting")
    from SoccerNet.Evaluation.utils import EVENT_DICTIONARY_V2
    labels = tmp_path / "labels"  # the official evaluator lists games from every JSON file under its labels root
    for game in [line for line in (mini_soccernet / "test.txt").read_text().splitlines() if line]:
        (labels / game).mkdir(parents=True)
        (labels / game / "Labels-v2.json").write_bytes((mini_soccernet / game / "Labels-v2.json").read_bytes())
    official = action_spotting.evaluate(SoccerNet_path=str(labels),
                                        Predictions_path=str(trained / "test" / "predictions"),
                                        prediction_file="results_spotting.json", version=2, framerate=2,
                                        metric="tight", label_files="Labels-v2.json", dataset=None,
                                        EVENT_DICTIONARY=EVENT_DICTIONARY_V2)
    assert official["a_mAP"] == pytest.approx(scores["tight"]["a_mAP"], abs=1e-9)


@pytest.mark.slow
def test_two_processes_equal_one_process(mini_soccernet, tmp_path):
    """Stage 3 on two processes (torchrun, the same global batch) ends on the weights of one process: the windows
    are shared out, the gradients averaged. Mixup and the photometric draws are off (each rank draws its own)."""
    common = ["model.init_checkpoint=", "run.epochs=1", "run.max_steps_per_epoch=2", "eval.every_epochs=0",
              "run.log_every_steps=1", "augment.mixup_alpha=0.0", "model.mask_ratio=0.0", "model.drop_path=0.0",
              "model.temporal_drop_path=0.0",
              *[f"augment.view.{key}=0.0" for key in ("jitter_p", "grayscale_p", "blur_p", "solarize_p", "flip_p")]]
    assert_two_processes_equal_one(lambda out: spot_args(mini_soccernet, out, "tiny_mini_phase_b.yaml", *common),
                                   tmp_path, ("trunk.", "head."))
    steps = [record for record in read_metrics(tmp_path / "two" / "metrics.jsonl") if "loss" in record]
    assert [r["step"] for r in steps] == [1, 2] and all(r["lr"] > 0 and r["grad_norm"] > 0 for r in steps)


@pytest.mark.slow
def test_killed_run_resumes_exactly_with_loader_workers(mini_soccernet, tmp_path):
    # mixup and the photometric draws run in the main process, window reading in two workers
    common = ["run.epochs=6", "run.max_steps_per_epoch=2", "run.save_every_epochs=1", "run.log_every_steps=1",
              "run.num_workers=2", "eval.every_epochs=0", "augment.mixup_alpha=0.1", "model.init_checkpoint="]
    assert_kill_and_resume_is_exact(lambda out: spot_args(mini_soccernet, out, "tiny_mini_phase_b.yaml", *common),
                                    tmp_path, total_steps=12)


def validations(out):
    return {r["epoch"]: r["valid_tight_a_mAP"] for r in read_metrics(out / "metrics.jsonl") if "valid_tight_a_mAP" in r}


def checkpoint(out, name="checkpoint_last.pth"):
    return torch.load(out / name, weights_only=True)


@pytest.mark.slow
def test_the_best_checkpoint_survives_kills_between_and_during_validations(mini_soccernet, tmp_path):
    out = tmp_path / "run"
    args = spot_args(mini_soccernet, out, "tiny_mini_phase_b.yaml", "model.init_checkpoint=", "run.epochs=3",
                     "run.max_steps_per_epoch=2", "run.save_every_steps=1", "eval.every_epochs=1")

    def mid_epoch_two():
        try:
            return checkpoint(out)["step"] == 3
        except Exception:  # not written yet, or being replaced
            return False

    kill_when(args, mid_epoch_two)  # epoch 1 validated, a step checkpoint in the middle of epoch 2
    first = validations(out)[1]
    assert checkpoint(out)["best_metric"] == pytest.approx(first)  # the best travels in every checkpoint
    kill_when(args, lambda: (out / "validation" / "epoch2").exists())  # during the validation of epoch 2
    killed = checkpoint(out)
    assert killed["step"] == 4 and killed["extra"]["validated_epoch"] == 1, "the kill missed epoch 2's validation"
    run_script(args)  # resumes at the end of epoch 2: validates it, then trains epoch 3
    scores = validations(out)
    assert sorted(scores) == [1, 2, 3]  # every epoch validated exactly once
    best = checkpoint(out, "checkpoint_best.pth")
    assert best["best_metric"] == pytest.approx(max(scores.values()))
    assert best["epoch"] == max(scores, key=scores.get)


def test_a_resumed_run_keeps_the_better_best_checkpoint(tmp_path):
    from utils.checkpoint import progress_of, save_checkpoint

    last = {"step": 4, "best_metric": 0.4, "extra": {"validated_epoch": 2}}
    assert progress_of(last, tmp_path).best.metric == 0.4  # no checkpoint_best.pth yet
    save_checkpoint(tmp_path / "checkpoint_best.pth", {"best_metric": 0.57, "model": {"w": torch.zeros(3)}})
    assert progress_of({**last, "best_metric": None}, tmp_path).best.metric == 0.57  # last written before the best
    assert progress_of({**last, "best_metric": 0.53}, tmp_path).best.metric == 0.57
    resumed = progress_of({**last, "best_metric": 0.61}, tmp_path)
    assert (resumed.step, resumed.best.metric, resumed.best.validated_epoch) == (4, 0.61, 2)


def test_a_mirrored_window_trades_its_left_and_right_team_targets():
    """Team-BAS teams are the sides of the picture: a horizontally flipped window's PASS-left is a PASS-right. A flip
    changes no column of SoccerNet-v2 (no teams) nor of teams that are not sides."""
    from data.augment import photometric_and_flips
    from data.catalog import BUILT_IN
    from data.targets import mirror_targets
    from tests.test_augment import OFF

    team_bas = BUILT_IN["soccernet_ball_2025"]
    mirrored = team_bas.mirrored_columns()
    targets = torch.zeros(2, 4, len(team_bas.columns))
    targets[:, 1, team_bas.columns.index("PASS-left")] = 1
    targets[:, 3, team_bas.columns.index("GOAL-right")] = 1
    swapped = mirror_targets(targets, torch.tensor([True, False]), mirrored)
    assert torch.equal(swapped[1], targets[1])
    assert {(row, team_bas.columns[column]) for row, column in swapped[0].nonzero().tolist()} == {
        (1, "PASS-right"), (3, "GOAL-left")}
    assert BUILT_IN["soccernet_v2"].mirrored_columns() is None
    home_away = dataclasses.replace(team_bas, teams=("home", "away"))
    assert home_away.mirrored_columns() is None and len(home_away.columns) == 24

    frames = torch.randint(0, 256, (3, 2, 3, 4, 6), dtype=torch.uint8)
    plain, none_flipped = photometric_and_flips(frames, OFF)
    mirror, all_flipped = photometric_and_flips(frames, dataclasses.replace(OFF, flip_p=1.0))
    assert not none_flipped.any() and all_flipped.all() and torch.equal(mirror, plain.flip(-1))


def test_the_frame_head_gives_each_frame_of_a_token_its_own_row():
    """model.head=frame: one linear layer FRAMES_PER_TOKEN times wider, token j's outputs read as frames 2j and
    2j + 1; the token head is the paper's (B, T, C)."""
    from models.spotting import SpottingModel

    class Tokens(torch.nn.Module):
        out_dim = 8

        def forward(self, video):  # (B, 3, F, S, S) -> (B, F / 2, 8)
            return video.mean(dim=(1, 3, 4)).view(video.shape[0], -1, 2).repeat(1, 1, 4)

    video = torch.randn(2, 3, 16, 4, 4)
    frames = SpottingModel(Tokens(), 5, rows_per_token=2)
    logits = frames(video)
    assert logits.shape == (2, 16, 5)
    outputs = frames.head(Tokens()(video))  # (2, 8, 10)
    assert torch.equal(logits[:, 0::2], outputs[..., :5]) and torch.equal(logits[:, 1::2], outputs[..., 5:])
    assert SpottingModel(Tokens(), 5)(video).shape == (2, 8, 5)


def test_a_share_of_stage3_windows_is_placed_around_actions():
    """data.event_share: that share of a half's windows each hold one of its actions; share 0 draws exactly the
    paper's uniform windows (the same RNG draws), and a half without actions gets uniform windows only."""
    from data.samplers import stage3_windows

    events = {("g", 1): np.array([3000, 3010, 4990]), ("g", 2): np.empty(0, np.int64)}
    uniform = uniform_windows(5400, 24, 128, np.random.default_rng(5))
    assert stage3_windows(("g", 1), 5400, np.random.default_rng(5), count=24, window_frames=128) == uniform
    assert stage3_windows(("g", 1), 5400, np.random.default_rng(5), count=24, window_frames=128, events=events,
                          share=0.0) == uniform
    for seed in range(5):
        starts = stage3_windows(("g", 1), 5400, np.random.default_rng(seed), count=24, window_frames=128,
                                events=events, share=0.5)
        holding = [s for s in starts if any(s <= e < s + 128 for e in events[("g", 1)])]
        assert len(starts) <= 24 and len(holding) >= 12 and all(0 <= s <= 5400 - 128 for s in starts)
    assert stage3_windows(("g", 2), 5400, np.random.default_rng(5), count=24, window_frames=128, events=events,
                          share=0.5) == uniform


def test_the_frame_head_targets_keep_close_actions_apart_where_per_second_tokens_merge_them():
    """What each head is trained to output for two actions 0.4 s apart (two classes) and two 0.6 s apart (one class):
    the paper's per-second tokens (2 fps, radius 0.5 s, OR-pooled) make the same-class pair one run of positive
    tokens, which any model fitting them, and the NMS after it, report as one action; the frame head at 12.5 fps
    (radius 0.16 s) keeps four separate runs, each around its action's frame."""
    from fractions import Fraction

    from data.labels import Annotation
    from data.targets import WindowTargets

    def runs(column: np.ndarray) -> list[tuple[int, int]]:  # (first, last) row of each run of positive rows
        edges = np.flatnonzero(np.diff(np.concatenate([[0], column, [0]])))
        return [(int(a), int(b) - 1) for a, b in zip(edges[::2], edges[1::2])]

    actions = [(10_000, 0), (10_400, 1), (20_000, 2), (20_600, 2)]
    labels = {"g": [Annotation(half=1, position_ms=ms, label=c, team=None, visible=True) for ms, c in actions]}
    per_second = WindowTargets(labels, 3, Fraction(2), 0.5).of("g", 1, 0, 64)  # (32 tokens of 1 s, 3)
    assert len(runs(per_second[:, 2])) == 1  # the 0.6-s pair: one run of tokens 19-21, one action
    assert runs(per_second[:, 0]) == [(9, 10)] and runs(per_second[:, 1]) == [(10, 10)]  # one second: no order
    per_frame = WindowTargets(labels, 3, Fraction(25, 2), 0.16, per_frame=True).of("g", 1, 0, 400)  # (400, 3)
    assert runs(per_frame[:, 0]) == [(123, 127)] and runs(per_frame[:, 1]) == [(128, 132)]  # around 125 and 130
    assert runs(per_frame[:, 2]) == [(248, 252), (256, 259)]  # around 250 and 257.5: two actions
