"""Evaluation entry point: inference, scoring, post-processing of raw scores, ensembles, spotting any video.

    python evaluate.py --config CFG --checkpoint CKPT --split test      # inference + scoring, prints tight/loose
    python evaluate.py predict --checkpoint CKPT [--config CFG] [--split test] [--out DIR] [--zip Z] [key=value ...]
    python evaluate.py score --labels DIR --predictions DIR_OR_ZIP [--dataset soccernet_v2|soccernet_ball_2025|...]
                             [--split NAME | --games FILE] [--metric tight|loose|at1..at5|all] [--json OUT]
    python evaluate.py postprocess --raw RAW_DIR --out PRED_DIR [--nms soft --window 20 --threshold 0.001] [--zip Z]
    python evaluate.py ensemble --raw RUN1_RAW RUN2_RAW [...] --out-raw RAW_DIR --out PRED_DIR [--zip Z]
    python evaluate.py spot VIDEO [VIDEO ...] --checkpoint CKPT [--out DIR] [--second-half-start S | --match-halves]
    python evaluate.py import-eztorch comedian_vivit_tiny_seed42.pth --out CKPT
    python evaluate.py table --run NAME=scores.json [...]         # Markdown table next to the paper's numbers
    python evaluate.py convergence --run NAME=RUN_DIR[,RUN_DIR] [...] --out FILE.svg   # validation a-mAP per epoch

Scoring needs no model and no GPU: it returns exactly what each dataset's official metric returns (SoccerNet's
`ActionSpotting.evaluate`, the Team-BAS metric: tests/test_metric.py, tests/test_metric_ball.py), much faster. This
file is the command line only: each command hands its checked options to the packages.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import re
import sys
from pathlib import Path

from configs.inference import check_data_paths, ensemble_config, nms_config, spot_config
from data.datasets import half_lengths
from data.decode_pool import DecodePool, worth_a_pool
from data.catalog import BUILT_IN, load_dataset
from data.sources import build_source
from evaluation.inference import Inference, predict_games
from evaluation.metric import METRICS
from evaluation.postprocess import ensemble_raw_scores, postprocess_raw, read_raw_meta, write_spotted
from evaluation.predictions import write_challenge_zip
from evaluation.scoring import format_table, read_scores, runs_table, score, select_games, write_results
from evaluation.streaming import spot_files
from models.inference import build_inference_model, import_released
from spot.jobs import add_spot_arguments, check_one_video_games, pending_jobs, plan_jobs
from spot.page import write_run_index
from spot.views import SpottedVideo, write_views
from utils import dist
from utils.config import did_you_mean
from utils.convergence import validation_curve, write_convergence
from utils.errors import InvalidInputError, UserError, run_entry_point
from utils.files import check_not_overwriting
from utils.rates import Rates
from utils.run import check_writable, inference_dtype


PREDICTIONS_GLOB = "**/results_spotting.json"


def named(item: str, flag: str, expected: str) -> tuple[str, str]:
    """`NAME=VALUE` of a repeatable flag, or an error saying what was expected."""
    name, sep, value = item.partition("=")
    if not sep or not value:
        raise InvalidInputError(f"{flag} {item!r}: expected {expected}")
    return name, value


def postprocess_and_zip(raw: Path, out: Path, eval_cfg, zip_path: Path | None) -> None:
    games = postprocess_raw(raw, out, eval_cfg)
    print(f"wrote results_spotting.json for {len(games)} games under {out}")
    if zip_path:
        print(f"wrote {write_challenge_zip(out, zip_path, games)}")


# ----------------------------------------------------------------------------------------------------------------------
# The commands
# ----------------------------------------------------------------------------------------------------------------------
def command_score(args: argparse.Namespace) -> None:
    dataset = load_dataset(args.dataset, "--dataset")
    games = select_games(dataset, args.labels, args.split, args.games)
    metrics = {"all": METRICS, None: dataset.metrics}.get(args.metric, (args.metric,))
    results = score(dataset, args.labels, args.predictions, games, metrics, on_unknown=args.unknown_labels,
                    workers=args.workers)
    print(f"{len(games)} games of {dataset.name}, average-mAP in %")
    print(format_table(results, dataset))
    if args.json:
        write_results(results, args.json, dataset)
        print(f"wrote {args.json}")


def command_postprocess(args: argparse.Namespace) -> None:
    eval_cfg = nms_config(vars(args), len(read_raw_meta(args.raw)[1].columns))
    check_not_overwriting(args.out, PREDICTIONS_GLOB, "predictions", args.overwrite)
    postprocess_and_zip(args.raw, args.out, eval_cfg, args.zip)


def command_ensemble(args: argparse.Namespace) -> None:
    spec = ensemble_config(args.config, vars(args))
    columns = len(read_raw_meta(spec.raw[0])[1].columns)
    eval_cfg = nms_config(vars(args), columns)  # before anything is written
    check_not_overwriting(spec.out_raw, "**/scores_half*.npy", "raw scores", args.overwrite)
    check_not_overwriting(spec.out, PREDICTIONS_GLOB, "predictions", args.overwrite)
    games = ensemble_raw_scores([Path(path) for path in spec.raw], spec.out_raw)
    print(f"averaged {len(spec.raw)} runs over {len(games)} games into {spec.out_raw}")
    postprocess_and_zip(Path(spec.out_raw), Path(spec.out), eval_cfg, args.zip)


def command_predict(args: argparse.Namespace, with_score: bool = False) -> None:
    cfg, sources, dataset, model = build_inference_model(args.checkpoint, args.config, args.overrides)
    check_data_paths(cfg, sources)
    info = dist.init_distributed(cfg.run.device)
    split = args.split or cfg.data.test_split
    games = dataset.games(split, cfg.data.root)
    source = build_source(cfg.data, dataset)
    half_lengths(source, games, dataset.halves)  # every half readable, or every bad one named, before the first window
    out = args.out or Path(args.checkpoint or cfg.run.output_dir).parent / f"inference_{Path(split).stem}"
    check_writable(out)  # before the inference, not after it
    inference = Inference(model.to(info.device), cfg.model, cfg.eval, dataset, info.device,
                          inference_dtype(cfg.run.precision, info.device), Rates.of(cfg.data.fps))
    predictions = predict_games(inference, source, games, out)
    if info.is_main:
        print(f"{len(games)} games: raw scores in {out / 'raw'}, predictions in {predictions}")
        if args.zip:
            print(f"wrote {write_challenge_zip(predictions, args.zip, games)}")
        if with_score:
            results = score(dataset, cfg.data.root, predictions, games, tuple(cfg.eval.metrics) or dataset.metrics)
            print(f"{split}: {len(games)} games, average-mAP in %")
            print(format_table(results, dataset))
            write_results(results, out / "scores.json", dataset)
            print(f"wrote {out / 'scores.json'}")
    dist.cleanup()


def command_spot(args: argparse.Namespace) -> None:
    """Any video file(s) -> results_spotting.json and raw scores (evaluation/), the list, timeline, page and, if
    asked, clips (spot/); then the run's index.html linking every page in --out."""
    view = spot_config(vars(args))
    jobs, finished = pending_jobs(args.out, plan_jobs(args.videos, args.match_halves, args.second_half_start),
                                  args.overwrite)
    for job in finished:
        print(f"{job.name}: already spotted in {args.out / job.name} (give --overwrite to spot it again)")
    overrides = [f"eval.half_end={args.half_end}"] + ([f"eval.batch_size={args.batch_size}"] if args.batch_size else [])
    with contextlib.ExitStack() as stack:
        # the decoding processes start now, to be ready once the checkpoint has loaded (only for long videos)
        pool = stack.enter_context(DecodePool(view.decode_workers)) \
            if view.decode_workers > 1 and any(worth_a_pool(video) for video in args.videos) else None
        cfg, _, dataset, model = build_inference_model(args.checkpoint, args.config, overrides)
        check_one_video_games(dataset, jobs + finished)
        check_writable(args.out)  # before any inference
        device = dist.init_distributed(args.device).device
        inference = Inference(model.to(device), cfg.model, cfg.eval, dataset, device,
                              inference_dtype(cfg.run.precision, device), Rates.of(cfg.data.fps))
        failed = []
        for job in jobs:
            try:
                scores = spot_files(inference, job.files, job.second_half_start, pool)
            except UserError as error:  # a bad file: named, and the other videos are still spotted
                print(f"error: {error}", file=sys.stderr)
                failed.append(job.name)
                continue
            predictions, results = write_spotted(args.out, job.name, scores, cfg.eval, dataset, inference.rates.fps)
            spotted = SpottedVideo(job.name, job.halves(inference.rates), scores, predictions,
                                   float(inference.rates.fps), list(dataset.columns))
            written, notes = write_views(args.out / job.name, spotted, view, cfg.eval.nms)
            for line in notes:
                print(f"{job.name}: {line}")
            print(f"{job.name}: " + ", ".join(str(path) for path in [results, *written.values()]))
    if len(failed) < len(jobs) or finished:
        print(f"open {write_run_index(args.out)} in a browser: a page per video, with its timeline and actions")
    if failed:  # exit status 1: the other videos were spotted (a user error that stops everything exits with 2)
        sys.exit(f"error: {len(failed)} of {len(jobs)} videos could not be spotted: {', '.join(failed)}")


