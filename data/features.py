"""The stage-2 feature bank: reduction of the per-half bank files (standardise, PCA to 512) and memory-mapped reading.

    python -m data.features --root /data/soccernet --fit-split train --apply-split train valid test \\
        [--name baidu_soccer_embeddings.npy] [--out-name baidu_pca512.npy] [--dim 512] [--fps 1] [--device cuda]

Each half's bank is `<root>/<game>/{1,2}_<name>` with shape (rows, D), row r covering second r / fps (the Baidu
embeddings: 8576-d at 1 fps). The reduction is fitted on the `--fit-split` games only, in two streaming passes (the
per-dimension mean and standard deviation, then the covariance of the standardised rows, accumulated in float64 in
chunks), so 300 games of 8576-d rows never sit in memory at once; PCA takes the top `--dim` eigenvectors of that
covariance. Every half of `--apply-split` is then written as `<root>/<game>/{1,2}_<out-name>` (float32, (rows, dim)),
and the statistics and projection as `<root>/<out-name stem>_pca.npz` (mean, std, components, explained variance).
Before any pass every bank is checked: a bank whose width differs from most banks', whose length does not match its
video, or that holds NaN or infinite rows, stops the command with one message naming every such file (and the rows).
"""

from __future__ import annotations

import argparse
import dataclasses
import os
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from data.catalog import Dataset, load_dataset
from data.video import probe_video
from utils.errors import InvalidInputError, MissingFileError, run_entry_point
from utils.files import save_array, save_arrays

LENGTH_TOLERANCE_S = 2.0  # bank rows vs video seconds: extractors round the last second differently
CHUNK_ROWS = 4096  # rows per product of the covariance pass


@dataclasses.dataclass(frozen=True)
class Reduction:
    """What the reduction reads and writes: the per-half bank files (`{half}_<name>`, rows at `fps` per second) and
    the reduced ones (`{half}_<out_name>`, `dim` wide)."""

    name: str = "baidu_soccer_embeddings.npy"
    out_name: str = "baidu_pca512.npy"
    dim: int = 512
    fps: float = 1.0


def bank_path(root: Path, game: str, half: int, name: str) -> Path:
    return root / game / f"{half}_{name}"


def open_bank(path: Path) -> np.ndarray:
    if not path.is_file():
        raise MissingFileError(f"feature bank not found: {path}")
    try:
        bank = np.load(path, mmap_mode="r")
    except ValueError as error:
        raise InvalidInputError(f"{path}: not a .npy array ({error})") from error
    if bank.ndim != 2:
        raise InvalidInputError(f"{path}: a bank is (rows, dim), got shape {bank.shape}")
    return bank


def length_problem(path: Path, rows: int, video: Path, fps: float) -> str | None:
    """Why the bank does not cover its video (rows / fps more than LENGTH_TOLERANCE_S away from the video's length),
    or None. A bank without its video beside it (the bank alone was downloaded) is checked at training time."""
    if not video.is_file():
        return None
    duration = float(probe_video(video).end)
    if abs(rows / fps - duration) > LENGTH_TOLERANCE_S:
        return (f"{path}: {rows} rows at {fps:g} fps cover {rows / fps:.1f} s but {video} lasts {duration:.1f} s; is "
                f"--fps right, and is this the bank of that video?")
    return None


def check_banks(dataset: Dataset, root: Path, games: list[str], name: str,
                fps: float) -> dict[tuple[str, int], np.ndarray]:
    """Open every half's bank and check them all before any pass: each is there, has the width most of them have, and
    covers its video. Every bad file is named in one error. Returns the memory-mapped banks."""
    banks, problems = {}, []
    for game in games:
        for half in dataset.halves:
            path = bank_path(root, game, half, name)
            try:
                banks[(game, half)] = open_bank(path)
            except (MissingFileError, InvalidInputError) as error:
                problems.append(str(error))
    widths = [bank.shape[1] for bank in banks.values()]
    majority = max(set(widths), key=widths.count) if widths else None
    for (game, half), bank in banks.items():
        path = bank_path(root, game, half, name)
        if bank.shape[1] != majority:
            problems.append(f"{path}: {bank.shape[1]}-d rows, but {widths.count(majority)} of {len(widths)} banks are "
                            f"{majority}-d")
        elif (problem := length_problem(path, bank.shape[0], dataset.video_path(root, game, half), fps)) is not None:
            problems.append(problem)
    if problems:
        total = len(dataset.halves) * len(games)
        raise InvalidInputError(f"{len(problems)} of {total} feature banks cannot be used:\n  " + "\n  ".join(problems))
    return banks


