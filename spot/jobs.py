"""Planning a spot run before anything is read or written: which files form one game, where its halves lie, the
output folder of each, and the options checked."""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

from spot.page import PAGE
from utils.errors import InvalidInputError
from utils.rates import Rates


@dataclasses.dataclass(frozen=True)
class HalfVideo:
    """Where a half is: in which file, from which second of it (0, or the start of half 2 in a whole match)."""

    half: int
    video: Path
    offset: float


@dataclasses.dataclass(frozen=True)
class Job:
    """One game to spot: its output name and its files, each with the half it holds (a whole match is split at
    second_half_start seconds, when given)."""

    name: str
    files: list[tuple[Path, int]]
    second_half_start: float | None = None

    def halves(self, rates: Rates) -> list[HalfVideo]:
        """Where each half of the game lies: a file per half, or one file split at second_half_start (on the frame
        grid of the model's rates: half 2 starts at the frame nearest it)."""
        if self.second_half_start is None:
            return [HalfVideo(half, path, 0.0) for path, half in self.files]
        (path, _), = self.files
        return [HalfVideo(1, path, 0.0), HalfVideo(2, path, float(rates.frame_at(self.second_half_start) / rates.fps))]


def unique_names(paths: list[Path]) -> list[str]:
    """One output folder name per input: its stem, with as many parent folders in front as it takes for no two
    inputs to share a name (SoccerNet's halves are all called 1_224p.mkv: they become `<game>/1_224p`)."""
    resolved = [path.resolve() for path in paths]
    if len(set(resolved)) != len(resolved):
        twice = sorted({str(path) for path in resolved if resolved.count(path) > 1})
        raise InvalidInputError(f"the same video is given twice: {', '.join(twice)}")
    depth = 0
    while True:
        names = ["/".join([*path.parent.parts[len(path.parent.parts) - depth:], path.stem]) for path in resolved]
        if len(set(names)) == len(names) or depth >= max(len(path.parts) for path in resolved):
            return names
        depth += 1


def plan_jobs(videos: list[Path], match_halves: bool, second_half_start: float | None) -> list[Job]:
    """A job per game: every file alone as half 1 (split into halves at second_half_start when given), or
    consecutive pairs as halves 1 and 2. Names are unique over the inputs (`unique_names`)."""
    if match_halves and second_half_start is not None:
        raise InvalidInputError("--match-halves (one file per half) and --second-half-start (one file per match) "
                                "exclude each other")
    if not match_halves:
        return [Job(name, [(video, 1)], second_half_start) for name, video in zip(unique_names(videos), videos)]
    if len(videos) % 2:
        raise InvalidInputError(f"--match-halves takes files two by two (half 1, half 2); got {len(videos)} files")
    firsts = videos[::2]
    return [Job(name, [(first, 1), (second, 2)]) for name, first, second in zip(unique_names(firsts), firsts,
                                                                                 videos[1::2])]


def pending_jobs(out: Path, jobs: list[Job], overwrite: bool) -> tuple[list[Job], list[Job]]:
    """(the jobs to run, those an earlier run finished). A video whose page an earlier run wrote (the page comes
    last) is not spotted again, unless --overwrite; one an interrupted run left without its page is spotted again, so
    that a rerun of the same command continues where it stopped."""
    if overwrite:
        return jobs, []
    finished = [job for job in jobs if (out / job.name / PAGE).is_file()]
    return [job for job in jobs if job not in finished], finished


def check_one_video_games(dataset, jobs: list[Job]) -> None:
    """A dataset whose games are one video (Ball Action Spotting, manifests) has no second half to place."""
    if len(dataset.halves) == 1 and any(job.second_half_start is not None or len(job.files) > 1 for job in jobs):
        raise InvalidInputError(f"{dataset.name} games are one video on one timeline: --match-halves and "
                                f"--second-half-start do not apply")


def add_spot_arguments(parser: argparse.ArgumentParser) -> None:
    """`evaluate.py spot`'s flags; those with a default in configs/inference.py: SpotConfig are checked there."""
    add = parser.add_argument
    add("videos", type=Path, nargs="+", help="video files PyAV can open (mp4, mkv, avi, ...)")
    add("--checkpoint", type=Path, required=True, help="a stage-3 checkpoint or a released COMEDIAN .pth")
    add("--config", help="stage-3 YAML for the eval settings (default: the checkpoint's)")
    add("--out", type=Path, default=Path("spotting"), help="output folder (default: ./spotting)")
    add("--second-half-start", type=float, help="each file is a whole match: half 2 starts at S seconds")
    add("--match-halves", action="store_true", help="files come two by two: half 1, half 2 of a match")
    add("--min-confidence", type=float,
        help="threshold of the list and the timeline's dots, the page slider's start (default 0.5)")
    add("--copy-video", action="store_true", help="a copy of each video beside its page, not a link")
    add("--clips", type=int, help="the N most confident actions as mp4 clips, and highlights.mp4")
    add("--clips-min-confidence", type=float, help="clips of every action at or above this confidence")
    add("--clip-before", type=float, help="seconds of each clip before its action (default 5)")
    add("--clip-after", type=float, help="seconds of each clip after its action (default 5)")
    add("--device", choices=("auto", "cpu", "cuda"), default="auto")
    add("--batch-size", type=int, help="windows per forward pass (default: eval.batch_size)")
    add("--overwrite", action="store_true", help="spot again the videos an earlier run in --out finished")
    add("--decode-workers", type=int,
        help="processes decoding ahead of the model, a minute each (default: the cores, at most 8)")
    add("--half-end", choices=("scored", "official"), default="scored",
        help="official: the last seconds of each half stay 0, as in the paper's evaluation")
