"""NMS against loop implementations of the official definitions; writers, zip layout, raw scores and ensembles."""

import json
import math
import zipfile
from fractions import Fraction
from types import SimpleNamespace

import numpy as np
import pytest

from data.catalog import BUILT_IN
from evaluation.postprocess import (ensemble_raw_scores, game_predictions, hard_nms, postprocess_raw, read_raw_scores,
                                    soft_nms, tdeed_nms, write_raw_meta, write_raw_scores)
from evaluation.predictions import PredictionsSource, keep_best_per_row, write_challenge_zip, write_game_predictions
from tests.conftest import run_script

V2 = BUILT_IN["soccernet_v2"]
CLASSES = V2.classes


def nms_settings(nms: str, window, threshold: float, min_weight: float = 0.0):
    """The NMS keys of an eval config section."""
    return SimpleNamespace(nms=nms, nms_window=window, nms_threshold=threshold, nms_min_weight=min_weight)


def soft_nms_loop(values, window, threshold, min_weight=0.0):
    """The official sequential soft NMS (eztorch/evaluation/nms.py), one column, written as a plain loop."""
    values = values.astype(np.float64).copy()
    kept = np.zeros_like(values)
    radius = window / 2.0
    reach = math.ceil(radius)
    index = int(np.argmax(values))  # first maximum on ties, like torch.argmax
    while values[index] >= threshold:
        kept[index] = values[index]
        for slot in range(max(index - reach, 0), min(index + reach + 1, len(values))):
            values[slot] *= min(max(min_weight + (1 - min_weight) * abs(slot - index) / radius, 0.0), 1.0)
        values[index] = -1
        index = int(np.argmax(values))
    return np.where(kept > 0, kept, 0.0)


def hard_nms_loop(values, window, threshold):
    radius = int(window / 2)
    keep = np.zeros(len(values), bool)
    for i in range(len(values)):
        around = values[max(i - radius, 0):min(i + radius, len(values)) + 1]
        keep[i] = values[i] >= around.max() and values[i] >= threshold
    return keep


@pytest.mark.parametrize("seed", range(6))
def test_soft_nms_equals_the_sequential_definition(seed):
    rng = np.random.default_rng(seed)
    # Continuous scores: with exact ties, decayed values that differ only by rounding (the order of the decay
    # products) may be taken in another order, as between the official float32 code and any float64 one.
    scores = rng.random((400, 4)) ** 3
    windows = [20, 7, 20, 4]
    min_weight = 0.2 if seed % 2 else 0.0
    ours = soft_nms(scores, windows, threshold=0.001, min_weight=min_weight)
    for c, window in enumerate(windows):
        np.testing.assert_allclose(ours[:, c], soft_nms_loop(scores[:, c], window, 0.001, min_weight), atol=1e-12)


def test_soft_nms_breaks_ties_towards_the_earlier_slot():
    # both 0.5: the earlier slot is taken first at full value and halves the later one (window 4, radius 2);
    # the later one, taken at 0.25, halves slot 3
    kept = soft_nms(np.array([[0.1], [0.5], [0.5], [0.1]]), 4, 0.001)
    assert kept[:, 0].tolist() == [0.05, 0.5, 0.25, 0.05]  # each neighbour halved once


def test_soft_nms_hand_case():
    # window 4 (radius 2): taking 1.0 halves its neighbours; 0.25 at slot 1 (earlier of a tie) goes next
    kept = soft_nms(np.array([[0.0], [0.5], [1.0], [0.5], [0.0]]), 4, 0.001)
    assert kept[:, 0].tolist() == [0.0, 0.25, 1.0, 0.25, 0.0]


def tdeed_nms_loop(columns, window, threshold):
    """T-DEED's sequential soft NMS over one class's events (arturxe2/T-DEED util/eval.py), written as a plain loop:
    columns (T, teams) of one class, all teams one list of (slot, team) events in slot order; take the most confident
    (the first on ties), multiply every event within +-window slots by (d / window)^2 (its own slot's: by 0), stop
    below threshold."""
    events = [[slot, team, float(columns[slot, team])] for slot in range(len(columns))
              for team in range(columns.shape[1])]
    kept = np.zeros(columns.shape)
    while events:
        best = max(events, key=lambda event: event[2])
        if best[2] < threshold:
            break
        kept[best[0], best[1]] = best[2]
        events.remove(best)
        for event in events:
            if abs(event[0] - best[0]) <= window:
                event[2] *= abs(event[0] - best[0]) ** 2 / window ** 2
    return kept


