"""Converters between spotting label formats (docs/DATASETS.md, "Converters").

    python -m data.convert to-manifest --dataset soccernet_ball_2025 --root ROOT --split test --out test.json
    python -m data.convert to-soccernet --manifest test.json --out LABELS_ROOT [--labels-file Labels-ball.json]
    python -m data.convert from-e2e --classes class.txt --split-file train.json --videos DIR --out train.json

- `to-manifest`: a SoccerNet tree (SoccerNet-v2 or Ball Action Spotting) to a manifest (data/manifest.py): an entry
  per video (a half of a SoccerNet-v2 game is `<game>/<half>`, a one-video game is `<game>`), an event per
  annotation. What the manifest format has no field for (the file's other keys, an annotation's key order and
  extra keys, the file's JSON layout) goes into `metadata.soccernet` of the entry and the event, so that
- `to-soccernet` writes the labels files back as they were: for a file json.dump wrote (any indent), byte for byte;
  for any other, the same content (keys, their order, values). A manifest of the user's own gives one game folder
  per video, `<out>/<id>/<labels file>`, which the official evaluators read (`ActionSpotting.evaluate` with
  `dataset=None`, the manifest's label_fps as `framerate` and its classes as `EVENT_DICTIONARY`).
- `from-e2e`: E2E-Spot / T-DEED labels (`class.txt`, one class per line, and a split's JSON: videos with `fps` and
  `events` of `frame`, `label`, optional `team` and `comment`) to a manifest; positions are frame / fps in
  milliseconds, rounded, the frame kept in the event's metadata.
"""

from __future__ import annotations

import argparse
import json
import os
from fractions import Fraction
from pathlib import Path

from data.catalog import BUILT_IN, SoccerNetDataset, safe_game_id
from data.labels import GAME_TIME_PATTERN, LabelError, game_time, load_json
from data.manifest import manifest_document, read_manifest, write_manifest
from utils.errors import InvalidInputError, MissingFileError, run_entry_point
from utils.files import write_text

STANDARD_KEYS = ("gameTime", "label", "position", "team", "visibility")  # the annotation keys an event holds itself
DEFAULT_LABELS_FILE = "Labels-spotting.json"


# ----------------------------------------------------------------------------------------------------------------------
# SoccerNet tree -> manifest
# ----------------------------------------------------------------------------------------------------------------------
def json_layout(text: str) -> dict:
    """How json.dump wrote a file: its indent (None: one line), whether it ends with a newline and whether it
    escaped non-ASCII characters."""
    lines = text.split("\n", 2)
    indent = len(lines[1]) - len(lines[1].lstrip(" ")) if text.startswith("{\n") and len(lines) > 1 else None
    return {"indent": indent, "newline": text.endswith("\n"), "ascii": text.isascii()}


def annotation_event(annotation: dict, index: int) -> dict:
    """A SoccerNet annotation as a manifest event; `metadata.soccernet` keeps what an event has no field for."""
    position_ms = int(annotation["position"])
    event = {"head": "action", "label": annotation["label"], "position_ms": position_ms}
    event.update({key: annotation[key] for key in ("gameTime", "team", "visibility") if key in annotation})
    kept = {"index": index, "keys": list(annotation),
            "extra": {key: value for key, value in annotation.items() if key not in STANDARD_KEYS}}
    if annotation["position"] != str(position_ms):  # written as a number, or with padding
        kept["position"] = annotation["position"]
    event["metadata"] = {"soccernet": kept}
    return event


def soccernet_to_manifest(dataset: SoccerNetDataset, root: str | os.PathLike, games: list[str], out: str | os.PathLike,
                          split: str, resolution: str = "224p") -> Path:
    """Write the manifest of `games` of a SoccerNet tree; the labels are checked by the dataset's reader first."""
    root, out = Path(root), Path(out)
    entries = []
    for game in games:
        dataset.labels(root, game)  # every problem named (file, annotation, field) before anything is written
        path = dataset.labels_path(root, game)
        text = path.read_text(encoding="utf-8")
        document = json.loads(text)
        fields = {key: value for key, value in document.items() if key != "annotations"}
        halves_of = [int(GAME_TIME_PATTERN.match(a["gameTime"]).group(1)) if len(dataset.halves) > 1 else 1
                     for a in document["annotations"]]
        for half in dataset.halves:
            video = dataset.video_path(root, game, half, resolution)
            kept = {"game": game, "half": half, "labels_file": dataset.labels_file, "keys": list(document),
                    "fields": fields, "layout": json_layout(text)}
            entries.append({
                "id": game if len(dataset.halves) == 1 else f"{game}/{half}",
                "inputs": [{"type": "video", "path": Path(os.path.relpath(video, out.resolve().parent)).as_posix()}],
                "events": [annotation_event(annotation, index) for index, (annotation, h)
                           in enumerate(zip(document["annotations"], halves_of)) if h == half],
                "metadata": {"soccernet": kept}})
    metadata = {"label_fps": str(dataset.label_fps), "metrics": list(dataset.metrics), "source": dataset.name}
    return write_manifest(out, manifest_document(dataset.name, split, list(dataset.classes), list(dataset.teams),
                                                 entries, metadata))


