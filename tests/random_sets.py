"""Random SoccerNet label and prediction trees in the official schemas, for scorer tests and benchmarks.

The sets are built to make scorer disagreements likely: GTs of one class a few bins apart, unshown-only classes,
classes absent from a half, several predictions in one 0.5 s bin, tied and rounded confidences, confidences of exactly
0 and 1, games with no prediction at all, and predictions past the end of the half.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from data.catalog import BUILT_IN
from data.labels import game_time
from data.synthetic import game_name
from evaluation.predictions import write_game_predictions
from utils.files import write_json


CLASSES, LABELS_FILE = BUILT_IN["soccernet_v2"].classes, BUILT_IN["soccernet_v2"].labels_file


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


# ----------------------------------------------------------------------------------------------------------------------
# Ball Action Spotting (25 rows per second, one timeline per game, teams in 2025)
# ----------------------------------------------------------------------------------------------------------------------
ROW_MS = 40  # a row of the 25 fps grid


def _in_row(rng: np.random.Generator, row: int) -> int:
    """A position (ms) somewhere in a 40 ms row."""
    return max(0, row) * ROW_MS + int(rng.integers(0, ROW_MS))


def random_ball_annotations(rng: np.random.Generator, dataset, seconds: float, events_per_minute: float) -> list[dict]:
    """Dense annotations of one game with what trips scorers: an event at 0 ms and one on the last frame, events a
    few rows apart, two of one class (and team) in one row (the last one counts), a left and a right of one class in
    one row, unshown events, and in one-video editions a few in half 2 (which the Team-BAS metric ignores)."""
    classes, teams = dataset.classes, dataset.teams
    last_row = int(seconds * 25) - 1
    count = int(events_per_minute * seconds / 60)
    rows = np.sort(rng.integers(0, last_row + 1, count))
    close = rng.random(count) < 0.2
    rows[1:][close[1:]] = np.minimum(rows[:-1][close[1:]] + rng.integers(1, 30, close[1:].sum()), last_row)
    rows[0], rows[-1] = 0, last_row
    halves = [1] * count if len(dataset.halves) == 1 else list(rng.integers(1, 3, count))
    annotations = []
    for row, half in zip(rows.tolist(), halves):
        label = int(rng.choice(len(classes), p=np.linspace(2, 1, len(classes)) / np.linspace(2, 1, len(classes)).sum()))
        annotation = {"gameTime": game_time(half, row * ROW_MS), "label": classes[label],
                      "position": str(0 if row == 0 else _in_row(rng, row))}
        if teams:
            annotation["team"] = teams[int(rng.integers(0, len(teams)))]
        annotation["visibility"] = "not shown" if rng.random() < 0.05 else "visible"
        annotations.append(annotation)
        draw = rng.random()
        if draw < 0.03:  # a second one of this class (and team) in the row
            annotations.append({**annotation, "position": str(_in_row(rng, row)),
                                "visibility": "visible" if annotation["visibility"] == "not shown" else "not shown"})
        elif draw < 0.06 and teams:  # the other team, same class, same row
            other = teams[1 - teams.index(annotation["team"])]
            annotations.append({**annotation, "team": other, "position": str(_in_row(rng, row))})
        elif draw < 0.08 and len(dataset.halves) == 1:
            annotations.append({**annotation, "gameTime": game_time(2, row * ROW_MS)})
    return annotations


def random_ball_predictions(rng: np.random.Generator, dataset, annotations: list[dict], seconds: float) -> list[dict]:
    """Predictions around the labels (on the tolerance's edge: 12 rows is inside mAP@1, 13 outside) and uniform
    ones, with duplicates in a row, ties, confidences of 0, 1 and below 0, positions past the 120-minute buffer, and
    halves the Team-BAS metric ignores; in file order shuffled."""
    classes, teams = dataset.classes, dataset.teams
    predictions = []

    def add(half, row, label, team):
        score = float(rng.choice([rng.random(), round(rng.random(), 1), 0.0, 1.0, -1.0], p=[.6, .25, .05, .05, .05]))
        position = _in_row(rng, row)
        prediction = {"gameTime": game_time(half, position), "label": label, "position": str(position),
                      "half": str(half), "confidence": score}
        predictions.append(prediction if not teams else {**prediction, "team": team})

    for annotation in annotations:
        row = int(annotation["position"]) // ROW_MS
        half = int(annotation["gameTime"][0]) if len(dataset.halves) > 1 else int(rng.choice([1, 1, 1, 2]))
        for offset in rng.choice([0, 3, -5, 12, -12, 13, -13, 25], size=2):
            team = annotation.get("team")
            if teams and rng.random() < 0.2:
                team = teams[1 - teams.index(team)]
            add(half, row + int(offset), annotation["label"], team)
        if rng.random() < 0.05:  # a duplicate in the same row: the later one in the file counts
            add(half, row, annotation["label"], annotation.get("team"))
    for _ in range(len(annotations)):
        add(int(rng.choice(dataset.halves)), int(rng.integers(0, int(seconds * 25))),
            classes[rng.integers(len(classes))], teams[int(rng.integers(0, len(teams)))] if teams else None)
    add(1, 121 * 60 * 25, classes[0], teams[0] if teams else None)  # past the buffer: counted in its last row
    return [predictions[i] for i in rng.permutation(len(predictions))]


def write_random_ball_set(root: str | os.PathLike, dataset, num_games: int, seed: int = 0,
                          minutes: tuple[float, float] = (6.0, 10.0), events_per_minute: float = 20.0,
                          games: list[str] | None = None) -> tuple[Path, Path, list[str]]:
    """Write `root/labels/<game>/Labels-ball.json` and `root/predictions/<game>/results_spotting.json` for a Ball
    Action Spotting edition (a data/catalog.py dataset); games last between `minutes` (each its own length).
    Returns (labels dir, predictions dir, games)."""
    rng = np.random.default_rng(seed)
    root = Path(root)
    games = games or [f"england_efl/2019-2020/2019-10-{index + 1:02d} - Home {index} - Away {index}"
                      for index in range(num_games)]
    for game in games:
        seconds = float(rng.uniform(*minutes)) * 60
        annotations = random_ball_annotations(rng, dataset, seconds, events_per_minute)
        write_json(root / "labels" / game / dataset.labels_file,
                   {"UrlLocal": game, "UrlYoutube": "", "halftime": game_time(1, int(seconds * 500)),
                    "annotations": annotations})
        write_game_predictions(root / "predictions", game, random_ball_predictions(rng, dataset, annotations,
                                                                                  seconds))
    return root / "labels", root / "predictions", games
