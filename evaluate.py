"""Evaluation entry point: inference, scoring, post-processing of raw scores, ensembles.

    python evaluate.py --config CFG --checkpoint CKPT --split test      # inference + scoring, prints tight/loose
    python evaluate.py predict --checkpoint CKPT [--config CFG] [--split test] [--out DIR] [--zip Z] [key=value ...]
    python evaluate.py score --labels DIR --predictions DIR_OR_ZIP [--split NAME | --games FILE]
                             [--metric tight|loose|at1..at5|all] [--json OUT]
    python evaluate.py postprocess --raw RAW_DIR --out PRED_DIR [--nms soft --window 20 --threshold 0.001] [--zip Z]
    python evaluate.py ensemble --raw RUN1_RAW RUN2_RAW [...] --out-raw RAW_DIR --out PRED_DIR [--zip Z]

Scoring needs no model and no GPU: it reads SoccerNet label and prediction trees and returns exactly what the official
`SoccerNet.Evaluation.ActionSpotting.evaluate` returns (tests/test_metric.py compares them), much faster.
"""

from __future__ import annotations

import argparse
import functools
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


def inference_config(args: argparse.Namespace):
    """The stage-3 config for inference: --config (or the one stored in the checkpoint), overrides last; the model
    section always comes from the checkpoint, which knows what it holds."""
    import dataclasses

    from train_spotting import SpottingConfig
    from utils.checkpoint import load_checkpoint
    from utils.config import config_from_dict, load_config, with_overrides

    if args.checkpoint is None:  # an untrained model, built from --config alone
        if not args.config:
            raise ValueError("give --checkpoint, or --config with --random-init for an untrained model")
        return with_overrides(SpottingConfig, load_config(SpottingConfig, args.config), args.overrides)
    stored = config_from_dict(SpottingConfig, load_checkpoint(args.checkpoint)["config"])
    chosen = load_config(SpottingConfig, args.config) if args.config else stored
    return with_overrides(SpottingConfig, dataclasses.replace(chosen, model=stored.model), args.overrides)


def command_predict(args: argparse.Namespace, with_score: bool = False) -> None:
    import torch

    from data.games import split_games
    from data.sources import build_source
    from evaluation.inference import predict_games
    from models.heads import SpottingModel
    from models.loading import load_spotting
    from models.registry import build_video
    from utils import dist
    from utils.run import autocast_dtype

    cfg = inference_config(args)
    info = dist.init_distributed(cfg.run.device)
    split = args.split or cfg.data.test_split
    games = split_games(split, cfg.data.root)
    torch.manual_seed(cfg.run.seed)
    model = SpottingModel(build_video(cfg.model), bias_prior=cfg.model.head_bias_prior)
    if args.checkpoint is not None:
        load_spotting(model, args.checkpoint, cfg.model.name)
    model.to(info.device).eval()
    source = build_source(cfg.data.source, cfg.data.root, cfg.data.store, cfg.data.frames_root, cfg.data.resolution)
    out = args.out or Path(args.checkpoint or cfg.run.output_dir).parent / f"inference_{Path(split).stem}"
    predictions = predict_games(model, source, games, out, cfg.model.window_seconds, cfg.model.img_size, info.device,
                                autocast_dtype(cfg.run.precision, info.device), cfg.eval.window_stride_seconds,
                                cfg.eval.trim_seconds, cfg.eval.nms, cfg.eval.nms_window, cfg.eval.nms_threshold,
                                cfg.eval.batch_size)
    if info.is_main:
        print(f"{len(games)} games: raw scores in {out / 'raw'}, predictions in {predictions}")
        if args.zip:
            print(f"wrote {write_challenge_zip(predictions, args.zip, games)}")
        if with_score:
            results = score(cfg.data.root, predictions, games, ("tight", "loose"))
            print(f"{split}: {len(games)} games, average-mAP in %")
            print(format_table(results))
            write_results(results, out / "scores.json")
            print(f"wrote {out / 'scores.json'}")
    dist.cleanup()


