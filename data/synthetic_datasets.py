"""
Generated data of the other datasets (`--dataset`), drawn as the mini-SoccerNet is (data/synthetic.py):
- `soccernet_ball_2025` (and `_2024`, `_2023`): the Ball Action Spotting layout, `england_efl/2019-2020/<date> - Home
  - Away/` holding one `224p.mp4` per game at 25 fps (2023: `1_224p.mkv` and `2_224p.mkv`) and `Labels-ball.json`
  with its `halftime` and, in 2025, the team (left or right) of every action; the edition's classes (12, or 2 in
  2023); dense events, often less than a second apart, each drawn for 0.2 s either side of it (in the colour of its
  class, inverted for the right team); `train.txt`, `valid.txt`, `test.txt` at the top;
- `manifest`: a dataset of another kind: 4 classes, 30 fps videos of different lengths under `videos/`, and a
  manifest per split (`train.json`, `valid.json`, `test.json`, data/manifest.py).
Every split holds every class where the games allow it. Deterministic for a seed.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path

import numpy as np

from data.catalog import BUILT_IN
from data.labels import game_time
from data.manifest import manifest_document, manifest_event, write_manifest
from data.synthetic import TEAMS, render_half
from data.video import write_video

BALL_FPS = 25
BALL_TRACE = 0.2  # seconds either side of an event that its glyph shows: dense events stay apart
MANIFEST_CLASSES = ("serve", "smash", "net shot", "lob")
MANIFEST_FPS = 30
MIN_GAP = 0.2  # seconds between two events of a video


def dense_events(rng: np.random.Generator, seconds: float, rate_per_minute: float, classes: int,
                 teams: bool) -> list[tuple]:
    """(position_ms, class, visible, team) of one video: gaps drawn from an exponential of the rate's mean, at least
    MIN_GAP apart (so that many are less than a second apart), the first class twice as frequent as the others, and
    every class at least once when there are as many events as classes."""
    times, time = [], 1.0 + rng.exponential(60 / rate_per_minute)
    while time < seconds - 1.0:
        times.append(time)
        time += MIN_GAP + rng.exponential(60 / rate_per_minute)
    weights = np.ones(classes)
    weights[0] = 2.0
    labels = rng.choice(classes, size=len(times), p=weights / weights.sum())
    if len(times) >= classes:  # every class at least once, so that every split (a validation of one game) has each
        labels[rng.choice(len(times), size=classes, replace=False)] = rng.permutation(classes)
    sides = rng.integers(0, 2, len(times)) if teams else [None] * len(times)
    return [(int(t * 1000), int(c), True, None if side is None else int(side))
            for t, c, side in zip(times, labels, sides)]


def split_names(names: list[str]) -> dict[str, list[str]]:
    """A quarter of the games (at least one) to valid and to test, the rest to train; every split all games when
    there are fewer than 3."""
    if len(names) < 3:
        return {"train": names, "valid": names, "test": names}
    held_out = max(1, int(round(len(names) / 4)))
    return {"train": names[:len(names) - 2 * held_out], "valid": names[len(names) - 2 * held_out:-held_out],
            "test": names[-held_out:]}


def generate_ball(out: str | Path, games: int, seconds: float, seed: int, rate_per_minute: float | None,
                  edition: str) -> tuple[list[str], list[str]]:
    """Write a Ball Action Spotting dataset of `edition` (a built-in dataset name): the games, their splits."""
    dataset, out = BUILT_IN[edition], Path(out)
    rng = np.random.default_rng(seed)
    names = []
    for index in range(games):
        home, away = rng.choice(len(TEAMS), size=2, replace=False)
        names.append(f"england_efl/2019-2020/2019-10-{1 + index % 28:02d} - {TEAMS[home]} - {TEAMS[away]}"
                     + (f" {index}" if index >= 28 else ""))
    for name in names:
        folder = out / name
        folder.mkdir(parents=True, exist_ok=True)
        annotations = []
        for half in dataset.halves:
            events = dense_events(rng, seconds, rate_per_minute or 40.0, len(dataset.classes), bool(dataset.teams))
            for position_ms, label, _, side in events:
                annotation = {"gameTime": game_time(half, position_ms), "label": dataset.classes[label],
                              "position": str(position_ms)}
                if dataset.teams:
                    annotation["team"] = dataset.teams[side]
                annotations.append({**annotation, "visibility": "visible"})
            write_video(dataset.video_path(out, name, half), render_half(rng, seconds, events, fps=BALL_FPS,
                                                                         trace=BALL_TRACE),
                        BALL_FPS, gop=BALL_FPS, options={"preset": "ultrafast", "crf": "20"})
        half_time = int(seconds * 1000 * 0.45) if len(dataset.halves) == 1 else int(seconds * 1000)
        document = {"UrlLocal": name, "UrlYoutube": "", "halftime": game_time(1, half_time),
                    "annotations": annotations}
        (folder / dataset.labels_file).write_text(json.dumps(document, indent=2), encoding="utf-8")
    splits = split_names(names)
    for split, members in splits.items():
        (out / f"{split}.txt").write_text("".join(f"{game}\n" for game in members), encoding="utf-8")
    return names, [f"{split}.txt" for split in splits]


def generate_manifest(out: str | Path, games: int, seconds: float, seed: int,
                      rate_per_minute: float | None) -> tuple[list[str], list[str]]:
    """Write a manifest dataset: videos of 0.6 to 1.4 x `seconds`, a manifest per split."""
    out, rng = Path(out), np.random.default_rng(seed)
    videos = {}
    for index in range(games):
        game, length = f"match_{index:03d}", float(np.round(seconds * rng.uniform(0.6, 1.4), 1))
        events = dense_events(rng, length, rate_per_minute or 15.0, len(MANIFEST_CLASSES), False)
        path = write_video(out / "videos" / f"{game}.mp4", render_half(rng, length, events, fps=MANIFEST_FPS,
                                                                         trace=0.3),
                           MANIFEST_FPS, gop=MANIFEST_FPS, options={"preset": "ultrafast", "crf": "20"})
        videos[game] = {"id": game, "inputs": [{"type": "video", "path": path.relative_to(out).as_posix(),
                                                "fps": MANIFEST_FPS}],
                        "events": [manifest_event(MANIFEST_CLASSES[label], position) for position, label, _, _
                                   in events]}
    splits = split_names(list(videos))
    for split, members in splits.items():
        write_manifest(out / f"{split}.json", manifest_document(
            "generated", split, list(MANIFEST_CLASSES), [], [videos[game] for game in members],
            {"label_fps": MANIFEST_FPS}))
    return list(videos), [f"{split}.json" for split in splits]


GENERATORS = {**{edition: functools.partial(generate_ball, edition=edition)
                 for edition in ("soccernet_ball_2023", "soccernet_ball_2024", "soccernet_ball_2025")},
              "manifest": generate_manifest}
