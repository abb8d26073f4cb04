"""From raw per-half score arrays on the frame grid of the run's data.fps (utils/rates.py) to SoccerNet predictions:
NMS, raw-score files, ensembles.

Raw scores (the format inference writes, so that ensembles and NMS sweeps need no model):
    <raw_dir>/raw_scores.json     {"format": RAW_FORMAT, "fps": 2 or 12.5, "classes": [the columns], "dataset": {...}}
    <raw_dir>/<game>/scores_half{1,2}.npy    float32 (T, C), one column per class (or class and team, data/catalog.py);
                                             row k is time k / fps seconds, sigmoid scores in [0, 1], max-merged over
                                             windows; a game of one video has half 1 only
NMS follows the official code (eztorch `evaluation/nms.py`; docs/METHOD.md section 5):
- hard: keep a slot when its score is >= every score within +-int(window / 2) slots and >= threshold (ties all kept);
- soft (the paper's: window 20, threshold 0.001, min_weight 0): repeatedly take the highest remaining score at its
  current value, multiply the scores within +-ceil(window / 2) slots by min_weight + (1 - min_weight) |d| / (window / 2)
  clipped to [0, 1], remove the taken slot; stop when the highest remaining score is below threshold. Taken slots
  with a score > 0 are the output.
- tdeed (T-DEED's Ball Action Spotting soft NMS, arturxe2/T-DEED util/eval.py: soft_non_maximum_supression: window
  12, threshold 0.01 at 12.5 fps): the same loop with a quadratic decay, a neighbour d slots away keeps (d / window)^2
  of its score within +-window slots; the teams of a class are one series (sn-teamspotting groups left and right under
  one class name), so a slot keeps its more confident team and the two teams decay each other.
The window may be one value or one per class (`eval.nms_window`, `--window`).
"""

from __future__ import annotations

import json
import os
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
from scipy.ndimage import maximum_filter1d

from data.catalog import BUILT_IN, Dataset, described_dataset
from evaluation.predictions import keep_best_per_row, prediction_records, write_game_predictions
from utils.errors import InvalidInputError, MissingFileError
from utils.files import save_array, write_json
from utils.rates import exact_fps, fps_to_json

RAW_FORMAT = "comedian-raw-scores-v1"
RAW_META = "raw_scores.json"


# ----------------------------------------------------------------------------------------------------------------------
# NMS on (T, C) score arrays
# ----------------------------------------------------------------------------------------------------------------------
def _per_class(window: int | list[int], num_classes: int) -> list[int]:
    windows = [window] * num_classes if isinstance(window, int) else list(window)
    if len(windows) != num_classes:
        raise ValueError(f"per-class NMS windows: got {len(windows)} values for {num_classes} classes")
    return windows


def hard_nms(scores: np.ndarray, window: int | list[int], threshold: float) -> np.ndarray:
    """(T, C) bool: slots that are maxima (ties included) within +-int(window/2) and >= threshold."""
    keep = np.zeros(scores.shape, bool)
    for c, class_window in enumerate(_per_class(window, scores.shape[1])):
        radius = int(class_window / 2)
        local_max = maximum_filter1d(scores[:, c], size=2 * radius + 1, mode="constant", cval=-np.inf)
        keep[:, c] = (scores[:, c] >= local_max) & (scores[:, c] >= threshold)
    return keep


