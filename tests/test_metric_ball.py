"""Ball Action Spotting scored exactly: 2023 and 2024 against SoccerNet's `ActionSpotting.evaluate` at 25 fps with the
edition's full class list, 2025 (teams) against a transcription of the official Team-BAS metric
(tests/team_bas_reference.py), on adversarial generated sets (tests/random_sets.py)."""

import contextlib
import io
import json
import logging

import numpy as np
import pytest

from data.catalog import BUILT_IN, load_dataset
from evaluation.scoring import score, write_results
from tests.conftest import run_script
from tests.random_sets import write_random_ball_set
from tests.team_bas_reference import official_team_scores

BALL_2023, BALL_2024, BALL_2025 = (BUILT_IN[f"soccernet_ball_{year}"] for year in (2023, 2024, 2025))


def official_ball(labels, predictions, edition, metric="at1", **options):
    action_spotting = pytest.importorskip("SoccerNet.Evaluation.ActionSpotting")
    arguments = dict(framerate=25, metric=metric, label_files="Labels-ball.json", dataset=None,
                     EVENT_DICTIONARY={name: index for index, name in enumerate(edition.classes)})
    with contextlib.redirect_stderr(io.StringIO()):
        return action_spotting.evaluate(SoccerNet_path=str(labels), Predictions_path=str(predictions),
                                        prediction_file="results_spotting.json", **{**arguments, **options})


def assert_equal(ours, reference, pairs, where):
    for our_key, key in pairs:
        np.testing.assert_allclose(np.asarray(ours[our_key], float), np.asarray(reference[key], float), rtol=0,
                                   atol=1e-9, err_msg=f"{where}: {our_key} vs the official {key}")


PIP_KEYS = [(key, key) for key in ("a_mAP", "a_mAP_per_class", "a_mAP_visible", "a_mAP_per_class_visible",
                                   "a_mAP_unshown", "a_mAP_per_class_unshown")]


@pytest.mark.parametrize("dataset, seed", [(BALL_2023, 21), (BALL_2024, 22)])
def test_ball_action_spotting_equals_the_official_evaluator(tmp_path, dataset, seed):
    pytest.importorskip("SoccerNet.Evaluation.ActionSpotting")
    labels, predictions, games = write_random_ball_set(tmp_path, dataset, 3, seed=seed)
    ours = score(dataset, labels, predictions, games, ("at1", "tight"), workers=0)
    assert len(ours["at1"]["a_mAP_per_class"]) == len(dataset.classes)
    for metric in ("at1", "tight"):
        assert_equal(ours[metric], official_ball(labels, predictions, dataset, metric), PIP_KEYS,
                     f"{dataset.name} {metric}")


def test_all_twelve_classes_are_scored_where_the_package_keeps_two(tmp_path):
    """The pip trap: `evaluate(..., dataset="Ball")` without a class dictionary scores PASS and DRIVE only."""
    pytest.importorskip("SoccerNet.Evaluation.ActionSpotting")
    official_test_games = BALL_2024.games("test")
    labels, predictions, games = write_random_ball_set(tmp_path, BALL_2024, 2, seed=5, games=official_test_games)
    ours = score(BALL_2024, labels, predictions, games, workers=0)["at1"]
    trap = official_ball(labels, predictions, BALL_2024, split="test", dataset="Ball", EVENT_DICTIONARY=None)
    assert len(trap["a_mAP_per_class"]) == 2 and len(ours["a_mAP_per_class"]) == 12
    np.testing.assert_allclose(ours["a_mAP_per_class"][:2], trap["a_mAP_per_class"], rtol=0, atol=1e-9)
    assert abs(ours["a_mAP"] - trap["a_mAP"]) > 1e-3  # the 2-class mean is another number
    assert_equal(ours, official_ball(labels, predictions, BALL_2024), PIP_KEYS, "full dictionary")


TEAM_KEYS = [("team_a_mAP", "mAP"), ("team_a_mAP_per_class", "mAP_per_class"), ("team_a_mAP_visible", "mAP_visible"),
             ("team_a_mAP_per_class_visible", "mAP_per_class_visible"), ("team_a_mAP_unshown", "mAP_unshown"),
             ("team_a_mAP_per_class_unshown", "mAP_per_class_unshown"), ("a_mAP", "mAP_no_team"),
             ("a_mAP_per_class", "mAP_per_class_no_team"), ("a_mAP_visible", "mAP_visible_no_team")]


