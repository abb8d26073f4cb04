"""`evaluate.py spot` on videos that are not SoccerNet, then its pages in a real headless Chromium: the page plays
the video, lists exactly the actions of results_spotting.json at or above the slider, and a click on an action (in
the list or on the timeline) or a key seeks the video to it; the cursor follows playback; clips and reel are there.

The screenshots in the README are the ones these tests take: `COMEDIAN_SCREENSHOTS=docs pytest
tests/test_spot_page.py` writes docs/spot_page.png (a page) and docs/spot_index.png (the run's index) there.
"""

import json
import math
import os
import shutil
import time
from collections import Counter
from pathlib import Path
from urllib.parse import unquote, urlparse

import numpy as np
import pytest

from data.catalog import BUILT_IN
from data.labels import game_time
from data.synthetic import render_half, sample_events
from data.video import write_video
from spot.jobs import HalfVideo
from spot.page import write_page
from spot.views import SpottedVideo, default_view
from tests import browser
from tests.conftest import run_script, spotting_checkpoint
from tests.test_spot import own_video

pytestmark = pytest.mark.slow
SEEK_TOLERANCE_S = 0.1


@pytest.fixture(scope="module")
def spotted(tmp_path_factory):
    """Three spot runs into one folder: a generated match in one mkv split at 14 s (with clips), two mp4 halves of
    other sizes and rates (copied beside their page), and an AVI that browsers cannot play."""
    folder = tmp_path_factory.mktemp("spot_page")
    checkpoint = spotting_checkpoint(folder / "tiny.pth", "model.name=vivit_micro", "model.img_size=64",
                                     "model.window_seconds=8", "model.temporal_depth=2",
                                     "eval.window_stride_seconds=4", "eval.trim_seconds=2",
                                     "model.head_bias_prior=0.3")
    out = folder / "spotted"
    rng = np.random.default_rng(3)  # the generated pitch, its camera moves and class glyphs (data/synthetic.py)
    whole = write_video(folder / "whole match.mkv", render_half(rng, 32, sample_events(rng, 32, 12)), 25,
                        options={"preset": "ultrafast"})
    common = ["--checkpoint", str(checkpoint), "--out", str(out), "--min-confidence", "0.31"]
    run_script(["evaluate.py", "spot", str(whole), "--second-half-start", "14", "--clips", "4", *common])
    first = own_video(folder / "derby_1.mp4", 18, 30, (180, 320), "libx264")
    second = own_video(folder / "derby_2.mp4", 20, 24, (144, 256), "libx264")
    run_script(["evaluate.py", "spot", str(first), str(second), "--match-halves", "--copy-video", *common])
    avi = own_video(folder / "camera.avi", 16, 30, (180, 320), "mpeg4")
    completed = run_script(["evaluate.py", "spot", str(avi), *common])
    assert "is not a format browsers play" in completed.stdout
    # a 10-second clip no prediction of which reaches the default 0.5 (the untrained model scores around 0.3)
    clip = own_video(folder / "short clip.mp4", 10, 25, (180, 320), "libx264")
    run_script(["evaluate.py", "spot", str(clip), "--checkpoint", str(checkpoint), "--out", str(out)])
    return out


@pytest.fixture(scope="module")
def chromium():
    if not browser.available():  # CI installs both (.ci/run); a checkout without them says why this did not run
        pytest.fail(f"headless Chromium is needed: {browser.CHROMIUM} and {browser.CHROMEDRIVER} (Debian: "
                    f"apt-get install chromium chromium-driver)")
    session = browser.Browser()
    yield session
    session.close()


def load(chromium, page: Path):
    chromium.open(page.as_uri())
    chromium.wait_for("document.getElementById('video').readyState >= 1")  # the video's metadata has loaded
    return chromium.run("return JSON.parse(document.getElementById('data').textContent)")


def no_console_errors(chromium):
    errors = [entry for entry in chromium.console() if entry["level"] == "SEVERE"]
    assert not errors, errors


