"""Score a predictions tree (folder or zip) against a labels tree: the importable form of `evaluate.py score`."""

from __future__ import annotations

import concurrent.futures
import json
import multiprocessing
import os
from pathlib import Path
from typing import Literal

import numpy as np

from data.games import check_games_exist, discover_games, split_games
from data.labels import (CLASS_INDEX, CLASSES, GAME_TIME_PATTERN, LABELS_FILE, VISIBILITIES, load_json,
                         parse_labels)
from evaluation.metric import GameKeys, average_map, build_spotting_set, game_keys
from evaluation.predictions import PredictionsSource
from utils.errors import InvalidInputError, MissingFileError
from utils.files import write_json


def label_arrays(path: Path, on_unknown: Literal["error", "warn"] = "error") -> tuple[tuple, int]:
    """((half, position_ms, label, visible) arrays in file order, number of dropped unknown labels).

    Well-formed files are read column-wise; anything unusual goes through the strict typed parser, which raises the
    error naming the annotation and field (or, with on_unknown="warn", drops and counts unknown labels).
    """
    data = load_json(path)
    try:
        entries = data["annotations"]
        label = np.array([CLASS_INDEX[entry["label"]] for entry in entries], np.int64)
        game_times = [entry["gameTime"] for entry in entries]
        half = np.array([int(text[0]) if text[1:4] == " - " else 0 for text in game_times], np.int64)
        raw_position = [entry["position"] for entry in entries]
        visibility = [entry["visibility"] for entry in entries]
        _ = [entry["team"] for entry in entries]
        if (not set(map(type, raw_position)) <= {str} or not set(visibility) <= set(VISIBILITIES)
                or not all(map(GAME_TIME_PATTERN.match, game_times)) or not np.all((half == 1) | (half == 2))):
            raise ValueError("unusual entry")
        position = np.fromiter(map(int, raw_position), np.int64, len(entries))
        if np.any(position < 0):
            raise ValueError("negative position")
        return (half, position, label, np.array(visibility, dtype=object) == "visible"), 0
    except (KeyError, TypeError, ValueError, IndexError):
        pass
    game = parse_labels(path, on_unknown=on_unknown)
    columns = [(a.half, a.position_ms, a.label, a.visible) for a in game.annotations]
    if not columns:
        return (np.zeros(0, np.int64),) * 3 + (np.zeros(0, bool),), game.unknown_labels
    half, position, label, visible = (np.array(column) for column in zip(*columns))
    return (half, position, label, visible), game.unknown_labels


def select_games(labels_dir: str | os.PathLike, split: str | None = None, games_file: str | None = None) -> list[str]:
    """An official split, a games file, or every game folder under labels_dir holding a Labels-v2.json."""
    if split and games_file:
        raise InvalidInputError("give a split or a games file, not both")
    if split or games_file:
        return split_games(split or games_file)
    games = discover_games(labels_dir, LABELS_FILE)
    if not games:
        raise MissingFileError(f"no league/season/game/{LABELS_FILE} under {labels_dir}")
    return games


_SOURCES: dict[tuple[str, int], PredictionsSource] = {}


def _load_game(labels_dir: str, predictions: str, game: str, on_unknown: str) -> tuple[GameKeys, int]:
    """One game, read and binned. Runs in worker processes: each opens its own predictions source (a zip's file
    offset must not be shared between processes)."""
    key = (predictions, os.getpid())
    if key not in _SOURCES:
        _SOURCES[key] = PredictionsSource(predictions)
    labels, dropped = label_arrays(Path(labels_dir) / game / LABELS_FILE, on_unknown)
    p = _SOURCES[key].load(game)
    return game_keys(labels, (p.half, p.position_ms, p.label, p.confidence)), dropped


def default_workers(num_games: int) -> int:
    """One process per core, up to 8, when there are enough games to pay for the forks."""
    return min(os.cpu_count() or 1, 8) if num_games >= 16 else 0


