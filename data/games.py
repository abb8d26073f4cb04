"""Games and splits of a SoccerNet root laid out `league/season/game/`.

A game is identified by its relative path, e.g. `england_epl/2014-2015/2015-05-17 - 18-00 Manchester United 1 - 1
Arsenal` (spaces, dots and dashes included). The official split lists (train 300, valid 100, test 100, challenge 50,
from the public SoccerNet package) ship in `data/splits/`; a custom split is a text file with one game path per line.
"""

from __future__ import annotations

import os
from pathlib import Path
from utils.errors import InvalidInputError, MissingFileError

SPLITS_DIR = Path(__file__).resolve().parent / "splits"
OFFICIAL_SPLITS = ("train", "valid", "test", "challenge")


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


def split_games(split: str, root: str | os.PathLike | None = None) -> list[str]:
    """The games of an official split name ('train', 'valid', 'test', 'challenge') or of a games file.

    A relative games-file path is looked up in the working directory, then under `root` (the generated
    mini-SoccerNet keeps its train.txt / valid.txt / test.txt there).
    """
    if split in OFFICIAL_SPLITS:
        return read_games_file(SPLITS_DIR / f"{split}.txt")
    if split == "val":
        raise InvalidInputError("unknown split 'val': SoccerNet calls it 'valid'")
    candidates = [Path(split)] + ([Path(root) / split] if root is not None and not Path(split).is_absolute() else [])
    for candidate in candidates:
        if candidate.is_file():
            return read_games_file(candidate)
    tried = " or ".join(str(c) for c in candidates)
    raise InvalidInputError(f"unknown split {split!r}: expected one of {OFFICIAL_SPLITS} or a games file (tried {tried})")


def discover_games(root: str | os.PathLike, filename: str) -> list[str]:
    """Every `league/season/game` folder under root that holds `filename`, sorted."""
    root = Path(root)
    if not root.is_dir():
        raise MissingFileError(f"SoccerNet root not found: {root}")
    return sorted(str(path.parent.relative_to(root).as_posix()) for path in root.glob(f"*/*/*/{filename}"))


def check_games_exist(root: str | os.PathLike, games: list[str], filename: str) -> None:
    """Raise one error listing every game whose `filename` is missing under root (not only the first)."""
    missing = [game for game in games if not (Path(root) / game / filename).is_file()]
    if missing:
        listed = "\n  ".join(missing)
        raise MissingFileError(f"{len(missing)} of {len(games)} games have no {filename} under {root}:\n  {listed}")
