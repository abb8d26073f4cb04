"""Validation a-mAP per stage-3 epoch of several runs, drawn as one self-contained SVG (no plotting library needed).

    python evaluate.py convergence --run "COMEDIAN=runs/spot_a,runs/spot_b" --run "no pretraining=runs/spot_scratch" \\
        --out convergence.svg

A run is one or more run folders (`metrics.jsonl` + `config.yaml` from a stage-3 training) chained in order: a
folder's epochs are counted after the `run.epochs` of the folders before it, so phase b of COMEDIAN continues the
epoch axis of phase a. This is the picture of the paper's "faster convergence" claim.
"""

from __future__ import annotations

import html
import os
from pathlib import Path

import yaml

from utils.errors import InvalidInputError, MissingFileError
from utils.files import write_text
from utils.logs import read_metrics

COLOURS = ("#1f5fbf", "#d8453b", "#2e9a4d", "#8a4fbf", "#c98a12")
WIDTH, HEIGHT = 900, 420
LEFT, RIGHT, TOP, BOTTOM = 64, 300, 40, 52


def validation_curve(run_dirs: list[Path], metric: str = "valid_tight_a_mAP") -> tuple[list[tuple[int, float]], list[int]]:
    """(epoch, a-mAP in %) points of chained run folders, and the epochs where a later folder starts."""
    points, boundaries, offset = [], [], 0
    for index, run_dir in enumerate(run_dirs):
        metrics, config = Path(run_dir) / "metrics.jsonl", Path(run_dir) / "config.yaml"
        for path in (metrics, config):
            if not path.is_file():
                raise MissingFileError(f"{path} not found: a run folder of train_spotting.py holds it")
        points += [(offset + int(record["epoch"]), 100 * float(record[metric]))
                   for record in read_metrics(metrics) if metric in record]
        offset += int(yaml.safe_load(config.read_text(encoding="utf-8"))["run"]["epochs"])
        if index < len(run_dirs) - 1:
            boundaries.append(offset)
    if not points:
        raise InvalidInputError(f"no {metric} record in {', '.join(str(d) for d in run_dirs)}: did validation run?")
    return points, boundaries


def _nice_step(span: float) -> float:
    """The smallest of 1, 2, 2.5, 5 times a power of ten (at least 1) that cuts `span` into at most 8 ticks."""
    scale = 1
    while True:
        for step in (scale, 2 * scale, 2.5 * scale, 5 * scale):
            if step == int(step) and span / step <= 8:
                return int(step)
        scale *= 10


def write_convergence(path: str | os.PathLike, curves: dict[str, tuple[list[tuple[int, float]], list[int]]],
                      title: str = "validation tight average-mAP per stage-3 epoch",
                      x_label: str = "stage-3 epoch") -> Path:
    """One polyline with markers per run; a dashed line where a run changes phase (its next folder starts)."""
    last_epoch = max(epoch for points, _ in curves.values() for epoch, _ in points)
    top_value = max(value for points, _ in curves.values() for _, value in points)
    y_step = _nice_step(top_value)
    y_max = y_step * (int(top_value // y_step) + 1)
    x_step = _nice_step(last_epoch)
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM

    def x(epoch: float) -> float:
        return LEFT + epoch / max(last_epoch, 1) * plot_w

    def y(value: float) -> float:
        return TOP + plot_h - value / y_max * plot_h

    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" font-family="sans-serif" '
           f'font-size="12">', f'<rect width="{WIDTH}" height="{HEIGHT}" fill="white"/>',
           f'<text x="{LEFT}" y="22" font-size="14" font-weight="bold">{html.escape(title)}</text>']
    for tick in range(0, int(y_max) + 1, int(y_step)):
        out.append(f'<line x1="{LEFT}" y1="{y(tick):.1f}" x2="{LEFT + plot_w}" y2="{y(tick):.1f}" stroke="#e3e3e3"/>')
        out.append(f'<text x="{LEFT - 8}" y="{y(tick) + 4:.1f}" text-anchor="end" fill="#444">{tick}</text>')
    for tick in range(0, last_epoch + 1, int(x_step)):
        out.append(f'<line x1="{x(tick):.1f}" y1="{TOP + plot_h}" x2="{x(tick):.1f}" y2="{TOP + plot_h + 5}" '
                   f'stroke="#444"/>')
        out.append(f'<text x="{x(tick):.1f}" y="{TOP + plot_h + 19}" text-anchor="middle" fill="#444">{tick}</text>')
    out.append(f'<line x1="{LEFT}" y1="{TOP + plot_h}" x2="{LEFT + plot_w}" y2="{TOP + plot_h}" stroke="#444"/>')
    out.append(f'<line x1="{LEFT}" y1="{TOP}" x2="{LEFT}" y2="{TOP + plot_h}" stroke="#444"/>')
    out.append(f'<text x="{LEFT + plot_w / 2:.1f}" y="{HEIGHT - 12}" text-anchor="middle">'
               f'{html.escape(x_label)}</text>')
    out.append(f'<text x="16" y="{TOP + plot_h / 2:.1f}" text-anchor="middle" transform="rotate(-90 16 '
               f'{TOP + plot_h / 2:.1f})">tight a-mAP (%)</text>')
    for index, (name, (points, boundaries)) in enumerate(curves.items()):
        colour = COLOURS[index % len(COLOURS)]
        for boundary in boundaries:
            out.append(f'<line x1="{x(boundary):.1f}" y1="{TOP}" x2="{x(boundary):.1f}" y2="{TOP + plot_h}" '
                       f'stroke="{colour}" stroke-dasharray="4 4" stroke-opacity="0.6"/>')
            out.append(f'<text x="{x(boundary) + 4:.1f}" y="{TOP + 12}" fill="{colour}" font-size="11">'
                       f'next phase</text>')
        coordinates = " ".join(f"{x(epoch):.1f},{y(value):.1f}" for epoch, value in sorted(points))
        out.append(f'<polyline points="{coordinates}" fill="none" stroke="{colour}" stroke-width="2"/>')
        for epoch, value in points:
            out.append(f'<circle cx="{x(epoch):.1f}" cy="{y(value):.1f}" r="3.5" fill="{colour}"><title>'
                       f'{html.escape(name)}, epoch {epoch}: {value:.2f}</title></circle>')
        legend_y = TOP + 14 + 20 * index
        out.append(f'<line x1="{LEFT + plot_w + 14}" y1="{legend_y}" x2="{LEFT + plot_w + 36}" y2="{legend_y}" '
                   f'stroke="{colour}" stroke-width="2"/>')
        best = max(value for _, value in points)
        out.append(f'<text x="{LEFT + plot_w + 42}" y="{legend_y + 4}">{html.escape(name)} (best {best:.1f})</text>')
    out.append("</svg>")
    return write_text(path, "\n".join(out) + "\n")
