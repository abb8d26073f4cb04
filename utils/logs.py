"""Rank-safe logging, a JSON-lines metrics file and progress bars.

Rank 0 logs at INFO to the console and to `<output_dir>/log.txt`; other ranks log warnings and errors only, so a
multi-GPU run prints each message once. (The module is named `logs` so that it never shadows the standard `logging`.)
"""

from __future__ import annotations

import json
import logging
import logging.handlers
import math
import os
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from tqdm import tqdm

from utils.errors import write_error
from utils.files import write_text

LOGGER_NAME = "comedian"


def setup_logging(rank: int, output_dir: str | os.PathLike | None = None) -> logging.Logger:
    """Configure the project logger once per process and return it (with output_dir: also into its log.txt)."""
    logger = logging.getLogger(LOGGER_NAME)
    logger.handlers.clear()
    logger.propagate = False
    logger.setLevel(logging.INFO if rank == 0 else logging.WARNING)
    prefix = "" if rank == 0 else f"[rank {rank}] "
    formatter = logging.Formatter(f"%(asctime)s {prefix}%(levelname)s %(message)s", datefmt="%H:%M:%S")
    console = logging.StreamHandler(sys.stdout)
    console.setFormatter(formatter)
    logger.addHandler(console)
    if rank == 0:
        # records kept until the run folder is opened (log_to_file), so that log.txt starts at the beginning
        logger.addHandler(logging.handlers.MemoryHandler(capacity=100_000, flushLevel=logging.CRITICAL + 1))
    if rank == 0 and output_dir is not None:
        log_to_file(output_dir)
    return logger


def log_to_file(output_dir: str | os.PathLike) -> None:
    """Also write the project logger's records into output_dir/log.txt (rank 0, once the run folder is opened),
    starting with those logged before."""
    logger = logging.getLogger(LOGGER_NAME)
    Path(output_dir).mkdir(parents=True, exist_ok=True)
    file_handler = logging.FileHandler(Path(output_dir) / "log.txt", encoding="utf-8")
    file_handler.setFormatter(logger.handlers[0].formatter if logger.handlers else logging.Formatter())
    for handler in list(logger.handlers):
        if isinstance(handler, logging.handlers.MemoryHandler):
            handler.setTarget(file_handler)
            handler.flush()
            logger.removeHandler(handler)
    logger.addHandler(file_handler)


def get_logger() -> logging.Logger:
    return logging.getLogger(LOGGER_NAME)


def progress(iterable: Iterable | None = None, total: int | None = None, desc: str = "", enabled: bool = True,
             initial: int = 0) -> tqdm:
    """A tqdm bar on rank 0 (pass enabled=is_main); silent elsewhere. Updates at most twice a second."""
    return tqdm(iterable, total=total, desc=desc, disable=not enabled, initial=initial, mininterval=0.5,
                dynamic_ncols=True, file=sys.stdout, leave=True)


class MetricsWriter:
    """Append-only JSON-lines metrics file (one object per line, each with at least 'step').

    Only the main process writes; other ranks get a writer whose `write` does nothing. On resume, call
    `truncate_after(step)` so records written after the restored checkpoint (by the killed run) are dropped and the
    file reads as one uninterrupted run.
    """

    def __init__(self, path: str | os.PathLike, enabled: bool = True):
        self.path = Path(path)
        self.enabled = enabled  # nothing touches the disk before the first record

    def write(self, record: dict[str, Any]) -> None:
        if not self.enabled:
            return
        clean = {key: _jsonable(value) for key, value in record.items()}
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with open(self.path, "a", encoding="utf-8") as handle:
                handle.write(json.dumps(clean) + "\n")
        except OSError as error:
            raise write_error(self.path, error) from None

    def truncate_after(self, step: int) -> None:
        self.remove(lambda record: int(record.get("step", -1)) > step)

    def remove(self, dropped) -> None:
        """Rewrite the file without the records for which dropped(record) holds."""
        if not self.enabled or not self.path.exists():
            return
        kept = [line for line in read_metrics(self.path) if not dropped(line)]
        write_text(self.path, "".join(json.dumps(record) + "\n" for record in kept))


def read_metrics(path: str | os.PathLike) -> list[dict[str, Any]]:
    """Every record of a metrics file. A torn last line (the process was killed mid-write) is skipped."""
    records = []
    lines = Path(path).read_text(encoding="utf-8").splitlines()
    for index, line in enumerate(lines):
        if not line.strip():
            continue
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            if index == len(lines) - 1:
                continue
            raise ValueError(f"{path}: line {index + 1} is not valid JSON: {line[:80]!r}") from None
    return records


def _jsonable(value: Any) -> Any:
    if hasattr(value, "item") and callable(value.item):  # 0-d tensors and numpy scalars
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return value
