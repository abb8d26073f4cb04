"""Every architectural number in one place, without torch: the spatial trunks' presets, the video models built on them,
and the video model's default shapes (those of the released checkpoints). `configs/schema.py` reads the defaults and
checks `model.name` here; `models/registry.py` builds the modules from the same entries.

Spatial presets (stage 1 trunks): vit_tiny (192 wide, 12 blocks, 3 heads), vit_small (384 / 12 / 6), swin_tiny (96,
depths 2-2-6-2, heads 3-6-12-24, window 7), and for tests and the CPU quick start vit_micro (64 / 4 / 2) and
swin_micro (16, depths 1-1-1-1, heads 1-2-2-4, window 2). Video presets (stages 2-3): a spatial preset plus a
temporal transformer at the spatial output width (ViSwin: 768 with 3 heads, head dim 256, as the released
checkpoints).
"""

from __future__ import annotations

import dataclasses

from utils.config import did_you_mean
from utils.errors import InvalidInputError


@dataclasses.dataclass(frozen=True)
class ViTShape:
    dim: int
    depth: int
    num_heads: int
    patch_size: int = 16


@dataclasses.dataclass(frozen=True)
class SwinShape:
    embed_dim: int
    depths: tuple[int, ...]
    num_heads: tuple[int, ...]
    window: int
    patch_size: int = 4


@dataclasses.dataclass(frozen=True)
class VideoShape:
    spatial: str  # a key of SPATIAL
    temporal_heads: int


SPATIAL: dict[str, ViTShape | SwinShape] = {
    "vit_tiny": ViTShape(dim=192, depth=12, num_heads=3),
    "vit_small": ViTShape(dim=384, depth=12, num_heads=6),
    "swin_tiny": SwinShape(embed_dim=96, depths=(2, 2, 6, 2), num_heads=(3, 6, 12, 24), window=7),
    "vit_micro": ViTShape(dim=64, depth=4, num_heads=2),
    "swin_micro": SwinShape(embed_dim=16, depths=(1, 1, 1, 1), num_heads=(1, 2, 2, 4), window=2),
}
VIDEO: dict[str, VideoShape] = {
    "vivit_tiny": VideoShape("vit_tiny", temporal_heads=3),
    "vivit_small": VideoShape("vit_small", temporal_heads=6),
    "viswin_tiny": VideoShape("swin_tiny", temporal_heads=3),
    "vivit_micro": VideoShape("vit_micro", temporal_heads=2),
    "viswin_micro": VideoShape("swin_micro", temporal_heads=2),
}

# The released checkpoints' shapes: the defaults of every model section (configs/schema.py)
IMG_SIZE = 224
WINDOW_TOKENS = 64  # tokens per window: the length of the learnable time embedding
TEMPORAL_DEPTH = 6  # the docs' and the released checkpoints' value (the official config file said 4)


def unknown_model(name: str, table: dict) -> str | None:
    """Why `name` is not a preset of `table` (with the closest one), or None when it is."""
    return None if name in table else f"unknown model {name!r}{did_you_mean(name, list(table))} (registered: " \
                                      f"{sorted(table)})"


def preset(name: str, table: dict):
    """The entry of `table` called `name`; an unknown name is a user error naming the registered ones."""
    problem = unknown_model(name, table)
    if problem:
        raise InvalidInputError(problem)
    return table[name]


def spatial_of(name: str) -> str:
    """The spatial preset inside a video preset (or the name itself for a spatial preset)."""
    if name in VIDEO:
        return VIDEO[name].spatial
    preset(name, SPATIAL)
    return name
