"""Datasets as descriptions: manifests of a user's own labels, the converters, and every bad label named before
anything runs (data/catalog.py, data/manifest.py, data/convert.py)."""

import contextlib
import io
import json
from fractions import Fraction

import numpy as np
import pytest

from data.catalog import BUILT_IN, checked_labels, load_dataset
from data.convert import e2e_to_manifest, manifest_to_soccernet, soccernet_to_manifest
from data.labels import LabelError, game_time
from data.manifest import manifest_document, manifest_event, write_manifest
from evaluation.predictions import write_game_predictions
from evaluation.scoring import score
from tests.random_sets import write_random_ball_set, write_random_set

V2, BALL_2024, BALL_2025 = (BUILT_IN[name] for name in ("soccernet_v2", "soccernet_ball_2024", "soccernet_ball_2025"))
CLASSES = ["serve", "smash", "lob"]


def write_dataset(folder, videos, teams=(), split="train", **metadata):
    """A manifest of `videos`: {id: [events]} (their files need not exist to read labels)."""
    items = [{"id": game, "inputs": [{"type": "video", "path": f"videos/{game}.mp4", "fps": 30}], "events": events}
             for game, events in videos.items()]
    return write_manifest(folder / f"{split}.json", manifest_document("tennis", split, CLASSES, list(teams), items,
                                                                      metadata))


# ----------------------------------------------------------------------------------------------------------------------
# Manifests
# ----------------------------------------------------------------------------------------------------------------------
def test_manifest_is_a_dataset(tmp_path):
    path = write_dataset(tmp_path, {"m1": [manifest_event("lob", 1500), manifest_event("serve", 0, visible=False)],
                                    "m2": []}, label_fps=30, metrics=["at1", "at2"])
    dataset = load_dataset(str(path))
    assert dataset.classes == tuple(CLASSES) and dataset.label_fps == 30 and dataset.metrics == ("at1", "at2")
    assert dataset.games("train.json", tmp_path) == ["m1", "m2"] and dataset.halves == (1,)
    labels = dataset.labels(tmp_path, "m1").annotations
    assert [(a.label, a.position_ms, a.visible) for a in labels] == [(2, 1500, True), (0, 0, False)]
    assert dataset.video_path(tmp_path, "m2", 1) == (tmp_path / "videos" / "m2.mp4").resolve()


@pytest.mark.parametrize("event, message", [
    ({"label": "volley", "position_ms": 10}, "video 0 (m1): event 1: unknown 'label' 'volley'; expected one of"),
    ({"label": "lob", "position_ms": -40}, "video 0 (m1): event 1: 'position_ms' is negative (-40 ms)"),
    ({"label": "lob", "position_ms": "1.5 s"}, "event 1: 'position_ms' must be integer milliseconds"),
    ({"label": "lob", "position_ms": 10, "team": "home"},
     "event 1: 'team' must be one of ['left', 'right'], got 'home'"),
    ({"label": "lob", "position_ms": 10, "visibility": "hidden"}, "event 1: 'visibility' must be one of"),
    ({"label": "serve", "position_ms": 1520, "team": "left"},
     "event 1: a second 'serve' of team 'left' at 1520 ms, in the 33.3333 ms row of the metric's grid of event 0 "
     "(at 1510 ms)"),
])
def test_every_bad_manifest_event_is_named(tmp_path, event, message):
    path = write_dataset(tmp_path, {"m1": [{"label": "serve", "position_ms": 1510, "team": "left"}, event]},
                         teams=("left", "right"), label_fps=30)
    dataset = load_dataset(str(path))
    with pytest.raises(LabelError) as error:
        dataset.labels(tmp_path, "m1")
    assert str(path) in str(error.value) and message in str(error.value)


def test_left_and_right_in_one_row_are_two_columns(tmp_path):
    path = write_dataset(tmp_path, {"m1": [manifest_event("serve", 1510, "left"),
                                           manifest_event("serve", 1520, "right")]}, teams=("left", "right"))
    dataset = load_dataset(str(path))
    assert [dataset.scored(a).label for a in dataset.labels(tmp_path, "m1").annotations] == [0, 1]
    assert dataset.columns[:3] == ("serve-left", "serve-right", "smash-left")


def test_past_the_end_and_absent_classes_stop_a_manifest_before_training(tmp_path):
    path = write_dataset(tmp_path, {"m1": [manifest_event("serve", 1000), manifest_event("smash", 9_000)]})
    dataset = load_dataset(str(path))
    dataset.games("train.json")
    with pytest.raises(LabelError) as error:
        checked_labels(dataset, tmp_path, {("m1", 1): 16}, 2, "training")  # 16 frames at 2 fps: 8 s
    assert f"{path}: m1 annotation 1 at 9000 ms (the video lasts 8.0 s)" in str(error.value)
    with pytest.raises(LabelError, match=f"no validation annotation of lob in {path}: the official metric scores it 0"):
        checked_labels(dataset, tmp_path, {("m1", 1): 100}, 2, "validation")


