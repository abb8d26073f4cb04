"""SoccerNet-v2 action-spotting labels: the 17 classes and a strict reader of `Labels-v2.json`.

Conventions (SoccerNet-v2's `Labels-v2.json`): every value in the file is a string; `position` is milliseconds since the start
of that half's trimmed video; the half is the first character of `gameTime` ("2 - 01:26"); `visibility` is "visible" or
"not shown". Anything else is an error that names the file, the annotation index and the field.
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import os
import re
from pathlib import Path
from typing import Any, Literal

from utils.errors import MissingFileError, UserError

# The official order (SoccerNet.Evaluation.utils.EVENT_DICTIONARY_V2). There is no background class.
CLASSES: tuple[str, ...] = (
    "Penalty", "Kick-off", "Goal", "Substitution", "Offside", "Shots on target", "Shots off target", "Clearance",
    "Ball out of play", "Throw-in", "Foul", "Indirect free-kick", "Direct free-kick", "Corner", "Yellow card",
    "Red card", "Yellow->red card",
)
CLASS_INDEX: dict[str, int] = {name: index for index, name in enumerate(CLASSES)}
NUM_CLASSES = len(CLASSES)
VISIBILITIES = ("visible", "not shown")
LABELS_FILE = "Labels-v2.json"

GAME_TIME_PATTERN = re.compile(r"^\s*([0-9]+)\s*-\s*([0-9]+):([0-9]{2})\s*$")


class LabelError(UserError, ValueError):
    """A malformed labels or predictions file; the message names the file, the entry index and the field."""


@dataclasses.dataclass(frozen=True)
class Annotation:
    half: int  # 1 or 2
    position_ms: int  # milliseconds since the start of the half's video
    label: int  # index into CLASSES
    visible: bool  # False for "not shown"
    team: str  # "home", "away" or "not applicable", as written

    @property
    def seconds(self) -> float:
        return self.position_ms / 1000.0


def parse_position_ms(value: Any, where: str) -> int:
    """An integer number of milliseconds, given as an int, an integral float or an integer string ("31500")."""
    if isinstance(value, bool):
        raise LabelError(f"{where}: 'position' must be integer milliseconds, got {value!r}")
    if isinstance(value, int):
        position = value
    elif isinstance(value, float) and value.is_integer():
        position = int(value)
    elif isinstance(value, str) and re.fullmatch(r"\s*[+-]?[0-9]+\s*", value):
        position = int(value)
    else:
        raise LabelError(f"{where}: 'position' must be integer milliseconds (e.g. \"31500\"), got {value!r}")
    if position < 0:
        raise LabelError(f"{where}: 'position' is negative ({position} ms); times are counted from the half's start")
    return position


def parse_half(value: Any, where: str, field: str) -> int:
    text = str(value).strip() if isinstance(value, (str, int)) and not isinstance(value, bool) else None
    if text not in ("1", "2"):
        raise LabelError(f"{where}: '{field}' must give half 1 or 2, got {value!r}")
    return int(text)


def parse_label_name(value: Any, where: str) -> int:
    if value not in CLASS_INDEX:
        close = difflib.get_close_matches(str(value), CLASSES, n=1, cutoff=0.75)
        hint = f"; did you mean {close[0]!r}?" if close else f"; expected one of {list(CLASSES)}"
        raise LabelError(f"{where}: unknown 'label' {value!r}{hint}")
    return CLASS_INDEX[value]


def load_json(path: str | os.PathLike) -> Any:
    path = Path(path)
    if not path.is_file():
        raise MissingFileError(f"labels file not found: {path}")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise LabelError(f"{path}: not valid JSON ({error})") from error


def parse_annotation(entry: Any, where: str) -> Annotation:
    if not isinstance(entry, dict):
        raise LabelError(f"{where}: expected an object, got {type(entry).__name__}")
    for key in ("gameTime", "label", "position", "visibility", "team"):
        if key not in entry:
            raise LabelError(f"{where}: missing key '{key}'")
    match = GAME_TIME_PATTERN.match(str(entry["gameTime"]))
    if not match:
        raise LabelError(f"{where}: 'gameTime' must look like \"1 - 04:27\", got {entry['gameTime']!r}")
    half = parse_half(match.group(1), where, "gameTime")
    if entry["visibility"] not in VISIBILITIES:
        raise LabelError(f"{where}: 'visibility' must be one of {VISIBILITIES}, got {entry['visibility']!r}")
    return Annotation(half=half, position_ms=parse_position_ms(entry["position"], where),
                      label=parse_label_name(entry["label"], where), visible=entry["visibility"] == "visible",
                      team=str(entry["team"]))


@dataclasses.dataclass
class GameLabels:
    path: Path
    url_local: str
    annotations: list[Annotation]
    unknown_labels: int = 0  # annotations dropped with on_unknown="warn"


def parse_labels(path: str | os.PathLike, on_unknown: Literal["error", "warn"] = "error") -> GameLabels:
    """Read one `Labels-v2.json` into typed annotations, in file order.

    on_unknown="warn" drops annotations whose label is not one of the 17 classes and counts them (the official
    evaluator drops them silently); every other problem is always an error.
    """
    path = Path(path)
    data = load_json(path)
    if not isinstance(data, dict) or not isinstance(data.get("annotations"), list):
        raise LabelError(f"{path}: expected an object with an 'annotations' list")
    annotations: list[Annotation] = []
    unknown = 0
    for index, entry in enumerate(data["annotations"]):
        where = f"{path}: annotation {index}"
        if on_unknown == "warn" and isinstance(entry, dict) and "label" in entry and entry["label"] not in CLASS_INDEX:
            unknown += 1
            continue
        annotations.append(parse_annotation(entry, where))
    return GameLabels(path=path, url_local=str(data.get("UrlLocal", "")), annotations=annotations,
                      unknown_labels=unknown)


def game_time(half: int, position_ms: int) -> str:
    """The `gameTime` string of a position: "2 - 07:05" (zero-padded minutes and seconds, as in the labels)."""
    total_seconds = position_ms // 1000
    return f"{half} - {total_seconds // 60:02d}:{total_seconds % 60:02d}"
