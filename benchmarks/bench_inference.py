"""Inference benchmark: seconds to spot one half end to end from its video file, split into decode, model and
post-processing.

    python benchmarks/bench_inference.py                   # GPU: a 45-minute half, ViViT-T at paper shapes, bf16
    python benchmarks/bench_inference.py --device cpu --minutes 5 --model vivit_micro

Generates (once, cached under --workdir) one half of the mini-SoccerNet as SoccerNet's 224p videos are: 398x224,
25 fps H.264. The model has random weights (speed does not depend on them). Timed in this run:
- decode: the video read front to back at FPS, converted and resized as `evaluate.py spot` does;
- model: the sliding windows (64 s, stride 32 s) over those frames, trimmed and max-merged;
- post-processing: soft NMS, results_spotting.json, the list and the timeline picture;
- end to end: `evaluate.py spot`'s own path (decode and model interleaved, streaming), with and without threaded
  decoding;
- stage 3's inference from the video (`predict_half` on a VideoSource: the half read once, a window's frames at a
  time, into the same spotter);
- the reference: every window read and run through the whole model (a seek and decode per window, every frame
  decoded and every clip encoded twice at 50% overlap), how stage 3 ran inference before the spotter.
Prints a table and one JSON line `BENCH inference {...}`.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from data.sources import VideoSource  # noqa: E402
from data.synthetic import SOURCE_FPS, render_half, sample_events  # noqa: E402
from data.video import SOCCERNET_HEIGHT, iter_frames, probe_video, resized_rgb, write_video  # noqa: E402
from configs.schema import SpotConfig, SpottingConfig, VideoModelConfig  # noqa: E402
from data.augment import resize_frames  # noqa: E402
from data.decode_pool import DecodePool  # noqa: E402
from data.catalog import BUILT_IN  # noqa: E402
from evaluation.inference import HalfSpotter, Inference, predict_half, window_starts  # noqa: E402
from evaluation.postprocess import write_spotted  # noqa: E402
from evaluation.streaming import spot_file  # noqa: E402
from models.registry import build_video  # noqa: E402
from spot.jobs import Job  # noqa: E402
from spot.views import SpottedVideo, write_views  # noqa: E402
from models.spotting import SpottingModel  # noqa: E402
from utils.config import load_config  # noqa: E402
from utils.rates import DEFAULT_FPS, FRAMES_PER_TOKEN, Rates  # noqa: E402

FPS = int(DEFAULT_FPS)  # SoccerNet-v2's rate: the paper's shapes

V2 = BUILT_IN["soccernet_v2"]

PAPER_CONFIG = Path(__file__).resolve().parent.parent / "configs/spotting/vivit_tiny_phase_b.yaml"

GAME = "bench/2000-2001/2000-01-01 - 20-00 Home 0 - 0 Away"


def make_half(workdir: Path, minutes: float) -> Path:
    path = workdir / GAME / "1_224p.mkv"
    if path.is_file() and abs(probe_video(path).duration - 60 * minutes) < 1:
        return path
    rng = np.random.default_rng(0)
    events = sample_events(rng, 60 * minutes, 8.0)
    print(f"generating a {minutes:g}-minute half (once) ...", flush=True)
    return write_video(path, render_half(rng, 60 * minutes, events), SOURCE_FPS, gop=SOURCE_FPS,
                       options={"preset": "ultrafast", "crf": "20"})


def timed(function):
    start = time.perf_counter()
    result = function()
    return result, time.perf_counter() - start


def windowed_reference(inference: Inference, source: VideoSource) -> np.ndarray:
    """(frames, C): every window of the half read from the video (a seek each) and run through the whole model, in
    batches, then merged: stage 3's inference before `HalfSpotter` encoded each clip once."""
    window, size = inference.window_tokens, inference.model_cfg.img_size
    starts = window_starts(source.num_frames(GAME, 1) // FRAMES_PER_TOKEN, window, inference.stride_tokens)
    scores = []
    for index in range(0, len(starts), inference.eval_cfg.batch_size):
        chunk = starts[index:index + inference.eval_cfg.batch_size]
        frames = torch.stack([resize_frames(source.read(GAME, 1, start * FRAMES_PER_TOKEN, window * FRAMES_PER_TOKEN),
                                            size) for start in chunk])  # (B, F, 3, S, S) uint8
        scores += list(zip(chunk, inference.scores(frames)))
    return inference.merge(scores, source.num_frames(GAME, 1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--minutes", type=float, default=45.0)
    parser.add_argument("--model", default=None, help="default: vivit_tiny on GPU, vivit_micro on CPU")
    parser.add_argument("--batch", type=int, default=16, help="windows per forward pass")
    parser.add_argument("--decode-workers", type=int, default=min(8, os.cpu_count() or 1),
                        help="processes of the parallel-decode run (evaluate.py spot --decode-workers)")
    parser.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()) / "comedian_bench_inference")
    args = parser.parse_args()
    device = torch.device(args.device)
    gpu = device.type == "cuda"
    name = args.model or ("vivit_tiny" if gpu else "vivit_micro")
    shapes = {"img_size": 224, "window_seconds": 64, "temporal_depth": 6} if name != "vivit_micro" else \
        {"img_size": 64, "window_seconds": 16, "temporal_depth": 2}
    amp_dtype = torch.bfloat16 if gpu else None
    video = make_half(args.workdir, args.minutes)
    model_cfg = VideoModelConfig(name=name, **shapes)
    model = SpottingModel(build_video(model_cfg), len(V2.columns)).to(device).eval()
    # the paper's eval section (stride 32 s, trim 12 s of 64 s windows), scaled to the window of a smaller model
    eval_cfg = dataclasses.replace(load_config(SpottingConfig, PAPER_CONFIG).eval, batch_size=args.batch,
                                   window_stride_seconds=shapes["window_seconds"] // 2,
                                   trim_seconds=shapes["window_seconds"] * 3 // 16, half_end="scored")
    with torch.no_grad():  # warm-up: kernels, allocator, autotuning
        model_input = torch.zeros(1, 3, FPS * shapes["window_seconds"], shapes["img_size"], shapes["img_size"],
                                  device=device)
        with torch.autocast(device.type, dtype=amp_dtype, enabled=amp_dtype is not None):
            model(model_input)

    info = probe_video(video)
    total = info.num_frames(FPS)

    def decode():
        frames, last = [], None
        for _, frame in iter_frames(video, FPS, 0, total, info, threaded=True):
            if frame is not last:
                last = frame
                image = resized_rgb(frame, (shapes["img_size"],) * 2, SOCCERNET_HEIGHT)
            frames.append(image)
        return frames

    inference = Inference(model, model_cfg, eval_cfg, V2, device, amp_dtype)

    def run_model(frames):
        spotter = HalfSpotter(inference)
        for frame in frames:
            spotter.push(frame)
        return {1: spotter.finish()}

    out = args.workdir / "outputs"
    halves = Job("split", [(video, 1)]).halves(Rates())  # the page links the video; no clips: what every spot run
    # writes

    def write_outputs(name, scores):  # what evaluate.py spot writes: raw scores, results, list, timeline, page
        predictions, _ = write_spotted(out, name, scores, eval_cfg, V2, DEFAULT_FPS)
        write_views(out / name, SpottedVideo(name, halves, scores, predictions, FPS, list(V2.columns)), SpotConfig(),
                    eval_cfg.nms)

    frames, decode_s = timed(decode)
    scores, model_s = timed(lambda: run_model(frames))
    _, post_s = timed(lambda: write_outputs("split", scores))
    frames.clear()
    stream_scores, stream_s = timed(lambda: spot_file(inference, video))
    _, stream_post_s = timed(lambda: write_outputs("stream", stream_scores))
    _, single_thread_s = timed(lambda: spot_file(inference, video, threaded_decode=False))
    with DecodePool(args.decode_workers) as pool:  # started (and its imports done) while spot loads the model
        pool.ready()
        parallel_scores, parallel_s = timed(lambda: spot_file(inference, video, pool=pool))
    assert np.array_equal(parallel_scores[1], stream_scores[1]), "parallel decoding changed the scores"
    source = VideoSource(V2, video.parents[3])
    _, stored_s = timed(lambda: predict_half(inference, source, GAME, 1))
    reference_scores, reference_s = timed(lambda: windowed_reference(inference, source))
    assert np.allclose(stream_scores[1], scores[1], atol=2e-2), "streaming and split runs disagree"
    assert np.allclose(reference_scores, scores[1], atol=2e-2), "the reference and the spotter disagree"

    end_to_end = stream_s + stream_post_s
    where = torch.cuda.get_device_name(device) if gpu else f"CPU, {torch.get_num_threads()} threads"
    results = {"device": where, "model": name, "minutes": args.minutes, "frames": total,
               "decode_s": decode_s, "model_s": model_s, "postprocess_s": post_s, "end_to_end_s": end_to_end,
               "end_to_end_single_thread_decode_s": single_thread_s + stream_post_s,
               "decode_workers": args.decode_workers, "end_to_end_parallel_decode_s": parallel_s + stream_post_s,
               "parallel_speedup": end_to_end / (parallel_s + stream_post_s),
               "predict_half_s": stored_s + post_s, "reference_windowed_s": reference_s + post_s,
               "speedup_vs_reference": (reference_s + post_s) / end_to_end}
    print(f"{where}; {name} {shapes}; one {args.minutes:g}-minute half ({total} frames at {FPS} fps), 398x224 25 fps")
    print(f"{'part':<46} {'seconds':>8}")
    for label, key in ((f"decode ({FPS} fps, RGB, resize)", "decode_s"), ("model (sliding windows, merge)", "model_s"),
                       ("post-processing (soft NMS, JSON, list, SVG)", "postprocess_s"),
                       ("end to end, streaming (evaluate.py spot)", "end_to_end_s"),
                       ("end to end, single-threaded decode", "end_to_end_single_thread_decode_s"),
                       (f"end to end, {args.decode_workers} decoding processes", "end_to_end_parallel_decode_s"),
                       ("stage 3 from the video (predict_half)", "predict_half_s"),
                       ("reference: whole windows, seek per window", "reference_windowed_s")):
        print(f"{label:<46} {results[key]:8.2f}")
    print(f"streaming spot is {results['speedup_vs_reference']:.2f}x the whole-window reference; "
          f"{args.decode_workers} decoding processes: {results['parallel_speedup']:.2f}x one (identical scores)")
    print("BENCH inference " + json.dumps(results))


if __name__ == "__main__":
    main()
