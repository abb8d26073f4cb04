"""Atomic writes: a file appears whole under its name, or not at all.

Every file the project writes (checkpoints, run records, metrics, predictions, raw scores, reduced banks, the frame
store's entries, encoded videos) goes through `atomic_path`: written under a temporary name in the same folder
(`.<stem>.tmp<pid><suffix>`, which `remove_stale_temporaries` recognises; the suffix stays, as FFmpeg picks a
container by it), then renamed over the target with `os.replace`. A failure removes the temporary file or folder; a
write error (a full disk, an unwritable folder) becomes a UserError naming the target.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from utils.errors import InvalidInputError, is_write_error, write_error

TEMPORARY_MARK = ".tmp"  # in the names of files being written: `.<stem>.tmp<pid><suffix>`


def temporary_path(path: str | os.PathLike) -> Path:
    path = Path(path)
    return path.with_name(f".{path.stem}{TEMPORARY_MARK}{os.getpid()}{path.suffix}")


def _remove(path: Path) -> None:
    if path.is_dir():
        shutil.rmtree(path)
    else:
        path.unlink(missing_ok=True)


@contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path to write `path` through (a file, or a folder the block creates); on leaving the block
    it replaces `path`. A folder replaces an existing folder of the same name (removed just before the rename)."""
    path = Path(path)
    tmp = temporary_path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        _remove(tmp)  # a leftover of a killed process that had the same pid
        yield tmp
        if tmp.is_dir() and path.is_dir():
            shutil.rmtree(path)  # os.replace cannot rename over a folder that is not empty
        os.replace(tmp, path)
    except BaseException as error:
        _remove(tmp)
        if is_write_error(error):
            raise write_error(path, error) from None
        raise


def atomic_write(path: str | os.PathLike, write: Callable[[Path], Any]) -> Path:
    """Call write(temporary path), then move the result to `path`."""
    with atomic_path(path) as tmp:
        write(tmp)
    return Path(path)


def write_bytes(path: str | os.PathLike, data: bytes, sync: bool = False) -> Path:
    """`data` into `path` atomically; sync=True also flushes it to the disk before the rename (checkpoints)."""
    def write(tmp: Path) -> None:
        with open(tmp, "wb") as handle:
            handle.write(data)
            if sync:
                handle.flush()
                os.fsync(handle.fileno())
    return atomic_write(path, write)


def write_text(path: str | os.PathLike, text: str) -> Path:
    return atomic_write(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


def write_json(path: str | os.PathLike, document: Any, indent: int | None = None) -> Path:
    return write_text(path, json.dumps(document, indent=indent))


def save_array(path: str | os.PathLike, array: np.ndarray) -> Path:
    """np.save, atomically."""
    def write(tmp: Path) -> None:
        with open(tmp, "wb") as handle:  # through a handle, as np.save appends .npy to a name without it
            np.save(handle, array)
    return atomic_write(path, write)


def save_arrays(path: str | os.PathLike, **arrays: np.ndarray) -> Path:
    """np.savez, atomically."""
    def write(tmp: Path) -> None:
        with open(tmp, "wb") as handle:
            np.savez(handle, **arrays)
    return atomic_write(path, write)


def process_alive(pid: int) -> bool:
    """Whether a process of this id runs on this machine."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's live process
        return True
    except OverflowError:
        return False
    return True


def remove_stale_temporaries(folder: str | os.PathLike) -> list[Path]:
    """Delete the temporary files and folders that killed processes left in `folder` (`.<stem>.tmp<pid><suffix>`,
    the pid no longer running); returns them. The writes under way of live processes are left alone."""
    folder = Path(folder)
    stale = []
    for path in sorted(folder.glob(f".*{TEMPORARY_MARK}*")) if folder.is_dir() else []:
        match = re.search(rf"{re.escape(TEMPORARY_MARK)}(\d+)", path.name)
        if match and (int(match.group(1)) == os.getpid() or not process_alive(int(match.group(1)))):
            _remove(path)
            stale.append(path)
    return stale


def check_not_overwriting(folder: str | os.PathLike, pattern: str, what: str, overwrite: bool) -> None:
    """Refuse, before any work, to write into a folder that already holds `what` (files matching `pattern`),
    unless overwrite."""
    folder = Path(folder)
    if not overwrite and folder.is_dir() and next(folder.glob(pattern), None) is not None:
        raise InvalidInputError(f"{folder} already holds {what}: choose another output folder, or give --overwrite "
                                f"to replace them")