def shown_rows(chromium) -> list[tuple[int, int, str, float]]:
    return [tuple(row) for row in chromium.run(
        "return [...document.querySelectorAll('#actions tr:not([hidden])')].map(r => "
        "[Number(r.dataset.half), Number(r.dataset.position), r.dataset.label, Number(r.dataset.confidence)])")]


def at_or_above(results: dict, threshold: float) -> list[tuple[int, int, str, float]]:
    return sorted((int(p["half"]), int(p["position"]), p["label"], p["confidence"]) for p in results["predictions"]
                  if p["confidence"] >= threshold)


def set_slider(chromium, value: float) -> None:
    chromium.run("const s = document.getElementById('confidence'); s.value = arguments[0]; "
                 "s.dispatchEvent(new Event('input'));", value)


def seeked_to(chromium, seconds: float) -> float:
    """The video's currentTime once it is within the tolerance of `seconds` (a click on an action of the other
    file's half seeks once that file's metadata has loaded), or after 20 s, when the assertion fails."""
    try:
        chromium.wait_for(f"!video.seeking && Math.abs(video.currentTime - {seconds}) < {SEEK_TOLERANCE_S}")
    except TimeoutError:
        pass
    return chromium.run("return video.currentTime")


def row(half: int, position: int, label: str) -> str:
    return f"#actions tr[data-half='{half}'][data-position='{position}'][data-label='{label}']"


