"""Evaluation entry point: inference, scoring, post-processing of raw scores, ensembles.

    python evaluate.py --config CFG --checkpoint CKPT --split test      # inference + scoring, prints tight/loose
    python evaluate.py predict --checkpoint CKPT [--config CFG] [--split test] [--out DIR] [--zip Z] [key=value ...]
    python evaluate.py score --labels DIR --predictions DIR_OR_ZIP [--split NAME | --games FILE]
                             [--metric tight|loose|at1..at5|all] [--json OUT]
    python evaluate.py postprocess --raw RAW_DIR --out PRED_DIR [--nms soft --window 20 --threshold 0.001
                                   --min-weight 0] [--zip Z]
    python evaluate.py ensemble --raw RUN1_RAW RUN2_RAW [...] --out-raw RAW_DIR --out PRED_DIR [--zip Z]
    python evaluate.py spot VIDEO [VIDEO ...] --checkpoint CKPT [--out DIR] [--second-half-start S | --match-halves]
    python evaluate.py import-eztorch comedian_vivit_tiny_seed42.pth --out CKPT
    python evaluate.py table --run NAME=scores.json [...]         # Markdown table next to the paper's numbers
    python evaluate.py convergence --run NAME=RUN_DIR[,RUN_DIR] [...] --out FILE.svg   # validation a-mAP per epoch

Scoring needs no model and no GPU: it reads SoccerNet label and prediction trees and returns exactly what the official
`SoccerNet.Evaluation.ActionSpotting.evaluate` returns (tests/test_metric.py compares them), much faster.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import math
import os
import sys
from pathlib import Path

from data.labels import CLASSES
from evaluation.metric import METRICS
from evaluation.postprocess import ensemble_raw_scores, postprocess_raw
from evaluation.predictions import write_challenge_zip
from evaluation.scoring import format_table, score, select_games, write_results
from utils.errors import InvalidInputError, MissingFileError, UserError, run_entry_point


REPOSITORY = Path(__file__).resolve().parent
# The settings the paper trained and evaluated each model family with (its phase-b config): the base of every
# inference config, so that a released file, which stores no config, is evaluated as the paper evaluated it.
PAPER_CONFIGS = {"vivit": REPOSITORY / "configs/spotting/vivit_tiny_phase_b.yaml",
                 "viswin": REPOSITORY / "configs/spotting/viswin_tiny_phase_b.yaml"}


def paper_config_file(preset: str) -> Path:
    return PAPER_CONFIGS["viswin" if preset.startswith("viswin") else "vivit"]


def paper_eval_config():
    """The eval section of the paper's config (the defaults of the NMS flags)."""
    from configs.schema import SpottingConfig
    from utils.config import load_config

    return load_config(SpottingConfig, PAPER_CONFIGS["vivit"]).eval


def add_nms_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--nms", choices=("soft", "hard", "none"), default=None,
                        help="soft: linear-decay soft NMS as in the paper; hard: local maxima only "
                             "(default: eval.nms of the paper's config)")
    parser.add_argument("--window", type=int, nargs="+", default=None,
                        help="NMS window in slots of 1 / fps seconds (20 = +-5 s at 2 fps); one value, or one per "
                             "class in label order (default: eval.nms_window of the paper's config)")
    parser.add_argument("--threshold", type=float, default=None,
                        help="minimum kept confidence (default: eval.nms_threshold of the paper's config)")
    parser.add_argument("--min-weight", type=float, default=None,
                        help="soft NMS: the weight a neighbour at distance 0 keeps, in [0, 1] (default: "
                             "eval.nms_min_weight of the paper's config, 0)")
    parser.add_argument("--zip", type=Path, default=None,
                        help="also write a challenge zip (league/season/game/results_spotting.json, no top folder)")


