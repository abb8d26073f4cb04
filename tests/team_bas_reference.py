"""The official Team-BAS metric, transcribed for the tests from its definition (SoccerNet/sn-teamspotting,
`util/eval.py: mAPevaluateCodabench, label2vector, predictions2vector` and `util/score.py: compute_amAP`; the rule
is summarised in docs/DATASETS.md).

What the official code does, step by step:
1. One vector per game of 120 min x 25 rows (a row per 40 ms), a column per `<CLASS>-<team>` (PASS-left = 0,
   PASS-right = 1, ..., GOAL-right = 23). Labels: only annotations whose gameTime starts with "1"; row
   `min(int(25 * (int(position) / 1000)), last row)`; +1, or -1 for "not shown"; the last one of a cell wins.
   Predictions: every prediction (its half and gameTime ignored), the cell holds its confidence, -1 when empty; the
   last one of a cell wins.
2. The "closest" map of each column (the visibility of the nearest label, boundaries at floor midpoints), as the
   pip package's evaluate builds it.
3. The pip package's `average_mAP` (SoccerNet.Evaluation.ActionSpotting) at 25 fps on the 24 columns.
4. Per class c: (AP[2c] n[2c] + AP[2c+1] n[2c+1]) / (n[2c] + n[2c+1]), n[k] the sum of column k over every game's
   label vector; the team mAP is the mean of those 12 (visible and unshown alike, each from its own per-column APs).
5. The same evaluation with the team dropped (12 columns; a left and a right in one cell: the later one wins) gives
   `mAP_no_team`, `mAP_per_class_no_team` and `mAP_visible_no_team`.
This transcription is written for the tests; only `average_mAP` comes from the SoccerNet package.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

FPS = 25
ROWS = 120 * 60 * FPS
DELTAS = {"tight": np.arange(1, 6), "loose": np.arange(12) * 5 + 5, **{f"at{k}": np.array([k]) for k in range(1, 6)}}


def _row(position) -> int:
    return min(int(FPS * (int(position) / 1000)), ROWS - 1)


def _column(entry: dict, classes: list[str], teams: list[str] | None) -> int:
    index = classes.index(entry["label"])  # the official code raises KeyError on an unknown label or team
    return index if teams is None else index * len(teams) + teams.index(entry["team"])


def label_vector(document: dict, classes: list[str], teams: list[str] | None) -> np.ndarray:
    width = len(classes) * (len(teams) if teams else 1)
    vector = np.zeros((ROWS, width))
    for annotation in document["annotations"]:
        if int(annotation["gameTime"][0]) != 1:
            continue
        value = -1 if annotation.get("visibility") == "not shown" else 1
        vector[_row(annotation["position"]), _column(annotation, classes, teams)] = value
    return vector


def prediction_vector(document: dict, classes: list[str], teams: list[str] | None) -> np.ndarray:
    width = len(classes) * (len(teams) if teams else 1)
    vector = np.full((ROWS, width), -1.0)
    for prediction in document["predictions"]:
        vector[_row(prediction["position"]), _column(prediction, classes, teams)] = prediction["confidence"]
    return vector


def closest_vector(labels: np.ndarray) -> np.ndarray:
    """Each row takes the value of the nearest label of its column: row r belongs to label b from
    (a + b) // 2 (a the previous label) up to (b + c) // 2 (c the next one); -1 in a column without labels."""
    closest = np.full(labels.shape, -1.0)
    for column in range(labels.shape[1]):
        rows = np.flatnonzero(labels[:, column])
        if len(rows) == 0:
            continue
        bounds = np.concatenate([[-rows[0]], rows, [2 * len(labels)]])
        for i, row in enumerate(rows, start=1):
            start, stop = max(0, (bounds[i - 1] + row) // 2), min(len(labels), (row + bounds[i + 1]) // 2)
            closest[start:stop, column] = labels[row, column]
    return closest


def _average_map(targets, detections, deltas):
    from SoccerNet.Evaluation.ActionSpotting import average_mAP

    closests = [closest_vector(t) for t in targets]
    return average_mAP(targets, detections, closests, framerate=FPS, deltas=deltas)


def official_team_scores(labels_root: str | Path, predictions_root: str | Path, games: list[str], classes: list[str],
                         teams: list[str], metric: str = "at1", labels_file: str = "Labels-ball.json") -> dict:
    """The official Team-BAS results dictionary (mAP, mAP_per_class, mAP_visible, ..., mAP_no_team, ...)."""
    documents = [(json.loads((Path(labels_root) / game / labels_file).read_text()),
                  json.loads((Path(predictions_root) / game / "results_spotting.json").read_text())) for game in games]
    targets = [label_vector(labels, classes, teams) for labels, _ in documents]
    detections = [prediction_vector(predictions, classes, teams) for _, predictions in documents]
    values = _average_map(targets, detections, DELTAS[metric])
    counts = sum(target.sum(axis=0) for target in targets)
    results = {}
    for name, per_column in zip(("", "_visible", "_unshown"), values[1::2]):
        weighted = np.asarray(per_column) * counts
        per_class = [(weighted[2 * c] + weighted[2 * c + 1]) / (counts[2 * c] + counts[2 * c + 1])
                     for c in range(len(classes))]
        results[f"mAP_per_class{name}"] = per_class
        results[f"mAP{name}"] = np.mean(per_class)
    plain = _average_map([label_vector(labels, classes, None) for labels, _ in documents],
                         [prediction_vector(predictions, classes, None) for _, predictions in documents],
                         DELTAS[metric])
    results.update(mAP_no_team=plain[0], mAP_per_class_no_team=plain[1], mAP_visible_no_team=plain[2])
    return results
