"""SoccerNet prediction files: `<game>/results_spotting.json` in a folder or a zip, read and written, for any dataset.

Schema (SoccerNet's `results_spotting.json`, docs/METHOD.md section 5): {"UrlLocal": game, "predictions": [{"gameTime":
"h - MM:SS", "label": class name, "position": "<integer ms>", "half": "1"|"2", "confidence": float, "team": "left"},
...]}; `team` where the dataset scores teams (Team-BAS), `half` 1 in a game of one video. The reader is strict where
the official evaluators would crash or silently misread: an unknown label or team, a position that is not an integer
number of milliseconds, a half other than 1 or 2, a missing key or a confidence that is not a number is an error
naming file and index. A NaN confidence is accepted, as the official evaluator accepts it (it raises the official
score), with a warning naming the file and the count.
"""

from __future__ import annotations

import dataclasses
import io
import json
import logging
import os
import zipfile
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

from data.catalog import Dataset
from data.labels import LabelError, game_time, parse_half, parse_label_name, parse_position_ms, parse_team
from utils.errors import InvalidInputError, MissingFileError
from utils.files import write_bytes, write_json

PREDICTIONS_FILE = "results_spotting.json"
PREDICTION_KEYS = ("label", "position", "half", "confidence")


@dataclasses.dataclass
class GamePredictions:
    """One game's predictions as parallel arrays, in file order (the order decides which duplicate wins)."""

    half: np.ndarray  # (N,) int64, 1 or 2
    position_ms: np.ndarray  # (N,) int64
    label: np.ndarray  # (N,) int64 class index
    confidence: np.ndarray  # (N,) float64
    team: np.ndarray  # (N,) int64 index into the dataset's scored teams, -1 without


