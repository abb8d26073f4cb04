"""Score a predictions tree (folder or zip) against a dataset's labels: the importable form of `evaluate.py score`.

Every dataset is scored as its official evaluator scores it (data/catalog.py: Dataset.scorer):
- "pip" (SoccerNet-v2, Ball Action Spotting 2023 and 2024): SoccerNet's `ActionSpotting.evaluate` at the dataset's
  grid and classes: labels by their gameTime half, predictions by their `half`;
- "team" (Team-BAS 2025, manifests with teams): the official Team-BAS metric (sn-teamspotting's
  `mAPevaluateCodabench` and `compute_amAP`): only half-1 labels, the predictions' half ignored; the average-mAP of
  every class-and-team column, combined per class weighted by each column's target count (a visible event counts
  +1, an unshown one -1), then averaged over the classes: `team_a_mAP*`; and the same score with the team dropped
  (a left and a right prediction of one class in one row collapse to the later one in file order): `a_mAP*`.
  A class without a target in the scored games has no team score (the official code gives NaN): it is reported
  absent (None), left out of the mean, and named in a warning.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import json
import logging
import multiprocessing
import os
from pathlib import Path
from typing import Literal

import numpy as np

from data.catalog import Dataset, SoccerNetDataset
from data.labels import GAME_TIME_PATTERN, VISIBILITIES, load_json
from evaluation.metric import KEY_STRIDE, GameKeys, Grid, average_map, build_spotting_set, game_keys
from evaluation.predictions import PredictionsSource
from utils.errors import InvalidInputError, MissingFileError
from utils.files import write_json


@dataclasses.dataclass
class LabelArrays:
    """One game's labels as parallel arrays, in file order (the last of a (half, column, row) wins)."""

    half: np.ndarray  # (N,) int64
    position_ms: np.ndarray  # (N,) int64
    label: np.ndarray  # (N,) int64 class index
    team: np.ndarray  # (N,) int64 index into the dataset's scored teams, -1 without
    visible: np.ndarray  # (N,) bool
    dropped: int = 0  # labels outside the classes, dropped with on_unknown="warn"


def _fast_label_arrays(dataset: SoccerNetDataset, path: Path) -> LabelArrays:
    """Well-formed SoccerNet labels files read column-wise; KeyError / TypeError / ValueError on anything unusual."""
    entries = load_json(path)["annotations"]
    index = {name: number for number, name in enumerate(dataset.classes)}
    for key in dataset.required:
        _ = [entry[key] for entry in entries]
    label = np.array([index[entry["label"]] for entry in entries], np.int64)
    team = np.array([dataset.teams.index(entry["team"]) if dataset.teams else -1 for entry in entries], np.int64)
    game_times = [entry["gameTime"] for entry in entries]
    half = np.array([int(text[0]) if text[1:4] == " - " else 0 for text in game_times], np.int64)
    raw_position = [entry["position"] for entry in entries]
    visibility = [entry.get("visibility", "visible") for entry in entries]
    if (not set(map(type, raw_position)) <= {str} or not set(visibility) <= set(VISIBILITIES)
            or not all(map(GAME_TIME_PATTERN.match, game_times)) or not np.all((half == 1) | (half == 2))):
        raise ValueError("unusual entry")
    position = np.fromiter(map(int, raw_position), np.int64, len(entries))
    if np.any(position < 0):
        raise ValueError("negative position")
    return LabelArrays(half, position, label, team, np.array(visibility, dtype=object) == "visible")


def label_arrays(dataset: Dataset, root: str | os.PathLike, game: str,
                 on_unknown: Literal["error", "warn"] = "error") -> LabelArrays:
    """A game's labels as arrays. Well-formed SoccerNet files are read column-wise; anything unusual goes through
    the dataset's strict typed reader, which raises the error naming the annotation and field (or, with
    on_unknown="warn", drops and counts unknown labels)."""
    if isinstance(dataset, SoccerNetDataset):
        try:
            return _fast_label_arrays(dataset, dataset.labels_path(root, game))
        except (KeyError, TypeError, ValueError, IndexError):
            pass
    labels = dataset.labels(root, game, on_unknown)
    rows = [(a.half, a.position_ms, a.label, dataset.teams.index(a.team) if dataset.teams else -1, a.visible)
            for a in labels.annotations]
    columns = [np.array(column, np.int64) for column in zip(*rows)] if rows else [np.zeros(0, np.int64)] * 5
    return LabelArrays(*columns[:4], columns[4].astype(bool), labels.unknown_labels)


