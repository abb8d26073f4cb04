"""Action-spotting labels, strictly read: annotations and their fields, as SoccerNet writes them (data/catalog.py says
which dataset has which classes, keys and teams).

Conventions (SoccerNet's `Labels-v2.json` and `Labels-ball.json`): every value in the file is a string; `position` is
milliseconds since the start of that half's video; the half is the first character of `gameTime` ("2 - 01:26");
`visibility` is "visible" or "not shown". Anything else is an error that names the file, the annotation index and
the field.
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import os
import re
from pathlib import Path
from typing import Any

from utils.errors import MissingFileError, UserError

VISIBILITIES = ("visible", "not shown")
GAME_TIME_PATTERN = re.compile(r"^\s*([0-9]+)\s*-\s*([0-9]+):([0-9]{2})\s*$")


class LabelError(UserError, ValueError):
    """A malformed labels or predictions file; the message names the file, the entry index and the field."""


@dataclasses.dataclass(frozen=True)
class Annotation:
    half: int  # 1 or 2, from gameTime
    position_ms: int  # milliseconds since the start of the half's video
    label: int  # index into the dataset's classes
    visible: bool  # False for "not shown"
    team: str | None  # as written (SoccerNet-v2: "home", "away", "not applicable"), a scored team, or None

    @property
    def seconds(self) -> float:
        return self.position_ms / 1000.0


def parse_position_ms(value: Any, where: str, key: str = "position") -> int:
    """An integer number of milliseconds, given as an int, an integral float or an integer string ("31500")."""
    if isinstance(value, bool):
        raise LabelError(f"{where}: '{key}' must be integer milliseconds, got {value!r}")
    if isinstance(value, int):
        position = value
    elif isinstance(value, float) and value.is_integer():
        position = int(value)
    elif isinstance(value, str) and re.fullmatch(r"\s*[+-]?[0-9]+\s*", value):
        position = int(value)
    else:
        raise LabelError(f"{where}: '{key}' must be integer milliseconds (e.g. \"31500\"), got {value!r}")
    if position < 0:
        raise LabelError(f"{where}: '{key}' is negative ({position} ms); times are counted from the start of the "
                         f"video")
    return position


def parse_half(value: Any, where: str, field: str) -> int:
    text = str(value).strip() if isinstance(value, (str, int)) and not isinstance(value, bool) else None
    if text not in ("1", "2"):
        raise LabelError(f"{where}: '{field}' must give half 1 or 2, got {value!r}")
    return int(text)


def parse_label_name(value: Any, where: str, index: dict[str, int]) -> int:
    """The class index of a label name (`index`: name -> index, the dataset's classes in order)."""
    if value not in index:
        close = difflib.get_close_matches(str(value), list(index), n=1, cutoff=0.75)
        hint = f"; did you mean {close[0]!r}?" if close else f"; expected one of {list(index)}"
        raise LabelError(f"{where}: unknown 'label' {value!r}{hint}")
    return index[value]


def parse_team(value: Any, where: str, teams: tuple[str, ...]) -> str | None:
    """A team as written, or, when the dataset scores teams, one of them."""
    if teams and value not in teams:
        raise LabelError(f"{where}: 'team' must be one of {list(teams)}, got {value!r}")
    return None if value is None else str(value)


def load_json(path: str | os.PathLike) -> Any:
    path = Path(path)
    if not path.is_file():
        raise MissingFileError(f"labels file not found: {path}")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise LabelError(f"{path}: not valid JSON ({error})") from error


def parse_annotation(entry: Any, where: str, required: tuple[str, ...], index: dict[str, int],
                     teams: tuple[str, ...] = ()) -> Annotation:
    """One annotation of a SoccerNet labels file; `required`: the keys every annotation of the dataset has."""
    if not isinstance(entry, dict):
        raise LabelError(f"{where}: expected an object, got {type(entry).__name__}")
    for key in required:
        if key not in entry:
            raise LabelError(f"{where}: missing key '{key}'")
    match = GAME_TIME_PATTERN.match(str(entry.get("gameTime", "1 - 00:00")))
    if not match:
        raise LabelError(f"{where}: 'gameTime' must look like \"1 - 04:27\", got {entry['gameTime']!r}")
    half = parse_half(match.group(1), where, "gameTime")
    visibility = entry.get("visibility", "visible")
    if visibility not in VISIBILITIES:
        raise LabelError(f"{where}: 'visibility' must be one of {VISIBILITIES}, got {visibility!r}")
    return Annotation(half=half, position_ms=parse_position_ms(entry.get("position"), where),
                      label=parse_label_name(entry.get("label"), where, index), visible=visibility == "visible",
                      team=parse_team(entry.get("team"), where, teams))


@dataclasses.dataclass
class GameLabels:
    path: Path
    url_local: str
    annotations: list[Annotation]
    unknown_labels: int = 0  # annotations dropped with on_unknown="warn"


def game_time(half: int, position_ms: int) -> str:
    """The `gameTime` string of a position: "2 - 07:05" (zero-padded minutes and seconds, as in the labels)."""
    total_seconds = position_ms // 1000
    return f"{half} - {total_seconds // 60:02d}:{total_seconds % 60:02d}"
