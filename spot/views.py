"""What a person gets to look at for a spotted video, beside its results_spotting.json: the list of actions
(spotting.txt), the timeline picture (timeline.svg), the page (index.html) and, when asked for, the highlight clips."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from spot.clips import Highlight, select_highlights, write_highlights
from spot.jobs import HalfVideo
from spot.page import page_videos, write_page
from spot.timeline import lane, write_timeline
from utils.files import write_text

FALLBACK_ROWS = 10  # rows of the human-readable list when no prediction reaches --min-confidence


@dataclasses.dataclass(frozen=True)
class SpottedVideo:
    """A spotted game: its name, where its halves lie, their (frames, C) scores at `fps` and its predictions after
    NMS (results_spotting.json's)."""

    name: str
    halves: list[HalfVideo]
    scores: dict[int, np.ndarray]
    predictions: list[dict]
    fps: float
    classes: list[str]


def listed_predictions(predictions: list[dict], min_confidence: float) -> tuple[list[dict], str]:
    """The predictions a person gets to see (list and timeline dots), in time order, and a line saying which."""
    rows = [p for p in predictions if p["confidence"] >= min_confidence]
    note = (f"actions with confidence >= {min_confidence} ({len(rows)} of {len(predictions)} predictions; all of them "
            f"are in results_spotting.json)")
    if not rows and predictions:  # a weak or briefly trained model: show its best guesses rather than nothing
        rows = sorted(predictions, key=lambda p: -p["confidence"])[:FALLBACK_ROWS]
        note = (f"no prediction reaches confidence {min_confidence}: the {len(rows)} most confident of "
                f"{len(predictions)} (all of them are in results_spotting.json)")
    return sorted(rows, key=lambda p: (int(p["half"]), int(p["position"]))), note


def write_spotting_list(path: Path, rows: list[dict], note: str) -> Path:
    """A plain-text table, one action per line in time order: half, game time, class (and team), confidence."""
    lines = [f"# {note}", f"{'half':<5} {'time':>8}  {'class':<26} confidence"]
    for p in rows:
        lines.append(f"{p['half']:<5} {p['gameTime'].split(' - ')[1]:>8}  {lane(p):<26} {p['confidence']:.3f}")
    return write_text(path, "\n".join(lines) + "\n")


def write_views(folder: Path, spotted: SpottedVideo, view, nms: str) -> tuple[dict[str, Path], list[str]]:
    """Under `folder`: spotting.txt and timeline.svg (the actions above view.min_confidence), index.html (the page),
    and with clips asked for, clips/*.mp4 and highlights.mp4. view: the spot options (configs/schema.py:
    SpotConfig); nms: the NMS that made the predictions, for the page's summary. Returns the files written and a
    line per copy made."""
    predictions = spotted.predictions
    rows, note = listed_predictions(predictions, view.min_confidence)
    written = {"list": write_spotting_list(folder / "spotting.txt", rows, note),
               "timeline": write_timeline(folder / "timeline.svg", spotted.scores, spotted.fps, spotted.classes, rows,
                                          note, title=spotted.name)}
    clips = []
    if view.wants_clips:
        where = {h.half: h for h in spotted.halves}
        chosen = select_highlights(predictions, view.clips, view.clips_min_confidence)
        clips = write_highlights(folder, [Highlight(int(p["half"]), int(p["position"]) / 1000, lane(p),
                                                    float(p["confidence"]), where[int(p["half"])].video,
                                                    where[int(p["half"])].offset) for p in chosen],
                                 view.clip_before, view.clip_after)
        if clips:
            written["highlights"] = folder / "highlights.mp4"
    sources, notes = page_videos(folder, [h.video for h in spotted.halves], view.copy_video)
    if view.wants_clips:
        copied = sum(clip["written"] == "copied" for clip in clips)
        notes.append(f"{len(clips)} clip(s) in {folder / 'clips'} ({copied} stream-copied, {len(clips) - copied} "
                     f"re-encoded)" + ("" if clips else ": no action reaches --clips-min-confidence"))
    summary = (f"{len(predictions)} predictions (results_spotting.json, {nms} NMS); click an action or a "
               f"dot to see it, the slider shows the actions at or above a confidence")
    written["page"] = write_page(folder, spotted, view.min_confidence, sources, clips, summary)
    return written, notes
