"""The scorer: hand-computed cases always, and every value against the official evaluator when it is installed."""

import contextlib
import io
import json
import zipfile

import numpy as np
import pytest

from data.catalog import BUILT_IN
from data.labels import LabelError, game_time
from evaluation.metric import METRICS, Grid, build_spotting_set, game_keys, match_predictions
from evaluation.scoring import score
from tests.conftest import run_script
from tests.random_sets import write_random_set

V2 = BUILT_IN["soccernet_v2"]
CLASSES = V2.classes
GOAL = CLASSES.index("Goal")


def write_game(root, game, annotations, predictions):
    (root / "labels" / game).mkdir(parents=True, exist_ok=True)
    (root / "labels" / game / "Labels-v2.json").write_text(json.dumps({"UrlLocal": game, "annotations": annotations}))
    (root / "preds" / game).mkdir(parents=True, exist_ok=True)
    (root / "preds" / game / "results_spotting.json").write_text(
        json.dumps({"UrlLocal": game, "predictions": predictions}))


def gt(label, ms, half=1, visibility="visible"):
    return {"gameTime": game_time(half, ms), "label": label, "position": str(ms), "team": "home",
            "visibility": visibility}


def pred(label, ms, confidence, half=1):
    return {"gameTime": game_time(half, ms), "label": label, "position": str(ms), "half": str(half),
            "confidence": confidence}


GAME = "england_epl/2015-2016/2015-08-16 - 18-00 Manchester City 3 - 0 Chelsea"


def score_one(tmp_path, annotations, predictions, metrics=("tight",)):
    write_game(tmp_path, GAME, annotations, predictions)
    return score(V2, tmp_path / "labels", tmp_path / "preds", [GAME], metrics, workers=0)


# ----------------------------------------------------------------------------------------------------------------------
# Hand-computed cases
# ----------------------------------------------------------------------------------------------------------------------
def test_exact_hit_scores_one_class_perfectly(tmp_path):
    result = score_one(tmp_path, [gt("Goal", 10_000)], [pred("Goal", 10_200, 0.9)])["tight"]
    assert result["a_mAP_per_class"][GOAL] == 1.0
    assert result["a_mAP"] == pytest.approx(1 / 17)  # classes without GT count as 0 in the mean
    assert result["a_mAP_visible"] == pytest.approx(1 / 17)
    assert result["a_mAP_unshown"] == 0.0


def test_offset_prediction_is_missed_at_one_second_and_found_from_two(tmp_path):
    # GT bin 20, prediction bin 22: |d| = 2 bins; delta 1 s allows 1 bin, delta 2 s allows 2 bins
    result = score_one(tmp_path, [gt("Goal", 10_000)], [pred("Goal", 11_200, 0.9)], ("tight", "at1", "at2"))
    assert result["at1"]["a_mAP_per_class"][GOAL] == 0.0
    assert result["at2"]["a_mAP_per_class"][GOAL] == 1.0
    # trapezoid over deltas 1..5 of per-delta APs (0, 1, 1, 1, 1): (0.5 + 1 + 1 + 1) / 4
    assert result["tight"]["a_mAP_per_class"][GOAL] == pytest.approx(3.5 / 4)


def test_greedy_matching_gives_the_prediction_to_the_earlier_gt(tmp_path):
    # two GTs one bin either side of a single prediction: only one TP; recall 0.5, precision 1 -> AP 6/11
    result = score_one(tmp_path, [gt("Goal", 10_000), gt("Goal", 11_000)], [pred("Goal", 10_500, 0.8)], ("at1",))
    assert result["at1"]["a_mAP_per_class"][GOAL] == pytest.approx(6 / 11)


def test_tied_predictions_match_the_earliest():
    # one GT at bin 20, two predictions with equal confidence at bins 19 and 21: the earlier one is the TP
    data = build_spotting_set([game_keys((np.array([1]), np.array([10_000]), np.array([GOAL]), np.array([True])),
                                         (np.array([1, 1]), np.array([9_500, 10_500]), np.array([GOAL, GOAL]),
                                          np.array([0.5, 0.5])), 17, Grid())], 17, Grid())
    assert match_predictions(data, delta_frames=2).tolist() == [True, False]


