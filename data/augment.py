"""Augmentations of the three stages (docs/METHOD.md sections 2-4: every probability and range, with its source).

Geometric crops run on the CPU in the data workers (torchvision's RandomResizedCrop on a clip, so both frames share
it). Photometric augmentations run batched on the training device, on uint8 input, with parameters drawn per clip or
per window and shared by all of its frames. torchvision's transforms draw one set of parameters per call, so the
per-sample versions below apply torchvision's formulas (`transforms.v2.functional`) with a factor per sample. A
view's probabilities and strengths come from its config section (configs/schema.py: ViewConfig).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torchvision.transforms import v2


MEAN, STD = 0.45, 0.225  # Kinetics-style normalisation, every channel, every stage


def crop_params(frame_size: tuple[int, int], scale: tuple[float, float], ratio: tuple[float, float],
                pixel_aspect: float = 1.0) -> tuple[int, int, int, int]:
    """(top, left, height, width) of a random resized crop of frames of frame_size (height, width): torchvision's
    RandomResizedCrop draw, the same calls on the global RNG as the transform makes.

    ratio is the width / height range measured on the original video's pixels; pixel_aspect (how many original
    pixels wide a pixel of the frames is) converts it, so squashed frames (the frame store) give the same crops.
    """
    crop = v2.RandomResizedCrop(1, scale=scale, ratio=(ratio[0] / pixel_aspect, ratio[1] / pixel_aspect))
    params = crop.make_params([torch.zeros(()).expand(3, *frame_size)])  # only the size is read
    return params["top"], params["left"], params["height"], params["width"]


def apply_crop(frames: torch.Tensor, crop: tuple[int, int, int, int], size: int) -> torch.Tensor:
    """(..., 3, H, W) uint8 -> (..., 3, size, size) uint8: the crop resized with antialiased bilinear interpolation, as
    RandomResizedCrop does, on the frames' device."""
    top, left, height, width = (int(value) for value in crop)
    return v2.functional.resized_crop(frames, top, left, height, width, [size, size],
                                      interpolation=v2.InterpolationMode.BILINEAR, antialias=True)


def resize_frames(frames: torch.Tensor, size: int | tuple[int, int]) -> torch.Tensor:
    """(T, H, W, 3) uint8 -> (T, 3, height, width) uint8 with torchvision's antialiased bilinear resize of the full
    RGB frames, as the official code resizes (size: an int for a square, squashing the aspect ratio as stages 2 and
    3 do, or (height, width))."""
    height, width = (size, size) if isinstance(size, int) else size
    frames = frames.permute(0, 3, 1, 2)
    if frames.shape[-2:] == (height, width):
        return frames.contiguous()
    return v2.functional.resize(frames, [height, width], interpolation=v2.InterpolationMode.BILINEAR, antialias=True)


def _uniform(n: int, low: float, high: float, device: torch.device) -> torch.Tensor:
    return torch.empty(n, device=device).uniform_(low, high)


def _bernoulli(n: int, p: float, device: torch.device) -> torch.Tensor:
    return torch.rand(n, device=device) < p


def _grayscale(x: torch.Tensor) -> torch.Tensor:
    """(..., 3, H, W) -> (..., 1, H, W), torchvision's ITU-R 601 weights."""
    r, g, b = x.unbind(-3)
    return (0.2989 * r + 0.587 * g + 0.114 * b).unsqueeze(-3)


def _rgb_to_hsv(x: torch.Tensor) -> torch.Tensor:
    r, g, b = x.unbind(-3)
    maxc, _ = x.max(-3)
    minc, _ = x.min(-3)
    delta = maxc - minc
    s = delta / torch.where(maxc == 0, torch.ones_like(maxc), maxc)
    safe = torch.where(delta == 0, torch.ones_like(delta), delta)
    rc, gc, bc = (maxc - r) / safe, (maxc - g) / safe, (maxc - b) / safe
    h = torch.where(maxc == r, bc - gc, torch.where(maxc == g, 2.0 + rc - bc, 4.0 + gc - rc))
    h = torch.where(delta == 0, torch.zeros_like(h), (h / 6.0) % 1.0)
    return torch.stack([h, s, maxc], dim=-3)


def _hsv_to_rgb(x: torch.Tensor) -> torch.Tensor:
    h, s, v = x.unbind(-3)
    i = torch.floor(h * 6.0)
    f = h * 6.0 - i
    i = i.to(torch.int64) % 6
    p, q, t = v * (1 - s), v * (1 - s * f), v * (1 - s * (1 - f))
    choices = torch.stack([torch.stack(c, dim=-3) for c in
                           ((v, t, p), (q, v, p), (p, v, t), (p, q, v), (t, p, v), (v, p, q))])  # (6, ..., 3, H, W)
    return torch.gather(choices, 0, i[None].unsqueeze(-3).expand(1, *x.shape)).squeeze(0)