PAPER_ROWS = {  # SoccerNet-v2 test split, COMEDIAN.md section 8 (DOCS + PWC)
    "ViViT-T": (70.7, 76.1), "ViSwin-T": (71.6, 76.6),
    "ViViT-T ensemble": (72.0, 77.1), "ViSwin-T ensemble": (73.1, 77.6),
}


def command_table(args: argparse.Namespace) -> None:
    """Markdown table of several runs' scores.json (written by `evaluate.py test`), next to the paper's numbers."""
    import json

    from data.labels import CLASSES

    runs = {}
    for item in args.runs:
        name, sep, path = item.partition("=")
        if not sep:
            raise ValueError(f"--run {item!r}: expected NAME=path/to/scores.json")
        if not Path(path).is_file():
            raise FileNotFoundError(f"--run {name}: {path} not found (run evaluate.py test first)")
        runs[name] = json.loads(Path(path).read_text())
    lines = ["| run | tight a-mAP | loose a-mAP | paper tight | paper loose |", "|---|---|---|---|---|"]
    for name, scores in runs.items():
        paper = PAPER_ROWS.get(name, ("", ""))
        lines.append(f"| {name} | {100 * scores['tight']['a_mAP']:.2f} | {100 * scores['loose']['a_mAP']:.2f} | "
                     f"{paper[0]} | {paper[1]} |")
    if args.paper:
        for name, (tight, loose) in PAPER_ROWS.items():
            if name not in runs:
                lines.append(f"| {name} (paper) | | | {tight} | {loose} |")
    if args.per_class:
        lines += ["", "| class | " + " | ".join(f"{name} tight | {name} loose" for name in runs) + " |",
                  "|---|" + "---|---|" * len(runs)]
        for index, cls in enumerate(CLASSES):
            cells = " | ".join(f"{100 * s['tight']['a_mAP_per_class'][cls]:.1f} | "
                               f"{100 * s['loose']['a_mAP_per_class'][cls]:.1f}" for s in runs.values())
            lines.append(f"| {cls} | {cells} |")
    print("\n".join(lines))


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

    for name, helptext in (("predict", "run a stage-3 checkpoint over a split: raw scores + results_spotting.json"),
                           ("test", "predict, then score against the split's labels and print tight / loose")):
        p = commands.add_parser(name, help=helptext)
        weights = p.add_mutually_exclusive_group(required=True)
        weights.add_argument("--checkpoint", type=Path, help="a train_spotting.py checkpoint")
        weights.add_argument("--random-init", action="store_true",
                             help="an untrained model built from --config (the baseline of the quick start)")
        p.add_argument("--config", default=None, help="stage-3 YAML for data and eval settings (default: the "
                                                       "checkpoint's own); the model always comes from the checkpoint")
        p.add_argument("--split", default=None, help="official split or games file (default: data.test_split)")
        p.add_argument("--out", type=Path, default=None, help="output folder (default: beside the checkpoint)")
        p.add_argument("--zip", type=Path, default=None, help="also write a challenge zip")
        p.add_argument("overrides", nargs="*", help="dotted config overrides, e.g. data.root=/data/soccernet")
        p.set_defaults(run=functools.partial(command_predict, with_score=name == "test"))

    p = commands.add_parser("table", help="Markdown table of runs' scores.json next to the paper's numbers")
    p.add_argument("--run", dest="runs", action="append", required=True,
                   help="NAME=path/to/scores.json (repeatable)")
    p.add_argument("--per-class", action="store_true", help="add the per-class tight and loose a-mAP")
    p.add_argument("--paper", action="store_true", help="list the paper's rows that no run fills")
    p.set_defaults(run=command_table)

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
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0].startswith("--") and argv[0] not in ("-h", "--help"):
        argv = ["test", *argv]  # `evaluate.py --config ... --checkpoint ... --split test` is the test command
    args = build_parser().parse_args(argv)
    try:
        args.run(args)
    except (LabelError, FileNotFoundError, ValueError) as error:
        sys.exit(f"error: {error}")


if __name__ == "__main__":
    main()