def nms_settings(args: argparse.Namespace):
    """The paper's eval section with the NMS flags that were given, checked like a config."""
    from configs.schema import EvalConfig
    from utils.config import COMMAND_LINE, build_config, config_to_dict, flatten

    values = flatten(config_to_dict(paper_eval_config()))
    given = {"nms": args.nms, "nms_threshold": args.threshold, "nms_min_weight": args.min_weight,
             "nms_window": None if args.window is None else args.window[0] if len(args.window) == 1 else args.window}
    given = {key: value for key, value in given.items() if value is not None}
    eval_cfg = build_config(EvalConfig, {**values, **given}, {key: COMMAND_LINE for key in given})
    windows = eval_cfg.nms_window
    if isinstance(windows, list) and len(windows) != len(CLASSES):
        raise InvalidInputError(f"--window: {len(windows)} values; expected one, or one per class ({len(CLASSES)})")
    return eval_cfg


def postprocess_and_zip(raw: Path, out: Path, eval_cfg, zip_path: Path | None) -> None:
    games = postprocess_raw(raw, out, eval_cfg.nms, eval_cfg.nms_window, eval_cfg.nms_threshold,
                            eval_cfg.nms_min_weight)
    print(f"wrote results_spotting.json for {len(games)} games under {out}")
    if zip_path:
        print(f"wrote {write_challenge_zip(out, zip_path, games)}")


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
    postprocess_and_zip(args.raw, args.out, nms_settings(args), args.zip)


def command_ensemble(args: argparse.Namespace) -> None:
    """configs/ensembles/*.yaml (raw, out_raw, out) and/or the flags, which win where given."""
    from configs.schema import EnsembleConfig
    from utils.config import COMMAND_LINE, build_config, load_yaml_chain, schema_fields

    values, sources = load_yaml_chain(args.config) if args.config else ({}, {})
    unknown = sorted(set(values) - set(schema_fields(EnsembleConfig)))
    if unknown:
        raise InvalidInputError(f"{args.config}: unknown keys {unknown}; expected raw, out_raw, out")
    given = {"raw": args.raw and [str(path) for path in args.raw], "out_raw": args.out_raw and str(args.out_raw),
             "out": args.out and str(args.out)}
    given = {key: value for key, value in given.items() if value}
    values.update(given)
    sources.update({key: COMMAND_LINE for key in given})
    missing = [key for key in ("raw", "out_raw", "out") if key not in values]
    if missing:
        raise InvalidInputError(f"ensemble needs {', '.join('--' + m.replace('_', '-') for m in missing)} (or "
                                f"--config with those keys)")
    spec = build_config(EnsembleConfig, values, sources)
    eval_cfg = nms_settings(args)  # before anything is written
    games = ensemble_raw_scores([Path(path) for path in spec.raw], spec.out_raw)
    print(f"averaged {len(spec.raw)} runs over {len(games)} games into {spec.out_raw}")
    postprocess_and_zip(Path(spec.out_raw), Path(spec.out), eval_cfg, args.zip)


def inference_config(checkpoint: Path | None, stored: dict | None, preset: str | None, config: str | None,
                     overrides: list[str]):
    """(stage-3 config, {key: where its value came from}) for inference, built in layers, last wins:

    1. the paper's config of the checkpoint's model family (a released file stores no config);
    2. --config when given, else the config stored in the checkpoint, of which only the keys this version knows
       are read (a key renamed since the checkpoint was written falls back to layer 1, with a warning);
    3. the model section of the checkpoint, which knows what it holds (a released file: its preset, whose
       defaults are the released architecture);
    4. the command line's dotted overrides.
    Without a checkpoint (an untrained model) the config is --config <- overrides."""
    from configs.schema import SpottingConfig
    from utils.config import COMMAND_LINE, build_config, flatten, load_yaml_chain, parse_overrides, schema_fields
    from utils.logs import get_logger

    if checkpoint is None:
        if not config:
            raise InvalidInputError("give --checkpoint, or --config with --random-init for an untrained model")
        values, sources = load_yaml_chain(config)
    else:
        values, sources = load_yaml_chain(paper_config_file(preset))
        known = schema_fields(SpottingConfig)
        if config:
            layer, layer_sources = load_yaml_chain(config)
        elif stored is not None:
            layer = flatten({name: section for name, section in stored.items() if name != "model"})
            unknown = sorted(key for key in layer if key not in known)
            if unknown:
                get_logger().warning(f"the config stored in {checkpoint} has keys this version does not read, "
                                     f"ignored: {unknown}; their sections take the paper's values")
            layer = {key: value for key, value in layer.items() if key in known}
            layer_sources = {key: f"the config stored in {checkpoint}, as its training run saw it" for key in layer}
        else:
            layer, layer_sources = {}, {}
        values.update(layer)
        sources.update(layer_sources)
        model = flatten({"model": stored["model"]}) if stored is not None else {"model.name": preset}
        values = {key: value for key, value in values.items() if not key.startswith("model.")}
        values.update({key: value for key, value in model.items() if key in known})
        sources.update({key: str(checkpoint) for key in model})
    parsed = parse_overrides(overrides)
    values.update(parsed)
    sources.update({key: COMMAND_LINE for key in parsed})
    return build_config(SpottingConfig, values, sources), sources


