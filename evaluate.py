"""Evaluation entry point: scoring, post-processing of raw scores, ensembles.

    python evaluate.py score --labels DIR --predictions DIR_OR_ZIP [--split NAME | --games FILE]
                             [--metric tight|loose|at1..at5|all] [--json OUT]
    python evaluate.py postprocess --raw RAW_DIR --out PRED_DIR [--nms soft --window 20 --threshold 0.001] [--zip Z]
    python evaluate.py ensemble --raw RUN1_RAW RUN2_RAW [...] --out-raw RAW_DIR --out PRED_DIR [--zip Z]

Scoring needs no model and no GPU: it reads SoccerNet label and prediction trees and returns exactly what the official
`SoccerNet.Evaluation.ActionSpotting.evaluate` returns (tests/test_metric.py compares them), much faster.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from data.labels import LabelError
from evaluation.metric import METRICS
from evaluation.postprocess import ensemble_raw_scores, postprocess_raw
from evaluation.predictions import write_challenge_zip
from evaluation.scoring import format_table, score, select_games, write_results


def add_nms_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--nms", choices=("soft", "hard", "none"), default="soft",
                        help="soft: linear-decay soft NMS as in the paper (default); hard: local maxima only")
    parser.add_argument("--window", type=int, default=20,
                        help="NMS window in 0.5 s slots (20 = +-5 s, the paper's value)")
    parser.add_argument("--threshold", type=float, default=0.001, help="minimum kept confidence (paper: 0.001)")
    parser.add_argument("--zip", type=Path, default=None,
                        help="also write a challenge zip (league/season/game/results_spotting.json, no top folder)")


def command_score(args: argparse.Namespace) -> None:
    games = select_games(args.labels, args.split, args.games)
    metrics = {"all": METRICS, None: ("tight", "loose")}.get(args.metric, (args.metric,))
    results = score(args.labels, args.predictions, games, metrics, on_unknown=args.unknown_labels,
                    workers=args.workers)
    print(f"{len(games)} games, average-mAP in %")
    print(format_table(results))
    if args.json:
        write_results(results, args.json)
        print(f"wrote {args.json}")


def command_postprocess(args: argparse.Namespace) -> None:
    games = postprocess_raw(args.raw, args.out, args.nms, args.window, args.threshold)
    print(f"wrote results_spotting.json for {len(games)} games under {args.out}")
    if args.zip:
        print(f"wrote {write_challenge_zip(args.out, args.zip, games)}")


def command_ensemble(args: argparse.Namespace) -> None:
    games = ensemble_raw_scores(args.raw, args.out_raw)
    print(f"averaged {len(args.raw)} runs over {len(games)} games into {args.out_raw}")
    command_postprocess(argparse.Namespace(raw=args.out_raw, out=args.out, nms=args.nms, window=args.window,
                                           threshold=args.threshold, zip=args.zip))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)

    p = commands.add_parser("score", help="average-mAP of a predictions tree or zip against a labels tree")
    p.add_argument("--labels", type=Path, required=True, help="root holding league/season/game/Labels-v2.json")
    p.add_argument("--predictions", type=Path, required=True,
                   help="folder or zip holding league/season/game/results_spotting.json")
    selection = p.add_mutually_exclusive_group()
    selection.add_argument("--split", help="official split: train, valid, test or challenge")
    selection.add_argument("--games", help="text file with one league/season/game path per line")
    p.add_argument("--metric", choices=(*METRICS, "all"), default=None,
                   help="default: tight and loose; 'all' adds at1..at5")
    p.add_argument("--json", type=Path, default=None, help="write every value computed to this JSON file")
    p.add_argument("--unknown-labels", choices=("error", "warn"), default="error",
                   help="labels files only: 'warn' drops and counts labels outside the 17 classes, as the official "
                        "evaluator does silently")
    p.add_argument("--workers", type=int, default=None, help="processes reading files (default: one per core)")
    p.set_defaults(run=command_score)

    p = commands.add_parser("postprocess", help="raw per-half scores -> NMS -> results_spotting.json per game")
    p.add_argument("--raw", type=Path, required=True, help="raw-scores folder written by inference")
    p.add_argument("--out", type=Path, required=True, help="predictions folder to write")
    add_nms_arguments(p)
    p.set_defaults(run=command_postprocess)

    p = commands.add_parser("ensemble", help="average the raw scores of several runs, then post-process")
    p.add_argument("--raw", type=Path, nargs="+", required=True, help="raw-scores folders of the runs")
    p.add_argument("--out-raw", type=Path, required=True, help="where to write the averaged raw scores")
    p.add_argument("--out", type=Path, required=True, help="predictions folder to write")
    add_nms_arguments(p)
    p.set_defaults(run=command_ensemble)
    return parser


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    try:
        args.run(args)
    except (LabelError, FileNotFoundError, ValueError) as error:
        sys.exit(f"error: {error}")


if __name__ == "__main__":
    main()
