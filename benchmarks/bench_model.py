"""Model benchmark: stage-3 training-step throughput and model FLOPs utilisation (MFU), compile off and on.

    python benchmarks/bench_model.py                      # GPU: ViViT-T and ViSwin-T at paper shapes, bf16
    python benchmarks/bench_model.py --device cpu         # CPU: vivit_micro at the quick start's tiny shapes, fp32

One training step = forward + backward of the spotting model (trunk + head) on a batch of windows, mean BCE, and the
fused AdamW step, as train_spotting.py runs it (bf16 autocast and scaled_dot_product_attention on GPU, temporal
masking 25%). FLOPs per step are counted once with torch.utils.flop_counter (matrix products, convolutions and
attention; forward and backward). The reference measured in the same run is a large bf16 matrix product: the
throughput this GPU really reaches, next to its nominal dense bf16 peak. Prints a table and one JSON line
`BENCH model {...}`.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from configs.schema import SpottingConfig, VideoModelConfig  # noqa: E402
from models.registry import build_video  # noqa: E402
from models.spotting import SpottingModel  # noqa: E402
from utils.config import load_config  # noqa: E402
from utils.rates import DEFAULT_FPS  # noqa: E402

FPS = int(DEFAULT_FPS)  # SoccerNet-v2's rate: the paper's shapes

PAPER_CONFIG = Path(__file__).resolve().parent.parent / "configs/spotting/vivit_tiny_phase_b.yaml"

# nominal dense (no sparsity) bf16 tensor-core peaks in TFLOP/s, from the vendors' data sheets
NOMINAL_BF16_TFLOPS = {"H200": 989.0, "H100": 989.0, "A100": 312.0, "L40S": 362.0, "A10G": 70.0}
# windows per step: ViViT-T at the paper's per-GPU batch (64 over 2 GPUs); ViSwin-T smaller, to fit beside it
DEFAULT_BATCH = {"vivit_tiny": 32, "viswin_tiny": 8, "vivit_micro": 8}
PAPER_SHAPES = {"img_size": 224, "window_seconds": 64, "temporal_depth": 6}
TINY_SHAPES = {"img_size": 64, "window_seconds": 16, "temporal_depth": 2}


def nominal_peak(device: torch.device) -> float | None:
    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    return next((peak for key, peak in NOMINAL_BF16_TFLOPS.items() if key in name), None)


def matmul_tflops(device: torch.device, dtype: torch.dtype, size: int, repeats: int = 10) -> float:
    """Achieved TFLOP/s of a size^3 matrix product: the attainable ceiling for dense work on this device."""
    a = torch.randn(size, size, device=device, dtype=dtype)
    b = torch.randn(size, size, device=device, dtype=dtype)
    for _ in range(3):
        a @ b
    synchronize(device)
    start = time.perf_counter()
    for _ in range(repeats):
        a @ b
    synchronize(device)
    return 2 * size ** 3 * repeats / (time.perf_counter() - start) / 1e12


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def build(name: str, shapes: dict, device: torch.device, compiled: bool):
    model = SpottingModel(build_video(VideoModelConfig(name=name, **shapes)), 17).to(device).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4, fused=device.type == "cuda")
    return model, (torch.compile(model) if compiled else model), optimizer


def train_step(model, optimizer, video, targets, amp_dtype):
    with torch.autocast(video.device.type, dtype=amp_dtype, enabled=amp_dtype is not None):
        logits = model(video)
    loss = F.binary_cross_entropy_with_logits(logits.float(), targets)
    loss.backward()
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    return loss


def count_flops(name: str, shapes: dict, device: torch.device, batch: int, amp_dtype) -> int:
    """Forward + backward FLOPs of one step (eager; compile does not change the arithmetic)."""
    model, _, optimizer = build(name, shapes, device, compiled=False)
    video, targets = inputs(shapes, batch, device)
    counter = FlopCounterMode(display=False)
    with counter:
        train_step(model, optimizer, video, targets, amp_dtype)
    return counter.get_total_flops()


def inputs(shapes: dict, batch: int, device: torch.device):
    frames = FPS * shapes["window_seconds"]
    video = torch.randn(batch, 3, frames, shapes["img_size"], shapes["img_size"], device=device)
    targets = (torch.rand(batch, shapes["window_seconds"], 17, device=device) < 0.02).float()
    return video, targets


def measure(name: str, shapes: dict, device: torch.device, batch: int, steps: int, warmup: int, compiled: bool,
            amp_dtype) -> dict:
    torch.manual_seed(0)
    _, model, optimizer = build(name, shapes, device, compiled)
    video, targets = inputs(shapes, batch, device)
    start = time.perf_counter()
    for _ in range(warmup):  # includes compilation
        train_step(model, optimizer, video, targets, amp_dtype)
    synchronize(device)
    warm = time.perf_counter() - start
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    start = time.perf_counter()
    for _ in range(steps):
        train_step(model, optimizer, video, targets, amp_dtype)
    synchronize(device)
    seconds = (time.perf_counter() - start) / steps
    memory = torch.cuda.max_memory_allocated(device) / 2 ** 30 if device.type == "cuda" else None
    return {"model": name, "compile": compiled, "batch": batch, "step_s": seconds, "windows_per_s": batch / seconds,
            "warmup_s": warm, "peak_memory_gib": memory}


def augment_seconds(shapes: dict, device: torch.device, batch: int, repeats: int = 5) -> float:
    """Seconds of data.augment.photometric(stage 3's view, from the paper's config) on one batch of uint8 windows
    already on the device."""
    from data.augment import photometric

    view = load_config(SpottingConfig, PAPER_CONFIG).augment.view
    size, frames = shapes["img_size"], FPS * shapes["window_seconds"]
    video = torch.randint(0, 256, (batch, frames, 3, size, size), dtype=torch.uint8, device=device)
    photometric(video, view)
    synchronize(device)
    start = time.perf_counter()
    for _ in range(repeats):
        photometric(video, view)
    synchronize(device)
    return (time.perf_counter() - start) / repeats


def profile_table(name: str, shapes: dict, device: torch.device, batch: int, compiled: bool, amp_dtype) -> str:
    """torch.profiler's table of the 20 kernels with the most device time in 3 steps, after warm-up."""
    from torch.profiler import ProfilerActivity, profile

    _, model, optimizer = build(name, shapes, device, compiled)
    video, targets = inputs(shapes, batch, device)
    for _ in range(3):
        train_step(model, optimizer, video, targets, amp_dtype)
    synchronize(device)
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    with profile(activities=activities) as profiler:
        for _ in range(3):
            train_step(model, optimizer, video, targets, amp_dtype)
        synchronize(device)
    sort = "cuda_time_total" if device.type == "cuda" else "cpu_time_total"
    return profiler.key_averages().table(sort_by=sort, row_limit=20, max_name_column_width=60)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--models", nargs="+", default=None, help="default: vivit_tiny viswin_tiny on GPU, "
                                                                    "vivit_micro on CPU")
    parser.add_argument("--batch", type=int, default=None, help=f"windows per step (default {DEFAULT_BATCH})")
    parser.add_argument("--steps", type=int, default=None, help="timed steps (default 10 GPU, 5 CPU)")
    parser.add_argument("--compile", choices=("off", "on", "both"), default=None,
                        help="default: both on GPU, off on CPU (inductor on CPU compiles C++ for minutes)")
    parser.add_argument("--augment", action="store_true",
                        help="also time stage 3's GPU augmentation (photometric, uint8 in) on one batch of windows")
    parser.add_argument("--profile", action="store_true",
                        help="also print the kernels that take the most GPU time in 3 eager and compiled steps")
    args = parser.parse_args()
    device = torch.device(args.device)
    gpu = device.type == "cuda"
    models = args.models or (["vivit_tiny", "viswin_tiny"] if gpu else ["vivit_micro"])
    shapes = PAPER_SHAPES if gpu else TINY_SHAPES
    steps = args.steps or (10 if gpu else 5)
    compile_modes = {"off": [False], "on": [True], "both": [False, True]}[args.compile or ("both" if gpu else "off")]
    amp_dtype = torch.bfloat16 if gpu else None
    if gpu:
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    threads = torch.get_num_threads()

    reference = matmul_tflops(device, torch.bfloat16 if gpu else torch.float32, 8192 if gpu else 1024)
    peak = nominal_peak(device)
    rows = []
    for name in models:
        batch = args.batch or DEFAULT_BATCH.get(name, 8)
        flops = count_flops(name, shapes, device, batch, amp_dtype)
        for compiled in compile_modes:
            try:
                row = measure(name, shapes, device, batch, steps, 3 if compiled else 2, compiled, amp_dtype)
            except torch.cuda.OutOfMemoryError:
                print(f"{name} compile={compiled}: out of memory at batch {batch}; try --batch smaller")
                torch.cuda.empty_cache()
                continue
            row["tflops_per_step"] = flops / 1e12
            row["achieved_tflops"] = flops / row["step_s"] / 1e12
            row["of_matmul_reference"] = row["achieved_tflops"] / reference
            row["mfu"] = row["achieved_tflops"] / peak if peak else None
            rows.append(row)
            if gpu:
                torch.cuda.empty_cache()

    where = torch.cuda.get_device_name(device) if gpu else f"CPU, {threads} threads"
    print(f"{where}; shapes {shapes}; precision {'bf16 autocast' if gpu else 'fp32'}")
    print(f"reference: {reference:.1f} TFLOP/s on a dense matrix product" +
          (f" (nominal bf16 peak {peak:.0f})" if peak else ""))
    print(f"{'model':<12} {'compile':>7} {'batch':>5} {'windows/s':>10} {'step ms':>8} {'TFLOP/step':>10} {'TFLOP/s':>8} "
          f"{'of matmul':>9} {'MFU':>6} {'GiB':>6}")
    for row in rows:
        mfu = f"{100 * row['mfu']:5.1f}%" if row["mfu"] is not None else "   n/a"
        memory = f"{row['peak_memory_gib']:6.1f}" if row["peak_memory_gib"] is not None else "   n/a"
        print(f"{row['model']:<12} {str(row['compile']):>7} {row['batch']:5d} {row['windows_per_s']:10.2f} {1000 * row['step_s']:8.1f} "
              f"{row['tflops_per_step']:10.3f} {row['achieved_tflops']:8.2f} {100 * row['of_matmul_reference']:8.1f}% "
              f"{mfu} {memory}")
    augment_ms = {}
    if args.augment:
        for name in models:
            batch = args.batch or DEFAULT_BATCH.get(name, 8)
            seconds = augment_seconds(shapes, device, batch)
            step = next(row["step_s"] for row in rows if row["model"] == name)
            print(f"stage-3 augmentation of {batch} windows: {1000 * seconds:.1f} ms per batch "
                  f"({100 * seconds / step:.0f}% of the {name} step without it)")
            augment_ms[name] = 1000 * seconds
    if args.profile:
        for name in models:
            for compiled in compile_modes:
                print(f"\n{name}, compile={compiled}: kernels by GPU time over 3 steps")
                print(profile_table(name, shapes, device, args.batch or DEFAULT_BATCH.get(name, 8), compiled,
                                    amp_dtype))
    for name in models:
        pair = [row for row in rows if row["model"] == name]
        if len(pair) == 2:
            print(f"{name}: compile speed-up {pair[1]['windows_per_s'] / pair[0]['windows_per_s']:.2f}x")
    print("BENCH model " + json.dumps({"device": where, "shapes": shapes, "reference_tflops": reference,
                                       "nominal_peak_tflops": peak, "rows": rows, "augment_ms": augment_ms}))


if __name__ == "__main__":
    main()
