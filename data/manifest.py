"""A user's own spotting dataset: one manifest file per split, compatible with OpenSportsLib's action-spotting
manifests (version 2.0), read as a dataset description (data/catalog.py).

    {"version": "2.0", "task": "action_spotting", "dataset_name": "my_sport", "metadata": {"split": "train"},
     "labels": {"action": {"type": "single_label", "labels": ["serve", "smash", ...]},
                "team": {"type": "single_label", "labels": ["left", "right"]}},            (optional: scored teams)
     "data": [{"id": "match_01",                                                        (optional: the video's path)
               "inputs": [{"type": "video", "path": "videos/match_01.mp4", "fps": 30}],  (fps optional: probed)
               "events": [{"head": "action", "label": "serve", "position_ms": 680,
                           "team": "left", "visibility": "visible"}]}]}               (team, visibility optional)

Optional in the top-level "metadata": "label_fps" (the metric's grid, rows per second; default 25, as Ball Action
Spotting) and "metrics" (default ["at1"]). A video's path is read from the manifest's folder. Every video is one
game of one half; videos may have any length (the metric has no per-video cap). The manifests of one dataset share
their classes and teams. Bad labels are errors naming the manifest, the video and the event: an unknown label, a
negative position, a team the dataset does not have, two events of a class (and team) in one grid row.
"""

from __future__ import annotations

import dataclasses
import os
from fractions import Fraction
from pathlib import Path

from data.catalog import Dataset, safe_game_id
from data.labels import Annotation, GameLabels, LabelError, parse_label_name, parse_position_ms, parse_team
from data.labels import VISIBILITIES, game_time, load_json
from utils.errors import InvalidInputError, MissingFileError
from utils.files import write_json

VERSION = "2.0"
DEFAULT_LABEL_FPS = 25
DEFAULT_METRICS = ("at1",)


@dataclasses.dataclass(frozen=True)
class ManifestVideo:
    """One video of a manifest: a game of one half."""

    game: str
    path: Path
    fps: Fraction | None  # as the manifest gives it (probed from the file otherwise)
    events: list
    where: str  # "<manifest>: video N (<id>)", for messages


@dataclasses.dataclass(frozen=True)
class ManifestDataset(Dataset):
    """A dataset described by manifests: the one named by `data.dataset` gives the classes, teams and grid; each
    split is a manifest file of the same classes."""

    source: Path = Path()
    videos: dict = dataclasses.field(default_factory=dict, compare=False)  # game -> ManifestVideo, as splits load

    @classmethod
    def load(cls, path: str | os.PathLike) -> ManifestDataset:
        path = Path(path)
        document = read_manifest(path)
        labels = document["labels"]
        metadata = document.get("metadata") or {}
        try:
            label_fps = Fraction(str(metadata.get("label_fps", DEFAULT_LABEL_FPS)))
        except (ValueError, ZeroDivisionError):
            label_fps = Fraction(0)
        if label_fps <= 0:
            raise InvalidInputError(f"{path}: metadata.label_fps must be a positive number of rows per second, got "
                                    f"{metadata.get('label_fps')!r}")
        teams = tuple((labels.get("team") or {}).get("labels", ()))
        dataset = cls(str(path), tuple(labels["action"]["labels"]), label_fps,
                      tuple(metadata.get("metrics", DEFAULT_METRICS)), halves=(1,), teams=teams,
                      scorer="team" if teams else "pip", cap_minutes=None, unshown_factor=Fraction(1), source=path)
        dataset.register(path, document)
        return dataset

    def register(self, path: Path, document: dict) -> list[str]:
        """Remember the videos of a manifest of this dataset; returns their games, in manifest order."""
        labels = document["labels"]
        if tuple(labels["action"]["labels"]) != self.classes or \
                tuple((labels.get("team") or {}).get("labels", ())) != self.teams:
            raise InvalidInputError(f"{path}: its classes and teams differ from those of {self.source} (every "
                                    f"manifest of a dataset lists the same, in the same order)")
        games = []
        for number, item in enumerate(document["data"]):
            where = f"{path}: video {number}"
            inputs = item.get("inputs") if isinstance(item, dict) else None
            video = next((entry for entry in inputs or [] if isinstance(entry, dict) and entry.get("type") == "video"),
                         None)
            if video is None or not isinstance(video.get("path"), str):
                raise InvalidInputError(f"{where}: expected an 'inputs' list with a video and its 'path'")
            game = safe_game_id(str(item.get("id") or Path(video["path"]).with_suffix("").as_posix()), where)
            known = self.videos.get(game)
            if known is not None and known.where.split(":")[0] != str(path):
                raise InvalidInputError(f"{where}: game {game!r} is also in {known.where}")
            if game in games:
                raise InvalidInputError(f"{where}: game {game!r} is listed twice")
            self.videos[game] = ManifestVideo(game, (path.parent / video["path"]).resolve(),
                                              _video_rate(video.get("fps"), where), item.get("events") or [],
                                              f"{where} ({game})")
            games.append(game)
        return games

    def games(self, split: str, root: str | os.PathLike | None = None) -> list[str]:
        """The games of a split manifest: its path as given, else under `root`, else beside the dataset's manifest."""
        candidates = [Path(split)] + [Path(base) / split for base in (root, self.source.parent) if base is not None
                                      and not Path(split).is_absolute()]
        for candidate in candidates:
            if candidate.is_file():
                return self.register(candidate, read_manifest(candidate))
        tried = " or ".join(str(c) for c in candidates)
        raise MissingFileError(f"split manifest {split!r} not found (tried {tried}); a manifest dataset's splits are "
                               f"manifest files")

    def _video(self, game: str) -> ManifestVideo:
        if game not in self.videos:
            raise InvalidInputError(f"game {game!r} is in no manifest read so far (name its split's manifest)")
        return self.videos[game]

    def labels_path(self, root: str | os.PathLike, game: str) -> Path:
        return Path(self._video(game).where.split(":")[0])

    def declared_rate(self, game: str) -> Fraction | None:
        return self._video(game).fps

    def check_rate(self, game: str, rate: Fraction) -> None:
        """A rate the manifest gives must be the video's (frame numbers converted at another rate would put every
        event elsewhere in the video): within 0.05%, so that 30 for a 29.97 fps file (0.1% off) is caught."""
        declared = self._video(game).fps
        if declared is not None and abs(declared / Fraction(rate) - 1) > Fraction(1, 2000):
            raise InvalidInputError(f"{self._video(game).where}: 'fps' {declared} differs from the video's "
                                    f"{float(rate):.6g} fps ({self._video(game).path}); correct it, or leave it out "
                                    f"to use the video's")

    def video_path(self, root: str | os.PathLike, game: str, half: int = 1, resolution: str = "224p") -> Path:
        return self._video(game).path

    def labels(self, root: str | os.PathLike, game: str, on_unknown: str = "error") -> GameLabels:
        """The events of a game, checked: known labels and teams, positions >= 0, one event of a class (and team)
        per grid row."""
        video = self._video(game)
        index = {name: number for number, name in enumerate(self.classes)}
        annotations, rows, unknown = [], {}, 0
        for number, event in enumerate(video.events):
            where = f"{video.where}: event {number}"
            if not isinstance(event, dict):
                raise LabelError(f"{where}: expected an object, got {type(event).__name__}")
            if on_unknown == "warn" and event.get("label") not in index:
                unknown += 1
                continue
            visibility = event.get("visibility", "visible")
            if visibility not in VISIBILITIES:
                raise LabelError(f"{where}: 'visibility' must be one of {VISIBILITIES}, got {visibility!r}")
            annotation = Annotation(1, parse_position_ms(event.get("position_ms"), where, "position_ms"),
                                    parse_label_name(event.get("label"), where, index), visibility == "visible",
                                    parse_team(event.get("team"), where, self.teams))
            slot = (self.column(annotation.label, annotation.team), self.row(annotation.position_ms))
            if slot in rows:
                first, position = rows[slot]
                raise LabelError(f"{where}: a second {event.get('label')!r}"
                                 f"{' of team ' + repr(annotation.team) if self.teams else ''} at "
                                 f"{annotation.position_ms} ms, in the {1000 / float(self.label_fps):g} ms row of the "
                                 f"metric's grid of event {first} (at {position} ms); the metric would keep one of "
                                 f"them")
            rows[slot] = (number, annotation.position_ms)
            annotations.append(annotation)
        return GameLabels(self.labels_path(root, game), game, annotations, unknown)