def soft_nms(scores: np.ndarray, window: int | list[int], threshold: float, min_weight: float = 0.0,
             decay: str = "linear") -> np.ndarray:
    """(T, C) float: each slot's score when it was taken by soft NMS, 0 where it was not taken. decay "linear" (the
    paper's, within +-ceil(window / 2)) or "quadratic" (T-DEED's, (d / window)^2 within +-window; min_weight unused).

    The sequential algorithm takes one slot at a time. Here every slot that would be taken before all of its
    neighbours (it beats every remaining neighbour within the decay radius, ties to the earlier slot as argmax
    does) is taken in the same round, and their decays, which touch disjoint neighbours or commute, are applied
    together. The result equals the sequential one (tests/test_postprocess.py checks it against a loop) up to the
    rounding of the decay products, in a few dozen array rounds instead of thousands of Python steps.
    """
    scores = np.asarray(scores, np.float64)
    num_slots, num_classes = scores.shape
    windows = np.array(_per_class(window, num_classes), np.float64)
    radius = windows / 2.0 if decay == "linear" else windows  # (C,)
    reach = int(np.ceil(radius.max())) if num_classes else 0
    # decay weight at distance d = 1..reach, per class: (reach, C); beyond a class's own ceil(radius) the weight is 1
    distance = np.arange(1, reach + 1)[:, None]
    if decay == "linear":
        weights = np.clip(min_weight + (1.0 - min_weight) * distance / radius[None, :], 0.0, 1.0)
    else:
        weights = np.minimum((distance / radius[None, :]) ** 2, 1.0)
    weights[distance > np.ceil(radius)[None, :]] = 1.0

    taken = np.zeros_like(scores)
    remaining = scores.copy()
    alive = remaining >= threshold  # a slot below the threshold is never taken: it can neither win nor decay others
    while alive.any():
        contest = np.where(alive, remaining, -np.inf)
        padded = np.pad(contest, ((reach, reach), (0, 0)), constant_values=-np.inf)
        wins = alive.copy()
        for d in range(1, reach + 1):
            in_reach = d <= np.ceil(radius)  # (C,): class windows may differ
            earlier = padded[reach - d:reach - d + num_slots]
            later = padded[reach + d:reach + d + num_slots]
            wins &= ~in_reach | ((contest > earlier) & (contest >= later))
        taken[wins] = remaining[wins]
        alive &= ~wins
        factor = np.ones((num_slots + 2 * reach, num_classes))  # padded so that decays may spill past the ends
        for d in range(1, reach + 1):
            decay = np.where(wins, weights[d - 1], 1.0)  # what a slot taken now does to the slots d away
            factor[reach - d:reach - d + num_slots] *= decay
            factor[reach + d:reach + d + num_slots] *= decay
        remaining *= factor[reach:reach + num_slots]
        alive &= remaining >= threshold
    return np.where(taken > 0, taken, 0.0)


def tdeed_nms(scores: np.ndarray, window: int | list[int], threshold: float, teams: int = 0) -> np.ndarray:
    """(T, C) float: T-DEED's soft NMS (quadratic decay). With teams (C = classes x teams, class-major), each class's
    teams are one series: a slot keeps only its more confident team (the other, 0 slots away, decays to 0) and the
    taken score goes back to that team's column."""
    scores = np.asarray(scores, np.float64)
    if not teams:
        return soft_nms(scores, window, threshold, decay="quadratic")
    per_team = scores.reshape(len(scores), -1, teams)  # (T, classes, teams)
    best = per_team.argmax(axis=2)  # (T, classes): the earlier team on a tie, as T-DEED's max over its event list
    series = np.take_along_axis(per_team, best[..., None], axis=2)[..., 0]  # (T, classes)
    windows = _per_class(window, scores.shape[1])[::teams]  # a class's teams share its window
    taken = soft_nms(series, windows, threshold, decay="quadratic")
    kept = np.zeros_like(per_team)
    np.put_along_axis(kept, best[..., None], taken[..., None], axis=2)
    return kept.reshape(scores.shape)


