"""Random SoccerNet label and prediction trees in the official schemas, for scorer tests and benchmarks.

The sets are built to make scorer disagreements likely: GTs of one class a few bins apart, unshown-only classes,
classes absent from a half, several predictions in one 0.5 s bin, tied and rounded confidences, confidences of exactly
0 and 1, games with no prediction at all, and predictions past the end of the half.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from data.labels import CLASSES, LABELS_FILE, game_time
from data.synthetic import game_name
from evaluation.predictions import write_game_predictions
from utils.files import write_json


def random_annotations(rng: np.random.Generator, half_seconds: float, events_per_half: int) -> list[dict]:
    """Annotations for both halves in the official schema, with class frequencies skewed as in SoccerNet."""
    weights = rng.dirichlet(np.full(len(CLASSES), 0.5))
    unshown_only = rng.integers(0, len(CLASSES))
    annotations = []
    for half in (1, 2):
        classes = rng.choice(len(CLASSES), size=events_per_half, p=weights)
        positions = rng.integers(0, int(half_seconds * 1000), size=events_per_half)
        close = rng.random(events_per_half) < 0.15  # some events a few bins after the previous one
        positions[1:][close[1:]] = positions[:-1][close[1:]] + rng.integers(0, 2500, close[1:].sum())
        for class_index, position in sorted(zip(classes.tolist(), positions.tolist()), key=lambda x: x[1]):
            hidden = class_index == unshown_only or rng.random() < 0.1
            annotations.append({"gameTime": game_time(half, position), "label": CLASSES[class_index],
                                "position": str(position), "team": str(rng.choice(["home", "away",
                                                                                   "not applicable"])),
                                "visibility": "not shown" if hidden else "visible"})
    return annotations


def random_predictions(rng: np.random.Generator, annotations: list[dict], half_seconds: float,
                       per_class_per_half: int) -> list[dict]:
    """Predictions near the GTs (so matching is exercised) plus uniform ones, with ties and duplicates in bins."""
    predictions = []
    for half in (1, 2):
        for class_index, name in enumerate(CLASSES):
            gts = [int(a["position"]) for a in annotations if a["label"] == name and a["gameTime"][0] == str(half)]
            near = np.array(gts)[rng.integers(0, len(gts), per_class_per_half // 2)] if gts else np.zeros(0, int)
            near = near + rng.normal(0, 4000, len(near)).astype(int)
            uniform = rng.integers(0, int(half_seconds * 1000) + 5000, per_class_per_half - len(near))
            positions = np.clip(np.concatenate([near, uniform]), 0, None)
            confidence = rng.random(len(positions))
            tied = rng.random(len(positions)) < 0.3
            confidence[tied] = np.round(confidence[tied], 1)  # many exact ties
            confidence[rng.random(len(positions)) < 0.05] = 0.0
            confidence[rng.random(len(positions)) < 0.05] = 1.0
            for position, score in zip(positions.tolist(), confidence.tolist()):
                predictions.append({"gameTime": game_time(half, position), "label": name,
                                    "position": str(position), "half": str(half), "confidence": score})
    order = rng.permutation(len(predictions))  # file order decides which duplicate of a bin survives
    return [predictions[i] for i in order]


def write_random_set(root: str | os.PathLike, num_games: int, seed: int = 0, half_seconds: float = 2700.0,
                     events_per_half: int = 110, predictions_per_class_per_half: int = 30,
                     empty_games: int = 0) -> tuple[Path, Path, list[str]]:
    """Write `root/labels/<game>/Labels-v2.json` and `root/predictions/<game>/results_spotting.json`.

    The first `empty_games` games get an empty prediction list. Returns (labels dir, predictions dir, games).
    """
    rng = np.random.default_rng(seed)
    root = Path(root)
    games = []
    for index in range(num_games):
        game = game_name(rng, index)
        while game in games:
            game = game_name(rng, index + 1000 * len(games))
        games.append(game)
        annotations = random_annotations(rng, half_seconds, events_per_half)
        write_json(root / "labels" / game / LABELS_FILE, {"UrlLocal": game, "UrlYoutube": "", "annotations": annotations})
        predictions = [] if index < empty_games else random_predictions(
            rng, annotations, half_seconds, predictions_per_class_per_half)
        write_game_predictions(root / "predictions", game, predictions)
    return root / "labels", root / "predictions", games