def build_inference_model(checkpoint: Path | None, config: str | None, overrides: list[str],
                          weights: tuple | None = None):
    """(config, sources, SpottingModel on CPU in eval mode) from a checkpoint (this project's or a released eztorch
    file) or, without one, an untrained model from --config. weights: what read_spotting_weights already returned."""
    import torch

    from models.loading import load_spotting_weights, read_spotting_weights
    from models.registry import build_video
    from models.spotting import SpottingModel

    state = stored = preset = None
    if checkpoint is not None:
        state, preset, stored, what = weights or read_spotting_weights(checkpoint)
    cfg, sources = inference_config(checkpoint, stored, preset, config, overrides)
    torch.manual_seed(cfg.run.seed)
    model = SpottingModel(build_video(cfg.model), bias_prior=cfg.model.head_bias_prior)
    if state is not None:
        load_spotting_weights(model, state, what)
    return cfg, sources, model.eval()


def check_data_paths(cfg, sources: dict[str, str]) -> None:
    """Every data folder the inference reads exists, or the error says where its path came from: a checkpoint stores
    the paths of its training run, and a relative one means nothing from another working directory."""
    if not cfg.data.root:
        raise InvalidInputError("data.root is not set: add data.root=/path/to/soccernet, or --config with a stage-3 "
                                "YAML")
    for key in ("root", "store", "frames_root"):
        value = getattr(cfg.data, key)
        if key != "root" and (value is None or cfg.data.source != {"store": "store", "frames_root": "frames"}[key]):
            continue
        if Path(value).is_dir():
            continue
        hint = (f"; a relative path is read from the working directory ({Path.cwd()})"
                if not Path(value).is_absolute() else "")
        raise MissingFileError(f"data.{key} {value!r} (from {sources.get(f'data.{key}', 'the defaults')}) is not a "
                               f"folder{hint}: give data.{key}=/path/to/it")


def command_predict(args: argparse.Namespace, with_score: bool = False) -> None:
    from data.datasets import half_lengths
    from data.games import split_games
    from data.sources import build_source
    from evaluation.inference import predict_games
    from utils import dist
    from utils.run import inference_dtype

    cfg, sources, model = build_inference_model(args.checkpoint, args.config, args.overrides)
    check_data_paths(cfg, sources)
    info = dist.init_distributed(cfg.run.device)
    split = args.split or cfg.data.test_split
    games = split_games(split, cfg.data.root)
    model.to(info.device)
    source = build_source(cfg.data)
    half_lengths(source, games)  # every half readable, or every bad one named, before the first window
    out = args.out or Path(args.checkpoint or cfg.run.output_dir).parent / f"inference_{Path(split).stem}"
    predictions = predict_games(model, source, games, out, cfg.model, cfg.eval, info.device,
                                inference_dtype(cfg.run.precision, info.device))
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


