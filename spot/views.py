"""What a person gets to look at for a spotted video, beside its results_spotting.json: the list of actions
(spotting.txt), the timeline picture (timeline.svg), the page (index.html), what the run's index shows of it
(card.json, thumbnail.jpg) and, when asked for, the highlight clips."""

from __future__ import annotations

import dataclasses
import math
from collections import Counter
from pathlib import Path

import numpy as np

from spot.clips import Highlight, select_highlights, write_highlights
from spot.jobs import HalfVideo
from spot.page import page_videos, write_page, write_thumbnail
from spot.timeline import lane, write_timeline
from utils.files import write_json, write_text

SLIDER_STEPS = 1000  # the page's confidence slider moves in steps of 0.001 (spot/page.html)
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


@dataclasses.dataclass(frozen=True)
class DefaultView:
    """What a person sees first (the list, the timeline's dots, the page's slider and the index card): the actions
    at or above `threshold`, and a line saying which."""

    threshold: float
    rows: list[dict]  # in time order
    note: str
    fallback: bool  # nothing reached --min-confidence: the threshold is the FALLBACK_ROWS-th best confidence


def default_view(predictions: list[dict], min_confidence: float) -> DefaultView:
    """The actions at or above min_confidence; when none reaches it (a weak or briefly trained model, a video of
    another sport), the FALLBACK_ROWS most confident ones, through the threshold that shows them."""
    threshold, fallback = min_confidence, False
    if predictions and not any(p["confidence"] >= min_confidence for p in predictions):
        tenth = sorted(p["confidence"] for p in predictions)[-min(FALLBACK_ROWS, len(predictions))]
        # Rounded down to the page slider's step (0.001): the browser snaps a range input to its step, and rounding
        # up would hide some of the rows this view promises.
        threshold, fallback = math.floor(tenth * SLIDER_STEPS) / SLIDER_STEPS, True
    rows = sorted((p for p in predictions if p["confidence"] >= threshold),
                  key=lambda p: (int(p["half"]), int(p["position"])))
    if fallback:
        note = (f"no prediction reaches {min_confidence}; showing the {len(rows)} most confident of "
                f"{len(predictions)} (all of them are in results_spotting.json)")
    else:
        note = (f"actions with confidence >= {min_confidence} ({len(rows)} of {len(predictions)} predictions; all of "
                f"them are in results_spotting.json)")
    return DefaultView(threshold, rows, note, fallback)


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
    shown = default_view(predictions, view.min_confidence)
    written = {"list": write_spotting_list(folder / "spotting.txt", shown.rows, shown.note),
               "timeline": write_timeline(folder / "timeline.svg", spotted.scores, spotted.fps, spotted.classes,
                                          shown.rows, shown.note, title=spotted.name)}
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
    written["card"] = write_card(folder, spotted, shown)
    written["page"] = write_page(folder, spotted, shown, sources, clips, summary)  # last: the video is done
    return written, notes


def write_card(folder: Path, spotted: SpottedVideo, shown: DefaultView) -> Path:
    """card.json, what the run's index shows of the video: its length, the actions of the default view and their
    three most frequent classes, and thumbnail.jpg, the frame of its most confident action."""
    thumbnail = None
    if spotted.predictions:
        best = max(spotted.predictions, key=lambda p: p["confidence"])
        where = {h.half: h for h in spotted.halves}[int(best["half"])]
        thumbnail = write_thumbnail(folder / "thumbnail.jpg", where.video, where.offset + int(best["position"]) / 1000)
    card = {"name": spotted.name, "duration": sum(len(scores) for scores in spotted.scores.values()) / spotted.fps,
            "actions": len(shown.rows), "threshold": shown.threshold, "fallback": shown.fallback,
            "top_classes": [name for name, _ in Counter(lane(p) for p in shown.rows).most_common(3)],
            "thumbnail": thumbnail.name if thumbnail else None}
    return write_json(folder / "card.json", card)