def test_built_in_labels_are_checked_by_the_dataset_reader(tmp_path):
    labels, _, games = write_random_ball_set(tmp_path, BALL_2025, 1, seed=1, minutes=(1.0, 1.5))
    path = labels / games[0] / "Labels-ball.json"
    document = json.loads(path.read_text())
    document["annotations"][4]["team"] = "home"
    path.write_text(json.dumps(document))
    with pytest.raises(LabelError, match="annotation 4: 'team' must be one of \\['left', 'right'\\], got 'home'"):
        BALL_2025.labels(labels, games[0])
    assert len(BALL_2024.labels(labels, games[0]).annotations) == len(document["annotations"])  # 2024: no teams


def test_splits_of_the_ball_editions_are_the_official_ones():
    assert len(BALL_2024.games("train")) == 4 and BALL_2024.games("val") == BALL_2024.games("valid")
    assert BALL_2024.games("test") == ["england_efl/2019-2020/2019-10-01 - Stoke City - Huddersfield Town",
                                       "england_efl/2019-2020/2019-10-01 - Reading - Fulham"]
    with pytest.raises(ValueError, match="SoccerNet calls it 'valid'"):
        V2.games("val")


# ----------------------------------------------------------------------------------------------------------------------
# Converters
# ----------------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("layout", [dict(indent=2), dict(indent=4, newline=True), dict(indent=None),
                                    dict(indent=1, ascii=False)])
@pytest.mark.parametrize("name", ["soccernet_v2", "soccernet_ball_2023", "soccernet_ball_2025"])
def test_soccernet_labels_round_trip_byte_for_byte(tmp_path, name, layout):
    dataset = BUILT_IN[name]
    if dataset is V2:
        labels, _, games = write_random_set(tmp_path, 2, seed=4, half_seconds=120, events_per_half=15)
    else:
        labels, _, games = write_random_ball_set(tmp_path, dataset, 2, seed=4, minutes=(1.0, 2.0))
    for game in games:  # other layouts, an extra key, a number for a position, a name json.dump would escape
        path = dataset.labels_path(labels, game)
        document = json.loads(path.read_text())
        document["UrlLocal"] = game + " (Atlético)"
        document["annotations"][1]["comment"] = "kept"
        document["annotations"][2]["position"] = int(document["annotations"][2]["position"])
        path.write_text(json.dumps(document, indent=layout["indent"], ensure_ascii=layout.get("ascii", True))
                        + ("\n" if layout.get("newline") else ""))
    manifest = soccernet_to_manifest(dataset, labels, games, tmp_path / "converted" / "all.json", "all")
    converted = load_dataset(str(manifest))
    assert converted.classes == dataset.classes and converted.teams == dataset.teams
    assert converted.label_fps == dataset.label_fps and converted.metrics == dataset.metrics
    assert len(converted.videos) == len(games) * len(dataset.halves)
    manifest_to_soccernet(manifest, tmp_path / "back")
    for game in games:
        assert (tmp_path / "back" / game / dataset.labels_file).read_bytes() == dataset.labels_path(labels,
                                                                                                    game).read_bytes()


def test_edited_manifest_writes_the_edits_back(tmp_path):
    labels, _, games = write_random_ball_set(tmp_path, BALL_2025, 1, seed=6, minutes=(1.0, 1.5))
    manifest = soccernet_to_manifest(BALL_2025, labels, games, tmp_path / "m.json", "test")
    document = json.loads(manifest.read_text())
    events = document["data"][0]["events"]
    events[0]["label"] = "GOAL"
    events.append(manifest_event("SHOT", 2_000, "left"))  # added by hand: written after the recorded ones
    manifest.write_text(json.dumps(document))
    manifest_to_soccernet(manifest, tmp_path / "back")
    annotations = json.loads((tmp_path / "back" / games[0] / "Labels-ball.json").read_text())["annotations"]
    assert annotations[0]["label"] == "GOAL" and annotations[-1] == {
        "gameTime": "1 - 00:02", "label": "SHOT", "position": "2000", "team": "left"}