def command_import_eztorch(args: argparse.Namespace) -> None:
    report, preset = import_released(args.checkpoint, args.out)
    print(report)
    print(f"wrote {args.out} ({preset}); evaluate it with: python evaluate.py test --checkpoint {args.out} "
          f"--split test data.root=/path/to/soccernet")


def command_table(args: argparse.Namespace) -> None:
    """Markdown table of several runs' scores.json (written by `evaluate.py test`), next to the paper's numbers."""
    runs = dict(read_scores(*named(item, "--run", "NAME=path/to/scores.json")) for item in args.runs)
    print(runs_table(runs, args.paper, args.per_class))


def command_convergence(args: argparse.Namespace) -> None:
    """SVG of validation tight a-mAP per stage-3 epoch for several runs (utils/convergence.py)."""
    runs = [named(item, "--run", "NAME=RUN_DIR[,RUN_DIR...] (stage-3 run folders, in order)") for item in args.runs]
    curves = {name: validation_curve([Path(folder) for folder in folders.split(",")]) for name, folders in runs}
    print(f"wrote {write_convergence(args.out, curves)}")
    for name, (points, _) in curves.items():
        print(f"{name}: " + ", ".join(f"epoch {epoch} {value:.2f}" for epoch, value in points))


def add_nms_arguments(parser: argparse.ArgumentParser) -> None:
    """The NMS flags of postprocess and ensemble; each defaults to the paper config's eval section."""
    parser.add_argument("--nms", help="soft (the paper's linear decay), tdeed (T-DEED's quadratic one), hard or none")
    parser.add_argument("--window", type=int, nargs="+",
                        help="NMS window in slots of 1 / fps seconds (20 = +-5 s at 2 fps), or one per class")
    parser.add_argument("--threshold", type=float, help="minimum kept confidence")
    parser.add_argument("--min-weight", type=float, help="soft NMS: the weight a neighbour at distance 0 keeps (0)")
    parser.add_argument("--zip", type=Path, help="also write a challenge zip (league/season/game/results_spotting.json)")
    parser.add_argument("--overwrite", action="store_true", help="replace the predictions an earlier run wrote there")


