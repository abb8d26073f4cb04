"""Random SoccerNet label and prediction trees in the official schemas, for scorer tests and benchmarks.

The sets are built to make scorer disagreements likely: GTs of one class a few bins apart, unshown-only classes,
classes absent from a half, several predictions in one 0.5 s bin, tied and rounded confidences, confidences of exactly
0 and 1, games with no prediction at all, and predictions past the end of the half.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from data.labels import CLASSES, LABELS_FILE, game_time
from evaluation.predictions import write_game_predictions

LEAGUES = ("england_epl", "europe_uefa-champions-league", "france_ligue-1", "germany_bundesliga", "italy_serie-a",
           "spain_laliga")
TEAMS = ("Arsenal", "Chelsea", "Atl. Madrid", "Real Madrid", "Bayern Munich", "Dortmund", "Juventus", "AC Milan",
         "Paris SG", "Lyon", "Barcelona", "Man. United", "St-Etienne", "Inter")


def game_name(rng: np.random.Generator, index: int) -> str:
    """A real-looking `league/season/game` path: '2015-08-16 - 18-00 Chelsea 3 - 0 Atl. Madrid'."""
    league = LEAGUES[index % len(LEAGUES)]
    year = 2014 + index % 3
    home, away = rng.choice(len(TEAMS), size=2, replace=False)
    month, day, hour = 1 + index % 12, 1 + index % 28, 15 + index % 6
    return (f"{league}/{year}-{year + 1}/{year + (month < 7)}-{month:02d}-{day:02d} - {hour}-00 "
            f"{TEAMS[home]} {rng.integers(0, 5)} - {rng.integers(0, 5)} {TEAMS[away]}")


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
        label_path = root / "labels" / game / LABELS_FILE
        label_path.parent.mkdir(parents=True, exist_ok=True)
        label_path.write_text(json.dumps({"UrlLocal": game, "UrlYoutube": "", "annotations": annotations}))
        predictions = [] if index < empty_games else random_predictions(
            rng, annotations, half_seconds, predictions_per_class_per_half)
        write_game_predictions(root / "predictions", game, predictions)
    return root / "labels", root / "predictions", games