def _load_games(labels_dir: str, predictions: str, games: list[str], on_unknown: str,
                workers: int) -> list[tuple[GameKeys, int]]:
    """Decoding JSON is most of the scorer's time, so games are read by `workers` forked processes (0: here)."""
    arguments = [(labels_dir, predictions, game, on_unknown) for game in games]
    if workers <= 1 or "fork" not in multiprocessing.get_all_start_methods():
        return [_load_game(*args) for args in arguments]
    with concurrent.futures.ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("fork")) as pool:
        return list(pool.map(_load_game, *zip(*arguments), chunksize=max(1, len(games) // (4 * workers))))


def score(labels_dir: str | os.PathLike, predictions: str | os.PathLike, games: list[str],
          metrics: tuple[str, ...] = ("tight", "loose"), on_unknown: Literal["error", "warn"] = "error",
          workers: int | None = None) -> dict:
    """Average-mAP of every requested metric, in the official evaluator's output format (fractions in [0, 1]).

    Every game needs a labels file and a predictions file; all missing ones are reported in one error.
    workers: processes reading the files (None: automatic; 0: none, e.g. inside a training loop).
    """
    check_games_exist(labels_dir, games, LABELS_FILE)
    source = PredictionsSource(predictions)
    missing = [source.describe(game) for game in games if not source.has(game)]
    if missing:
        listed = "\n  ".join(missing)
        raise MissingFileError(f"{len(missing)} of {len(games)} games have no predictions file:\n  {listed}")
    workers = default_workers(len(games)) if workers is None else workers
    loaded = _load_games(str(labels_dir), str(predictions), games, on_unknown, workers)
    results = average_map(build_spotting_set([keys for keys, _ in loaded]), metrics, workers)
    unknown = sum(dropped for _, dropped in loaded)
    if unknown:
        for entry in results.values():
            entry["unknown_labels_dropped"] = unknown
    return results


def format_table(results: dict) -> str:
    """Metric rows (overall / visible / unshown, in %), then one row per class with a column per metric."""
    metrics = list(results)
    lines = [f"{'metric':<8} {'a-mAP':>7} {'visible':>8} {'unshown':>8}"]
    for metric in metrics:
        entry = results[metric]
        lines.append(f"{metric:<8} {100 * entry['a_mAP']:7.2f} {100 * entry['a_mAP_visible']:8.2f} "
                     f"{100 * entry['a_mAP_unshown']:8.2f}")
    lines.append("")
    lines.append(f"{'class':<20}" + "".join(f"{metric:>8}" for metric in metrics))
    for c, name in enumerate(CLASSES):
        lines.append(f"{name:<20}" + "".join(f"{100 * results[m]['a_mAP_per_class'][c]:8.2f}" for m in metrics))
    return "\n".join(lines)


def write_results(results: dict, path: str | os.PathLike) -> None:
    """JSON with per-class values keyed by class name, as documented for `evaluate.py score --json`."""
    out = {}
    for metric, entry in results.items():
        out[metric] = {key: (dict(zip(CLASSES, value)) if key.startswith("a_mAP_per_class") else value)
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
        values = [scores[metric][key][cls] if key.endswith("per_class") else scores[metric][key]
                  for metric in ("tight", "loose") for key in ("a_mAP", "a_mAP_per_class") for cls in CLASSES]
        if not all(isinstance(value, (int, float)) for value in values):
            raise TypeError("a value is not a number")
    except (json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError, ValueError) as error:
        raise InvalidInputError(f"--run {name}: {path} is not a scores.json of evaluate.py test or score --json "
                                f"({type(error).__name__}: {error})") from None
    return name, scores


def runs_table(runs: dict[str, dict], paper: bool = False, per_class: bool = False) -> str:
    """Markdown table of several runs' scores.json (as `write_results` writes them) next to the paper's numbers: a
    run named like a paper row gets its numbers beside it; paper=True lists the rows no run fills; per_class adds
    per-class tight and loose."""
    lines = ["| run | tight a-mAP | loose a-mAP | paper tight | paper loose |", "|---|---|---|---|---|"]
    for name, scores in runs.items():
        row = PAPER_ROWS.get(name, ("", ""))
        lines.append(f"| {name} | {100 * scores['tight']['a_mAP']:.2f} | {100 * scores['loose']['a_mAP']:.2f} | "
                     f"{row[0]} | {row[1]} |")
    if paper:
        for name, (tight, loose) in PAPER_ROWS.items():
            if name not in runs:
                lines.append(f"| {name} (paper) | | | {tight} | {loose} |")
    if per_class:
        lines += ["", "| class | " + " | ".join(f"{name} tight | {name} loose" for name in runs) + " |",
                  "|---|" + "---|---|" * len(runs)]
        for cls in CLASSES:
            cells = " | ".join(f"{100 * s['tight']['a_mAP_per_class'][cls]:.1f} | "
                               f"{100 * s['loose']['a_mAP_per_class'][cls]:.1f}" for s in runs.values())
            lines.append(f"| {cls} | {cells} |")
    return "\n".join(lines)