# ----------------------------------------------------------------------------------------------------------------------
# The command line
# ----------------------------------------------------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)

    p = commands.add_parser("score", help="average-mAP of a predictions tree or zip against a dataset's labels")
    p.add_argument("--dataset", default="soccernet_v2",
                   help=f"one of {', '.join(BUILT_IN)} (default soccernet_v2), or a manifest file (.json)")
    p.add_argument("--labels", type=Path, required=True,
                   help="root holding league/season/game/<labels file>, or a manifest dataset's split manifest")
    p.add_argument("--predictions", type=Path, required=True, help="folder or zip of .../results_spotting.json")
    selection = p.add_mutually_exclusive_group()
    selection.add_argument("--split", help="official split: train, valid, test or challenge")
    selection.add_argument("--games", help="text file with one league/season/game path per line")
    p.add_argument("--metric", choices=(*METRICS, "all"), help="default: the dataset's (soccernet_v2: tight and "
                                                               "loose; Ball Action Spotting: at1); 'all': every one")
    p.add_argument("--json", type=Path, help="write every value computed to this JSON file")
    p.add_argument("--unknown-labels", choices=("error", "warn"), default="error",
                   help="'warn' drops and counts labels outside the classes, as the official evaluator does silently")
    p.add_argument("--workers", type=int, help="processes reading files (default: one per core)")
    p.set_defaults(run=command_score)

    for name, helptext in (("predict", "run a stage-3 checkpoint over a split: raw scores + results_spotting.json"),
                           ("test", "predict, then score against the split's labels and print tight / loose")):
        p = commands.add_parser(name, help=helptext)
        weights = p.add_mutually_exclusive_group(required=True)
        weights.add_argument("--checkpoint", type=Path, help="a train_spotting.py checkpoint or a released .pth")
        weights.add_argument("--random-init", action="store_true", help="an untrained model built from --config")
        p.add_argument("--config", help="stage-3 YAML for data and eval (default: the checkpoint's own config)")
        p.add_argument("--split", help="official split or games file (default: data.test_split)")
        p.add_argument("--out", type=Path, help="output folder (default: beside the checkpoint)")
        p.add_argument("--zip", type=Path, help="also write a challenge zip")
        p.add_argument("overrides", nargs="*", help="dotted config overrides, e.g. data.root=/data/soccernet")
        p.set_defaults(run=functools.partial(command_predict, with_score=name == "test"))

    p = commands.add_parser("spot", help="spot actions in any video file(s): results, a list, a timeline, a page")
    add_spot_arguments(p)
    p.set_defaults(run=command_spot)

    p = commands.add_parser("import-eztorch", help="a released COMEDIAN checkpoint into this project's format")
    p.add_argument("checkpoint", type=Path, help="comedian_{vivit,viswin}_tiny_seed*.pth")
    p.add_argument("--out", type=Path, required=True, help="the checkpoint to write")
    p.set_defaults(run=command_import_eztorch)

    p = commands.add_parser("table", help="Markdown table of runs' scores.json next to the paper's numbers")
    p.add_argument("--run", dest="runs", action="append", required=True, help="NAME=path/to/scores.json")
    p.add_argument("--per-class", action="store_true", help="add the per-class tight and loose a-mAP")
    p.add_argument("--paper", action="store_true", help="list the paper's rows that no run fills")
    p.set_defaults(run=command_table)

    p = commands.add_parser("convergence", help="SVG of validation tight a-mAP per stage-3 epoch of several runs")
    p.add_argument("--run", dest="runs", action="append", required=True,
                   help="NAME=RUN_DIR[,RUN_DIR...]: stage-3 run folders chained in order (e.g. phase a, phase b)")
    p.add_argument("--out", type=Path, required=True, help="the SVG file to write")
    p.set_defaults(run=command_convergence)

    p = commands.add_parser("postprocess", help="raw per-half scores -> NMS -> results_spotting.json per game")
    p.add_argument("--raw", type=Path, required=True, help="raw-scores folder written by inference")
    p.add_argument("--out", type=Path, required=True, help="predictions folder to write")
    add_nms_arguments(p)
    p.set_defaults(run=command_postprocess)

    p = commands.add_parser("ensemble", help="average the raw scores of several runs, then post-process")
    p.add_argument("--config", help="a configs/ensembles/*.yaml file (raw, out_raw, out)")
    p.add_argument("--raw", type=Path, nargs="+", help="raw-scores folders of the runs")
    p.add_argument("--out-raw", type=Path, help="where to write the averaged raw scores")
    p.add_argument("--out", type=Path, help="predictions folder to write")
    add_nms_arguments(p)
    p.set_defaults(run=command_ensemble)
    parser.subcommands = commands.choices  # {name: its parser}: their flags, for "did you mean" hints
    return parser


def main(argv: list[str] | None = None) -> None:
    """The command line; an expected user error ends it with its message alone and exit status 2."""
    run_entry_point(_run, argv)


def _run(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0].startswith("--") and argv[0] not in ("-h", "--help"):
        argv = ["test", *argv]  # `evaluate.py --config ... --checkpoint ... --split test` is the test command
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    # dotted overrides may come before or after the options: argparse leaves the later ones over
    if extra and hasattr(args, "overrides") and all("=" in item and not item.startswith("-") for item in extra):
        args.overrides += extra
    elif extra:
        flags = re.findall(r"--[a-z][\w-]*", parser.subcommands[args.command].format_usage())
        parser.error("unrecognized arguments: " + " ".join(item + did_you_mean(item.split("=")[0], flags)
                                                           for item in extra))
    args.run(args)


if __name__ == "__main__":
    main()
