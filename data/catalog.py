"""Spotting datasets as descriptions: every fact the code needs about a dataset, in one place (docs/DATASETS.md).

`load_dataset(name)` gives one of:
- `soccernet_v2`: SoccerNet-v2 action spotting, 17 classes, a video per half (`{1,2}_224p.mkv`), `Labels-v2.json`,
  scored on a 2 fps grid with the tight and loose tolerances;
- `soccernet_ball_2023`: Ball Action Spotting 2023, 2 classes, a video per half, `Labels-ball.json`, a 25 fps grid,
  mAP@1;
- `soccernet_ball_2024`: BAS 2024, 12 classes, one video per game (`224p.mp4`) on one timeline, a 25 fps grid, mAP@1;
- `soccernet_ball_2025`: Team-BAS 2025, the 2024 classes with the team (left or right) of every action, scored per
  class and team as the official Team-BAS metric scores it;
- a manifest file (`*.json`): a user's own dataset, one manifest per split (data/manifest.py).

A game is identified by its path under the root (`league/season/game`) or, in a manifest, by its id. A game has one
or two halves (its videos: `half` 1 is the only one of a one-video game); positions are milliseconds from the start
of the half's video. The metric puts them on a grid of `label_fps` rows per second, `int(label_fps * ms / 1000)` as
the official evaluators do, and matches predictions within the tolerances of its metrics.
"""

from __future__ import annotations

import abc
import dataclasses
import difflib
import logging
import os
import re
from fractions import Fraction
from pathlib import Path

from data.labels import Annotation, GameLabels, LabelError, load_json, parse_annotation
from utils.errors import InvalidInputError, MissingFileError

SPLITS_DIR = Path(__file__).resolve().parent / "splits"
OFFICIAL_SPLITS = ("train", "valid", "test", "challenge")
V2_CLASSES = (
    "Penalty", "Kick-off", "Goal", "Substitution", "Offside", "Shots on target", "Shots off target", "Clearance",
    "Ball out of play", "Throw-in", "Foul", "Indirect free-kick", "Direct free-kick", "Corner", "Yellow card",
    "Red card", "Yellow->red card",
)  # the official order (SoccerNet.Evaluation.utils.EVENT_DICTIONARY_V2); there is no background class
BALL_CLASSES = ("PASS", "DRIVE", "HEADER", "HIGH PASS", "OUT", "CROSS", "THROW IN", "SHOT", "BALL PLAYER BLOCK",
                "PLAYER SUCCESSFUL TACKLE", "FREE KICK", "GOAL")  # sn-teamspotting util/utils.py, in index order