def select_games(dataset: Dataset, labels: str | os.PathLike, split: str | None = None,
                 games_file: str | None = None) -> list[str]:
    """The games to score: an official split, a games file, or every game folder under `labels` holding a labels
    file; for a manifest dataset, the games of the manifest `labels`."""
    if split and games_file:
        raise InvalidInputError("give a split or a games file, not both")
    if split or games_file or not isinstance(dataset, SoccerNetDataset):
        return dataset.games(split or games_file or str(labels), labels)
    games = dataset.discover(labels)
    if not games:
        raise MissingFileError(f"no <league>/<season>/<game>/{dataset.labels_file} under {labels}")
    return games


_SOURCES: dict[tuple[str, int], PredictionsSource] = {}


def _load_game(dataset: Dataset, labels_root: str, predictions: str, game: str,
               on_unknown: str) -> tuple[GameKeys, GameKeys | None, np.ndarray, int]:
    """One game, read and binned: (its keys, its keys with teams or None, its target count per column, the labels
    dropped). Runs in worker processes: each opens its own predictions source (a zip's file offset must not be shared
    between processes)."""
    key = (predictions, os.getpid())
    if key not in _SOURCES:
        _SOURCES[key] = PredictionsSource(predictions)
    labels = label_arrays(dataset, labels_root, game, on_unknown)
    p = _SOURCES[key].load(game, dataset)
    grid, num_classes = Grid.of(dataset), len(dataset.classes)
    if dataset.scorer != "team":
        keys = game_keys((labels.half, labels.position_ms, labels.label, labels.visible),
                         (p.half, p.position_ms, p.label, p.confidence), num_classes, grid)
        return keys, None, np.zeros(0), labels.dropped
    first = labels.half == 1  # the official Team-BAS metric reads half-1 labels only, and ignores the predictions' half
    teams = len(dataset.teams)
    label_half, prediction_half = np.ones(int(first.sum()), np.int64), np.ones(len(p.half), np.int64)
    keys = game_keys((label_half, labels.position_ms[first], labels.label[first], labels.visible[first]),
                     (prediction_half, p.position_ms, p.label, p.confidence), num_classes, grid)
    team_keys = game_keys((label_half, labels.position_ms[first], labels.label[first] * teams + labels.team[first],
                           labels.visible[first]),
                          (prediction_half, p.position_ms, p.label * teams + p.team, p.confidence),
                          num_classes * teams, grid)
    # a column's target count, as the official code sums its target vectors: after the last-wins of a row
    counts = np.bincount((team_keys.gt_key // KEY_STRIDE) % (num_classes * teams), weights=team_keys.gt_value,
                         minlength=num_classes * teams)
    return keys, team_keys, counts, labels.dropped


def default_workers(num_games: int) -> int:
    """One process per core, up to 8, when there are enough games to pay for the forks."""
    return min(os.cpu_count() or 1, 8) if num_games >= 16 else 0


def _load_games(dataset: Dataset, labels_root: str, predictions: str, games: list[str], on_unknown: str,
                workers: int) -> list[tuple]:
    """Decoding JSON is most of the scorer's time, so games are read by `workers` forked processes (0: here)."""
    arguments = [(dataset, labels_root, predictions, game, on_unknown) for game in games]
    if workers <= 1 or "fork" not in multiprocessing.get_all_start_methods():
        return [_load_game(*args) for args in arguments]
    with concurrent.futures.ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("fork")) as pool:
        return list(pool.map(_load_game, *zip(*arguments), chunksize=max(1, len(games) // (4 * workers))))


def team_scores(results: dict, counts: np.ndarray, dataset: Dataset) -> tuple[dict, list[str]]:
    """The official Team-BAS combination of per-column scores: per class, the scores of its team columns weighted
    by their target counts; the mean over the classes that have targets. Returns the `team_` entries of every metric
    and the classes without targets."""
    teams, out = len(dataset.teams), {}
    weights = counts.reshape(len(dataset.classes), teams)  # (C, teams)
    totals = weights.sum(axis=1)
    absent = [name for name, total in zip(dataset.classes, totals) if total == 0]
    for metric, entry in results.items():
        out[metric] = {}
        for suffix in ("", "_visible", "_unshown"):
            per_column = np.asarray(entry[f"a_mAP_per_class{suffix}"]).reshape(len(dataset.classes), teams)
            with np.errstate(divide="ignore", invalid="ignore"):
                per_class = (per_column * weights).sum(axis=1) / totals
            values = [None if total == 0 else float(value) for value, total in zip(per_class, totals)]
            present = [value for value in values if value is not None]
            out[metric][f"team_a_mAP{suffix}"] = float(np.mean(present)) if present else None
            out[metric][f"team_a_mAP_per_class{suffix}"] = values
    return out, absent


def score(dataset: Dataset, labels_root: str | os.PathLike, predictions: str | os.PathLike, games: list[str],
          metrics: tuple[str, ...] | None = None, on_unknown: Literal["error", "warn"] = "error",
          workers: int | None = None) -> dict:
    """Average-mAP of every requested metric (default: the dataset's), in the official evaluator's output format
    (fractions in [0, 1], per-class values as lists in class order; with teams, the `team_` entries too).

    Every game needs its labels and a predictions file; all missing ones are reported in one error.
    workers: processes reading the files (None: automatic; 0: none, e.g. inside a training loop).
    """
    metrics = metrics or dataset.metrics
    if isinstance(dataset, SoccerNetDataset):
        missing = [str(dataset.labels_path(labels_root, game)) for game in games
                   if not dataset.labels_path(labels_root, game).is_file()]
        if missing:
            raise MissingFileError(f"{len(missing)} of {len(games)} games have no labels file:\n  " +
                                   "\n  ".join(missing))
    source = PredictionsSource(predictions)
    missing = [source.describe(game) for game in games if not source.has(game)]
    if missing:
        listed = "\n  ".join(missing)
        raise MissingFileError(f"{len(missing)} of {len(games)} games have no predictions file:\n  {listed}")
    workers = default_workers(len(games)) if workers is None else workers
    loaded = _load_games(dataset, str(labels_root), str(predictions), games, on_unknown, workers)
    grid = Grid.of(dataset)
    results = average_map(build_spotting_set([keys for keys, *_ in loaded], len(dataset.classes), grid), metrics,
                          workers)
    if dataset.scorer == "team":
        per_column = average_map(build_spotting_set([keys for _, keys, *_ in loaded], len(dataset.columns), grid),
                                 metrics, workers)
        team, absent = team_scores(per_column, sum(counts for _, _, counts, _ in loaded), dataset)
        for metric in results:
            results[metric].update(team[metric])
        if absent:
            logging.getLogger("comedian").warning(
                f"no target of {', '.join(absent)} in the {len(games)} scored games (or as many unshown as visible "
                f"ones): the team scores leave {'it' if len(absent) == 1 else 'them'} out (reported null; the official "
                f"Team-BAS code gives NaN)")
    unknown = sum(dropped for *_, dropped in loaded)
    if unknown:
        for entry in results.values():
            entry["unknown_labels_dropped"] = unknown
    return results


def format_table(results: dict, dataset: Dataset) -> str:
    """Metric rows (overall / visible / unshown, in %, and with teams the team scores), then one row per class with a
    column per metric."""
    metrics = list(results)
    teams = bool(dataset.teams)

    def percent(value: float | None, width: int) -> str:
        return f"{'-':>{width}}" if value is None else f"{100 * value:{width}.2f}"

    lines = [f"{'metric':<8} {'a-mAP':>7} {'visible':>8} {'unshown':>8}" + (f" {'team':>7} {'visible':>8}"
                                                                             if teams else "")]
    for metric in metrics:
        entry = results[metric]
        team = f" {percent(entry['team_a_mAP'], 7)} {percent(entry['team_a_mAP_visible'], 8)}" if teams else ""
        lines.append(f"{metric:<8} {percent(entry['a_mAP'], 7)} {percent(entry['a_mAP_visible'], 8)} "
                     f"{percent(entry['a_mAP_unshown'], 8)}" + team)
    lines.append("")
    width = max(20, max(len(name) for name in dataset.classes) + 2)
    lines.append(f"{'class':<{width}}" + "".join(f"{metric:>8}" for metric in metrics)
                 + ("".join(f"{metric + ' team':>12}" for metric in metrics) if teams else ""))
    for c, name in enumerate(dataset.classes):
        team = "".join(percent(results[m]["team_a_mAP_per_class"][c], 12) for m in metrics) if teams else ""
        lines.append(f"{name:<{width}}" + "".join(percent(results[m]["a_mAP_per_class"][c], 8) for m in metrics)
                     + team)
    return "\n".join(lines)


def write_results(results: dict, path: str | os.PathLike, dataset: Dataset) -> None:
    """JSON with per-class values keyed by class name (null for a class absent from the team scores), as
    documented for `evaluate.py score --json`."""
    out = {}
    for metric, entry in results.items():
        out[metric] = {key: (dict(zip(dataset.classes, value)) if "_per_class" in key else value)
                       for key, value in entry.items()}
    write_json(path, out, indent=2)


PAPER_ROWS = {  # SoccerNet-v2 test split, tight / loose (docs/METHOD.md section 9: the confirmed headline numbers)
    "ViViT-T": (70.7, 76.1), "ViSwin-T": (71.6, 76.6),
    "ViViT-T ensemble": (72.0, 77.1), "ViSwin-T ensemble": (73.1, 77.6),
}


def read_scores(name: str, path: str | os.PathLike) -> tuple[str, dict]:
    """(name, the scores.json `write_results` wrote at path), or an error naming the run, the file and what is off."""
    path = Path(path)
    if not path.is_file():
        raise MissingFileError(f"--run {name}: {path} not found (run evaluate.py test first)")
    try:
        scores = json.loads(path.read_text(encoding="utf-8"))
        values = [value for entry in scores.values() for value in
                  (entry["a_mAP"], *entry["a_mAP_per_class"].values())]
        if not all(isinstance(value, (int, float)) for value in values):
            raise TypeError("a value is not a number")
    except (json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError, ValueError, AttributeError) as error:
        raise InvalidInputError(f"--run {name}: {path} is not a scores.json of evaluate.py test or score --json "
                                f"({type(error).__name__}: {error})") from None
    return name, scores


def runs_table(runs: dict[str, dict], paper: bool = False, per_class: bool = False) -> str:
    """Markdown table of several runs' scores.json (as `write_results` writes them): a column per metric they hold
    (SoccerNet-v2's tight and loose: next to the paper's numbers, a run named like a paper row gets its numbers
    beside it; paper=True lists the rows no run fills); per_class adds per-class values."""
    metrics = list(dict.fromkeys(metric for scores in runs.values() for metric in scores))
    v2 = metrics[:2] == ["tight", "loose"]
    lines = ["| run | " + " | ".join(f"{metric} a-mAP" for metric in metrics) + (" | paper tight | paper loose" * v2)
             + " |", "|---|" + "---|" * (len(metrics) + 2 * v2)]
    for name, scores in runs.items():
        row = PAPER_ROWS.get(name, ("", ""))
        cells = [f"{100 * scores[metric]['a_mAP']:.2f}" if metric in scores else "" for metric in metrics]
        lines.append(f"| {name} | " + " | ".join(cells + ([str(row[0]), str(row[1])] if v2 else [])) + " |")
    if paper and v2:
        for name, (tight, loose) in PAPER_ROWS.items():
            if name not in runs:
                lines.append(f"| {name} (paper) |" + " |" * len(metrics) + f" {tight} | {loose} |")
    if per_class:
        classes = list(dict.fromkeys(cls for scores in runs.values() for entry in scores.values()
                                     for cls in entry["a_mAP_per_class"]))
        lines += ["", "| class | " + " | ".join(f"{name} {metric}" for name in runs for metric in metrics) + " |",
                  "|---|" + "---|" * (len(runs) * len(metrics))]
        for cls in classes:
            cells = " | ".join(f"{100 * s[m]['a_mAP_per_class'][cls]:.1f}" if m in s else ""
                               for s in runs.values() for m in metrics)
            lines.append(f"| {cls} | {cells} |")
    return "\n".join(lines)