def _parse_confidence(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise LabelError(f"{where}: 'confidence' must be a number, got {value!r}")
    try:
        return float(value)
    except ValueError:
        raise LabelError(f"{where}: 'confidence' must be a number, got {value!r}") from None


def _required_keys(dataset: Dataset) -> tuple[str, ...]:
    """The keys every prediction has: the Team-BAS metric reads the team and ignores the half (one timeline)."""
    if dataset.scorer == "team":
        return tuple(key for key in PREDICTION_KEYS if key != "half") + ("team",)
    return PREDICTION_KEYS + (("team",) if dataset.teams else ())


def _check_prediction(entry: Any, where: str, dataset: Dataset) -> tuple[int, int, int, float, int]:
    """Slow, precise validation of one prediction; returns (half, position_ms, label, confidence, team)."""
    if not isinstance(entry, dict):
        raise LabelError(f"{where}: expected an object, got {type(entry).__name__}")
    for key in _required_keys(dataset):
        if key not in entry:
            raise LabelError(f"{where}: missing key '{key}'")
    index = {name: number for number, name in enumerate(dataset.classes)}
    team = parse_team(entry["team"], where, dataset.teams) if dataset.teams else None
    half = 1 if dataset.scorer == "team" else parse_half(entry["half"], where, "half")
    return (half, parse_position_ms(entry["position"], where),
            parse_label_name(entry["label"], where, index), _parse_confidence(entry["confidence"], where),
            dataset.teams.index(team) if dataset.teams else -1)


def parse_predictions(data: Any, source: str, dataset: Dataset) -> GamePredictions:
    """Validate a decoded results_spotting.json of a game of `dataset`. `source` names the file in errors."""
    if not isinstance(data, dict) or not isinstance(data.get("predictions"), list):
        raise LabelError(f"{source}: expected an object with a 'predictions' list")
    entries = data["predictions"]
    try:
        return _parse_columns(entries, dataset)
    except (KeyError, ValueError, TypeError):
        pass  # something is off: find the first bad entry and name it
    columns = [_check_prediction(entry, f"{source}: prediction {index}", dataset) for index, entry in
               enumerate(entries)]
    half, position, label, confidence, team = (np.array(column) for column in zip(*columns))
    return GamePredictions(half, position, label, confidence, team)


def _parse_columns(entries: list, dataset: Dataset) -> GamePredictions:
    """Fast path for well-formed files (hundreds of thousands of predictions per evaluation): whole columns at once.

    Raises KeyError / ValueError / TypeError on anything unusual; the caller then checks entry by entry.
    """
    count = len(entries)
    index = {name: number for number, name in enumerate(dataset.classes)}
    label = np.fromiter((index[entry["label"]] for entry in entries), np.int64, count)
    team = np.fromiter((dataset.teams.index(entry["team"]) for entry in entries), np.int64, count) \
        if dataset.teams else np.full(count, -1, np.int64)
    columns = {}
    ignores_half = dataset.scorer == "team"
    for key, allowed, kind in (("position", {str, int}, int), ("half", {str, int}, int),
                               ("confidence", {float, int, str}, float)):
        raw = [1 if ignores_half else entry[key] for entry in entries] if key == "half" else \
            [entry[key] for entry in entries]
        if not set(map(type, raw)) <= allowed:  # floats for positions, booleans, None: the slow path decides
            raise TypeError(key)
        columns[key] = np.fromiter(map(kind, raw), np.int64 if kind is int else np.float64, count)
    if np.any(columns["position"] < 0) or not np.all((columns["half"] == 1) | (columns["half"] == 2)):
        raise ValueError("range")
    return GamePredictions(columns["half"], columns["position"], label, columns["confidence"], team)


class PredictionsSource:
    """A predictions tree: a folder or a zip holding `league/season/game/results_spotting.json`."""

    def __init__(self, path: str | os.PathLike, filename: str = PREDICTIONS_FILE):
        self.path = Path(path)
        self.filename = filename
        if not self.path.exists():
            raise MissingFileError(f"predictions not found: {self.path}")
        self._zip: zipfile.ZipFile | None = None
        if self.path.is_file():
            if not zipfile.is_zipfile(self.path):
                raise InvalidInputError(f"{self.path}: predictions must be a folder or a zip file")
            self._zip = zipfile.ZipFile(self.path)
            self._members = set(self._zip.namelist())

    def _member(self, game: str) -> str:
        return f"{game}/{self.filename}"

    def has(self, game: str) -> bool:
        if self._zip is not None:
            return self._member(game) in self._members
        return (self.path / game / self.filename).is_file()

    def describe(self, game: str) -> str:
        if self._zip is not None:
            return f"{self.path}:{self._member(game)}"
        return str(self.path / game / self.filename)

    def load(self, game: str, dataset: Dataset) -> GamePredictions:
        where = self.describe(game)
        try:
            if self._zip is not None:
                data = json.loads(self._zip.read(self._member(game)).decode("utf-8"))
            else:
                data = json.loads((self.path / game / self.filename).read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as error:
            raise LabelError(f"{where}: not valid JSON ({error})") from error
        predictions = parse_predictions(data, where, dataset)
        if (nan := int(np.isnan(predictions.confidence).sum())):
            logging.getLogger("comedian").warning(
                f"{where}: {nan} predictions have a NaN confidence; they are kept, as the official evaluator keeps "
                f"them, but they raise its score: fix the file that wrote them")
        return predictions


# ----------------------------------------------------------------------------------------------------------------------
# Writers
# ----------------------------------------------------------------------------------------------------------------------
def prediction_records(half: int, times_s: np.ndarray, columns: np.ndarray, scores: np.ndarray,
                       dataset: Dataset) -> list[dict]:
    """Official-schema prediction objects for one half.

    times_s, columns, scores: (N,) arrays; a column is a class, or a class and a team (data/catalog.py: columns).
    Positions are written as integer milliseconds in a string, confidences as floats. Callers keep at most one
    prediction per column per row of the metric's grid (`keep_best_per_row`).
    """
    records = []
    for time_s, column, score in zip(times_s.tolist(), columns.tolist(), scores.tolist()):
        position = int(round(time_s * 1000))
        label, team = dataset.label_of(column)
        record = {"gameTime": game_time(half, position), "label": label, "position": str(position),
                  "half": str(half), "confidence": float(score)}
        records.append(record if team is None else {**record, "team": team})
    return records


def keep_best_per_row(half: np.ndarray, position_ms: np.ndarray, column: np.ndarray, confidence: np.ndarray,
                      label_fps: Fraction) -> np.ndarray:
    """Indices of the predictions to keep so that each (half, column, row of the metric's grid at label_fps) holds
    only its highest confidence: 0.5 s at SoccerNet-v2's 2 rows per second, 40 ms at Ball Action Spotting's 25.

    The official evaluators keep the *last* prediction of a row in file order, not the best, so duplicates must be
    resolved before writing.
    """
    if len(half) == 0:
        return np.zeros(0, np.int64)
    rows = (float(label_fps) * (position_ms.astype(np.float64) / 1000)).astype(np.int64)  # as the evaluator bins
    order = np.lexsort((-confidence, rows, column, half))  # best first within each (half, column, row)
    key = np.stack([half[order], column[order], rows[order]], axis=1)
    first = np.ones(len(order), bool)
    first[1:] = np.any(key[1:] != key[:-1], axis=1)
    kept = order[first]
    return kept[np.lexsort((column[kept], position_ms[kept], half[kept]))]  # file order: half, time, column


def write_game_predictions(root: str | os.PathLike, game: str, predictions: list[dict]) -> Path:
    """Write `root/game/results_spotting.json` atomically."""
    return write_json(Path(root) / game / PREDICTIONS_FILE, {"UrlLocal": game, "predictions": predictions})


def write_challenge_zip(root: str | os.PathLike, zip_path: str | os.PathLike, games: list[str]) -> Path:
    """Zip `league/season/game/results_spotting.json` of each game, with no top folder (the EvalAI layout)."""
    root, zip_path = Path(root), Path(zip_path)
    missing = [game for game in games if not (root / game / PREDICTIONS_FILE).is_file()]
    if missing:
        raise MissingFileError(f"{len(missing)} game(s) have no {PREDICTIONS_FILE} under {root}: {missing}")
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for game in games:
            archive.write(root / game / PREDICTIONS_FILE, arcname=f"{game}/{PREDICTIONS_FILE}")
    return write_bytes(zip_path, buffer.getvalue())