@pytest.mark.parametrize("seed", range(4))
def test_tdeed_nms_equals_its_sequential_definition_with_teams_as_one_series(seed):
    rng = np.random.default_rng(seed)
    scores = rng.random((150, 6)) ** 3  # 3 classes x 2 teams, class-major
    teams = 2 if seed % 2 else 0
    ours = tdeed_nms(scores, 12, 0.01, teams)
    for c in range(3 if teams else 6):
        columns = slice(2 * c, 2 * c + 2) if teams else slice(c, c + 1)
        np.testing.assert_allclose(ours[:, columns], tdeed_nms_loop(scores[:, columns], 12, 0.01), atol=1e-12)
    if teams:  # one team per slot and class
        assert not (ours.reshape(150, 3, 2) > 0).all(axis=2).any()


@pytest.mark.parametrize("seed", range(3))
def test_hard_nms_equals_the_official_definition(seed):
    rng = np.random.default_rng(seed)
    scores = np.round(rng.random((300, 3)), 1)  # plenty of ties: tied local maxima are all kept
    ours = hard_nms(scores, [10, 20, 3], threshold=0.3)
    for c, window in enumerate([10, 20, 3]):
        assert ours[:, c].tolist() == hard_nms_loop(scores[:, c], window, 0.3).tolist()


def test_keep_best_per_row():
    half = np.array([1, 1, 1, 2])
    position = np.array([10_000, 10_400, 10_600, 10_000])
    label = np.array([3, 3, 3, 3])
    confidence = np.array([0.2, 0.9, 0.5, 0.1])
    kept = keep_best_per_row(half, position, label, confidence, Fraction(2))
    assert sorted(kept.tolist()) == [1, 2, 3]  # 10.0 s and 10.4 s share bin 20: the 0.9 stays


