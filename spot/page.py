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
import torchvision

from data.video import frame_at, probe_video, resized_rgb
from spot.clips import playable_copy
from spot.timeline import lane, pooled, tick_step
from utils.errors import UserError
from utils.files import atomic_path, write_bytes, write_text

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


def write_page(folder: Path, spotted, shown, sources: dict[Path, str], clips: list[dict], summary: str) -> Path:
    """folder/index.html of a spotted video (spot/views.py: SpottedVideo): every prediction of results_spotting.json,
    the slider starting at the default view's threshold (shown: spot/views.py: DefaultView, with its note when nothing
    reached --min-confidence); clips: what write_highlights wrote (its file is linked from the action's row)."""
    clip_of = {(c["half"], round(c["seconds"], 3), c["label"]): quote(c["file"]) for c in clips}
    scores = spotted.scores
    highest = max(float(np.max(half_scores)) for half_scores in scores.values())
    data = {
        "name": spotted.name,
        "classes": spotted.classes,
        # the teams the actions name (Team-BAS: left, right): the page's team filter; none, no filter
        "teams": sorted({str(p["team"]) for p in spotted.predictions if p.get("team")}),
        "min_confidence": shown.threshold,
        "threshold_note": shown.note if shown.fallback else None,
        "lane_scale": 1.0 if highest >= 0.5 else max(highest, 1e-6),  # a weak model's peaks stay visible
        "summary": summary,
        "reel": "highlights.mp4" if clips else None,
        "halves": [{"half": h.half, "video": sources[h.video], "offset": h.offset,
                    "duration": len(scores[h.half]) / spotted.fps,
                    "tick": tick_step(len(scores[h.half]) / spotted.fps),
                    "lanes": np.round(pooled(scores[h.half], LANE_COLUMNS), 3).T.tolist()} for h in spotted.halves],
        # each prediction as results_spotting.json holds it (`record`, for the page's export), with its lane and clip
        "predictions": [{"half": int(p["half"]), "position": int(p["position"]), "label": lane(p),
                         "confidence": float(p["confidence"]), "record": p,
                         "clip": clip_of.get((int(p["half"]), round(int(p["position"]) / 1000, 3), lane(p)))}
                        for p in spotted.predictions],
    }
    inlined = json.dumps(data, separators=(",", ":")).replace("</", "<\\/")  # never closes the <script> early
    page = TEMPLATE.read_text().replace("__TITLE__", html.escape(spotted.name)).replace("__DATA__", inlined)
    return write_text(folder / PAGE, page)


THUMBNAIL_HEIGHT = 180


def write_thumbnail(path: Path, video: Path, seconds: float) -> Path | None:
    """path (a JPEG): the frame of `video` shown at `seconds`, THUMBNAIL_HEIGHT pixels high; None when the video
    cannot give one (the card then has no picture)."""
    try:
        frame = frame_at(video, seconds)
    except UserError:
        return None
    width = max(2, round(frame.width * THUMBNAIL_HEIGHT / frame.height))
    image = resized_rgb(frame, (THUMBNAIL_HEIGHT, width))  # (3, h, w) uint8
    return write_bytes(path, torchvision.io.encode_jpeg(image, quality=85).numpy().tobytes())


def _card(out: Path, page: Path) -> str:
    """One video of the run's index: its thumbnail, length, actions and classes (card.json, from spot/views.py), or
    its name alone for a page written before cards existed."""
    folder, href = page.parent, quote(page.relative_to(out).as_posix())
    name = html.escape(folder.relative_to(out).as_posix())
    card = json.loads((folder / "card.json").read_text(encoding="utf-8")) if (folder / "card.json").is_file() else {}
    picture = (f'<img src="{quote((folder / card["thumbnail"]).relative_to(out).as_posix())}" alt="">'
               if card.get("thumbnail") else '<div class="blank"></div>')
    facts = ""
    if card:
        minutes, seconds = divmod(int(round(card["duration"])), 60)
        shown = f"the {card['actions']} most confident" if card["fallback"] else \
            f"{card['actions']} at confidence &ge; {card['threshold']:g}"
        facts = (f'<p>{minutes}:{seconds:02d} &middot; {shown}</p><p class="classes">'
                 f'{html.escape(", ".join(card["top_classes"])) or "no action"}</p>')
    return f'<a class="card" href="{href}">{picture}<h2>{name}</h2>{facts}</a>'


def write_run_index(out: Path) -> Path:
    """out/index.html: a card per video page under out (this run's and earlier runs' into the same folder), linking
    to it; like the pages, it opens from the file system."""
    pages = sorted(path for path in out.glob(f"**/{PAGE}") if path.parent != out)
    cards = "\n".join(_card(out, page) for page in pages)
    document = (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>Spotted videos</title><style>"
        "body{font-family:system-ui,sans-serif;margin:24px;background:#fafafa;color:#222}"
        "#cards{display:grid;grid-template-columns:repeat(auto-fill,minmax(260px,1fr));gap:14px}"
        ".card{display:block;background:white;border:1px solid #ddd;border-radius:6px;overflow:hidden;"
        "text-decoration:none;color:inherit}.card:hover{border-color:#1f5fa8}"
        ".card img,.card .blank{display:block;width:100%;aspect-ratio:16/9;object-fit:cover;background:#223}"
        ".card h2{font-size:14px;margin:8px 10px 2px;word-break:break-all;color:#1f5fa8}"
        ".card p{font-size:12px;margin:2px 10px}.card .classes{color:#555;margin-bottom:10px}</style></head><body>"
        f"<h1>Spotted videos</h1><p>{len(pages)} video(s) in {html.escape(str(out))}</p>"
        f'<div id="cards">\n{cards}\n</div></body></html>\n')
    return write_text(out / PAGE, document)
