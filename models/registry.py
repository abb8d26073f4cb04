"""Building the models that `configs/architectures.py` describes (their presets and default shapes live there).

    python -m models.registry            # parameter count of every preset at the paper's shapes
"""

from __future__ import annotations

from torch import nn

from configs import architectures
from configs.architectures import SPATIAL, VIDEO, ViTShape
from configs.schema import VideoModelConfig
from models.spotting import SpottingModel
from models.swin import SpatialSwin
from models.video import TemporalTransformer, VideoTransformer
from models.vit import SpatialViT
from utils.errors import InvalidInputError
from utils.rates import Rates


def build_spatial(name: str, img_size: int = architectures.IMG_SIZE, drop_path: float = 0.1,
                  grad_checkpointing: bool = False) -> nn.Module:
    shape = architectures.preset(name, SPATIAL)
    if img_size % shape.patch_size:  # found here, at start-up, rather than at the first forward pass
        raise InvalidInputError(f"model.img_size={img_size} does not suit {name}: expected a multiple of its patch "
                                f"size, {shape.patch_size}")
    trunk = SpatialViT if isinstance(shape, ViTShape) else SpatialSwin
    return trunk(shape, img_size=img_size, drop_path=drop_path, grad_checkpointing=grad_checkpointing)


def build_video(config, rates: Rates = Rates()) -> VideoTransformer:
    """The ViViT / ViSwin a model config section describes (configs/schema.py: VideoModelConfig), at the run's rates
    (data.fps; the default is SoccerNet-v2's 2 fps): its time embedding holds the window's tokens."""
    shape = architectures.preset(config.name, VIDEO)
    spatial = build_spatial(shape.spatial, config.img_size, config.drop_path, config.grad_checkpointing)
    temporal = TemporalTransformer(spatial.out_dim, config.temporal_depth, shape.temporal_heads,
                                   rates.tokens(config.window_seconds, "model.window_seconds"),
                                   config.temporal_drop_path,
                                   grad_checkpointing=config.grad_checkpointing)
    return VideoTransformer(spatial, temporal, config.mask_ratio)


def build_spotting(config, num_classes: int, rates: Rates = Rates()) -> SpottingModel:
    """Stage 3's model a model config section describes (configs/schema.py: SpottingModelConfig): the video trunk at
    the run's rates and its head, a row per token or per frame (model.head) of num_classes logits."""
    rows_per_token = rates.frames_per_token if config.head == "frame" else 1
    return SpottingModel(build_video(config, rates), num_classes, config.head_bias_prior, rows_per_token)


def count_parameters(module: nn.Module) -> int:
    return sum(param.numel() for param in module.parameters())


def parameter_report() -> str:
    lines = [f"{'preset':<14} {'parameters':>12}  (the released checkpoints' shapes: {architectures.IMG_SIZE}x"
             f"{architectures.IMG_SIZE}, {architectures.WINDOW_TOKENS}-token windows, temporal depth "
             f"{architectures.TEMPORAL_DEPTH})"]
    for name in SPATIAL:
        lines.append(f"{name:<14} {count_parameters(build_spatial(name)):>12,}")
    for name in VIDEO:
        lines.append(f"{name:<14} {count_parameters(build_video(VideoModelConfig(name=name))):>12,}")
    return "\n".join(lines)


if __name__ == "__main__":
    print(parameter_report())