def test_game_predictions_follow_the_official_schema():
    scores = np.zeros((200, len(CLASSES)), np.float32)
    scores[20, 2] = 0.9  # Goal at 10.0 s
    scores[21, 2] = 0.8  # decayed by soft NMS, still above threshold
    scores[120, 13] = 0.7  # Corner at 60.0 s
    records = game_predictions({1: scores, 2: scores}, nms_settings("soft", 20, 0.001), V2, 2)
    first = records[0]
    assert first == {"gameTime": "1 - 00:10", "label": "Goal", "position": "10000", "half": "1",
                     "confidence": pytest.approx(0.9)}
    assert [r["half"] for r in records] == ["1"] * (len(records) // 2) + ["2"] * (len(records) // 2)
    bins = {(r["half"], r["label"], int(r["position"]) // 500) for r in records}
    assert len(bins) == len(records)  # at most one prediction per (half, class, 0.5 s bin)
    corner = [r for r in records if r["label"] == "Corner" and r["half"] == "2"]
    assert corner[0]["gameTime"] == "2 - 01:00" and corner[0]["position"] == "60000"


def test_challenge_zip_has_no_top_folder_and_reads_back(tmp_path):
    games = ["italy_serie-a/2016-2017/2016-09-20 - 21-45 AC Milan 2 - 0 Lazio",
             "spain_laliga/2019-2020/2019-08-17 - 19-00 Celta Vigo 1 - 3 Real Madrid"]
    for game in games:
        write_game_predictions(tmp_path / "preds", game, [{"gameTime": "1 - 00:01", "label": "Goal",
                                                           "position": "1000", "half": "1", "confidence": 0.5}])
    archive = write_challenge_zip(tmp_path / "preds", tmp_path / "out" / "results.zip", games)
    assert sorted(zipfile.ZipFile(archive).namelist()) == sorted(f"{g}/results_spotting.json" for g in games)
    source = PredictionsSource(archive)
    assert source.load(games[1], V2).position_ms.tolist() == [1000]
    with pytest.raises(FileNotFoundError, match="Nowhere"):
        write_challenge_zip(tmp_path / "preds", tmp_path / "x.zip", games + ["a/b/Nowhere"])


def make_raw(root, game, seed, slots=(120, 100)):
    rng = np.random.default_rng(seed)
    write_raw_meta(root, Fraction(2), V2)
    for half, count in zip((1, 2), slots):
        write_raw_scores(root, game, half, rng.random((count, len(CLASSES))).astype(np.float32))


def test_ensemble_averages_raw_scores_then_postprocesses(tmp_path):
    game = "france_ligue-1/2016-2017/2016-08-28 - 21-45 Monaco 3 - 1 Paris SG"
    make_raw(tmp_path / "run1", game, 1)
    make_raw(tmp_path / "run2", game, 2)
    games = ensemble_raw_scores([tmp_path / "run1", tmp_path / "run2"], tmp_path / "mean")
    assert games == [game]
    expected = (read_raw_scores(tmp_path / "run1", game)[1] + read_raw_scores(tmp_path / "run2", game)[1]) / 2
    np.testing.assert_allclose(read_raw_scores(tmp_path / "mean", game)[1], expected, rtol=1e-6)
    postprocess_raw(tmp_path / "mean", tmp_path / "preds", nms_settings("soft", 20, 0.001))
    document = json.loads((tmp_path / "preds" / game / "results_spotting.json").read_text())
    assert document["UrlLocal"] == game and len(document["predictions"]) > 0


def test_postprocess_command_takes_per_class_windows_and_a_min_weight(tmp_path):
    """--window with one value per class and --min-weight reach the NMS: the files equal game_predictions' output."""
    from tests.test_user_errors import expect_user_error

    game = "france_ligue-1/2016-2017/2016-08-28 - 21-45 Monaco 3 - 1 Paris SG"
    make_raw(tmp_path / "raw", game, 4)
    windows = [4 + 2 * c for c in range(len(CLASSES))]
    command = ["evaluate.py", "postprocess", "--raw", str(tmp_path / "raw"), "--out"]
    run_script([*command, str(tmp_path / "preds"), "--window", *map(str, windows), "--min-weight", "0.3",
                "--threshold", "0.2"])
    written = json.loads((tmp_path / "preds" / game / "results_spotting.json").read_text())["predictions"]
    expected = game_predictions(read_raw_scores(tmp_path / "raw", game), nms_settings("soft", windows, 0.2, 0.3), V2, 2)
    assert written == json.loads(json.dumps(expected))
    assert expected != game_predictions(read_raw_scores(tmp_path / "raw", game), nms_settings("soft", 20, 0.2), V2, 2)
    expect_user_error(run_script([*command, str(tmp_path / "x"), "--window", "4", "6", "8"], check=False),
                      "--window: 3 values; expected one, or one per class")
    expect_user_error(run_script([*command, str(tmp_path / "x"), "--min-weight", "1.5"], check=False),
                      "nms_min_weight' = 1.5 is out of range")
    assert not (tmp_path / "x").exists()


def test_ensemble_command_reads_a_config_file(tmp_path):
    from tests.test_user_errors import expect_user_error

    game = "france_ligue-1/2016-2017/2016-08-28 - 21-45 Monaco 3 - 1 Paris SG"
    for seed in (1, 2, 3):
        make_raw(tmp_path / f"seed{seed}", game, seed)
    config = tmp_path / "ensemble.yaml"
    config.write_text(f"raw: [{tmp_path / 'seed1'}, {tmp_path / 'seed2'}, {tmp_path / 'seed3'}]\n"
                      f"out_raw: {tmp_path / 'mean'}\nout: {tmp_path / 'preds'}\n")
    run_script(["evaluate.py", "ensemble", "--config", str(config)])
    expected = sum(read_raw_scores(tmp_path / f"seed{seed}", game)[2] for seed in (1, 2, 3)) / 3
    np.testing.assert_allclose(read_raw_scores(tmp_path / "mean", game)[2], expected, rtol=1e-6)
    assert (tmp_path / "preds" / game / "results_spotting.json").is_file()
    config.write_text("raw: []\nouts: x\n")
    expect_user_error(run_script(["evaluate.py", "ensemble", "--config", str(config)], check=False),
                      "unknown key 'outs'; did you mean 'out'")


def test_ensemble_refuses_runs_that_disagree(tmp_path):
    game = "france_ligue-1/2016-2017/2016-08-28 - 21-45 Monaco 3 - 1 Paris SG"
    make_raw(tmp_path / "run1", game, 1, slots=(120, 100))
    make_raw(tmp_path / "run2", game, 2, slots=(121, 100))
    with pytest.raises(ValueError, match="half 1: runs disagree"):
        ensemble_raw_scores([tmp_path / "run1", tmp_path / "run2"], tmp_path / "mean")
    with pytest.raises(ValueError, match="shape"):
        write_raw_scores(tmp_path / "run1", game, 1, np.zeros((5, 3)))  # run1 holds 17 columns


def test_postprocessed_predictions_are_accepted_by_the_official_evaluator(tmp_path):
    action_spotting = pytest.importorskip("SoccerNet.Evaluation.ActionSpotting")
    from SoccerNet.Evaluation.utils import EVENT_DICTIONARY_V2
    game = "germany_bundesliga/2016-2017/2016-10-01 - 19-30 Bayer Leverkusen 2 - 0 Dortmund"
    make_raw(tmp_path / "raw", game, 3)
    postprocess_raw(tmp_path / "raw", tmp_path / "preds", nms_settings("soft", 20, 0.001))
    labels = tmp_path / "labels" / game
    labels.mkdir(parents=True)
    (labels / "Labels-v2.json").write_text(json.dumps({"annotations": [
        {"gameTime": "1 - 00:10", "label": "Goal", "position": "10000", "team": "home", "visibility": "visible"}]}))
    result = action_spotting.evaluate(SoccerNet_path=str(tmp_path / "labels"), Predictions_path=str(tmp_path / "preds"),
                                      prediction_file="results_spotting.json", version=2, framerate=2,
                                      metric="tight", label_files="Labels-v2.json", dataset=None,
                                      EVENT_DICTIONARY=EVENT_DICTIONARY_V2)
    assert 0.0 <= result["a_mAP"] <= 1.0
