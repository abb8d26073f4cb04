"""Scorer benchmark: this project's scorer against the official code, same files, same run.

    python benchmarks/bench_scoring.py [--games 100] [--predictions-per-class-per-half 60] [--team-games 20]
                                       [--team-minutes 97] [--out DIR]

SoccerNet-v2: a random labels + predictions tree (about 220 GT and 2,000 predictions per game); per metric, the
official `SoccerNet.Evaluation.ActionSpotting.evaluate` against `evaluation.scoring.score` (each reading the files
from disk). Team-BAS 2025: `--team-games` random games of `--team-minutes` (about 2,000 labels and 6,000 predictions
per game, adversarial as in tests/random_sets.py) scored at mAP@1 by the official Team-BAS metric
(tests/team_bas_reference.py: sn-teamspotting's rule on the pip package's `average_mAP`) and by `score`. Every
returned value must agree to 1e-9. Times exclude start-up (imports, generating the files). Prints a human table and
one JSON line: `BENCH scoring {...}`. Needs `pip install --no-deps SoccerNet==0.2.0`.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from data.catalog import BUILT_IN  # noqa: E402
from evaluation.scoring import score  # noqa: E402
from tests.random_sets import write_random_ball_set, write_random_set  # noqa: E402
from tests.team_bas_reference import official_team_scores  # noqa: E402

V2, TEAM_BAS = BUILT_IN["soccernet_v2"], BUILT_IN["soccernet_ball_2025"]
TEAM_PAIRS = {"team_a_mAP": "mAP", "team_a_mAP_per_class": "mAP_per_class", "team_a_mAP_visible": "mAP_visible",
              "team_a_mAP_per_class_visible": "mAP_per_class_visible", "a_mAP": "mAP_no_team",
              "a_mAP_per_class": "mAP_per_class_no_team", "a_mAP_visible": "mAP_visible_no_team"}


def official(labels_dir: Path, predictions_dir: Path, metric: str) -> dict:
    from SoccerNet.Evaluation.ActionSpotting import evaluate
    from SoccerNet.Evaluation.utils import EVENT_DICTIONARY_V2

    with contextlib.redirect_stderr(io.StringIO()):  # its tqdm bars
        return evaluate(SoccerNet_path=str(labels_dir), Predictions_path=str(predictions_dir),
                        prediction_file="results_spotting.json", version=2, framerate=2, metric=metric,
                        label_files="Labels-v2.json", dataset=None, EVENT_DICTIONARY=EVENT_DICTIONARY_V2)


def max_difference(reference: dict, ours: dict, pairs: dict | None = None) -> float:
    """The largest difference over the official keys (pairs: our key -> the official key, default the same)."""
    pairs = pairs or {key: key for key in reference}
    return max(float(np.max(np.abs(np.asarray(reference[official], float) - np.asarray(ours[key], float))))
               for key, official in pairs.items())


def team_bas_row(root: Path, games: int, minutes: float, seed: int, repeats: int) -> dict:
    """Team-BAS at mAP@1: the official metric and ours on the same generated games."""
    labels, predictions, names = write_random_ball_set(root, TEAM_BAS, games, seed=seed,
                                                       minutes=(minutes - 3, minutes + 3))
    num_predictions = sum(len(json.loads((predictions / g / "results_spotting.json").read_text())["predictions"])
                          for g in names)
    ours_s, ours = timed(score, TEAM_BAS, labels, predictions, names, ("at1",), repeats=repeats)
    official_s, reference = timed(official_team_scores, labels, predictions, names, list(TEAM_BAS.classes),
                                  list(TEAM_BAS.teams))
    return {"games": games, "predictions": num_predictions, "official_s": official_s, "ours_s": ours_s,
            "speedup": official_s / ours_s, "max_abs_difference": max_difference(reference, ours["at1"], TEAM_PAIRS),
            "team_a_mAP": reference["mAP"]}


def timed(function, *args, repeats: int = 1):
    best, result = float("inf"), None
    for _ in range(repeats):
        start = time.perf_counter()
        result = function(*args)
        best = min(best, time.perf_counter() - start)
    return best, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--games", type=int, default=100)
    parser.add_argument("--predictions-per-class-per-half", type=int, default=60)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--team-games", type=int, default=20, help="Team-BAS games (0: leave Team-BAS out)")
    parser.add_argument("--team-minutes", type=float, default=97.0, help="mean length of a Team-BAS game")
    parser.add_argument("--repeats", type=int, default=3, help="ours is timed this many times, best kept")
    parser.add_argument("--out", type=Path, default=None, help="keep the generated trees here")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        root = args.out or Path(tmp)
        labels_dir, predictions_dir, games = write_random_set(
            root, args.games, seed=args.seed, predictions_per_class_per_half=args.predictions_per_class_per_half)
        num_predictions = sum(len(json.loads((predictions_dir / g / "results_spotting.json").read_text())
                                  ["predictions"]) for g in games)
        # Ours first, while the process is small: the official evaluator leaves about 1 GB of arrays behind, which
        # makes every later fork of this process (ours reads files in forked workers) slower than in a fresh run.
        ours_times, ours_results = {}, {}
        for name, metrics in (("tight", ("tight",)), ("loose", ("loose",)), ("tight+loose", ("tight", "loose"))):
            ours_times[name], ours_results[name] = timed(score, V2, labels_dir, predictions_dir, games, metrics,
                                                         repeats=args.repeats)
        rows = {}
        for metric in ("tight", "loose"):
            official_time, reference = timed(official, labels_dir, predictions_dir, metric)
            rows[metric] = {"official_s": official_time, "ours_s": ours_times[metric],
                            "speedup": official_time / ours_times[metric],
                            "max_abs_difference": max(max_difference(reference, ours_results[metric][metric]),
                                                      max_difference(reference, ours_results["tight+loose"][metric])),
                            "a_mAP": reference["a_mAP"]}
        both_official = rows["tight"]["official_s"] + rows["loose"]["official_s"]
        rows["tight+loose"] = {"official_s": both_official, "ours_s": ours_times["tight+loose"],
                               "speedup": both_official / ours_times["tight+loose"],
                               "max_abs_difference": max(rows["tight"]["max_abs_difference"],
                                                         rows["loose"]["max_abs_difference"]),
                               "a_mAP": float("nan")}

        team = team_bas_row(root / "team_bas", args.team_games, args.team_minutes, args.seed, args.repeats) \
            if args.team_games else None

    print(f"SoccerNet-v2: {args.games} games, {num_predictions} predictions ({num_predictions / args.games:.0f} per "
          f"game)")
    print(f"{'metric':<12} {'official s':>10} {'ours s':>8} {'speed-up':>9} {'max |diff|':>11}")
    for metric, row in rows.items():
        print(f"{metric:<12} {row['official_s']:10.2f} {row['ours_s']:8.3f} {row['speedup']:8.1f}x "
              f"{row['max_abs_difference']:11.1e}")
    if team:
        print(f"Team-BAS 2025: {team['games']} games of ~{args.team_minutes:g} min, {team['predictions']} predictions")
        print(f"{'team at1':<12} {team['official_s']:10.2f} {team['ours_s']:8.3f} {team['speedup']:8.1f}x "
              f"{team['max_abs_difference']:11.1e}")
    agree = all(row["max_abs_difference"] <= 1e-9 for row in [*rows.values(), *([team] if team else [])])
    print("values agree to 1e-9:", agree)
    print("BENCH scoring " + json.dumps({"games": args.games, "predictions": num_predictions, "agree": agree,
                                         **{metric: row for metric, row in rows.items()},
                                         **({"team_bas_at1": team} if team else {})}))
    if not agree:
        sys.exit(1)


if __name__ == "__main__":
    main()
