"""`evaluate.py spot`: streaming inference equals the windowed inference of stage 3, and any video file goes in."""

import json
import xml.etree.ElementTree as ElementTree
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from configs.schema import SpottingModelConfig
from data.catalog import BUILT_IN
from data.synthetic import GLYPHS, PALETTE
from data.video import write_video
from evaluation.inference import HalfSpotter, Inference, predict_half, window_starts
from evaluation.predictions import parse_predictions
from models.registry import build_spotting
from tests.conftest import run_script, spotting_checkpoint
from utils.config import ConfigError
from utils.rates import Rates

WINDOW, STRIDE, TRIM = 8, 4, 2
V2 = BUILT_IN["soccernet_v2"]


class StandIn(torch.nn.Module):
    """A stand-in spotting model built as the real one is (models/spotting.py): a clip token per two frames (their
    means), then windows of tokens to rows of 17 logits, each a fixed function of its token (or frame, rows_per_token
    = 2) and of its place in the window: a frame in the wrong clip or a window at the wrong start changes the scores."""

    def __init__(self, rows_per_token: int = 1):
        super().__init__()
        self.rows_per_token = rows_per_token

    def clip_tokens(self, video):  # (B, 3, F, S, S) -> (B, F / 2, 2)
        means = video.mean(dim=(1, 3, 4))  # (B, F)
        return means.view(means.shape[0], -1, 2)

    def token_logits(self, tokens):  # (B, T, 2) -> (B, T x rows_per_token, 17)
        place = torch.linspace(0, 1, tokens.shape[1])[:, None]  # (T, 1)
        if self.rows_per_token == 1:
            rows = torch.stack([tokens[..., 0] * (c + 1) - tokens[..., 1] * c for c in range(17)], -1)  # (B, T, 17)
        else:  # a row per frame: its own mean
            rows = torch.stack([tokens * (c + 1) - c for c in range(17)], -1)  # (B, T, 2, 17)
            place = place[..., None]
        return (rows + place).flatten(1, -2)

    def forward(self, video):
        return self.token_logits(self.clip_tokens(video))