def test_last_duplicate_in_a_bin_wins_and_negative_confidence_is_absent(tmp_path):
    # the 0.9 prediction is overwritten by a later 0.1 in the same 0.5 s bin; a -1 prediction does not exist
    predictions = [pred("Goal", 10_000, 0.9), pred("Goal", 10_400, 0.1), pred("Goal", 30_000, -1.0)]
    data = build_spotting_set([game_keys((np.array([1]), np.array([10_000]), np.array([GOAL]), np.array([True])),
                                         (np.array([1, 1, 1]), np.array([10_000, 10_400, 30_000]),
                                          np.array([GOAL] * 3), np.array([0.9, 0.1, -1.0])), 17, Grid())], 17, Grid())
    assert data.pred_score.tolist() == [0.1]
    result = score_one(tmp_path, [gt("Goal", 10_000)], predictions)["tight"]
    # a single TP at 0.1: precision 1 for every threshold up to 0.1, recall 1 -> AP 1
    assert result["a_mAP_per_class"][GOAL] == 1.0


def test_unshown_gets_the_official_17_over_13_factor(tmp_path):
    result = score_one(tmp_path, [gt("Goal", 10_000, visibility="not shown")], [pred("Goal", 10_000, 1.0)],
                       ("tight", "at1"))
    assert result["tight"]["a_mAP_per_class_unshown"][GOAL] == 1.0
    assert result["tight"]["a_mAP_unshown"] == pytest.approx(1 / 17 * 17 / 13)
    assert result["at1"]["a_mAP_unshown"] == pytest.approx(1 / 17)  # the single-delta branch does not rescale
    assert result["tight"]["a_mAP_visible"] == 0.0


def test_empty_prediction_list_scores_zero(tmp_path):
    result = score_one(tmp_path, [gt("Goal", 10_000), gt("Corner", 20_000, half=2)], [], METRICS)
    assert all(entry["a_mAP"] == 0.0 for entry in result.values())


# ----------------------------------------------------------------------------------------------------------------------
# Bad input
# ----------------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("changes, message", [
    ({"label": "Goall"}, "prediction 1: unknown 'label' 'Goall'"),
    ({"position": "31500.0"}, "prediction 1: 'position' must be integer milliseconds"),
    ({"position": 31500.5}, "prediction 1: 'position' must be integer milliseconds"),
    ({"half": "3"}, "prediction 1: 'half' must give half 1 or 2"),
    ({"confidence": "high"}, "prediction 1: 'confidence' must be a number"),
    ({"confidence": None}, "prediction 1: 'confidence' must be a number"),
    ({"half": "<drop>"}, "prediction 1: missing key 'half'"),
])
def test_bad_prediction_names_file_index_and_field(tmp_path, changes, message):
    entry = pred("Goal", 10_000, 0.5)
    for key, value in changes.items():
        if value == "<drop>":
            del entry[key]
        else:
            entry[key] = value
    with pytest.raises(LabelError) as error:
        score_one(tmp_path, [gt("Goal", 10_000)], [pred("Goal", 1_000, 0.5), entry])
    assert "results_spotting.json" in str(error.value) and message in str(error.value)


@pytest.mark.parametrize("bad, message", [
    ({"label": "Shot on target"}, "annotation 1: unknown 'label' 'Shot on target'"),
    ({"position": "12.5"}, "annotation 1: 'position' must be integer milliseconds"),
    ({"gameTime": "3 - 01:00"}, "annotation 1: 'gameTime' must give half 1 or 2"),
    ({"visibility": "hidden"}, "annotation 1: 'visibility' must be one of"),
])
def test_bad_label_names_file_index_and_field(tmp_path, bad, message):
    entry = gt("Goal", 10_000)
    entry.update(bad)
    with pytest.raises(LabelError) as error:
        score_one(tmp_path, [gt("Goal", 1_000), entry], [])
    assert "Labels-v2.json" in str(error.value) and message in str(error.value)