def unique_names(paths: list[Path]) -> list[str]:
    """One output folder name per input: its stem, with as many parent folders in front as it takes for no two
    inputs to share a name (SoccerNet's halves are all called 1_224p.mkv: they become `<game>/1_224p`)."""
    resolved = [path.resolve() for path in paths]
    if len(set(resolved)) != len(resolved):
        twice = sorted({str(path) for path in resolved if resolved.count(path) > 1})
        raise InvalidInputError(f"the same video is given twice: {', '.join(twice)}")
    depth = 0
    while True:
        names = ["/".join([*path.parent.parts[len(path.parent.parts) - depth:], path.stem]) for path in resolved]
        if len(set(names)) == len(names) or depth >= max(len(path.parts) for path in resolved):
            return names
        depth += 1


def spot_jobs(videos: list[Path], match_halves: bool) -> list[tuple[str, list[tuple[Path, int]]]]:
    """(output name, [(file, half)]) per game: every file alone as half 1, or consecutive pairs as halves 1 and 2.
    Names are unique over the inputs (`unique_names`)."""
    if not match_halves:
        return list(zip(unique_names(videos), [[(video, 1)] for video in videos]))
    if len(videos) % 2:
        raise InvalidInputError(f"--match-halves takes files two by two (half 1, half 2); got {len(videos)} files")
    firsts = videos[::2]
    return list(zip(unique_names(firsts), [[(first, 1), (second, 2)] for first, second in zip(firsts, videos[1::2])]))


def check_not_overwritten(out: Path, names: list[str], overwrite: bool) -> None:
    """Refuse, before anything is written, to overwrite the results of an earlier run (unless --overwrite)."""
    taken = [out / name for name in names if (out / name).exists()]
    if taken and not overwrite:
        listed = "\n  ".join(str(folder) for folder in taken)
        raise InvalidInputError(f"{len(taken)} output folder(s) already hold results:\n  {listed}\nchoose another "
                                f"--out, or give --overwrite to replace them")


def spot_view(args: argparse.Namespace):
    """The page, list and clip options of `spot`, checked before any video is read."""
    from evaluation.spot import ViewOptions

    if args.decode_workers < 1:
        raise InvalidInputError(f"--decode-workers {args.decode_workers}: expected a number of processes >= 1")
    if args.clips is not None and args.clips < 1:
        raise InvalidInputError(f"--clips {args.clips}: expected a number of clips >= 1")
    for flag, value in (("--min-confidence", args.min_confidence),
                        ("--clips-min-confidence", args.clips_min_confidence)):
        if value is not None and not 0 <= value <= 1:
            raise InvalidInputError(f"{flag} {value}: expected a confidence between 0 and 1")
    for flag, value in (("--clip-before", args.clip_before), ("--clip-after", args.clip_after)):
        if not (math.isfinite(value) and value >= 0):
            raise InvalidInputError(f"{flag} {value}: expected seconds >= 0")
    if args.clip_before + args.clip_after <= 0:
        raise InvalidInputError("--clip-before and --clip-after are both 0: a clip would hold no frame")
    return ViewOptions(args.min_confidence, args.copy_video, args.clips, args.clips_min_confidence,
                       args.clip_before, args.clip_after)


def command_spot(args: argparse.Namespace) -> None:
    """Any video file(s) -> results_spotting.json, spotting.txt, timeline.svg, index.html and, if asked, highlight
    clips (evaluation/spot.py); then the run's index.html linking every page in --out."""
    from evaluation.spot_frames import DecodePool, worth_a_pool

    if args.match_halves and args.second_half_start is not None:
        raise InvalidInputError("--match-halves (one file per half) and --second-half-start (one file per match) "
                                "exclude each other")
    view = spot_view(args)
    jobs = spot_jobs(args.videos, args.match_halves)
    check_not_overwritten(args.out, [name for name, _ in jobs], args.overwrite)
    overrides = [f"eval.half_end={args.half_end}"] + ([f"eval.batch_size={args.batch_size}"] if args.batch_size else [])
    with contextlib.ExitStack() as stack:
        # the decoding processes start now, to be ready once the checkpoint has loaded (only for long videos)
        pool = stack.enter_context(DecodePool(args.decode_workers)) \
            if args.decode_workers > 1 and any(worth_a_pool(video) for video in args.videos) else None
        cfg, _, model = build_inference_model(args.checkpoint, args.config, overrides)
        spot_videos(args, cfg, model, jobs, view, pool)


