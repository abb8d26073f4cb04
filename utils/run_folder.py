"""One run per folder: what a training run checks and keeps in its `run.output_dir`.

- **A lock** (`run.lock`: the process id, the host and the start time of the run holding the folder), taken before
  anything is written and released at exit. A second run into the same folder stops with a message naming the
  process that holds it; a lock whose process is gone (a crash, a SIGKILL) is taken over, with a warning.
- **A resume continues the same run.** Its config is compared with the one the checkpoint was written with, before
  anything is written: a change of any key that shapes what was trained or the plan (batch, epochs, schedule,
  optimiser, model, data, evaluation) stops the run with every changed key, its old and its new value, unless
  `run.allow_changes` names the key (the change is then recorded). Keys that change nothing of the run (where the
  data lies, workers, logging and checkpoint frequency, the device, compilation) may change freely.
- **A fresh start (`run.resume=false`) never mixes with an earlier run**: whatever a run left in the folder is moved
  into `<output_dir>/replaced/<date>/` first, and the log says so.
- **history.jsonl** keeps a line per start and resume (time, event, step, command, git revision, the changes, the
  full config): `config.yaml` is the config now in force, the history is every config the run ran with.
"""

from __future__ import annotations

import atexit
import datetime
import json
import os
import shlex
import shutil
import socket
import sys
from pathlib import Path
from typing import Any

from utils.config import ConfigError, did_you_mean
from utils.errors import UserError
from utils.files import process_alive

LOCK_FILE = "run.lock"
HISTORY_FILE = "history.jsonl"
REPLACED_DIR = "replaced"
# keys whose change on resume leaves what was trained and the plan as they were: where the data lies, how many
# loader processes and where colour is converted (the same frames: data/colour.py), logging and checkpoint frequency,
# the device and compilation
RESUME_FREE_KEYS = frozenset({
    "run.output_dir", "run.resume", "run.allow_changes", "run.num_workers", "run.save_every_epochs",
    "run.save_every_steps", "run.snapshot_epochs", "run.log_every_steps", "run.device", "run.compile",
    "data.root", "data.store", "data.frames_root", "data.colour_on_device", "data.jpeg_on_device",
    "eval.batch_size",
})


class RunFolderBusy(UserError):
    """Another live process holds the run folder."""


# ----------------------------------------------------------------------------------------------------------------------
# The lock
# ----------------------------------------------------------------------------------------------------------------------
def _read_lock(path: Path) -> dict:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError, UnicodeDecodeError):
        return {}  # torn or empty: written by a process killed while writing it


def acquire_lock(folder: Path) -> list[str]:
    """Take `folder/run.lock` for this process (released at exit); returns warnings to log (a stale lock taken over).
    Raises RunFolderBusy naming the holder when a live process has it."""
    path, notes = folder / LOCK_FILE, []
    mine = {"pid": os.getpid(), "host": socket.gethostname(),
            "started": datetime.datetime.now().isoformat(timespec="seconds")}
    for _ in range(2):
        try:
            descriptor = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            holder = _read_lock(path)
            same_host = holder.get("host") == mine["host"]
            if holder and (not same_host or process_alive(int(holder.get("pid", -1)))):
                where = "" if same_host else f" on {holder.get('host')}"
                raise RunFolderBusy(
                    f"{folder} is in use by process {holder.get('pid')}{where} (started {holder.get('started')}): "
                    f"wait for it to end, or give another run.output_dir"
                    + ("" if same_host else f"; if that process is gone, delete {path}")) from None
            path.unlink(missing_ok=True)  # its process is gone: a crash or a kill left it
            notes.append(f"took over {path} from process {holder.get('pid')}, which is no longer running")
            continue
        with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
            json.dump(mine, handle)
        atexit.register(release_lock, folder)
        return notes
    raise RunFolderBusy(f"{path}: another run took the folder at the same moment; give another run.output_dir")


