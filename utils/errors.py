"""Expected user errors, and how every entry point ends on one: one message, no traceback, a non-zero exit status.

An expected user error is a bad config value, a bad or missing data file, a wrong checkpoint or an unwritable path.
Each raises a `UserError` (or a subclass next to the code that detects it) whose message names the culprit (file, key
or value) and says what was expected. `run_entry_point` prints it as `error: <message>` and exits with status 2.
Anything else is a bug and keeps its traceback.

Under torchrun every rank checks the same inputs before training, so while a run is starting only rank 0 prints; a
rank that fails later, alone (a file that breaks mid-run), prints its message with its rank.
"""

from __future__ import annotations

import errno
import os
import sys
import time
from collections.abc import Callable
from typing import Any

EXIT_USER_ERROR = 2
EXIT_INTERRUPTED = 130  # the shell's status for a process ended by Ctrl-C (128 + SIGINT)
_WRITE_ERRNOS = {errno.EACCES: "permission denied", errno.EPERM: "permission denied", errno.EROFS:
                 "read-only file system", errno.ENOSPC: "the disk is full", errno.EDQUOT: "the disk quota is exceeded",
                 errno.ENOTDIR: "a part of the path is a file, not a folder", errno.ENAMETOOLONG: "the name is too long"}
_state = {"starting": True}


class UserError(Exception):
    """An expected user error; its message names the culprit and says what was expected."""


class MissingFileError(UserError, FileNotFoundError):
    """A file or folder the run needs does not exist; the message names it and how to make it."""


class InvalidInputError(UserError, ValueError):
    """A file, a value or an argument that is not what it should be; the message names it and what was expected."""


def write_error(path: str | os.PathLike, error: OSError) -> UserError:
    """The UserError for an OSError met while writing `path` (an unwritable folder, a full disk), naming the path."""
    reason = _WRITE_ERRNOS.get(error.errno, error.strerror or str(error))
    return UserError(f"cannot write {path}: {reason} ({error.strerror or error})")


def is_write_error(error: BaseException) -> bool:
    return isinstance(error, OSError) and error.errno in _WRITE_ERRNOS


def training_started() -> None:
    """Called by a stage script just before its first step: errors from now on may be one rank's alone."""
    _state["starting"] = False


def _rank() -> int:
    try:
        return int(os.environ.get("RANK", "0"))
    except ValueError:
        return 0


def run_entry_point(main: Callable[..., Any], *args: Any) -> None:
    """Run `main(*args)`; a UserError (or an OSError writing a path) ends the process with its message alone, Ctrl-C
    with one line and status 130."""
    try:
        main(*args)
    except KeyboardInterrupt:  # Ctrl-C: what was written is whole (atomic writes); a rerun continues from it
        print("interrupted: what was finished is kept; run the same command again to continue", file=sys.stderr,
              flush=True)
        raise SystemExit(EXIT_INTERRUPTED) from None
    except UserError as error:
        _report(str(error))
    except OSError as error:
        if not is_write_error(error):
            raise
        _report(str(write_error(error.filename or "a file", error)))


def _report(message: str) -> None:
    rank = _rank()
    if rank == 0:
        print(f"error: {message}", file=sys.stderr, flush=True)
    elif _state["starting"]:
        time.sleep(2)  # rank 0 met the same error and prints it; give it the time to before the launcher stops all
    else:
        print(f"[rank {rank}] error: {message}", file=sys.stderr, flush=True)
    ending = SystemExit(f"error: {message}")  # the message stays readable for in-process callers (tests)
    ending.code = EXIT_USER_ERROR
    raise ending