def spot_videos(args: argparse.Namespace, cfg, model, jobs, view, pool) -> None:
    from evaluation.page import write_run_index
    from evaluation.spot import half_videos, spot_file, write_outputs
    from utils.dist import init_distributed
    from utils.run import inference_dtype

    device = init_distributed(args.device).device
    model.to(device)
    amp_dtype = inference_dtype(cfg.run.precision, device)
    failed = []
    for name, files in jobs:
        try:
            scores = {}
            for path, half in files:
                scores.update(spot_file(model, path, cfg.model, cfg.eval, device, amp_dtype, args.second_half_start,
                                        half, pool))
        except UserError as error:  # a bad file: named, and the other videos are still spotted
            print(f"error: {error}", file=sys.stderr)
            failed.append(name)
            continue
        written, notes = write_outputs(args.out, name, scores, cfg.eval, half_videos(files, args.second_half_start),
                                       view)
        for line in notes:
            print(f"{name}: {line}")
        print(f"{name}: " + ", ".join(str(path) for path in written.values()))
    if len(failed) < len(jobs):
        print(f"open {write_run_index(args.out)} in a browser: a page per video, with its timeline and actions")
    if failed:  # exit status 1: the other videos were spotted (a user error that stops everything exits with 2)
        sys.exit(f"error: {len(failed)} of {len(jobs)} videos could not be spotted: {', '.join(failed)}")


def command_import_eztorch(args: argparse.Namespace) -> None:
    """A released eztorch COMEDIAN file -> a stage-3 checkpoint of this project (loadable by every command)."""
    from models.loading import read_spotting_weights
    from utils.checkpoint import checkpoint_dict, save_checkpoint
    from utils.config import config_to_dict

    weights = read_spotting_weights(args.checkpoint)  # converted in memory when it is a released file
    _, preset, stored, report = weights
    if stored is not None:
        raise InvalidInputError(f"{args.checkpoint}: no trunk.transformer.* keys: not a released COMEDIAN (eztorch) "
                                f"file")
    print(report)
    # loads strictly (every key and shape checked); the stored config is the paper's, run.output_dir beside --out
    cfg, _, model = build_inference_model(args.checkpoint, None, [f"run.output_dir={args.out.parent}"], weights)
    save_checkpoint(args.out, checkpoint_dict(model.state_dict(), config_to_dict(cfg), "spotting",
                                              extra={"imported_from": str(args.checkpoint)}))
    print(f"wrote {args.out} ({preset}); evaluate it with: python evaluate.py test --checkpoint {args.out} "
          f"--split test data.root=/path/to/soccernet")


PAPER_ROWS = {  # SoccerNet-v2 test split, tight / loose (docs/METHOD.md section 9: the confirmed headline numbers)
    "ViViT-T": (70.7, 76.1), "ViSwin-T": (71.6, 76.6),
    "ViViT-T ensemble": (72.0, 77.1), "ViSwin-T ensemble": (73.1, 77.6),
}


def command_table(args: argparse.Namespace) -> None:
    """Markdown table of several runs' scores.json (written by `evaluate.py test`), next to the paper's numbers."""
    import json

    runs = {}
    for item in args.runs:
        name, sep, path = item.partition("=")
        if not sep:
            raise InvalidInputError(f"--run {item!r}: expected NAME=path/to/scores.json")
        if not Path(path).is_file():
            raise MissingFileError(f"--run {name}: {path} not found (run evaluate.py test first)")
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