def test_the_official_evaluator_runs_on_a_converted_manifest_and_agrees(tmp_path):
    """A user's manifest -> a SoccerNet tree: the pip evaluator (dataset=None, framerate = the manifest's label_fps,
    the manifest's classes) scores it as this project scores the manifest."""
    action_spotting = pytest.importorskip("SoccerNet.Evaluation.ActionSpotting")
    rng = np.random.default_rng(3)
    videos, predictions = {}, {}
    for index in range(3):
        game = f"match_{index}"
        times = np.sort(rng.choice(np.arange(0, 300_000, 40), 60, replace=False))
        videos[game] = [manifest_event(CLASSES[rng.integers(3)], int(t), visible=rng.random() > 0.1) for t in times]
        predictions[game] = [{"gameTime": game_time(1, int(p)), "label": CLASSES[rng.integers(3)],
                              "position": str(int(p)), "half": "1", "confidence": float(rng.random())}
                             for p in np.concatenate([times + rng.integers(-900, 900, len(times)),
                                                      rng.integers(0, 300_000, 40)]).clip(0)]
        write_game_predictions(tmp_path / "predictions", game, predictions[game])
    path = write_dataset(tmp_path, videos, split="test", label_fps=25, metrics=["at1", "at2"])
    dataset = load_dataset(str(path))
    ours = score(dataset, path, tmp_path / "predictions", dataset.games(str(path)), workers=0)
    manifest_to_soccernet(path, tmp_path / "labels")
    for metric in ("at1", "at2"):
        with contextlib.redirect_stderr(io.StringIO()):
            official = action_spotting.evaluate(
                SoccerNet_path=str(tmp_path / "labels"), Predictions_path=str(tmp_path / "predictions"),
                prediction_file="results_spotting.json", framerate=25, metric=metric,
                label_files="Labels-spotting.json", dataset=None,
                EVENT_DICTIONARY={name: index for index, name in enumerate(CLASSES)})
        for key, value in official.items():
            np.testing.assert_allclose(np.asarray(ours[metric][key], float), np.asarray(value, float), atol=1e-9,
                                       rtol=0, err_msg=f"{metric} {key}")


def test_e2e_spot_labels_become_a_manifest(tmp_path):
    (tmp_path / "class.txt").write_text("serve\nsmash\nlob\n")
    split = [{"video": "rally_1", "num_frames": 900, "num_events": 2, "fps": 29.97002997002997, "width": 398,
              "height": 224, "events": [{"frame": 0, "label": "serve", "comment": ""},
                                        {"frame": 899, "label": "lob", "comment": "deep"}]},
             {"video": "rally_2", "num_frames": 250, "num_events": 1, "fps": 25.0,
              "events": [{"frame": 125, "label": "smash", "team": "left"}]}]
    (tmp_path / "train.json").write_text(json.dumps(split))
    manifest = e2e_to_manifest(tmp_path / "class.txt", tmp_path / "train.json", tmp_path / "videos",
                               tmp_path / "out" / "train.json")
    dataset = load_dataset(str(manifest))
    assert dataset.games("train.json") == ["rally_1", "rally_2"] and dataset.teams == ("left",)
    assert dataset.video_path(None, "rally_1", 1) == (tmp_path / "videos" / "rally_1.mp4").resolve()
    document = json.loads(manifest.read_text())
    assert document["data"][0]["inputs"][0]["fps"] == "30000/1001"
    # frame 899 at 30000/1001 fps: 29.99663 s
    assert [e["position_ms"] for e in document["data"][0]["events"]] == [0, 29997]
    assert document["data"][1]["events"][0]["position_ms"] == 5000
    assert document["data"][0]["events"][1]["metadata"]["e2e"] == {"frame": 899, "comment": "deep"}
    split[1]["events"][0]["label"] = "volley"
    (tmp_path / "train.json").write_text(json.dumps(split))
    with pytest.raises(LabelError, match="train.json: video 1: event 0: unknown 'label' 'volley'"):
        e2e_to_manifest(tmp_path / "class.txt", tmp_path / "train.json", tmp_path / "videos", tmp_path / "x.json")


def test_manifest_video_rates_are_exact_and_checked(tmp_path):
    path = write_dataset(tmp_path, {"m1": []})
    document = json.loads(path.read_text())
    for value, message in (("fast", "'fps' must be a positive frame rate"), (0, "'fps' must be a positive")):
        document["data"][0]["inputs"][0]["fps"] = value
        path.write_text(json.dumps(document))
        with pytest.raises(ValueError, match=message):
            load_dataset(str(path))
    document["data"][0]["inputs"][0]["fps"] = "30000/1001"
    path.write_text(json.dumps(document))
    dataset = load_dataset(str(path))
    assert dataset.declared_rate("m1") == Fraction(30000, 1001)
    dataset.check_rate("m1", Fraction(30000, 1001))
    with pytest.raises(ValueError, match="video 0 \\(m1\\): 'fps' 30000/1001 differs from the video's 30 fps"):
        dataset.check_rate("m1", Fraction(30))