def scores_to_predictions(scores: np.ndarray, fps: Fraction, nms: str, window: int | list[int], threshold: float,
                          min_weight: float = 0.0, teams: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One half's (T, C) scores -> (times in seconds, column indices, confidences) after NMS, sorted by time (teams:
    per class, for tdeed's grouping)."""
    if nms in ("soft", "tdeed"):
        kept = soft_nms(scores, window, threshold, min_weight) if nms == "soft" else \
            tdeed_nms(scores, window, threshold, teams)
        slots, classes = np.nonzero(kept > 0)
        confidence = kept[slots, classes]
    elif nms == "hard":
        slots, classes = np.nonzero(hard_nms(scores, window, threshold))
        confidence = np.asarray(scores, np.float64)[slots, classes]
    elif nms == "none":
        slots, classes = np.nonzero(np.asarray(scores) >= threshold)
        confidence = np.asarray(scores, np.float64)[slots, classes]
    else:
        raise ValueError(f"unknown NMS type {nms!r}: expected 'soft', 'tdeed', 'hard' or 'none'")
    return slots / float(fps), classes, confidence


def game_predictions(half_scores: dict[int, np.ndarray], eval_cfg: Any, dataset: Dataset,
                     fps: Fraction) -> list[dict]:
    """Official-schema prediction list of one game of `dataset` after the NMS of an `eval` config section
    (configs/schema.py: EvalConfig: nms, nms_window, nms_threshold, nms_min_weight), at most one per (half, column,
    row of the metric's grid): its best."""
    halves, positions, labels, confidences = [], [], [], []
    for half, scores in sorted(half_scores.items()):
        times, classes, confidence = scores_to_predictions(scores, fps, eval_cfg.nms, eval_cfg.nms_window,
                                                           eval_cfg.nms_threshold, eval_cfg.nms_min_weight,
                                                           len(dataset.teams))
        halves.append(np.full(len(times), half))
        positions.append(np.round(times * 1000).astype(np.int64))
        labels.append(classes)
        confidences.append(confidence)
    half, position, label, confidence = (np.concatenate(x) for x in (halves, positions, labels, confidences))
    kept = keep_best_per_row(half, position, label, confidence, dataset.label_fps)
    records = []
    for h in sorted(half_scores):
        rows = kept[half[kept] == h]
        records += prediction_records(h, position[rows] / 1000.0, label[rows], confidence[rows], dataset)
    return records


# ----------------------------------------------------------------------------------------------------------------------
# Raw score files and ensembles
# ----------------------------------------------------------------------------------------------------------------------
def raw_scores_path(raw_dir: str | os.PathLike, game: str, half: int) -> Path:
    return Path(raw_dir) / game / f"scores_half{half}.npy"


def write_raw_meta(raw_dir: str | os.PathLike, fps: Fraction, dataset: Dataset) -> None:
    write_json(Path(raw_dir) / RAW_META, {"format": RAW_FORMAT, "fps": fps_to_json(fps),
                                          "classes": list(dataset.columns), "dataset": dataset.describe()})


def write_raw_scores(raw_dir: str | os.PathLike, game: str, half: int, scores: np.ndarray) -> Path:
    """Save one half's (T, C) scores as float32 .npy (atomically), C the columns of the folder's meta (written
    first, by `write_raw_meta`)."""
    columns = len(read_raw_meta(raw_dir)[1].columns)
    if scores.ndim != 2 or scores.shape[1] != columns:
        raise ValueError(f"raw scores of {game} half {half}: expected shape (T, {columns}), got {scores.shape}")
    return save_array(raw_scores_path(raw_dir, game, half), scores.astype(np.float32))


def read_raw_meta(raw_dir: str | os.PathLike) -> tuple[Fraction, Dataset]:
    """(frame rate, dataset) of a raw-scores folder (one written before datasets were described: SoccerNet-v2's)."""
    path = Path(raw_dir) / RAW_META
    if not path.is_file():
        raise MissingFileError(f"{raw_dir} is not a raw-scores folder: {RAW_META} is missing")
    meta = json.loads(path.read_text(encoding="utf-8"))
    dataset = described_dataset(meta["dataset"]) if "dataset" in meta else BUILT_IN["soccernet_v2"]
    if meta.get("format") != RAW_FORMAT or meta.get("classes") != list(dataset.columns):
        raise InvalidInputError(f"{path}: expected format {RAW_FORMAT!r} with the columns of {dataset.name}, got "
                                f"{meta}")
    return exact_fps(meta["fps"]), dataset


def raw_games(raw_dir: str | os.PathLike) -> list[str]:
    """Games with raw scores under raw_dir (every folder holding a scores_half1.npy)."""
    return sorted(str(p.parent.relative_to(raw_dir).as_posix()) for p in Path(raw_dir).rglob("scores_half1.npy"))


def read_raw_scores(raw_dir: str | os.PathLike, game: str) -> dict[int, np.ndarray]:
    """{half: (T, C) scores} of every half of a game that has raw scores."""
    paths = sorted(Path(raw_dir, game).glob("scores_half*.npy"))
    if not paths:
        raise MissingFileError(f"raw scores missing: {raw_scores_path(raw_dir, game, 1)}")
    return {int(path.stem.removeprefix("scores_half")): np.load(path) for path in paths}


def ensemble_raw_scores(raw_dirs: list[str | os.PathLike], out_dir: str | os.PathLike) -> list[str]:
    """Average the raw scores of several runs game by game and half by half (the paper's ensemble rows).

    Every run must hold the same games, at the same frame rate, with the same number of slots per half.
    """
    if len(raw_dirs) < 2:
        raise InvalidInputError("an ensemble needs at least two raw-score folders")
    metas = [read_raw_meta(d) for d in raw_dirs]
    if len({fps for fps, _ in metas}) != 1 or len({dataset.columns for _, dataset in metas}) != 1:
        raise InvalidInputError(f"raw-score folders have different frame rates or columns: "
                                f"{[(fps, dataset.name) for fps, dataset in metas]}")
    games = raw_games(raw_dirs[0])
    for other in raw_dirs[1:]:
        if raw_games(other) != games:
            missing = sorted(set(games) ^ set(raw_games(other)))
            raise InvalidInputError(f"{other} and {raw_dirs[0]} hold different games, e.g. {missing[:5]}")
    write_raw_meta(out_dir, *metas[0])
    for game in games:
        runs = [read_raw_scores(d, game) for d in raw_dirs]
        for half in runs[0]:
            shapes = {run[half].shape if half in run else None for run in runs}
            if len(shapes) != 1:
                raise InvalidInputError(f"{game} half {half}: runs disagree on the number of slots: {sorted(shapes)}")
            write_raw_scores(out_dir, game, half, np.mean([run[half] for run in runs], axis=0))
    return games


def postprocess_raw(raw_dir: str | os.PathLike, out_dir: str | os.PathLike, eval_cfg: Any) -> list[str]:
    """Raw scores -> `out_dir/<game>/results_spotting.json` for every game of raw_dir (eval_cfg: the NMS)."""
    fps, dataset = read_raw_meta(raw_dir)
    games = raw_games(raw_dir)
    if not games:
        raise MissingFileError(f"no raw scores (<game>/scores_half1.npy) under {raw_dir}")
    for game in games:
        write_game_predictions(out_dir, game, game_predictions(read_raw_scores(raw_dir, game), eval_cfg, dataset, fps))
    return games


def write_spotted(out_dir: str | os.PathLike, name: str, scores: dict[int, np.ndarray], eval_cfg,
                  dataset: Dataset, fps: Fraction) -> tuple[list[dict], Path]:
    """A spotted video's scores through eval_cfg's NMS: writes out_dir/name/raw/ (the raw scores) and
    out_dir/name/results_spotting.json; returns the predictions and that file."""
    folder = Path(out_dir) / name
    write_raw_meta(folder / "raw", fps, dataset)
    for half, half_scores in scores.items():
        write_raw_scores(folder / "raw", ".", half, half_scores)
    predictions = game_predictions(scores, eval_cfg, dataset, fps)
    return predictions, write_game_predictions(out_dir, name, predictions)