def test_page_lists_the_actions_above_the_slider_and_clicks_seek(spotted, chromium, tmp_path):
    folder = spotted / "whole match"
    results = json.loads((folder / "results_spotting.json").read_text())
    data = load(chromium, folder / "index.html")
    no_console_errors(chromium)
    assert chromium.run("return video.duration") == pytest.approx(32, abs=0.05)  # the mkv itself, by relative path
    offsets = {half["half"]: half["offset"] for half in data["halves"]}
    assert offsets == {1: 0.0, 2: 14.0}
    assert chromium.run("return Number(document.getElementById('confidence').value)") == 0.31  # --min-confidence
    for threshold in (0.31, 0.3, 0.32):  # the untrained model's scores lie around its 0.3 prior
        set_slider(chromium, threshold)
        rows = shown_rows(chromium)
        assert 0 < len(rows) < len(results["predictions"])
        assert sorted(rows) == at_or_above(results, threshold) and rows == sorted(rows, key=lambda r: r[:2])
    shown = shown_rows(chromium)
    assert {half for half, *_ in shown} == {1, 2}
    for index in (0, len(shown) // 2, len(shown) - 1):  # a click on a row of either half
        half, position, label, _ = shown[index]
        chromium.click(chromium.find(row(half, position, label)))
        target = offsets[half] + position / 1000
        assert seeked_to(chromium, target) == pytest.approx(target, abs=SEEK_TOLERANCE_S)
    # a dot on the timeline: with the slider high, the most confident action's dot stands alone
    number, best = max(enumerate(results["predictions"]), key=lambda item: item[1]["confidence"])
    set_slider(chromium, math.floor(best["confidence"] * 1000) / 1000)  # the slider's step is 0.001
    assert len(shown_rows(chromium)) < 5
    chromium.click(chromium.find(f".dot[data-index='{number}']"))
    target = offsets[int(best["half"])] + int(best["position"]) / 1000
    assert seeked_to(chromium, target) == pytest.approx(target, abs=SEEK_TOLERANCE_S)
    no_console_errors(chromium)
    screenshot(chromium, folder / "index.html", tmp_path)


def screenshot(chromium, page: Path, tmp_path: Path) -> None:
    """The README's picture: the page as it opens, then the second action of the list clicked."""
    data = load(chromium, page)
    half, position, label, _ = shown_rows(chromium)[1]
    chromium.click(chromium.find(row(half, position, label)))
    target = next(h["offset"] for h in data["halves"] if h["half"] == half) + position / 1000
    seeked_to(chromium, target)
    # a moment of playback: until then Chromium's controls draw a loading ring over the frame
    chromium.run_async("const done = arguments[arguments.length - 1]; video.play().then(() => setTimeout(() => { "
                       "video.pause(); video.currentTime = arguments[0]; video.addEventListener('seeked', done, "
                       "{once: true}); }, 300));", target)
    chromium.resize(1400, 1300)  # the whole page: video, list and both halves' timelines
    shot = chromium.screenshot(tmp_path / "spot_page.png")
    chromium.resize(1400, 900)
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    keep_screenshot(shot)


def keep_screenshot(shot: Path) -> None:
    if os.environ.get("COMEDIAN_SCREENSHOTS"):
        shutil.copyfile(shot, Path(os.environ["COMEDIAN_SCREENSHOTS"]) / shot.name)


def test_keys_step_through_the_shown_actions_and_the_cursor_follows(spotted, chromium):
    data = load(chromium, spotted / "whole match" / "index.html")
    shown = [(half, position / 1000) for half, position, *_ in shown_rows(chromium)]
    # `n` goes to the next moment with an action (several classes may share one), from 0:00 on
    after_start = sorted({action for action in shown if action > (1, 0.05)})
    for key, expected in (("n", after_start[0]), ("n", after_start[1]), ("p", after_start[0])):
        chromium.press(key)
        target = expected[1] + (14.0 if expected[0] == 2 else 0.0)
        assert seeked_to(chromium, target) == pytest.approx(target, abs=SEEK_TOLERANCE_S)
    # play from 13 s over the start of half 2 (14 s in the file): the cursor moves into half 2's panel with the video
    chromium.run("video.currentTime = 13.2;")
    seeked_to(chromium, 13.2)
    chromium.run_async("const done = arguments[arguments.length - 1]; video.play().then(() => "
                       "setTimeout(() => { video.pause(); done(); }, 1500));")
    now = chromium.run("return video.currentTime")
    assert now > 14.0  # it played
    cursors = chromium.run("return [...document.querySelectorAll('.cursor')].map(c => "
                           "[c.getAttribute('visibility'), Number(c.getAttribute('x1'))])")
    assert [visibility for visibility, _ in cursors] == ["hidden", "visible"]
    half_two = next(h for h in data["halves"] if h["half"] == 2)
    assert cursors[1][1] == pytest.approx(170 + (now - 14.0) / half_two["duration"] * 1100, abs=3.0)  # LEFT, WIDTH
    no_console_errors(chromium)


def test_a_page_where_nothing_reaches_the_threshold_opens_on_the_ten_most_confident(spotted, chromium):
    folder = spotted / "short clip"
    results = json.loads((folder / "results_spotting.json").read_text())
    assert max(p["confidence"] for p in results["predictions"]) < 0.5
    tenth = sorted(p["confidence"] for p in results["predictions"])[-10]
    load(chromium, folder / "index.html")
    assert chromium.run("return Number(document.getElementById('confidence').value)") == pytest.approx(tenth,
                                                                                                        abs=1e-3)
    shown = at_or_above(results, chromium.run("return Number(document.getElementById('confidence').value)"))
    # at least ten: the threshold is rounded down to the slider's step, which can let in near-ties
    assert sorted(shown_rows(chromium)) == shown and 10 <= len(shown) < len(results["predictions"])
    assert chromium.run("return document.getElementById('status').textContent").strip().startswith(
        f"no prediction reaches 0.5; showing the {len(shown)} most confident of {len(results['predictions'])}")
    listed = (folder / "spotting.txt").read_text().splitlines()
    assert listed[0].startswith(f"# no prediction reaches 0.5; showing the {len(shown)} most confident")
    assert len(listed) == len(shown) + 2  # the note, the column names, a line per action
    set_slider(chromium, 0.0)  # the slider still goes anywhere
    assert len(shown_rows(chromium)) == len(results["predictions"])
    no_console_errors(chromium)


def test_time_labels_fit_the_length_of_the_video(spotted, chromium):
    load(chromium, spotted / "short clip" / "index.html")
    labels = chromium.run("return [...document.querySelectorAll('#timeline text')].map(t => t.textContent)"
                          ".filter(t => /^\\d+:\\d\\d$/.test(t))")
    assert labels == [f"0:{second:02d}" for second in range(11)]  # a 10 s clip: every second
    svg = (spotted / "short clip" / "timeline.svg").read_text()
    assert all(f">0:{second:02d}</text>" in svg for second in range(11))
    load(chromium, spotted / "whole match" / "index.html")  # halves of 14 and 18 s: every 2 s
    labels = chromium.run("return [...document.querySelectorAll('#timeline g')].map(g => [...g.querySelectorAll("
                          "'text')].map(t => t.textContent).filter(t => /^\\d+:\\d\\d$/.test(t)))")
    assert labels == [[f"0:{s:02d}" for s in range(0, 15, 2)], [f"0:{s:02d}" for s in range(0, 19, 2)]]


def test_the_address_keeps_the_moment_and_the_filters(spotted, chromium):
    folder = spotted / "whole match"
    results = json.loads((folder / "results_spotting.json").read_text())
    label = results["predictions"][0]["label"]
    chromium.open((folder / "index.html").as_uri() + f"#half=2&t=3.5&min=0.3&class={label}")
    chromium.wait_for("video.readyState >= 1")
    assert seeked_to(chromium, 14 + 3.5) == pytest.approx(17.5, abs=SEEK_TOLERANCE_S)
    assert chromium.run("return [Number(document.getElementById('confidence').value), "
                        "document.getElementById('class-filter').value]") == [0.3, label]
    assert sorted(shown_rows(chromium)) == [r for r in at_or_above(results, 0.3) if r[2] == label]
    # a click elsewhere is written back into the address, ready to be copied
    half, position, _, _ = shown_rows(chromium)[0]
    chromium.click(chromium.find(row(half, position, label)))
    seeked_to(chromium, (14 if half == 2 else 0) + position / 1000)
    hash_now = chromium.run("return location.hash")
    assert f"t={position / 1000:.1f}" in hash_now and "min=0.300" in hash_now and "class=" in hash_now
    # playing over an action highlights its row
    chromium.run(f"video.currentTime = {max(0.0, (14 if half == 2 else 0) + position / 1000 - 0.6)};")
    chromium.run_async("const done = arguments[arguments.length - 1]; video.play().then(() => "
                       "setTimeout(() => { video.pause(); done(); }, 1200));")
    assert chromium.run(f"return document.querySelector(\"{row(half, position, label)}\").classList"
                        ".contains('current')")
    no_console_errors(chromium)


def test_exports_hold_exactly_the_shown_actions(spotted, chromium, tmp_path):
    folder = spotted / "whole match"
    results = json.loads((folder / "results_spotting.json").read_text())
    load(chromium, folder / "index.html")
    chromium.allow_downloads(tmp_path)
    set_slider(chromium, 0.31)
    chromium.click(chromium.find("#export-json"))
    chromium.click(chromium.find("#export-csv"))
    deadline = time.monotonic() + 20
    while len(list(tmp_path.glob("*"))) < 2 or any(p.suffix == ".crdownload" for p in tmp_path.iterdir()):
        assert time.monotonic() < deadline, list(tmp_path.iterdir())
        time.sleep(0.1)
    exported = json.loads((tmp_path / "results_spotting.json").read_text())
    kept = [p for p in results["predictions"] if p["confidence"] >= 0.31]
    by_time = lambda p: (int(p["half"]), int(p["position"]))  # noqa: E731
    assert sorted(exported["predictions"], key=by_time) == sorted(kept, key=by_time)
    assert exported["UrlLocal"] == "whole match"
    lines = (tmp_path / "whole_match_actions.csv").read_text().splitlines()
    assert lines[0] == "half,seconds,game_time,class,confidence" and len(lines) == len(kept) + 1
    first = sorted(kept, key=by_time)[0]
    assert lines[1].split(",") == [first["half"], f"{int(first['position']) / 1000:.3f}", first["gameTime"],
                                   first["label"], repr(first["confidence"])]


def test_team_actions_are_filtered_and_exported_with_their_team(chromium, tmp_path):
    """A Team-BAS page (a lane per class and team, written by spot's own page writer): a team filter shows one
    team's actions and goes into the address; the CSV has a team column, each row the team of its action in
    results_spotting.json, and the JSON keeps the team."""
    team_bas = BUILT_IN["soccernet_ball_2025"]
    clip = own_video(tmp_path / "clip.mp4", 8, 25, (144, 256), "libx264")
    rng = np.random.default_rng(5)
    predictions = [{"gameTime": game_time(1, 500 * k), "label": team_bas.classes[k % len(team_bas.classes)],
                    "position": str(500 * k), "half": "1", "confidence": float(rng.uniform(0.5, 1.0)),
                    "team": ("left", "right")[k % 2]} for k in range(1, 15)]
    scores = {1: rng.random((16, len(team_bas.columns)), dtype=np.float32)}  # 8 s at 2 rows per second
    spotted = SpottedVideo("team clip", [HalfVideo(1, clip, 0.0)], scores, predictions, 2, list(team_bas.columns))
    folder = tmp_path / "page"
    folder.mkdir()
    page = write_page(folder, spotted, default_view(predictions, 0.5), {clip: "../clip.mp4"}, [], "team actions")
    data = load(chromium, page)
    assert data["teams"] == ["left", "right"] and chromium.run("return !document.getElementById('team-choice').hidden")
    chromium.run("const f = document.getElementById('team-filter'); f.value = 'left'; "
                 "f.dispatchEvent(new Event('change'));")
    left = {(int(p["position"]), p["label"]) for p in predictions if p["team"] == "left"}
    assert {(position, label.rsplit("-", 1)[0]) for _, position, label, _ in shown_rows(chromium)} == left
    assert "team=left" in chromium.run("return location.hash")
    chromium.open(page.as_uri() + "#team=right")  # the address sets the filter
    chromium.wait_for("document.getElementById('team-filter').value === 'right'")
    assert {label.rsplit("-", 1)[1] for _, _, label, _ in shown_rows(chromium)} == {"right"}
    chromium.run("const f = document.getElementById('team-filter'); f.value = ''; "
                 "f.dispatchEvent(new Event('change'));")
    chromium.allow_downloads(tmp_path / "downloads")
    chromium.click(chromium.find("#export-csv"))
    chromium.click(chromium.find("#export-json"))
    deadline = time.monotonic() + 20
    while len(list((tmp_path / "downloads").glob("*"))) < 2 or any(
            p.suffix == ".crdownload" for p in (tmp_path / "downloads").iterdir()):
        assert time.monotonic() < deadline
        time.sleep(0.1)
    lines = (tmp_path / "downloads" / "team_clip_actions.csv").read_text().splitlines()
    assert lines[0] == "half,seconds,game_time,class,team,confidence" and len(lines) == len(predictions) + 1
    exported = {(row.split(",")[1], row.split(",")[3]): row.split(",")[4] for row in lines[1:]}
    assert exported == {(f"{int(p['position']) / 1000:.3f}", p["label"]): p["team"] for p in predictions}
    kept = json.loads((tmp_path / "downloads" / "results_spotting.json").read_text())["predictions"]
    assert sorted(kept, key=lambda p: int(p["position"])) == predictions
    no_console_errors(chromium)


def test_two_files_one_page_and_an_index_of_every_page(spotted, chromium):
    folder = spotted / "derby_1"
    results = json.loads((folder / "results_spotting.json").read_text())
    data = load(chromium, folder / "index.html")
    assert [half["video"] for half in data["halves"]] == ["video_1.mp4", "video_2.mp4"]  # --copy-video
    assert (folder / "video_1.mp4").read_bytes() == (spotted.parent / "derby_1.mp4").read_bytes()
    assert sorted(shown_rows(chromium)) == at_or_above(results, 0.31)
    half, position, label, _ = next(action for action in shown_rows(chromium) if action[0] == 2)
    chromium.click(chromium.find(row(half, position, label)))
    chromium.wait_for("video.currentSrc.endsWith('video_2.mp4')")
    assert seeked_to(chromium, position / 1000) == pytest.approx(position / 1000, abs=SEEK_TOLERANCE_S)
    assert chromium.run("return video.duration") == pytest.approx(20, abs=0.1)
    no_console_errors(chromium)
    # an AVI plays through the H.264 copy spot wrote beside its page
    load(chromium, spotted / "camera" / "index.html")
    assert chromium.run("return video.currentSrc").endswith("/camera/video.mp4")
    assert chromium.run("return video.duration") == pytest.approx(16, abs=0.1)
    no_console_errors(chromium)
    # the index: a card per page, written by four runs into one folder
    chromium.open((spotted / "index.html").as_uri())
    links = chromium.run("return [...document.querySelectorAll('a.card')].map(a => a.href)")
    assert sorted(Path(unquote(urlparse(link).path)).parent.name for link in links) == ["camera", "derby_1",
                                                                                           "short clip", "whole match"]
    assert all(Path(unquote(urlparse(link).path)).is_file() for link in links)
    chromium.wait_for("[...document.images].every(image => image.complete)")
    assert chromium.run("return [...document.querySelectorAll('a.card img')].map(i => i.naturalHeight)") == [180] * 4
    cards = {Path(unquote(urlparse(href).path)).parent.name: text for href, text in chromium.run(
        "return [...document.querySelectorAll('a.card')].map(a => [a.href, a.innerText])")}
    card = json.loads((spotted / "whole match" / "card.json").read_text())
    shown = at_or_above(json.loads((spotted / "whole match" / "results_spotting.json").read_text()), 0.31)
    assert card["actions"] == len(shown) and card["duration"] == pytest.approx(32, abs=0.5)
    assert f"0:32 · {len(shown)} at confidence ≥ 0.31" in cards["whole match"]
    assert card["top_classes"] == [name for name, _ in Counter(
        label for _, _, label, _ in shown).most_common(3)] and card["top_classes"][0] in cards["whole match"]
    chromium.resize(1400, 700)
    shot = chromium.screenshot(spotted.parent / "spot_index.png")
    chromium.resize(1400, 900)
    keep_screenshot(shot)
    short = json.loads((spotted / "short clip" / "card.json").read_text())
    short_results = json.loads((spotted / "short clip" / "results_spotting.json").read_text())
    assert short["fallback"] and short["actions"] == len(at_or_above(short_results, short["threshold"])) >= 10
    assert f"the {short['actions']} most confident" in cards["short clip"]


def test_clips_and_reel_are_linked_and_play(spotted, chromium):
    folder = spotted / "whole match"
    clips = sorted((folder / "clips").glob("*.mp4"))
    assert len(clips) == 4 and (folder / "highlights.mp4").is_file()
    data = load(chromium, folder / "index.html")
    linked = sorted(p["clip"] for p in data["predictions"] if p["clip"])
    assert [unquote(link) for link in linked] == [f"clips/{clip.name}" for clip in clips]
    chromium.open((folder / "highlights.mp4").as_uri())
    chromium.wait_for("document.querySelector('video') && document.querySelector('video').readyState >= 1")
    assert chromium.run("return document.querySelector('video').duration") > 5
    no_console_errors(chromium)


@pytest.mark.parametrize("flags, message", [
    (["--clips", "0"], "(--clips): 'clips' = 0 is out of range: expected a value >= 1"),
    (["--clips-min-confidence", "1.5"], "(--clips-min-confidence): 'clips_min_confidence' = 1.5 is out of range"),
    (["--clips", "3", "--clip-before", "-2"], "(--clip-before): 'clip_before' = -2.0 is out of range"),
    (["--clips", "3", "--clip-before", "nan"], "(--clip-before): 'clip_before' = nan is out of range"),
    (["--decode-workers", "0"], "(--decode-workers): 'decode_workers' = 0 is out of range: expected a value >= 1"),
    (["--clips", "3", "--clip-before", "0", "--clip-after", "0"], "a clip would hold no frame"),
])
def test_bad_clip_flags_are_named_before_anything_is_read_or_written(tmp_path, flags, message):
    from tests.test_user_errors import expect_user_error

    out = tmp_path / "spotted"
    completed = run_script(["evaluate.py", "spot", str(tmp_path / "match.mp4"), "--checkpoint",
                            str(tmp_path / "missing.pth"), "--out", str(out), *flags], check=False)
    expect_user_error(completed, message)
    assert not out.exists()