# ----------------------------------------------------------------------------------------------------------------------
# Manifest -> SoccerNet tree
# ----------------------------------------------------------------------------------------------------------------------
def event_annotation(event: dict, half: int, where: str) -> dict:
    """A manifest event as a SoccerNet annotation: its recorded key order and extra keys, or the standard keys."""
    kept = (event.get("metadata") or {}).get("soccernet") or {}
    position_ms = event.get("position_ms")
    if not isinstance(position_ms, int) or isinstance(position_ms, bool) or position_ms < 0:
        raise LabelError(f"{where}: 'position_ms' must be a non-negative integer, got {position_ms!r}")
    position = kept.get("position")
    values = {"gameTime": event.get("gameTime") or game_time(half, position_ms), "label": event.get("label"),
              "position": position if position is not None and int(position) == position_ms else str(position_ms),
              **{key: event[key] for key in ("team", "visibility") if key in event}, **kept.get("extra", {})}
    keys = kept.get("keys") or [key for key in STANDARD_KEYS if key in values]
    return {key: values[key] for key in keys if key in values} | {k: v for k, v in values.items() if k not in keys}


def manifest_to_soccernet(manifest: str | os.PathLike, out: str | os.PathLike, labels_file: str | None = None) -> list:
    """Write `<out>/<game>/<labels file>` for every game of a manifest; returns the files written."""
    manifest, out = Path(manifest), Path(out)
    document = read_manifest(manifest)
    classes = document["labels"]["action"]["labels"]
    games: dict[str, dict] = {}
    for number, item in enumerate(document["data"]):
        kept = (item.get("metadata") or {}).get("soccernet") or {}
        where = f"{manifest}: video {number}"
        game = safe_game_id(str(kept.get("game") or item.get("id") or ""), where)
        entry = games.setdefault(game, {"kept": kept, "recorded": [], "added": []})
        half = int(kept.get("half", 1))
        for index, event in enumerate(item.get("events") or []):
            annotation = event_annotation(event, half, f"{where}: event {index}")
            if annotation["label"] not in classes:
                raise LabelError(f"{where}: event {index}: unknown 'label' {annotation['label']!r}; the manifest "
                                 f"lists {classes}")
            order = ((event.get("metadata") or {}).get("soccernet") or {}).get("index")
            if order is None:  # an event added to the manifest: after the recorded ones, by half and time
                entry["added"].append((half, event["position_ms"], index, annotation))
            else:
                entry["recorded"].append((order, annotation))
    written = []
    for game, entry in games.items():
        kept = entry["kept"]
        annotations = [a for *_, a in sorted(entry["recorded"], key=lambda row: row[0])]
        annotations += [a for *_, a in sorted(entry["added"], key=lambda row: row[:3])]
        fields = {**kept.get("fields", {"UrlLocal": game}), "annotations": annotations}
        keys = kept.get("keys") or list(fields)
        labels = {key: fields[key] for key in keys if key in fields}
        layout = kept.get("layout", {"indent": 2, "newline": False})
        text = json.dumps(labels, indent=layout["indent"], ensure_ascii=layout.get("ascii", True)) \
            + ("\n" if layout["newline"] else "")
        name = labels_file or kept.get("labels_file") or DEFAULT_LABELS_FILE
        written.append(write_text(out / game / name, text))
    return written