def command_convergence(args: argparse.Namespace) -> None:
    """SVG of validation tight a-mAP per stage-3 epoch for several runs (evaluation/convergence.py)."""
    from evaluation.convergence import validation_curve, write_convergence

    curves = {}
    for item in args.runs:
        name, sep, folders = item.partition("=")
        if not sep or not folders:
            raise InvalidInputError(f"--run {item!r}: expected NAME=RUN_DIR[,RUN_DIR...] (stage-3 run folders, in order)")
        curves[name] = validation_curve([Path(folder) for folder in folders.split(",")])
    print(f"wrote {write_convergence(args.out, curves)}")
    for name, (points, _) in curves.items():
        print(f"{name}: " + ", ".join(f"epoch {epoch} {value:.2f}" for epoch, value in points))


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

    p = commands.add_parser("spot", help="spot actions in any video file(s): results_spotting.json, a list and a "
                                         "timeline picture per video")
    p.add_argument("videos", type=Path, nargs="+", help="video files PyAV can open (mp4, mkv, avi, ...)")
    p.add_argument("--checkpoint", type=Path, required=True,
                   help="a train_spotting.py checkpoint or a released COMEDIAN .pth")
    p.add_argument("--config", default=None, help="stage-3 YAML for the eval settings (default: the checkpoint's)")
    p.add_argument("--out", type=Path, default=Path("spotting"), help="output folder (default: ./spotting)")
    p.add_argument("--second-half-start", type=float, default=None,
                   help="each file is a whole match: half 2 starts at this many seconds")
    p.add_argument("--match-halves", action="store_true",
                   help="files come two by two: half 1 then half 2 of one match")
    p.add_argument("--min-confidence", type=float, default=0.5,
                   help="threshold of the human-readable list and the timeline's dots, and where the page's slider "
                        "starts (the JSON and the page keep everything)")
    p.add_argument("--copy-video", action="store_true",
                   help="put a copy of each video beside its page instead of linking to the file where it is")
    p.add_argument("--clips", type=int, default=None,
                   help="write the N most confident actions as mp4 clips, and highlights.mp4, a reel of them")
    p.add_argument("--clips-min-confidence", type=float, default=None,
                   help="clips of every action at or above this confidence (with --clips: the N best of them)")
    p.add_argument("--clip-before", type=float, default=5.0, help="seconds of each clip before its action")
    p.add_argument("--clip-after", type=float, default=5.0, help="seconds of each clip after its action")
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    p.add_argument("--batch-size", type=int, default=None, help="windows per forward pass (default: eval.batch_size)")
    p.add_argument("--overwrite", action="store_true", help="replace the results of an earlier run in --out")
    p.add_argument("--decode-workers", type=int, default=min(8, os.cpu_count() or 1),
                   help="processes decoding the video ahead of the model, each a minute at a time (default: the "
                        "cores, at most 8); 1: one front-to-back read. The frames are the same either way")
    p.add_argument("--half-end", choices=("scored", "official"), default="scored",
                   help="scored (default): the last seconds of each half get scores; official: they stay 0, as in "
                        "the official evaluation (docs/METHOD.md)")
    p.set_defaults(run=command_spot)

    p = commands.add_parser("import-eztorch", help="convert a released COMEDIAN checkpoint (eztorch) into this "
                                                   "project's stage-3 format, checking every key and shape")
    p.add_argument("checkpoint", type=Path, help="comedian_{vivit,viswin}_tiny_seed*.pth")
    p.add_argument("--out", type=Path, required=True, help="the checkpoint to write")
    p.set_defaults(run=command_import_eztorch)

    p = commands.add_parser("table", help="Markdown table of runs' scores.json next to the paper's numbers")
    p.add_argument("--run", dest="runs", action="append", required=True,
                   help="NAME=path/to/scores.json (repeatable)")
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
    p.add_argument("--config", default=None, help="a configs/ensembles/*.yaml file (raw, out_raw, out)")
    p.add_argument("--raw", type=Path, nargs="+", default=None, help="raw-scores folders of the runs")
    p.add_argument("--out-raw", type=Path, default=None, help="where to write the averaged raw scores")
    p.add_argument("--out", type=Path, default=None, help="predictions folder to write")
    add_nms_arguments(p)
    p.set_defaults(run=command_ensemble)
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
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    args.run(args)


if __name__ == "__main__":
    main()
