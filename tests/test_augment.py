"""GPU augmentations (data/augment.py): per-sample choices, and the blur against torchvision's."""

import dataclasses

import pytest
import torch
from torchvision.transforms.v2 import functional as TF

from configs.schema import ViewConfig
from data.augment import gaussian_blur, normalize, photometric

# every augmentation off, strengths as in the paper's views (a test turns on the one it checks)
OFF = ViewConfig(jitter_p=0.0, brightness=0.4, contrast=0.4, saturation=0.2, hue=0.1, grayscale_p=0.0, blur_p=0.0,
                 blur_kernel=23, blur_sigma=(0.1, 2.0), solarize_p=0.0, solarize_threshold=0.5, flip_p=0.0)


def frames(n=16, seed=0):
    return torch.randint(0, 256, (n, 2, 3, 12, 10), dtype=torch.uint8, generator=torch.Generator().manual_seed(seed))


def test_nothing_enabled_is_normalisation_only():
    video = frames()
    torch.testing.assert_close(photometric(video, OFF), normalize(video.float() / 255))


def test_each_sample_is_flipped_whole_or_not_at_all():
    video = frames()
    torch.manual_seed(0)
    out = photometric(video, dataclasses.replace(OFF, flip_p=0.5))
    plain, flipped = normalize(video.float() / 255), normalize(video.float().flip(-1) / 255)
    kinds = [bool(torch.equal(o, p)) for o, p in zip(out, plain)]
    assert all(torch.equal(o, p) or torch.equal(o, f) for o, p, f in zip(out, plain, flipped))
    assert 0 < sum(kinds) < len(kinds)  # both kinds occur


def test_blur_matches_torchvision_per_sample():
    x = frames(3).float() / 255
    sigma = torch.tensor([0.3, 1.0, 2.0])
    ours = gaussian_blur(x, 5, sigma)
    for index in range(3):
        reference = TF.gaussian_blur(x[index], [5, 5], [float(sigma[index])] * 2)
        torch.testing.assert_close(ours[index], reference, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("field", ["blur_p", "jitter_p"])
def test_samples_left_out_are_untouched(field):
    video = frames()
    torch.manual_seed(1)
    config = dataclasses.replace(OFF, **{field: 0.5}, brightness=0.0, contrast=0.0, saturation=0.0, hue=0.2,
                                 blur_kernel=5)
    out = photometric(video, config)
    plain = normalize(video.float() / 255)
    untouched = [bool(torch.equal(o, p)) for o, p in zip(out, plain)]
    assert 0 < sum(untouched) < len(untouched)


@pytest.mark.parametrize("order", [[0, 1, 2, 3], [3, 2, 1, 0], [2, 0, 3, 1]])
def test_colour_jitter_is_torchvisions_with_the_drawn_factors(monkeypatch, order):
    """Brightness, contrast and saturation in the drawn order equal torchvision's adjust_* with the drawn factors
    (the factors pinned at the top of their ranges, the order pinned)."""
    monkeypatch.setattr("data.augment._uniform", lambda n, low, high, device: torch.full((n,), float(high)))
    monkeypatch.setattr(torch, "randperm", lambda n: torch.tensor(order))
    video = frames(4)
    config = dataclasses.replace(OFF, jitter_p=1.0, brightness=0.4, contrast=0.3, saturation=0.2, hue=0.0)
    steps = {0: lambda x: TF.adjust_brightness(x, 1.4), 1: lambda x: TF.adjust_contrast(x, 1.3),
             2: lambda x: TF.adjust_saturation(x, 1.2), 3: lambda x: x}
    expected = video.float() / 255
    for index in order:
        expected = torch.stack([steps[index](sample) for sample in expected])
    torch.testing.assert_close(photometric(video, config), normalize(expected), rtol=0, atol=1e-5)