def test_unknown_labels_can_be_dropped_and_counted(tmp_path):
    write_game(tmp_path, GAME, [gt("Goal", 10_000), gt("Pass", 11_000)], [pred("Goal", 10_000, 1.0)])
    result = score(V2, tmp_path / "labels", tmp_path / "preds", [GAME], ("tight",), on_unknown="warn", workers=0)
    assert result["tight"]["unknown_labels_dropped"] == 1
    assert result["tight"]["a_mAP_per_class"][GOAL] == 1.0


def test_missing_prediction_files_are_all_listed(tmp_path):
    labels, predictions, games = write_random_set(tmp_path, 3, seed=1, half_seconds=60, events_per_half=5)
    for game in games[:2]:
        (predictions / game / "results_spotting.json").unlink()
    with pytest.raises(FileNotFoundError) as error:
        score(V2, labels, predictions, games)
    assert all(game in str(error.value) for game in games[:2]) and "2 of 3 games" in str(error.value)


# ----------------------------------------------------------------------------------------------------------------------
# Command line, zip input
# ----------------------------------------------------------------------------------------------------------------------
def test_command_line_prints_table_and_writes_json(tmp_path):
    labels, predictions, games = write_random_set(tmp_path, 3, seed=2, half_seconds=300, events_per_half=20)
    printed = run_script(["evaluate.py", "score", "--labels", str(labels), "--predictions", str(predictions),
                          "--metric", "all", "--json", str(tmp_path / "scores.json")]).stdout
    assert "tight" in printed and "Yellow->red card" in printed
    written = json.loads((tmp_path / "scores.json").read_text())
    assert set(written) == set(METRICS)
    assert set(written["tight"]) == {"a_mAP", "a_mAP_per_class", "a_mAP_visible", "a_mAP_per_class_visible",
                                     "a_mAP_unshown", "a_mAP_per_class_unshown"}
    assert list(written["loose"]["a_mAP_per_class"]) == list(CLASSES)
    assert 0.0 <= written["loose"]["a_mAP"] <= 1.0


def test_zip_predictions_score_like_the_folder(tmp_path):
    labels, predictions, games = write_random_set(tmp_path, 3, seed=3, half_seconds=300, events_per_half=20)
    archive = tmp_path / "results.zip"
    with zipfile.ZipFile(archive, "w") as handle:
        for game in games:
            handle.write(predictions / game / "results_spotting.json", f"{game}/results_spotting.json")
    assert score(V2, labels, archive, games, workers=0) == score(V2, labels, predictions, games, workers=0)


# ----------------------------------------------------------------------------------------------------------------------
# Agreement with the official evaluator
# ----------------------------------------------------------------------------------------------------------------------
def official_scores(labels, predictions, metric):
    action_spotting = pytest.importorskip("SoccerNet.Evaluation.ActionSpotting")
    from SoccerNet.Evaluation.utils import EVENT_DICTIONARY_V2
    with contextlib.redirect_stderr(io.StringIO()):
        return action_spotting.evaluate(SoccerNet_path=str(labels), Predictions_path=str(predictions),
                                        prediction_file="results_spotting.json", version=2, framerate=2,
                                        metric=metric, label_files="Labels-v2.json", dataset=None,
                                        EVENT_DICTIONARY=EVENT_DICTIONARY_V2)


@pytest.mark.parametrize("games, half_seconds, events, predictions, seed", [
    (6, 600, 40, 20, 11),  # typical density
    (3, 90, 60, 60, 12),  # crowded: GTs and predictions a few bins apart, long greedy chains
    (4, 1800, 12, 8, 13),  # sparse: classes absent from halves, unshown-only classes
])
def test_every_value_equals_the_official_evaluator(tmp_path, games, half_seconds, events, predictions, seed):
    pytest.importorskip("SoccerNet.Evaluation.ActionSpotting")
    labels, preds, names = write_random_set(tmp_path, games, seed=seed, half_seconds=half_seconds,
                                            events_per_half=events, predictions_per_class_per_half=predictions,
                                            empty_games=1)
    ours = score(V2, labels, preds, names, METRICS, workers=2 if seed == 11 else 0)  # forked workers too
    for metric in METRICS:
        reference = official_scores(labels, preds, metric)
        for key, value in reference.items():
            np.testing.assert_allclose(np.asarray(ours[metric][key], float), np.asarray(value, float),
                                       rtol=0, atol=1e-9, err_msg=f"{metric} {key}")