def release_lock(folder: Path) -> None:
    """Remove folder/run.lock if this process holds it."""
    path = folder / LOCK_FILE
    if _read_lock(path).get("pid") == os.getpid():
        path.unlink(missing_ok=True)


# ----------------------------------------------------------------------------------------------------------------------
# Resume: the same run, or a refusal
# ----------------------------------------------------------------------------------------------------------------------
def _flatten(config: dict, prefix: str = "") -> dict[str, Any]:
    flat = {}
    for key, value in config.items():
        if isinstance(value, dict):
            flat.update(_flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def config_changes(old: dict, new: dict) -> dict[str, tuple[Any, Any]]:
    """{dotted key: (old value, new value)} of every key both configs hold whose value differs. A key only one of
    them holds comes from another version of the code (a key added since the checkpoint was written runs at its
    default, which is what the older code did): not a change."""
    old_flat, new_flat = _flatten(old), _flatten(new)
    return {key: (old_flat[key], new_flat[key]) for key in sorted(set(old_flat) & set(new_flat))
            if old_flat[key] != new_flat[key]}


def check_resume_config(stored: dict, config: dict, checkpoint: Path) -> dict[str, tuple[Any, Any]]:
    """The changes between the config a checkpoint was written with and this run's, once checked: every change of a
    key outside RESUME_FREE_KEYS must be named by run.allow_changes. Raises ConfigError listing the others."""
    changes = config_changes(stored, config)
    allowed = list(config.get("run", {}).get("allow_changes") or [])
    known = set(_flatten(config))
    unknown = [key for key in allowed if key not in known]
    if unknown:
        raise ConfigError(f"run.allow_changes names {unknown[0]!r}, which is no key of this stage"
                          + did_you_mean(unknown[0], sorted(known)))
    refused = {key: change for key, change in changes.items() if key not in RESUME_FREE_KEYS and key not in allowed}
    if refused:
        listed = "\n  ".join(f"{key}: {old!r} -> {new!r}" for key, (old, new) in refused.items())
        raise ConfigError(
            f"{checkpoint} was written with another config; resuming would mix two runs. Changed:\n  {listed}\n"
            f"Resume with the run's own values, start afresh in another run.output_dir (or with run.resume=false, "
            f"which moves this run aside), or, to continue this run with the change, add "
            f"run.allow_changes=[{','.join(refused)}] (recorded in {HISTORY_FILE})")
    return changes


# ----------------------------------------------------------------------------------------------------------------------
# A fresh start, the history
# ----------------------------------------------------------------------------------------------------------------------
def move_aside(folder: Path) -> Path | None:
    """Move every file an earlier run left in `folder` (all but the lock and earlier replaced runs) into
    folder/replaced/<date>/; returns that folder, None when there was nothing to move."""
    leftovers = [path for path in folder.iterdir() if path.name not in (LOCK_FILE, REPLACED_DIR)] \
        if folder.is_dir() else []
    if not leftovers:
        return None
    target = folder / REPLACED_DIR / datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    while target.exists():
        target = target.with_name(target.name + "+")
    target.mkdir(parents=True)
    for path in leftovers:
        shutil.move(str(path), str(target / path.name))
    return target


def append_history(folder: Path, event: str, step: int, config: dict, revision: str,
                   changes: dict[str, tuple[Any, Any]] | None = None, argv: list[str] | None = None) -> None:
    """One line of history.jsonl: a start, a restart after a kill before the first checkpoint, or a resume."""
    record = {"time": datetime.datetime.now().isoformat(timespec="seconds"), "event": event, "step": step,
              "command": " ".join(shlex.quote(part) for part in (argv if argv is not None else
                                                                  [sys.executable, *sys.argv])),
              "git_revision": revision, "changes": {key: list(change) for key, change in (changes or {}).items()},
              "config": config}
    with open(folder / HISTORY_FILE, "a", encoding="utf-8") as handle:
        handle.write(json.dumps(record) + "\n")