def windowed(inference: Inference, frames: torch.Tensor) -> np.ndarray:
    """(frames, C): the reference, every window of the half through the whole model, then merged; a half shorter
    than one window padded with its last frame. frames: (F, 3, S, S) uint8."""
    window = 2 * inference.window_tokens
    if len(frames) < window:
        padded = torch.cat([frames, frames[-1:].expand(window - len(frames), -1, -1, -1)])
        return inference.merge([(0, inference.scores(padded[None])[0])], window)[:len(frames)]
    starts = window_starts(len(frames) // 2, inference.window_tokens, inference.stride_tokens)
    return inference.merge([(s, inference.scores(frames[None, 2 * s:2 * s + window])[0]) for s in starts], len(frames))


def spotted(inference: Inference, frames: torch.Tensor) -> np.ndarray:
    spotter = HalfSpotter(inference)
    for frame in frames:
        spotter.push(frame)
    return spotter.finish()


@pytest.mark.parametrize("num_frames", [16, 17, 18, 31, 40, 41, 57, 9])
def test_streaming_equals_windowed_inference(num_frames):
    """Each clip encoded once, windows run in batches: the scores of every window through the whole model."""
    frames = torch.randint(0, 256, (num_frames, 3, 4, 4), dtype=torch.uint8)
    eval_cfg = SimpleNamespace(window_stride_seconds=STRIDE, trim_seconds=TRIM, batch_size=3, half_end="scored")
    inference = Inference(StandIn(), SimpleNamespace(window_seconds=WINDOW, img_size=4), eval_cfg, V2)
    spotter = HalfSpotter(inference)
    for frame in frames:
        spotter.push(frame)
        held = 0 if spotter.tokens is None else len(spotter.tokens)
        # memory stays bounded: at most a batch of strides of frames waits, and one window of tokens stays
        assert len(spotter.pending) < 3 and len(spotter.unencoded) <= 2 * (3 * STRIDE + WINDOW) and held <= WINDOW
    streamed = spotter.finish()
    assert streamed.shape == (num_frames, 17)
    np.testing.assert_allclose(streamed, windowed(inference, frames), rtol=1e-5, atol=1e-6)
    if num_frames >= 2 * WINDOW:
        assert [start for start, _ in spotter.done] == window_starts(num_frames // 2, WINDOW, STRIDE)
    if num_frames >= 2 * WINDOW:  # a stored half, read in chunks: the same
        stored = predict_half(inference, FramesInMemory(frames.permute(0, 2, 3, 1)), "game", 1)
        np.testing.assert_allclose(stored, streamed, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("head", ["token", "frame"])
def test_the_spotter_equals_the_whole_model_on_every_window(head):
    """The real model (vivit_micro, eval mode): its clip tokens, then windows of them, give what whole windows give."""
    config = SpottingModelConfig(name="vivit_micro", img_size=32, window_seconds=WINDOW, temporal_depth=2, head=head)
    torch.manual_seed(0)
    model = build_spotting(config, 17).eval()
    eval_cfg = SimpleNamespace(window_stride_seconds=STRIDE, trim_seconds=TRIM, batch_size=2, half_end="scored")
    inference = Inference(model, config, eval_cfg, V2)
    frames = torch.randint(0, 256, (45, 3, 32, 32), dtype=torch.uint8)
    np.testing.assert_allclose(spotted(inference, frames), windowed(inference, frames), rtol=1e-4, atol=1e-5)


class FramesInMemory:
    """A frame source over one half held in memory: (T, S, S, 3) uint8 frames."""

    def __init__(self, frames: torch.Tensor):
        self.frames = frames

    def num_frames(self, game: str, half: int) -> int:
        return len(self.frames)

    def read(self, game: str, half: int, first: int, count: int) -> torch.Tensor:
        return self.frames[first:first + count]


@pytest.mark.parametrize("num_frames", [41, 64, 10])
def test_windows_at_12_5_fps_run_in_tokens_of_0_16_s_and_land_on_their_frames(num_frames):
    """Ball Action Spotting's rate: a 1.28 s window is 8 tokens (16 frames), a 0.64 s stride 4 tokens; the streamed
    and the stored-source inference equal the windowed one, and each token's score sits on its first frame (80 ms
    apart)."""
    frames = torch.randint(0, 256, (num_frames, 4, 4, 3), dtype=torch.uint8)
    model = StandIn()
    eval_cfg = SimpleNamespace(window_stride_seconds=0.64, trim_seconds=0.32, batch_size=3, half_end="scored")
    inference = Inference(model, SimpleNamespace(window_seconds=1.28, img_size=4), eval_cfg, V2,
                          rates=Rates.of(12.5))
    assert (inference.window_tokens, inference.stride_tokens) == (8, 4)
    streamed = spotted(inference, frames.permute(0, 3, 1, 2))
    assert streamed.shape == (num_frames, 17)
    np.testing.assert_allclose(streamed, windowed(inference, frames.permute(0, 3, 1, 2)), rtol=1e-5, atol=1e-6)
    if num_frames >= 16:
        np.testing.assert_allclose(streamed, predict_half(inference, FramesInMemory(frames), "game", 1), rtol=1e-5,
                                   atol=1e-6)
        video = frames.permute(0, 3, 1, 2)[None, :16].float().div(255).sub(0.45).div(0.225).transpose(1, 2)
        first_window = torch.sigmoid(model(video))[0].numpy()  # (8, 17): tokens 0..7 at frames 0, 2, .., 14
        np.testing.assert_allclose(streamed[0:4:2], first_window[:2], rtol=1e-5)  # kept: within 0.32 s of the start
    assert not streamed[1::2].any()  # a token's score is on its first frame only, as at 2 fps
    with pytest.raises(ConfigError, match=r"model.window_seconds=1.3: at data.fps=12.5 a token is 0.16 s.*1.28 or "
                                          r"1.44 s"):
        Inference(model, SimpleNamespace(window_seconds=1.3, img_size=4), eval_cfg, V2, rates=Rates.of(12.5))


@pytest.mark.parametrize("num_frames", [41, 64])
def test_the_frame_head_scores_every_frame_at_its_own_place(num_frames):
    """model.head=frame at 12.5 fps: a row per frame, each at its frame (not its token's first), kept and merged by
    its own time; streamed, stored-source and windowed inference agree; every frame of the half gets a score."""
    frames = torch.randint(0, 256, (num_frames, 4, 4, 3), dtype=torch.uint8)
    eval_cfg = SimpleNamespace(window_stride_seconds=0.64, trim_seconds=0.32, batch_size=2, half_end="scored")
    inference = Inference(StandIn(rows_per_token=2), SimpleNamespace(window_seconds=1.28, img_size=4, head="frame"),
                          eval_cfg, V2, rates=Rates.of(12.5))
    streamed = spotted(inference, frames.permute(0, 3, 1, 2))
    np.testing.assert_allclose(streamed, windowed(inference, frames.permute(0, 3, 1, 2)), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(streamed, predict_half(inference, FramesInMemory(frames), "game", 1), rtol=1e-5,
                               atol=1e-6)
    first = frames.permute(0, 3, 1, 2)[None, :16].float().div(255).sub(0.45).div(0.225).transpose(1, 2)
    own = torch.sigmoid(StandIn(rows_per_token=2)(first))[0].numpy()  # (16, 17): the first window's frames
    np.testing.assert_allclose(streamed[:4], own[:4], rtol=1e-5)  # kept, at their own frames: 0.32 s of the start


@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory):
    """An untrained vivit_micro stage-3 checkpoint with 8-second windows (spotting needs weights, not skill)."""
    return spotting_checkpoint(tmp_path_factory.mktemp("spot") / "tiny.pth", "model.name=vivit_micro",
                               "model.img_size=64", f"model.window_seconds={WINDOW}", "model.temporal_depth=2",
                               f"eval.window_stride_seconds={STRIDE}", f"eval.trim_seconds={TRIM}",
                               "model.head_bias_prior=0.3")


def own_video(path, seconds, fps, size, codec):
    """Not SoccerNet: another size, frame rate and container; a glyph flashes now and then."""
    height, width = size
    rng = np.random.default_rng(0)

    def frames():
        for index in range(int(seconds * fps)):
            image = np.full((height, width, 3), 90, np.uint8)
            image[:, : width // 2] = 40 + index % 50
            if (index // fps) % 7 == 3:
                glyph = GLYPHS[5][: height // 2, : width // 3]
                image[: glyph.shape[0], : glyph.shape[1]][glyph] = PALETTE[5]
            image[rng.integers(0, height), :] = 255
            yield image

    return write_video(path, frames(), fps, codec=codec, options={"preset": "ultrafast"} if codec == "libx264" else {})


@pytest.mark.slow
def test_spot_any_videos_keeps_going_past_a_bad_file(tiny_checkpoint, tmp_path):
    avi = own_video(tmp_path / "my match.avi", 21, 30, (180, 320), "mpeg4")
    mp4 = own_video(tmp_path / "clip.mp4", 5.5, 24, (360, 202), "libx264")  # shorter than one window
    broken = tmp_path / "broken.mkv"
    broken.write_bytes(b"this is not a video" * 100)
    out = tmp_path / "out"
    completed = run_script(["evaluate.py", "spot", str(avi), str(broken), str(mp4), "--checkpoint",
                            str(tiny_checkpoint), "--out", str(out), "--min-confidence", "0.2"], check=False)
    assert completed.returncode == 1
    assert "broken.mkv" in completed.stderr and "1 of 3 videos could not be spotted" in completed.stderr
    for name, frames in (("my match", 42), ("clip", 11)):
        document = json.loads((out / name / "results_spotting.json").read_text())
        predictions = parse_predictions(document, name, V2)  # the official schema, as the scorer reads it
        assert document["UrlLocal"] == name and len(predictions.position_ms) > 0
        assert predictions.position_ms.max() <= frames * 500 and set(predictions.half.tolist()) == {1}
        assert np.load(out / name / "raw" / "scores_half1.npy").shape == (frames, 17)
        listed = (out / name / "spotting.txt").read_text().splitlines()
        assert listed[1].split()[:3] == ["half", "time", "class"]
        svg = ElementTree.parse(out / name / "timeline.svg").getroot()
        assert svg.tag.endswith("svg") and len(svg.findall(".//{http://www.w3.org/2000/svg}polygon")) == 17
    assert not (out / "broken").exists()


@pytest.mark.slow
def test_spot_splits_a_whole_match_into_halves(tiny_checkpoint, tmp_path):
    match = own_video(tmp_path / "match.mkv", 30, 25, (144, 256), "libx264")
    out = tmp_path / "out"
    run_script(["evaluate.py", "spot", str(match), "--checkpoint", str(tiny_checkpoint), "--out", str(out),
                "--second-half-start", "12.5"])
    assert np.load(out / "match" / "raw" / "scores_half1.npy").shape == (25, 17)
    assert np.load(out / "match" / "raw" / "scores_half2.npy").shape == (35, 17)
    document = json.loads((out / "match" / "results_spotting.json").read_text())
    assert {p["half"] for p in document["predictions"]} == {"1", "2"}
    assert max(int(p["position"]) for p in document["predictions"] if p["half"] == "2") <= 17500


@pytest.mark.slow
def test_spot_takes_one_file_per_half(tiny_checkpoint, tmp_path):
    first = own_video(tmp_path / "derby_1.mp4", 20, 25, (144, 256), "libx264")
    second = own_video(tmp_path / "derby_2.mp4", 18, 30, (180, 320), "libx264")
    out = tmp_path / "out"
    run_script(["evaluate.py", "spot", str(first), str(second), "--match-halves", "--checkpoint",
                str(tiny_checkpoint), "--out", str(out)])
    assert np.load(out / "derby_1" / "raw" / "scores_half1.npy").shape == (40, 17)
    assert np.load(out / "derby_1" / "raw" / "scores_half2.npy").shape == (36, 17)
    assert not (out / "derby_2").exists()
    completed = run_script(["evaluate.py", "spot", str(first), "--match-halves", "--checkpoint",
                            str(tiny_checkpoint)], check=False)
    assert completed.returncode != 0 and "two by two" in completed.stderr


@pytest.mark.slow
def test_videos_of_the_same_name_get_their_own_folders_and_nothing_is_redone(tiny_checkpoint, tmp_path):
    # SoccerNet's layout: every half is called 1_224p.mkv / 2_224p.mkv, in its game's folder
    games = [tmp_path / "league" / "2016-2017" / name for name in ("home 1 - 0 away", "home 2 - 2 away")]
    files = []
    for game in games:
        files += [own_video(game / f"{half}_224p.mkv", 10, 25, (224, 398), "libx264") for half in (1, 2)]
    out = tmp_path / "out"
    command = ["evaluate.py", "spot", *map(str, files), "--match-halves", "--checkpoint", str(tiny_checkpoint),
               "--out", str(out)]
    run_script(command)
    results = [out / game.name / "1_224p" / "results_spotting.json" for game in games]
    assert all(path.is_file() for path in results)
    written = [path.stat().st_mtime_ns for path in results]
    completed = run_script(command)  # the same command again: both videos are done, nothing is touched
    assert completed.stdout.count("already spotted") == 2 and "--overwrite" in completed.stdout
    assert [path.stat().st_mtime_ns for path in results] == written
    run_script(command + ["--overwrite"])
    assert all(path.stat().st_mtime_ns > before for path, before in zip(results, written))


@pytest.mark.parametrize("fps, container, gop", [(25, "mp4", None), (30000 / 1001, "mkv", 12)])
def test_parallel_decoding_gives_the_same_frames_as_one_read(tmp_path, monkeypatch, fps, container, gop):
    """Workers that each seek to their chunk hand the model exactly the frames of one front-to-back read (keyframes
    every 10 s by default, or twice a second), so spot's scores do not depend on --decode-workers."""
    from data.video import probe_video
    from data import decode_pool
    from utils.rates import DEFAULT_FPS

    monkeypatch.setattr(decode_pool, "CHUNK_SECONDS", 7)  # 6 chunks of a 40 s video, cut mid-GOP
    video = own_video(tmp_path / f"match.{container}", 40, fps, (144, 256), "libx264") if gop is None else \
        write_video(tmp_path / f"match.{container}", (np.full((144, 256, 3), i % 251, np.uint8) for i in
                                                      range(int(40 * fps))), fps, gop=gop,
                    options={"preset": "ultrafast"})
    info = probe_video(video)
    total = info.num_frames(DEFAULT_FPS)
    one = torch.stack(list(decode_pool.model_frames(video, info, DEFAULT_FPS, total, 64)))
    with decode_pool.DecodePool(2) as pool:
        parallel = torch.stack(list(decode_pool.model_frames(video, info, DEFAULT_FPS, total, 64, pool)))
    assert one.shape == (total, 3, 64, 64) and torch.equal(one, parallel)
