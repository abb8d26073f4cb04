"""The page `evaluate.py spot` writes per video (index.html: video, timeline, actions) and the index of a run's pages.

The page is one HTML file with its data inlined (spot/page.html is the template): it needs no network and no server,
and opens from the file system. It plays the video through a relative path from the page's folder to the input file,
or a copy beside the page: a byte copy with --copy-video, or, for a file browsers cannot play (an AVI, MPEG-4 Part 2,
...), an H.264 mp4 re-encoded with the same frames at the same times (spot/clips.py).
"""

from __future__ import annotations

import html
import json
import os
import shutil
from pathlib import Path
from urllib.parse import quote

import numpy as np

from data.video import probe_video
from spot.clips import playable_copy
from spot.timeline import lane, pooled
from utils.files import atomic_path, write_text

TEMPLATE = Path(__file__).with_name("page.html")
PAGE = "index.html"
LANE_COLUMNS = 1100  # score columns per lane: one per unit of the page's timeline (page.html: WIDTH)


def page_videos(folder: Path, videos: list[Path], copy: bool) -> tuple[dict[Path, str], list[str]]:
    """{input file: what the page's <video> loads, relative to folder}, and a line per copy made and why."""
    sources, made = {}, []
    for number, video in enumerate(dict.fromkeys(videos), start=1):
        stem = "video" if len(set(videos)) == 1 else f"video_{number}"
        if probe_video(video).browser_playable:
            if copy:
                with atomic_path(folder / f"{stem}{video.suffix.lower()}") as tmp:
                    shutil.copyfile(video, tmp)
                sources[video] = f"{stem}{video.suffix.lower()}"
                made.append(f"copied {video} beside the page (--copy-video)")
            else:
                sources[video] = os.path.relpath(video.resolve(), folder.resolve())
        else:
            target = folder / f"{stem}.mp4"
            playable_copy(video, target)
            sources[video] = target.name
            made.append(f"{video} is not a format browsers play: the page plays {target}, an H.264 copy (video only)")
    return {video: quote(Path(source).as_posix()) for video, source in sources.items()}, made


def write_page(folder: Path, spotted, min_confidence: float, sources: dict[Path, str], clips: list[dict],
               summary: str) -> Path:
    """folder/index.html of a spotted video (spot/views.py: SpottedVideo): every prediction of results_spotting.json
    (the slider filters them from min_confidence on); clips: what write_highlights wrote (its file is linked from the
    action's row)."""
    clip_of = {(c["half"], round(c["seconds"], 3), c["label"]): quote(c["file"]) for c in clips}
    scores = spotted.scores
    highest = max(float(np.max(half_scores)) for half_scores in scores.values())
    data = {
        "classes": spotted.classes,
        "min_confidence": min_confidence,
        "lane_scale": 1.0 if highest >= 0.5 else max(highest, 1e-6),  # a weak model's peaks stay visible
        "summary": summary,
        "reel": "highlights.mp4" if clips else None,
        "halves": [{"half": h.half, "video": sources[h.video], "offset": h.offset,
                    "duration": len(scores[h.half]) / spotted.fps,
                    "lanes": np.round(pooled(scores[h.half], LANE_COLUMNS), 3).T.tolist()} for h in spotted.halves],
        "predictions": [{"half": int(p["half"]), "position": int(p["position"]), "label": lane(p),
                         "confidence": float(p["confidence"]),
                         "clip": clip_of.get((int(p["half"]), round(int(p["position"]) / 1000, 3), lane(p)))}
                        for p in spotted.predictions],
    }
    inlined = json.dumps(data, separators=(",", ":")).replace("</", "<\\/")  # never closes the <script> early
    page = TEMPLATE.read_text().replace("__TITLE__", html.escape(spotted.name)).replace("__DATA__", inlined)
    return write_text(folder / PAGE, page)


def write_run_index(out: Path) -> Path:
    """out/index.html: a link to every video page under out (this run's and earlier runs' into the same folder)."""
    pages = sorted(path for path in out.glob(f"**/{PAGE}") if path.parent != out)
    rows = []
    for page in pages:
        name = page.parent.relative_to(out).as_posix()
        rows.append(f'<li><a href="{quote(page.relative_to(out).as_posix())}">{html.escape(name)}</a></li>')
    document = ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>Spotted videos</title>"
                "<style>body{font-family:system-ui,sans-serif;margin:24px}li{margin:4px 0}</style></head><body>"
                f"<h1>Spotted videos</h1><p>{len(pages)} video(s) in {html.escape(str(out))}</p><ul>\n"
                + "\n".join(rows) + "\n</ul></body></html>\n")
    return write_text(out / PAGE, document)