def non_finite_rows(bank: np.ndarray, chunk: int = 4096) -> np.ndarray:
    """Indices of the rows holding a NaN or an infinity, read in chunks."""
    bad = [start + np.flatnonzero(~np.isfinite(np.asarray(bank[start:start + chunk])).all(axis=1))
           for start in range(0, bank.shape[0], chunk)]
    return np.concatenate(bad) if bad else np.zeros(0, np.int64)


def iterate_banks(banks: dict[tuple[str, int], np.ndarray], games: list[str], desc: str):
    """Yield (game, half, bank) for every half of `games`, with a progress bar."""
    for game in tqdm(games, desc=desc):
        for (other, half), bank in banks.items():
            if other == game:
                yield game, half, bank


def fit_pca(dataset: Dataset, root: Path, games: list[str], reduction: Reduction, device: str = "cpu",
            banks: dict[tuple[str, int], np.ndarray] | None = None) -> dict[str, np.ndarray]:
    """Standardise each dimension, then PCA to reduction.dim, in two streaming passes over the banks of `games`
    (checked by `check_banks` unless given)."""
    name, dim = reduction.name, reduction.dim
    banks = check_banks(dataset, root, games, name, reduction.fps) if banks is None else banks
    total, sums, squares, non_finite = 0, None, None, []
    for game, half, bank in iterate_banks(banks, games, "bank statistics"):
        if len(bad := non_finite_rows(bank)):  # one NaN row would make every statistic, hence every bank, NaN
            shown = ", ".join(str(row) for row in bad[:8]) + (" ..." if len(bad) > 8 else "")
            non_finite.append(f"{bank_path(root, game, half, name)}: {len(bad)} rows with NaN or inf (rows {shown})")
            continue
        data = torch.from_numpy(np.asarray(bank, np.float64))
        sums = data.sum(0) if sums is None else sums + data.sum(0)
        squares = (data ** 2).sum(0) if squares is None else squares + (data ** 2).sum(0)
        total += data.shape[0]
    if non_finite:
        raise InvalidInputError(f"{len(non_finite)} feature banks hold values that are not finite; fix or re-extract "
                                f"them:\n  " + "\n  ".join(non_finite))
    mean = sums / total
    std = torch.sqrt(torch.clamp(squares / total - mean ** 2, min=0.0))
    std[std == 0] = 1.0  # constant dimensions carry nothing; keep them finite
    if dim > min(total, len(mean)):
        raise InvalidInputError(f"cannot keep {dim} components from {total} rows of {len(mean)}-d features")

    covariance = torch.zeros(len(mean), len(mean), dtype=torch.float64, device=device)
    mean32, std32 = mean.float().to(device), std.float().to(device)
    for _, _, bank in iterate_banks(banks, games, "bank covariance"):
        for start in range(0, bank.shape[0], CHUNK_ROWS):
            rows = (torch.from_numpy(np.array(bank[start:start + CHUNK_ROWS], np.float32)).to(device) - mean32) / std32
            covariance += (rows.T @ rows).double()  # float32 products, float64 accumulation
    covariance /= total
    values, vectors = torch.linalg.eigh(covariance.cpu())  # ascending
    order = torch.argsort(values, descending=True)[:dim]
    return {"mean": mean.numpy(), "std": std.numpy(), "components": vectors[:, order].T.numpy(),
            "explained_variance": values[order].numpy(), "total_variance": np.array(float(values.sum()))}


def reduce_bank(bank: np.ndarray, pca: dict[str, np.ndarray]) -> np.ndarray:
    """(rows, D) -> (rows, dim) float32."""
    standardised = (np.asarray(bank, np.float64) - pca["mean"]) / pca["std"]
    return (standardised @ pca["components"].T).astype(np.float32)


def reduce_banks(dataset: Dataset, root: str | os.PathLike, fit_games: list[str], apply_games: list[str],
                 reduction: Reduction, device: str = "cpu") -> Path:
    """Fit the reduction on fit_games, write the reduced bank of every half of apply_games and the statistics."""
    root, name, out_name = Path(root), reduction.name, reduction.out_name
    games = list(dict.fromkeys(fit_games + apply_games))
    banks = check_banks(dataset, root, games, name, reduction.fps)  # all of them, before any pass
    pca = fit_pca(dataset, root, fit_games, reduction, device, banks=banks)
    stats_path = root / f"{Path(out_name).stem}_pca.npz"
    save_arrays(stats_path, **pca, fps=np.array(reduction.fps), source_name=np.array(name))
    for game, half, bank in iterate_banks(banks, apply_games, "writing reduced banks"):
        reduced = reduce_bank(bank, pca)
        if not np.isfinite(reduced).all():
            raise InvalidInputError(f"{bank_path(root, game, half, name)}: {int((~np.isfinite(reduced).all(1)).sum())}"
                                    f" rows with NaN or inf; fix or re-extract it")
        save_array(bank_path(root, game, half, out_name), reduced)
    return stats_path