@pytest.mark.parametrize("seed, games, minutes", [(31, 3, (6.0, 10.0)), (32, 2, (2.0, 14.0))])
def test_team_ball_action_spotting_equals_the_official_metric(tmp_path, seed, games, minutes):
    pytest.importorskip("SoccerNet.Evaluation.ActionSpotting")
    labels, predictions, names = write_random_ball_set(tmp_path, BALL_2025, games, seed=seed, minutes=minutes)
    ours = score(BALL_2025, labels, predictions, names, ("at1", "tight"), workers=2 if seed == 31 else 0)
    classes, teams = list(BALL_2025.classes), list(BALL_2025.teams)
    for metric in ("at1", "tight"):
        reference = official_team_scores(labels, predictions, names, classes, teams, metric)
        assert not np.isnan(reference["mAP"])  # every class has targets: the values compare one for one
        assert_equal(ours[metric], reference, TEAM_KEYS, f"{metric}")


def test_a_class_without_targets_is_absent_not_nan(tmp_path, caplog):
    pytest.importorskip("SoccerNet.Evaluation.ActionSpotting")
    labels, predictions, names = write_random_ball_set(tmp_path, BALL_2025, 2, seed=7)
    for game in names:  # no GOAL label anywhere (predictions of GOAL stay)
        path = labels / game / "Labels-ball.json"
        document = json.loads(path.read_text())
        document["annotations"] = [a for a in document["annotations"] if a["label"] != "GOAL"]
        path.write_text(json.dumps(document))
    with caplog.at_level(logging.WARNING, logger="comedian"):
        ours = score(BALL_2025, labels, predictions, names, workers=0)["at1"]
    assert "no target of GOAL in the 2 scored games" in caplog.text
    reference = official_team_scores(labels, predictions, names, list(BALL_2025.classes), list(BALL_2025.teams))
    assert np.isnan(reference["mAP"]) and np.isnan(reference["mAP_per_class"][11])
    assert ours["team_a_mAP_per_class"][11] is None
    np.testing.assert_allclose(ours["team_a_mAP_per_class"][:11], reference["mAP_per_class"][:11], rtol=0, atol=1e-9)
    assert ours["team_a_mAP"] == pytest.approx(np.mean(reference["mAP_per_class"][:11]), abs=1e-12)
    write_results({"at1": ours}, tmp_path / "scores.json", BALL_2025)
    written = json.loads((tmp_path / "scores.json").read_text())["at1"]
    assert written["team_a_mAP_per_class"]["GOAL"] is None
    assert list(written["team_a_mAP_per_class"]) == list(BALL_2025.classes)


def test_score_command_for_team_ball_action_spotting(tmp_path):
    labels, predictions, games = write_random_ball_set(tmp_path, BALL_2025, 2, seed=8, minutes=(2.0, 3.0))
    printed = run_script(["evaluate.py", "score", "--dataset", "soccernet_ball_2025", "--labels", str(labels),
                          "--predictions", str(predictions), "--json", str(tmp_path / "scores.json")]).stdout
    assert "2 games of soccernet_ball_2025" in printed and "PLAYER SUCCESSFUL TACKLE" in printed
    written = json.loads((tmp_path / "scores.json").read_text())
    assert list(written) == ["at1"]  # the edition's metric by default
    assert {"a_mAP", "a_mAP_per_class", "a_mAP_visible", "a_mAP_per_class_visible", "a_mAP_unshown",
            "a_mAP_per_class_unshown", "team_a_mAP", "team_a_mAP_per_class", "team_a_mAP_visible",
            "team_a_mAP_per_class_visible"} <= set(written["at1"])
    assert list(written["at1"]["a_mAP_per_class"]) == list(BALL_2025.classes)


def test_ball_predictions_of_another_edition_are_named(tmp_path):
    """A 2025 file without the team, or with a team the edition does not have, is an error naming the prediction."""
    labels, predictions, games = write_random_ball_set(tmp_path, BALL_2025, 1, seed=9, minutes=(1.0, 1.5))
    path = predictions / games[0] / "results_spotting.json"
    document = json.loads(path.read_text())
    document["predictions"][3]["team"] = "home"
    path.write_text(json.dumps(document))
    with pytest.raises(ValueError, match="prediction 3: 'team' must be one of \\['left', 'right'\\], got 'home'"):
        score(BALL_2025, labels, predictions, games, workers=0)
    del document["predictions"][3]["team"]
    path.write_text(json.dumps(document))
    with pytest.raises(ValueError, match="prediction 3: missing key 'team'"):
        score(BALL_2025, labels, predictions, games, workers=0)


def test_dataset_names_are_checked():
    with pytest.raises(ValueError, match="--dataset='soccernet_bal_2024': expected one of .*did you mean "
                                         "'soccernet_ball_2024'"):
        load_dataset("soccernet_bal_2024", "--dataset")