def _video_rate(value, where: str) -> Fraction | None:
    """A video's optional 'fps': a positive number or fraction ("30000/1001")."""
    if value is None:
        return None
    try:
        rate = Fraction(str(value)) if not isinstance(value, bool) else Fraction(0)
    except (ValueError, ZeroDivisionError):
        rate = Fraction(0)
    if rate <= 0:
        raise InvalidInputError(f"{where}: 'fps' must be a positive frame rate (25, 29.97 or \"30000/1001\"), got "
                                f"{value!r}")
    return rate


def read_manifest(path: str | os.PathLike) -> dict:
    """A manifest file, checked for what every reader needs: its version, its classes (and teams), its videos."""
    path = Path(path)
    if not path.is_file():
        raise MissingFileError(f"manifest not found: {path}")
    document = load_json(path)
    problem = None
    if not isinstance(document, dict):
        problem = f"expected an object, got {type(document).__name__}"
    elif str(document.get("version")) != VERSION:
        problem = f"'version' must be {VERSION!r} (OpenSportsLib's action-spotting manifests), got " \
                  f"{document.get('version')!r}"
    elif not isinstance(document.get("labels"), dict) or not isinstance(
            (document["labels"].get("action") or {}).get("labels"), list) or not document["labels"]["action"]["labels"]:
        problem = "expected 'labels': {'action': {'labels': [the class names, in order]}}"
    elif not isinstance(document.get("data"), list):
        problem = "expected a 'data' list of videos"
    if problem:
        raise InvalidInputError(f"{path}: {problem}")
    return document


def manifest_document(dataset_name: str, split: str, classes: list[str], teams: list[str], videos: list[dict],
                      metadata: dict | None = None) -> dict:
    """A manifest: videos as [{"id", "inputs": [...], "events": [...], ...}]; metadata adds label_fps, metrics."""
    labels = {"action": {"type": "single_label", "labels": list(classes)}}
    if teams:
        labels["team"] = {"type": "single_label", "labels": list(teams)}
    return {"version": VERSION, "task": "action_spotting", "dataset_name": dataset_name,
            "metadata": {"split": split, **(metadata or {})}, "labels": labels, "data": videos}


def manifest_event(label: str, position_ms: int, team: str | None = None, visible: bool = True) -> dict:
    event = {"head": "action", "label": label, "position_ms": int(position_ms), "gameTime": game_time(1, position_ms)}
    if team is not None:
        event["team"] = team
    if not visible:
        event["visibility"] = "not shown"
    return event


def write_manifest(path: str | os.PathLike, document: dict) -> Path:
    return write_json(path, document, indent=1)
