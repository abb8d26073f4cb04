"""SoccerNet prediction files: `league/season/game/results_spotting.json` in a folder or a zip, read and written.

Schema (SoccerNet's `results_spotting.json`, docs/METHOD.md section 5): {"UrlLocal": game, "predictions": [{"gameTime": "h - MM:SS", "label": class name,
"position": "<integer ms>", "half": "1"|"2", "confidence": float}, ...]}. The reader is strict where the official
evaluator would crash or silently misread: an unknown label, a position that is not an integer number of milliseconds,
a half other than 1 or 2, a missing key or a confidence that is not a number is an error naming file and index. A NaN
confidence is accepted, as the official evaluator accepts it (it raises the official score), with a warning naming the
file and the count.
"""

from __future__ import annotations

import dataclasses
import io
import json
import logging
import os
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from data.labels import (CLASS_INDEX, CLASSES, LabelError, game_time, parse_half, parse_label_name,
                         parse_position_ms)
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


def _parse_confidence(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise LabelError(f"{where}: 'confidence' must be a number, got {value!r}")
    try:
        return float(value)
    except ValueError:
        raise LabelError(f"{where}: 'confidence' must be a number, got {value!r}") from None


def _check_prediction(entry: Any, where: str) -> tuple[int, int, int, float]:
    """Slow, precise validation of one prediction; returns (half, position_ms, label, confidence)."""
    if not isinstance(entry, dict):
        raise LabelError(f"{where}: expected an object, got {type(entry).__name__}")
    for key in PREDICTION_KEYS:
        if key not in entry:
            raise LabelError(f"{where}: missing key '{key}'")
    return (parse_half(entry["half"], where, "half"), parse_position_ms(entry["position"], where),
            parse_label_name(entry["label"], where), _parse_confidence(entry["confidence"], where))


def parse_predictions(data: Any, source: str) -> GamePredictions:
    """Validate a decoded results_spotting.json. `source` names the file in errors."""
    if not isinstance(data, dict) or not isinstance(data.get("predictions"), list):
        raise LabelError(f"{source}: expected an object with a 'predictions' list")
    entries = data["predictions"]
    try:
        return _parse_columns(entries)
    except (KeyError, ValueError, TypeError):
        pass  # something is off: find the first bad entry and name it
    columns = [_check_prediction(entry, f"{source}: prediction {index}") for index, entry in enumerate(entries)]
    half, position, label, confidence = (np.array(column) for column in zip(*columns))
    return GamePredictions(half, position, label, confidence)


def _parse_columns(entries: list) -> GamePredictions:
    """Fast path for well-formed files (hundreds of thousands of predictions per evaluation): whole columns at once.

    Raises KeyError / ValueError / TypeError on anything unusual; the caller then checks entry by entry.
    """
    if not entries:
        empty = np.zeros(0, np.int64)
        return GamePredictions(empty, empty, empty, np.zeros(0, np.float64))
    count = len(entries)
    label = np.fromiter((CLASS_INDEX[entry["label"]] for entry in entries), np.int64, count)
    columns = {}
    for key, allowed, kind in (("position", {str, int}, int), ("half", {str, int}, int),
                               ("confidence", {float, int, str}, float)):
        raw = [entry[key] for entry in entries]
        if not set(map(type, raw)) <= allowed:  # floats for positions, booleans, None: the slow path decides
            raise TypeError(key)
        columns[key] = np.fromiter(map(kind, raw), np.int64 if kind is int else np.float64, count)
    confidence = columns["confidence"]
    if np.any(columns["position"] < 0) or not np.all((columns["half"] == 1) | (columns["half"] == 2)):
        raise ValueError("range")
    return GamePredictions(columns["half"], columns["position"], label, confidence)


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

    def load(self, game: str) -> GamePredictions:
        where = self.describe(game)
        try:
            if self._zip is not None:
                data = json.loads(self._zip.read(self._member(game)).decode("utf-8"))
            else:
                data = json.loads((self.path / game / self.filename).read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as error:
            raise LabelError(f"{where}: not valid JSON ({error})") from error
        predictions = parse_predictions(data, where)
        if (nan := int(np.isnan(predictions.confidence).sum())):
            logging.getLogger("comedian").warning(
                f"{where}: {nan} predictions have a NaN confidence; they are kept, as the official evaluator keeps "
                f"them, but they raise its score: fix the file that wrote them")
        return predictions


# ----------------------------------------------------------------------------------------------------------------------
# Writers
# ----------------------------------------------------------------------------------------------------------------------
def prediction_records(half: int, times_s: np.ndarray, classes: np.ndarray, scores: np.ndarray) -> list[dict]:
    """Official-schema prediction objects for one half.

    times_s, classes, scores: (N,) arrays. Positions are written as integer milliseconds in a string, confidences as
    floats. Callers keep at most one prediction per class per 0.5 s bin (`keep_best_per_bin`).
    """
    records = []
    for time_s, class_index, score in zip(times_s.tolist(), classes.tolist(), scores.tolist()):
        position = int(round(time_s * 1000))
        records.append({"gameTime": game_time(half, position), "label": CLASSES[class_index],
                        "position": str(position), "half": str(half), "confidence": float(score)})
    return records


def keep_best_per_bin(half: np.ndarray, position_ms: np.ndarray, label: np.ndarray, confidence: np.ndarray,
                      bin_ms: int = 500) -> np.ndarray:
    """Indices of the predictions to keep so that each (half, class, 0.5 s bin) holds only its highest confidence.

    The official evaluator keeps the *last* prediction of a bin in file order, not the best, so duplicates must be
    resolved before writing.
    """
    if len(half) == 0:
        return np.zeros(0, np.int64)
    bins = position_ms // bin_ms
    order = np.lexsort((-confidence, bins, label, half))  # best first within each (half, class, bin)
    key = np.stack([half[order], label[order], bins[order]], axis=1)
    first = np.ones(len(order), bool)
    first[1:] = np.any(key[1:] != key[:-1], axis=1)
    kept = order[first]
    return kept[np.lexsort((label[kept], position_ms[kept], half[kept]))]  # file order: half, time, class


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