@dataclasses.dataclass(frozen=True)
class Dataset(abc.ABC):
    """What the code knows of a dataset. `teams`, when given, are scored: each class is split into one column per
    team (`columns`), as the Team-BAS metric scores them; otherwise a team in the labels is kept as written."""

    name: str
    classes: tuple[str, ...]  # in official order: index = class
    label_fps: Fraction  # the metric's grid: rows per second
    metrics: tuple[str, ...]  # the default metrics (evaluation/metric.py: METRIC_DELTAS), the first selects the best
    halves: tuple[int, ...] = (1, 2)  # the videos of a game: (1, 2) a video per half, (1,) one video per game
    teams: tuple[str, ...] = ()
    # the official evaluator this dataset is scored as: "pip" (SoccerNet's ActionSpotting.evaluate: labels by their
    # gameTime half, the 17/13 unshown factor of multi-tolerance metrics) or "team" (the Team-BAS metric)
    scorer: str = "pip"
    cap_minutes: int | None = 120  # the official per-half buffer: later positions count in its last row
    unshown_factor: Fraction = Fraction(17, 13)  # pip's constant on multi-tolerance a_mAP_unshown

    @property
    def columns(self) -> tuple[str, ...]:
        """What the model predicts and the metric scores: the classes, or `<class>-<team>` for every class and team
        (class-major: PASS-left, PASS-right, DRIVE-left, ...)."""
        return tuple(f"{name}-{team}" for name in self.classes for team in self.teams) if self.teams else self.classes

    def column(self, label: int, team: str | None) -> int:
        return label * len(self.teams) + self.teams.index(team) if self.teams else label

    def label_of(self, column: int) -> tuple[str, str | None]:
        """(class name, team or None) of a column."""
        if not self.teams:
            return self.classes[column], None
        return self.classes[column // len(self.teams)], self.teams[column % len(self.teams)]

    def mirrored_columns(self) -> list[int] | None:
        """For each column, the column it becomes in a horizontally flipped picture: a class's left and right teams
        trade places (the Team-BAS teams are the sides of the picture). None when a flip changes no column (no
        teams, or teams that are not sides, such as home and away)."""
        if set(self.teams) != {"left", "right"}:
            return None
        mirrored = {"left": "right", "right": "left"}
        return [self.column(column // len(self.teams), mirrored[self.teams[column % len(self.teams)]])
                for column in range(len(self.columns))]

    def scored(self, annotation: Annotation) -> Annotation:
        """The annotation as training sees it: its column as label, and half 1 in a game of one video."""
        return dataclasses.replace(annotation, label=self.column(annotation.label, annotation.team),
                                   half=annotation.half if len(self.halves) > 1 else 1)

    def row(self, position_ms: int) -> int:
        """The metric's grid row of a position (before the cap): int(label_fps * (position / 1000)), as float."""
        return int(float(self.label_fps) * (position_ms / 1000))

    def describe(self) -> dict:
        """What a checkpoint stores, so that inference rebuilds the dataset's columns without its files."""
        return {"name": self.name, "classes": list(self.classes), "teams": list(self.teams),
                "label_fps": str(self.label_fps), "metrics": list(self.metrics), "halves": list(self.halves)}

    # Games, labels and videos: the layout's own (SoccerNetDataset here, ManifestDataset in data/manifest.py)
    @abc.abstractmethod
    def games(self, split: str, root: str | os.PathLike | None = None) -> list[str]:
        """The games of a split (an official name, a games file or a manifest)."""

    @abc.abstractmethod
    def labels_path(self, root: str | os.PathLike, game: str) -> Path:
        """The file that holds a game's labels."""

    @abc.abstractmethod
    def labels(self, root: str | os.PathLike, game: str, on_unknown: str = "error") -> GameLabels:
        """A game's annotations, in file order; on_unknown="warn" drops (and counts) labels that are no class."""

    @abc.abstractmethod
    def video_path(self, root: str | os.PathLike, game: str, half: int, resolution: str = "224p") -> Path:
        """The video of one half of a game."""

    def declared_rate(self, game: str) -> Fraction | None:
        """The frame rate the labels give for a game's video (a manifest's 'fps'), None when they give none."""
        return None

    def check_rate(self, game: str, rate: Fraction) -> None:
        """Raise when a video's rate contradicts the one its labels declare."""


@dataclasses.dataclass(frozen=True)
class SoccerNetDataset(Dataset):
    """A dataset laid out as SoccerNet's: `<root>/<league>/<season>/<game>/` holding the videos and a labels file;
    official split lists in data/splits/<splits>/."""

    labels_file: str = "Labels-v2.json"
    video_name: str = "{half}_{resolution}.mkv"  # the file of a half's video
    splits: str = ""  # the folder of the official split lists under data/splits/
    required: tuple[str, ...] = ("gameTime", "label", "position", "visibility", "team")  # keys of every annotation
    val_alias: bool = False  # BAS tools call the valid split "val"

    def games(self, split: str, root: str | os.PathLike | None = None) -> list[str]:
        """The games of an official split name or of a games file (one game path per line), looked up in the
        working directory, then under `root` (the generated datasets keep their train.txt / valid.txt / test.txt
        there)."""
        if split == "val" and self.val_alias:
            split = "valid"
        if split in OFFICIAL_SPLITS:
            return read_games_file(SPLITS_DIR / self.splits / f"{split}.txt")
        if split == "val":
            raise InvalidInputError("unknown split 'val': SoccerNet calls it 'valid'")
        candidates = [Path(split)] + ([Path(root) / split] if root is not None and not Path(split).is_absolute()
                                      else [])
        for candidate in candidates:
            if candidate.is_file():
                return read_games_file(candidate)
        tried = " or ".join(str(c) for c in candidates)
        raise InvalidInputError(f"unknown split {split!r}: expected one of {OFFICIAL_SPLITS} or a games file (tried "
                                f"{tried})")

    def discover(self, root: str | os.PathLike, filename: str | None = None) -> list[str]:
        """Every `league/season/game` folder under root holding `filename` (default: the labels file), sorted."""
        root = Path(root)
        if not root.is_dir():
            raise MissingFileError(f"dataset root not found: {root}")
        return sorted(str(path.parent.relative_to(root).as_posix())
                      for path in root.glob(f"*/*/*/{filename or self.labels_file}"))

    def labels_path(self, root: str | os.PathLike, game: str) -> Path:
        return Path(root) / game / self.labels_file

    def video_path(self, root: str | os.PathLike, game: str, half: int, resolution: str = "224p") -> Path:
        return Path(root) / game / self.video_name.format(half=half, resolution=resolution)

    def labels(self, root: str | os.PathLike, game: str, on_unknown: str = "error") -> GameLabels:
        """Read one labels file into typed annotations, in file order. on_unknown="warn" drops annotations whose
        label is not a class and counts them (the official evaluators drop them silently); every other problem is an
        error naming the file, the annotation and the field."""
        path = self.labels_path(root, game)
        data = load_json(path)
        if not isinstance(data, dict) or not isinstance(data.get("annotations"), list):
            raise LabelError(f"{path}: expected an object with an 'annotations' list")
        index = {name: number for number, name in enumerate(self.classes)}
        annotations, unknown = [], 0
        for number, entry in enumerate(data["annotations"]):
            if on_unknown == "warn" and isinstance(entry, dict) and entry.get("label", index) not in index:
                unknown += 1
                continue
            annotation = parse_annotation(entry, f"{path}: annotation {number}", self.required, index, self.teams)
            if len(self.halves) == 1 and annotation.half != 1:  # one timeline: positions are from the video start
                logging.getLogger("comedian").warning(
                    f"{path}: annotation {number} is in half {annotation.half} of a one-video game; its position is "
                    f"read from the start of the video")
            annotations.append(annotation)
        return GameLabels(path, str(data.get("UrlLocal", "")), annotations, unknown)


def read_games_file(path: str | os.PathLike) -> list[str]:
    """Game paths, one per line; blank lines and lines starting with '#' are skipped. Duplicates are an error."""
    path = Path(path)
    if not path.is_file():
        raise MissingFileError(f"games file not found: {path}")
    games = [line.strip().strip("/") for line in path.read_text(encoding="utf-8").splitlines()]
    games = [game for game in games if game and not game.startswith("#")]
    seen: set[str] = set()
    duplicates = sorted({game for game in games if game in seen or seen.add(game)})
    if duplicates:
        raise InvalidInputError(f"{path}: games listed twice: {duplicates}")
    if not games:
        raise InvalidInputError(f"{path}: lists no game")
    return games


BALL = dict(labels_file="Labels-ball.json", label_fps=Fraction(25), metrics=("at1",), splits="ball", val_alias=True,
            required=("gameTime", "label", "position"))
BUILT_IN: dict[str, Dataset] = {
    "soccernet_v2": SoccerNetDataset("soccernet_v2", V2_CLASSES, Fraction(2), ("tight", "loose")),
    "soccernet_ball_2023": SoccerNetDataset("soccernet_ball_2023", BALL_CLASSES[:2], **BALL),
    "soccernet_ball_2024": SoccerNetDataset("soccernet_ball_2024", BALL_CLASSES, halves=(1,),
                                            video_name="{resolution}.mp4", **BALL),
    "soccernet_ball_2025": SoccerNetDataset(
        "soccernet_ball_2025", BALL_CLASSES, halves=(1,), teams=("left", "right"), scorer="team",
        video_name="{resolution}.mp4", **{**BALL, "required": ("gameTime", "label", "position", "team")}),
}


def load_dataset(name: str, key: str = "data.dataset") -> Dataset:
    """A built-in dataset by name, or a manifest file (its path, ending in .json); an unknown name is an error naming
    the config key or flag (`key`) and the closest name."""
    if name in BUILT_IN:
        return BUILT_IN[name]
    if name.endswith(".json"):
        from data.manifest import ManifestDataset  # a manifest reads its files: only when one is named

        return ManifestDataset.load(name)
    close = difflib.get_close_matches(name, BUILT_IN, n=1, cutoff=0.6)
    raise InvalidInputError(f"{key}={name!r}: expected one of {sorted(BUILT_IN)}" +
                            (f" (did you mean {close[0]!r}?)" if close else "") + " or a manifest file (.json)")


def check_disjoint(train: list[str], valid: list[str], train_split: str, valid_split: str) -> None:
    """A game in both the training and the validation split makes validation measure memorisation: an error naming
    the games."""
    shared = sorted(set(train) & set(valid))
    if shared:
        raise InvalidInputError(
            f"{len(shared)} games are in both data.train_split={train_split!r} and data.valid_split={valid_split!r}: "
            + ", ".join(shared[:5]) + (" ..." if len(shared) > 5 else "") + "; remove them from one of the splits "
            "(to train on every labelled game, validate on a split kept apart)")


def safe_game_id(game: str, where: str) -> str:
    """A game id is a folder name of the outputs (the frame store, the predictions tree): a relative path that
    stays below them."""
    parts = Path(game).parts
    if not game or Path(game).is_absolute() or ".." in parts or re.search(r"[\x00-\x1f]", game):
        raise InvalidInputError(f"{where}: game id {game!r} must be a relative path without '..'")
    return Path(game).as_posix()


def described_dataset(description: dict) -> Dataset:
    """The dataset a checkpoint or a raw-scores folder describes (`Dataset.describe`): the built-in one of that name,
    or one of those classes and teams without files (a manifest's, for inference and post-processing)."""
    built_in = BUILT_IN.get(description["name"])
    if built_in is not None and built_in.describe() == description:
        return built_in
    from data.manifest import ManifestDataset

    teams = tuple(description["teams"])
    return ManifestDataset(description["name"], tuple(description["classes"]), Fraction(description["label_fps"]),
                           tuple(description["metrics"]), halves=tuple(description["halves"]), teams=teams,
                           scorer="team" if teams else "pip", cap_minutes=None, unshown_factor=Fraction(1))


def checked_labels(dataset: Dataset, root: str | os.PathLike, lengths: dict[tuple[str, int], int], fps: float,
                   split: str) -> dict[str, list[Annotation]]:
    """Every game's labels as training sees them (`Dataset.scored`), checked before anything runs. lengths: frames
    at `fps` of every half of the split's games. Found: annotations after the end of their video (never targets),
    two of a column in one row of the metric's grid (the metric keeps one), a class no validation annotation has
    (its validation score has nothing to measure). A manifest's are errors naming the manifest, the game and the
    event; the built-in datasets' are the official data: warnings."""
    labels, late, late_events, doubles = {}, {}, [], []
    for game in sorted({game for game, _ in lengths}):
        labels[game] = [dataset.scored(annotation) for annotation in dataset.labels(root, game).annotations]
        rows = set()
        for index, annotation in enumerate(labels[game]):
            where = f"{dataset.labels_path(root, game)}: {game} annotation {index} at {annotation.position_ms} ms"
            if annotation.position_ms * fps / 1000 >= lengths[(game, annotation.half)]:
                late[f"{game} half {annotation.half}"] = late.get(f"{game} half {annotation.half}", 0) + 1
                late_events.append(f"{where} (the video lasts {float(lengths[(game, annotation.half)] / fps):.1f} s)")
            slot = (annotation.half, annotation.label, dataset.row(annotation.position_ms))
            if slot in rows:
                doubles.append(f"{where} ({dataset.columns[annotation.label]} twice in one row)")
            rows.add(slot)
    manifest = not isinstance(dataset, SoccerNetDataset)
    listed = late_events if manifest else [f"{where} ({count})" for where, count in late.items()]
    seen = {annotation.label // max(1, len(dataset.teams)) for game in labels for annotation in labels[game]}
    absent = [name for number, name in enumerate(dataset.classes) if number not in seen] \
        if split == "validation" else []
    problems = [f"{sum(late.values())} {split} annotations lie after the end of their half's video and are never "
                f"targets: " + ", ".join(listed[:5]) + (" ..." if len(listed) > 5 else "")] if late else []
    problems += [f"{len(doubles)} {split} annotations share a row of the metric's grid with one of their class: "
                 + ", ".join(doubles[:5]) + (" ..." if len(doubles) > 5 else "")] if doubles else []
    them = "it" if len(absent) == 1 else "them"
    files = sorted({str(dataset.labels_path(root, game)) for game in labels}) if manifest else [f"{len(labels)} games"]
    problems += [f"no {split} annotation of {', '.join(absent)} in {', '.join(files)}: " + (
        f"the official metric scores {them} 0 and counts {them} in the mean" if dataset.scorer == "pip" else
        f"the team score leaves {them} out")] if absent else []
    if problems and manifest:
        raise LabelError("; ".join(problems) + " (fix the manifests)")
    for problem in problems:
        logging.getLogger("comedian").warning(problem)
    return labels