class FeatureBank:
    """Reduced bank rows per (game, half), memory-mapped; row s holds second s (sub-sampled when fps > 1)."""

    def __init__(self, root: str | os.PathLike, name: str, fps: float = 1.0):
        self.root, self.name, self.fps = Path(root), name, fps
        self._open: dict[tuple[str, int], np.ndarray] = {}

    def _bank(self, game: str, half: int) -> np.ndarray:
        key = (game, half)
        if key not in self._open:
            self._open[key] = open_bank(bank_path(self.root, game, half, self.name))
        return self._open[key]

    def dim(self, game: str, half: int) -> int:
        return self._bank(game, half).shape[1]

    def check(self, halves: dict[tuple[str, int], int], dim: int, video_fps: float) -> None:
        """Before training: every half's bank exists, is `dim` wide, covers its video (halves: frames at video_fps
        per half) and holds finite values only; every bad file is named in one error."""
        problems = []
        for (game, half), num_frames in sorted(halves.items()):
            path = bank_path(self.root, game, half, self.name)
            try:
                bank = self._bank(game, half)
            except (MissingFileError, InvalidInputError) as error:
                problems.append(str(error))
                continue
            last_second = int(num_frames // video_fps) - 1  # the last second a window can hold
            covered = (bank.shape[0] - 1) / self.fps
            if bank.shape[1] != dim:
                problems.append(f"{path}: {bank.shape[1]}-d rows, expected {dim} (loss.dim)")
            elif last_second - covered > LENGTH_TOLERANCE_S:
                problems.append(f"{path}: {bank.shape[0]} rows at {self.fps:g} fps cover {bank.shape[0] / self.fps:.1f}"
                                f" s, but its video lasts {float(num_frames / video_fps):.1f} s")
            elif len(bad := np.flatnonzero(~np.isfinite(bank).all(axis=1))):  # one read of every bank, at start-up
                problems.append(f"{path}: {len(bad)} rows hold NaN or infinite values (rows {bad[:5].tolist()}"
                                f"{' ...' if len(bad) > 5 else ''}): the distillation loss would be NaN")
        if problems:
            raise InvalidInputError(f"{len(problems)} of {len(halves)} feature banks cannot be used:\n  "
                                    + "\n  ".join(problems))

    def rows(self, game: str, half: int, first_second: int, count: int) -> np.ndarray:
        """(count, dim) float32 for seconds first_second .. first_second + count - 1. Seconds past the bank's end
        (a second or two, where the extractor rounded the video's length down) repeat its last row."""
        bank = self._bank(game, half)
        index = np.minimum(((first_second + np.arange(count)) * self.fps).astype(np.int64), bank.shape[0] - 1)
        if first_second + count - 1 - (bank.shape[0] - 1) / self.fps > LENGTH_TOLERANCE_S:
            raise InvalidInputError(f"{bank_path(self.root, game, half, self.name)}: seconds up to "
                                    f"{first_second + count - 1} requested, the bank covers "
                                    f"{bank.shape[0] / self.fps:.0f} s")
        return np.asarray(bank[index], np.float32)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", type=Path, required=True)
    parser.add_argument("--dataset", default="soccernet_v2", help="a built-in dataset or a manifest file (.json)")
    parser.add_argument("--fit-split", default="train", help="split (or games file) the PCA is fitted on")
    parser.add_argument("--apply-split", nargs="+", default=["train", "valid", "test"],
                        help="splits (or games files) whose banks are reduced and written")
    parser.add_argument("--name", default="baidu_soccer_embeddings.npy", help="per-half bank file suffix")
    parser.add_argument("--out-name", default="baidu_pca512.npy", help="suffix of the reduced files")
    parser.add_argument("--dim", type=int, default=512)
    parser.add_argument("--fps", type=float, default=1.0, help="bank rows per second (Baidu: 1)")
    parser.add_argument("--device", default="cpu", help="where the covariance is accumulated (cuda is much faster)")
    args = parser.parse_args()
    dataset = load_dataset(args.dataset, "--dataset")
    fit = dataset.games(args.fit_split, args.root)
    apply = list(dict.fromkeys(game for split in args.apply_split for game in dataset.games(split, args.root)))
    stats = reduce_banks(dataset, args.root, fit, apply, Reduction(args.name, args.out_name, args.dim, args.fps),
                         args.device)
    print(f"PCA fitted on {len(fit)} games, {len(apply)} games reduced to {args.dim}-d; statistics: {stats}")


if __name__ == "__main__":
    run_entry_point(main)
