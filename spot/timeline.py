"""A timeline picture of per-class spotting scores, written as a self-contained SVG (no plotting library needed).

One panel per half, one lane per class: the lane's filled curve is the class's score over time (0 at the lane's
bottom, 1 at its top, or the highest score when a weak model stays below 0.5; max-pooled to at most MAX_POINTS
columns so a 45-minute half stays light), and a dot (its tooltip gives the confidence) marks every action of the
human-readable list.
"""

from __future__ import annotations

import html
import os
from pathlib import Path

import numpy as np

from utils.files import write_text

MAX_POINTS = 900  # columns per lane
LANE = 18  # px per class lane
LEFT, RIGHT, PLOT_WIDTH = 190, 20, 900
PANEL_GAP = 46


def pooled(scores: np.ndarray, columns: int) -> np.ndarray:
    """(T, C) -> (columns, C) max over equal time slices (so a short peak survives the downsampling)."""
    if len(scores) <= columns:
        return scores
    edges = np.linspace(0, len(scores), columns + 1).astype(int)
    return np.maximum.reduceat(scores, edges[:-1], axis=0)


TICK_STEPS = (1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800)  # seconds between time labels


def tick_step(seconds: float) -> int:
    """Seconds between the time labels of a timeline `seconds` long: the smallest step that gives at most 10 (a 10 s
    clip is labelled every second, a 45-minute half every 5 minutes); the page uses the same (spot/page.py)."""
    return next((step for step in TICK_STEPS if seconds / step <= 10), 3600)


def lane(prediction: dict) -> str:
    """The lane (a column of the dataset: data/catalog.py) of an official-schema prediction: its label, and with
    teams "<label>-<team>"."""
    return f"{prediction['label']}-{prediction['team']}" if "team" in prediction else prediction["label"]


def _clock(seconds: float) -> str:
    return f"{int(seconds // 60)}:{int(seconds % 60):02d}"


def write_timeline(path: str | os.PathLike, half_scores: dict[int, np.ndarray], fps: float, classes: list[str],
                   marked: list[dict], note: str, title: str = "") -> Path:
    """Write the SVG; half_scores: {half: (frames, C) scores at fps}; marked: predictions (official schema) drawn as
    dots, described by `note`. A lane spans scores 0 to 1, or 0 to the highest score when that is below 0.5, so that
    a weak model's peaks stay visible."""
    num_classes = len(classes)
    highest = max(float(np.max(scores)) for scores in half_scores.values())
    scale = 1.0 if highest >= 0.5 else max(highest, 1e-6)
    panel_height = num_classes * LANE + 30
    height = 40 + len(half_scores) * (panel_height + PANEL_GAP)
    width = LEFT + PLOT_WIDTH + RIGHT
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
           f'font-family="sans-serif" font-size="11">',
           f'<rect width="{width}" height="{height}" fill="white"/>',
           f'<text x="10" y="22" font-size="15" font-weight="bold">{html.escape(title)}</text>',
           f'<text x="{width - RIGHT}" y="16" text-anchor="end" fill="#555">filled: score per class over time, '
           f'a lane spans 0 to {scale:.3g}</text>',
           f'<text x="{width - RIGHT}" y="30" text-anchor="end" fill="#555">dots: {html.escape(note)}</text>']
    top = 40
    for half, scores in sorted(half_scores.items()):
        seconds = len(scores) / fps
        columns = pooled(np.asarray(scores, np.float64), MAX_POINTS)
        xs = LEFT + np.arange(len(columns) + 1) * PLOT_WIDTH / len(columns)
        out.append(f'<text x="10" y="{top + 12}" font-weight="bold">half {half}</text>')
        for index, name in enumerate(classes):
            base = top + 16 + (index + 1) * LANE
            fill = "#f4f6f8" if index % 2 else "#ffffff"
            out.append(f'<rect x="{LEFT}" y="{base - LANE}" width="{PLOT_WIDTH}" height="{LANE}" fill="{fill}"/>')
            out.append(f'<text x="{LEFT - 6}" y="{base - 5}" text-anchor="end">{html.escape(name)}</text>')
            # a step curve: each pooled column is a flat segment
            ys = base - np.minimum(columns[:, index] / scale, 1.0) * (LANE - 2)
            points = [f"{LEFT:.1f},{base}"]
            for column, y in enumerate(ys):
                points.append(f"{xs[column]:.1f},{y:.1f} {xs[column + 1]:.1f},{y:.1f}")
            points.append(f"{xs[-1]:.1f},{base}")
            out.append(f'<polygon points="{" ".join(points)}" fill="#3b7dd8" fill-opacity="0.75"/>')
        bottom = top + 16 + num_classes * LANE
        step = tick_step(seconds)
        for tick in range(0, int(seconds) + 1, step):
            x = LEFT + tick / max(seconds, 1e-9) * PLOT_WIDTH
            out.append(f'<line x1="{x:.1f}" y1="{top + 16}" x2="{x:.1f}" y2="{bottom + 4}" stroke="#bbb" '
                       f'stroke-width="0.5"/>')
            out.append(f'<text x="{x:.1f}" y="{bottom + 16}" text-anchor="middle" fill="#555">{_clock(tick)}</text>')
        for prediction in marked:
            if int(prediction["half"]) != half:
                continue
            index = classes.index(lane(prediction))
            x = LEFT + int(prediction["position"]) / 1000 / max(seconds, 1e-9) * PLOT_WIDTH
            y = top + 16 + index * LANE + LANE / 2
            out.append(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="3.5" fill="#d8453b">'
                       f'<title>{html.escape(lane(prediction))}'
                       f' at {prediction["gameTime"]}: {prediction["confidence"]:.2f}</title></circle>')
        top += panel_height + PANEL_GAP
    out.append("</svg>")
    return write_text(path, "\n".join(out) + "\n")
