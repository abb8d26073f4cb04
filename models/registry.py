"""Explicit model registry: presets as small factory entries (their config sections: configs/schema.py).

    python -m models.registry            # parameter count of every preset at the paper's shapes

Spatial presets (stage 1 trunks): vit_tiny (192 / 12 blocks / 3 heads), vit_small (384 / 12 / 6), swin_tiny
(96, depths 2-2-6-2, heads 3-6-12-24, window 7), and for tests and the CPU quick start vit_micro (64 / 4 / 2) and
swin_micro (16, depths 1-1-1-1, heads 1-2-2-4, window 2). Video presets (stages 2-3): vivit_tiny, vivit_small,
viswin_tiny, vivit_micro, viswin_micro: the spatial preset plus a temporal transformer at the spatial output width
(ViSwin: 768 with 3 heads, head dim 256, as the released checkpoints).
"""

from __future__ import annotations

from torch import nn

from models.swin import SpatialSwin
from models.video import TemporalTransformer, VideoTransformer
from models.vit import SpatialViT
from utils.errors import InvalidInputError

SPATIAL_PRESETS: dict[str, dict] = {
    "vit_tiny": {"kind": "vit", "dim": 192, "depth": 12, "num_heads": 3, "patch_size": 16},
    "vit_small": {"kind": "vit", "dim": 384, "depth": 12, "num_heads": 6, "patch_size": 16},
    "swin_tiny": {"kind": "swin", "embed_dim": 96, "depths": (2, 2, 6, 2), "num_heads": (3, 6, 12, 24),
                  "window": 7, "patch_size": 4},
    "vit_micro": {"kind": "vit", "dim": 64, "depth": 4, "num_heads": 2, "patch_size": 16},
    "swin_micro": {"kind": "swin", "embed_dim": 16, "depths": (1, 1, 1, 1), "num_heads": (1, 2, 2, 4),
                   "window": 2, "patch_size": 4},
}
VIDEO_PRESETS: dict[str, dict] = {
    "vivit_tiny": {"spatial": "vit_tiny", "temporal_heads": 3},
    "vivit_small": {"spatial": "vit_small", "temporal_heads": 6},
    "viswin_tiny": {"spatial": "swin_tiny", "temporal_heads": 3},
    "vivit_micro": {"spatial": "vit_micro", "temporal_heads": 2},
    "viswin_micro": {"spatial": "swin_micro", "temporal_heads": 2},
}
def _check(name: str, table: dict) -> dict:
    if name not in table:
        raise InvalidInputError(f"unknown model {name!r}; registered: {sorted(table)}")
    return table[name]


def build_spatial(name: str, img_size: int = 224, drop_path: float = 0.1, grad_checkpointing: bool = False) -> nn.Module:
    preset = dict(_check(name, SPATIAL_PRESETS))
    kind = preset.pop("kind")
    if img_size % preset["patch_size"]:  # found here, at start-up, rather than at the first forward pass
        raise InvalidInputError(f"model.img_size={img_size} does not suit {name}: expected a multiple of its patch "
                                f"size, {preset['patch_size']}")
    if kind == "vit":
        return SpatialViT(img_size=img_size, drop_path=drop_path, grad_checkpointing=grad_checkpointing, **preset)
    return SpatialSwin(img_size=img_size, drop_path=drop_path, grad_checkpointing=grad_checkpointing, **preset)


def build_video(config) -> VideoTransformer:
    """The ViViT / ViSwin a model config section describes (configs/schema.py: VideoModelConfig)."""
    preset = _check(config.name, VIDEO_PRESETS)
    spatial = build_spatial(preset["spatial"], config.img_size, config.drop_path, config.grad_checkpointing)
    temporal = TemporalTransformer(spatial.out_dim, config.temporal_depth, preset["temporal_heads"],
                                   config.window_seconds, config.temporal_drop_path, mask_token=True,
                                   grad_checkpointing=config.grad_checkpointing)
    return VideoTransformer(spatial, temporal, config.mask_ratio)


def spatial_preset_of(name: str) -> str:
    """The spatial preset inside a video preset (or the name itself for a spatial preset)."""
    if name in VIDEO_PRESETS:
        return VIDEO_PRESETS[name]["spatial"]
    _check(name, SPATIAL_PRESETS)
    return name


def count_parameters(module: nn.Module) -> int:
    return sum(param.numel() for param in module.parameters())


def parameter_report() -> str:
    from configs.schema import VideoModelConfig  # its defaults: the released checkpoints' shapes

    lines = [f"{'preset':<14} {'parameters':>12}  (paper shapes: 224x224, 64 s windows, temporal depth 6)"]
    for name in SPATIAL_PRESETS:
        lines.append(f"{name:<14} {count_parameters(build_spatial(name)):>12,}")
    for name in VIDEO_PRESETS:
        lines.append(f"{name:<14} {count_parameters(build_video(VideoModelConfig(name=name))):>12,}")
    return "\n".join(lines)


if __name__ == "__main__":
    print(parameter_report())
