"""The frame store's colour conversion moved from the loader to the batch.

A store frame is H.264 in YUV 4:2:0: a luma plane and two quarter-size chroma planes, half the bytes of RGB. Loader
workers that return those planes instead of RGB skip libswscale's conversion (the store's read runs about 2x faster
per core: benchmarks/bench_data.py), and the batch is converted once, on the training device.

`yuv420_to_rgb` is libswscale's conversion of these frames, integer for integer: the fixed-point arithmetic of its
x86 SIMD path (libswscale/x86/yuv2rgb_template.c), which PyAV's `to_ndarray(format="rgb24")` runs for a yuv420p frame
of the same size: BT.601 limited range (the store's frames carry no colour space, and libswscale's default is
BT.601), chroma repeated over each 2x2 block, each product rounded down after a 16-bit multiply-high. The coefficients
are libswscale's `ff_yuv2rgb_coeffs[SWS_CS_ITU601]` and 255/219 for luma, in 13 fractional bits
(libswscale/utils.c: sws_setColorspaceDetails). On this project's machines the result equals PyAV's RGB frames
exactly (tests/test_data_layer.py); a libswscale without that SIMD path rounds differently, by a level at most.
"""

from __future__ import annotations

import torch

from data.sources import StoreSource

Y_COEFF = 9539  # round(255 / 219 * 2**13): limited-range luma to 0-255
V_TO_R, U_TO_B = 13075, 16525  # round(1.596 * 2**13), round(2.0172 * 2**13)
U_TO_G, V_TO_G = -3209, -6660  # -round(0.3918 * 2**13), -round(0.8130 * 2**13)
YUV420_KEY = "frames_yuv420"  # a batch's frames as planes: (B, F, 3H/2, W) uint8


def _multiply_high(values: torch.Tensor, coefficient: int) -> torch.Tensor:
    """pmulhw: the high 16 bits of a signed 16 x 16-bit product, i.e. floor(values * coefficient / 2**16)."""
    return (values * coefficient) >> 16


def yuv420_to_rgb(planes: torch.Tensor) -> torch.Tensor:
    """(..., 3H/2, W) uint8 YUV 4:2:0 planes in PyAV's layout (the H x W luma, then the U and the V plane, each
    (H/2, W/2) stored as H/4 rows of W) -> (..., 3, H, W) uint8 RGB, on the planes' device."""
    height, width = planes.shape[-2] * 2 // 3, planes.shape[-1]
    lead = planes.shape[:-2]
    luma = planes[..., :height, :].to(torch.int32)  # (..., H, W)
    chroma = planes[..., height:, :].reshape(*lead, 2, height // 2, width // 2).to(torch.int32)
    u, v = ((chroma - 128) << 3).unbind(-3)  # (..., H/2, W/2) each
    # what each chroma sample adds to R, G and B, computed once per 2x2 block, then spread over it
    # (every sum below fits in 16 bits, as in libswscale's registers)
    added = torch.stack([_multiply_high(v, V_TO_R), _multiply_high(u, U_TO_G) + _multiply_high(v, V_TO_G),
                         _multiply_high(u, U_TO_B)], dim=-3).to(torch.int16)  # (..., 3, H/2, W/2)
    added = added[..., :, None, :, None].expand(*lead, 3, height // 2, 2, width // 2, 2).reshape(*lead, 3, height,
                                                                                                  width)
    y = _multiply_high((luma - 16) << 3, Y_COEFF).to(torch.int16).unsqueeze(-3)  # (..., 1, H, W)
    return (added + y).clamp_(0, 255).to(torch.uint8)


def batch_frames(batch: dict, device: torch.device) -> torch.Tensor:
    """(B, F, 3, S, S) uint8 frames of a loader batch on `device`: its RGB frames, or its YUV planes converted there,
    a window at a time (a whole batch in int32 would take 32 bytes per pixel)."""
    if YUV420_KEY not in batch:
        return batch["frames"].to(device, non_blocking=True)
    planes = batch[YUV420_KEY].to(device, non_blocking=True)  # (B, F, 3S/2, S)
    return torch.stack([yuv420_to_rgb(window) for window in planes])


def planes_fit(source, halves, size: int) -> bool:
    """Whether windows of these halves can travel as YUV planes: a frame store whose entries all hold size x size
    frames (another size is resized in the loader, which needs RGB)."""
    return isinstance(source, StoreSource) and all(source.frame_size(game, half) == (size, size)
                                                   for game, half in halves)