# ----------------------------------------------------------------------------------------------------------------------
# E2E-Spot / T-DEED -> manifest
# ----------------------------------------------------------------------------------------------------------------------
def e2e_to_manifest(classes_file: str | os.PathLike, split_file: str | os.PathLike, videos: str | os.PathLike,
                    out: str | os.PathLike, video_name: str = "{video}.mp4", label_fps: str = "25") -> Path:
    """Write the manifest of an E2E-Spot / T-DEED split; a video's file is `videos/video_name`."""
    classes_file, split_file, out = Path(classes_file), Path(split_file), Path(out)
    if not classes_file.is_file():
        raise MissingFileError(f"class list not found: {classes_file}")
    classes = [line.strip() for line in classes_file.read_text(encoding="utf-8").splitlines() if line.strip()]
    items = load_json(split_file)
    if not isinstance(items, list):
        raise InvalidInputError(f"{split_file}: expected a list of videos (E2E-Spot's {{split}}.json)")
    teams = sorted({str(e["team"]) for item in items for e in item.get("events", []) if e.get("team") is not None})
    entries = []
    for number, item in enumerate(items):
        where = f"{split_file}: video {number}"
        if not isinstance(item, dict) or "video" not in item or "fps" not in item:
            raise InvalidInputError(f"{where}: expected an object with 'video', 'fps' and 'events'")
        fps = Fraction(str(item["fps"])).limit_denominator(1001)  # 29.97002997 -> 30000/1001, 25.0 -> 25
        if fps <= 0:
            raise InvalidInputError(f"{where}: 'fps' must be positive, got {item['fps']!r}")
        events = []
        for index, event in enumerate(item.get("events", [])):
            frame = event.get("frame")
            if not isinstance(frame, int) or isinstance(frame, bool) or frame < 0:
                raise LabelError(f"{where}: event {index}: 'frame' must be a non-negative integer, got {frame!r}")
            if event.get("label") not in classes:
                raise LabelError(f"{where}: event {index}: unknown 'label' {event.get('label')!r}; {classes_file} "
                                 f"lists {classes}")
            position_ms = round(Fraction(frame) / fps * 1000)
            converted = {"head": "action", "label": event.get("label"), "position_ms": position_ms,
                         "gameTime": game_time(1, position_ms)}
            if event.get("team") is not None:
                converted["team"] = str(event["team"])
            converted["metadata"] = {"e2e": {key: value for key, value in event.items()
                                             if key not in ("label", "team")}}
            events.append(converted)
        path = Path(videos) / video_name.format(video=item["video"])
        entries.append({"id": safe_game_id(str(item["video"]), where),
                        "inputs": [{"type": "video", "path": Path(os.path.relpath(path, out.resolve().parent))
                                   .as_posix(), "fps": str(fps)}],
                        "events": events})
    return write_manifest(out, manifest_document(split_file.stem, split_file.stem, classes, teams, entries,
                                                 {"label_fps": label_fps, "metrics": ["at1"]}))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    p = commands.add_parser("to-manifest", help="a SoccerNet tree (v2 or Ball Action Spotting) to a manifest")
    p.add_argument("--dataset", default="soccernet_v2", choices=sorted(BUILT_IN), help="the tree's dataset")
    p.add_argument("--root", type=Path, required=True, help="root holding league/season/game/<labels file>")
    p.add_argument("--split", help="an official split or a games file (default: every game under --root)")
    p.add_argument("--resolution", default="224p", help="the videos the manifest names (default 224p)")
    p.add_argument("--out", type=Path, required=True, help="the manifest to write")
    p = commands.add_parser("to-soccernet", help="a manifest to a SoccerNet tree of labels files")
    p.add_argument("--manifest", type=Path, required=True)
    p.add_argument("--out", type=Path, required=True, help="root to write <game>/<labels file> under")
    p.add_argument("--labels-file", help=f"file name (default: the original's, else {DEFAULT_LABELS_FILE})")
    p = commands.add_parser("from-e2e", help="E2E-Spot / T-DEED labels (class.txt + a split's JSON) to a manifest")
    p.add_argument("--classes", type=Path, required=True, help="class.txt: one class per line, in order")
    p.add_argument("--split-file", type=Path, required=True, help="{split}.json: videos with fps and frame events")
    p.add_argument("--videos", type=Path, required=True, help="folder holding the videos")
    p.add_argument("--video-name", default="{video}.mp4", help="a video's file under --videos (default {video}.mp4)")
    p.add_argument("--label-fps", default="25", help="the metric's grid, rows per second (default 25)")
    p.add_argument("--out", type=Path, required=True, help="the manifest to write")
    args = parser.parse_args(argv)
    if args.command == "to-manifest":
        dataset = BUILT_IN[args.dataset]
        games = dataset.games(args.split, args.root) if args.split else dataset.discover(args.root)
        if not games:
            raise MissingFileError(f"no <league>/<season>/<game>/{dataset.labels_file} under {args.root}")
        written = soccernet_to_manifest(dataset, args.root, games, args.out, args.split or "all", args.resolution)
        print(f"wrote {written} ({len(games)} games of {dataset.name})")
    elif args.command == "to-soccernet":
        written = manifest_to_soccernet(args.manifest, args.out, args.labels_file)
        print(f"wrote {len(written)} labels files under {args.out}")
    else:
        written = e2e_to_manifest(args.classes, args.split_file, args.videos, args.out, args.video_name,
                                  args.label_fps)
        print(f"wrote {written}")


if __name__ == "__main__":
    run_entry_point(main)