def _per_sample(factor: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    return factor.view(-1, *([1] * (x.dim() - 1)))


def color_jitter(x: torch.Tensor, config, apply: torch.Tensor) -> torch.Tensor:
    """x (N, T, 3, H, W) in [0, 1]; samples where `apply` get brightness, contrast, saturation and hue factors drawn
    per sample, in one random order per call (as torchvision's ColorJitter draws its order)."""
    n, device = x.shape[0], x.device
    one = torch.ones(n, device=device)
    factors = {
        "brightness": torch.where(apply, _uniform(n, max(0, 1 - config.brightness), 1 + config.brightness, device), one),
        "contrast": torch.where(apply, _uniform(n, max(0, 1 - config.contrast), 1 + config.contrast, device), one),
        "saturation": torch.where(apply, _uniform(n, max(0, 1 - config.saturation), 1 + config.saturation, device),
                                  one),
        "hue": torch.where(apply, _uniform(n, -config.hue, config.hue, device), 0 * one),
    }
    for index in torch.randperm(4).tolist():
        name = ("brightness", "contrast", "saturation", "hue")[index]
        f = _per_sample(factors[name], x)
        # in place: x is photometric's own float copy, and a factor of 1 leaves a sample exactly as it was; the same
        # operations on the same floats as a new tensor per step gave (bit for bit: benchmarks/bench_augment.py)
        if name == "brightness" and config.brightness:
            x = x.mul_(f).clamp_(0, 1)
        elif name == "contrast" and config.contrast:
            mean = _grayscale(x).mean(dim=(-3, -2, -1), keepdim=True)  # per frame, as torchvision per image
            x = x.mul_(f).add_((1 - f) * mean).clamp_(0, 1)
        elif name == "saturation" and config.saturation:
            gray = _grayscale(x)  # before x changes
            x = x.mul_(f).add_((1 - f) * gray).clamp_(0, 1)
        elif name == "hue" and config.hue:
            chosen = apply.nonzero().squeeze(1)  # the HSV round trip is costly: only where it applies
            hsv = _rgb_to_hsv(x[chosen])
            hsv = torch.cat([((hsv[..., :1, :, :] + f[chosen]) % 1.0), hsv[..., 1:, :, :]], dim=-3)
            x = x.index_copy(0, chosen, _hsv_to_rgb(hsv))
    return x


def gaussian_blur(x: torch.Tensor, kernel: int, sigma: torch.Tensor) -> torch.Tensor:
    """Separable Gaussian blur with one sigma per sample, reflect padding (torchvision's gaussian_blur)."""
    n, t, c, h, w = x.shape
    half = (kernel - 1) * 0.5
    grid = torch.linspace(-half, half, kernel, device=x.device)
    weights = torch.exp(-0.5 * (grid[None] / sigma[:, None]) ** 2)
    weights = weights / weights.sum(1, keepdim=True)  # (N, k)
    weights = weights.repeat_interleave(t * c, dim=0)  # one kernel per (sample, frame, channel)
    planes = x.reshape(1, n * t * c, h, w)
    pad = kernel // 2
    planes = F.conv2d(F.pad(planes, (pad, pad, 0, 0), mode="reflect"), weights[:, None, None, :], groups=n * t * c)
    planes = F.conv2d(F.pad(planes, (0, 0, pad, pad), mode="reflect"), weights[:, None, :, None], groups=n * t * c)
    return planes.view(n, t, c, h, w)


def photometric(frames: torch.Tensor, config) -> torch.Tensor:
    """(N, T, 3, H, W) uint8 on the training device -> augmented, normalised float (N, T, 3, H, W).

    One set of parameters per sample (clip or window), shared by its T frames."""
    return photometric_and_flips(frames, config)[0]


def photometric_and_flips(frames: torch.Tensor, config) -> tuple[torch.Tensor, torch.Tensor]:
    """`photometric`, and which samples it mirrored, (N,) bool: their left and right have traded places (Team-BAS
    targets swap their teams, train_spotting.py)."""
    x = frames.float().div_(255.0)  # this function's own copy: the steps below work on it in place
    n, device = x.shape[0], x.device
    if config.jitter_p:
        x = color_jitter(x, config, _bernoulli(n, config.jitter_p, device))
    if config.grayscale_p:
        gray = _bernoulli(n, config.grayscale_p, device)
        x = torch.where(_per_sample(gray, x), _grayscale(x).expand_as(x), x)
    if config.blur_p:  # blurred and flipped samples are computed alone: the blur is the costliest augmentation
        blur = _bernoulli(n, config.blur_p, device)
        sigma = _uniform(n, *config.blur_sigma, device)
        chosen = blur.nonzero().squeeze(1)
        if len(chosen):
            x = x.index_copy(0, chosen, gaussian_blur(x[chosen], config.blur_kernel, sigma[chosen]))
    if config.solarize_p:
        solarize = _per_sample(_bernoulli(n, config.solarize_p, device), x)
        x = torch.where(solarize & (x >= config.solarize_threshold), 1.0 - x, x)
    flipped = torch.zeros(n, dtype=torch.bool, device=device)
    if config.flip_p:
        flipped = _bernoulli(n, config.flip_p, device)
        chosen = flipped.nonzero().squeeze(1)
        x = x.index_copy(0, chosen, x[chosen].flip(-1))
    return _normalize_(x), flipped


def normalize(x: torch.Tensor) -> torch.Tensor:
    """[0, 1] floats -> (x - 0.45) / 0.225."""
    return (x - MEAN) / STD


def _normalize_(x: torch.Tensor) -> torch.Tensor:
    """normalize, in place, with the same two operations (so the same floats)."""
    return x.sub_(MEAN).div_(STD)


def to_model_input(frames: torch.Tensor) -> torch.Tensor:
    """(N, T, 3, H, W) uint8 -> normalised float in the model layout (N, 3, T, H, W), no augmentation."""
    return normalize(frames.float() / 255.0).transpose(1, 2)
