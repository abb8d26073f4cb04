"""Import the COMEDIAN checkpoints released by the authors (eztorch) into this project's SpottingModel.

    python evaluate.py import-eztorch comedian_vivit_tiny_seed42.pth --out runs/released/vivit_tiny_seed42.pth

The released files (Hugging Face juliendenize/COMEDIAN-ViViT-tiny and COMEDIAN-ViSwin-tiny, seeds 42, 203, 666) are
plain `torch.save`d state dicts of eztorch's SoccerNetSpottingModel (their names and shapes: tests/data/eztorch_checkpoint_keys.json):

    trunk.transformer.spatial_cls_token           -> trunk.spatial.cls_token        (ViViT only)
    trunk.transformer.pos_embed                   -> trunk.spatial.pos_embed        (ViViT only)
    trunk.transformer.patch_embed.*               -> trunk.spatial.patch_embed.*
    trunk.transformer.spatial_transformer.*       -> trunk.spatial.*                (Swin: mlp.fc1/fc2 -> mlp.0/mlp.3)
    trunk.transformer.time_embed                  -> trunk.temporal.time_embed
    trunk.transformer.temporal_mask_token         -> trunk.temporal.mask_token      (optional: training only)
    trunk.transformer.temporal_transformer.*      -> trunk.temporal.*
    head_class.layers.0.*                         -> head.*

Swin `relative_position_index` buffers are checked against the formula and dropped (this project recomputes them),
Swin `attn_mask` buffers are dropped (recomputed from the shift), `{train,val,test}_transform.*` augmentation buffers
are dropped. Anything else is an error: nothing is silently left behind.
"""

from __future__ import annotations

import dataclasses
import re

import torch

TRUNK_PREFIX = "trunk.transformer."
HEAD_PREFIX = "head_class.layers.0."
TRANSFORM_PREFIXES = ("train_transform.", "val_transform.", "test_transform.")
OPTIONAL_KEYS = {"trunk.temporal.mask_token"}  # eztorch reports it as unexpected itself at test time

# (pattern on the name after TRUNK_PREFIX, replacement), applied in order; the first match wins
_TRUNK_RENAMES = [
    (re.compile(r"^spatial_cls_token$"), "spatial.cls_token"),
    (re.compile(r"^pos_embed$"), "spatial.pos_embed"),
    (re.compile(r"^patch_embed\."), "spatial.patch_embed."),
    (re.compile(r"^spatial_transformer\."), "spatial."),
    (re.compile(r"^time_embed$"), "temporal.time_embed"),
    (re.compile(r"^temporal_mask_token$"), "temporal.mask_token"),
    (re.compile(r"^temporal_transformer\."), "temporal."),
]
# timm's Swin MLP (fc1, fc2) against torchvision's MLP Sequential (Linear, GELU, Dropout, Linear, Dropout)
_SWIN_MLP = re.compile(r"^(spatial\.layers\.\d+\.blocks\.\d+\.mlp\.)fc([12])\.")
_RECOMPUTED = re.compile(r"\.attn\.relative_position_index$|\.attn_mask$")


@dataclasses.dataclass
class Conversion:
    """A converted state dict and what was left behind, by kind, for the report."""

    state: dict[str, torch.Tensor]
    preset: str
    dropped_transforms: list[str]
    dropped_buffers: list[str]

    def report(self) -> str:
        lines = [f"{self.preset}: {len(self.state)} tensors converted"]
        if self.dropped_buffers:
            lines.append(f"  {len(self.dropped_buffers)} Swin buffers dropped (relative_position_index checked, "
                         f"attn_mask recomputed by the model)")
        if self.dropped_transforms:
            lines.append(f"  {len(self.dropped_transforms)} augmentation buffers dropped: "
                         + ", ".join(self.dropped_transforms[:5]) + (" ..." if len(self.dropped_transforms) > 5 else ""))
        if "trunk.temporal.mask_token" not in self.state:
            lines.append("  no temporal_mask_token: fine for inference (it is only used when masking in training)")
        return "\n".join(lines)


def is_eztorch_state(obj: object) -> bool:
    """True for a released eztorch state dict (flat, keys under trunk.transformer. and head_class.)."""
    return isinstance(obj, dict) and any(isinstance(key, str) and key.startswith(TRUNK_PREFIX) for key in obj)


def infer_preset(state: dict[str, torch.Tensor]) -> str:
    """vivit_tiny or viswin_tiny, from the keys and widths; other shapes are an error naming what was found."""
    head = state.get(HEAD_PREFIX + "weight")
    if head is None:
        raise ValueError(f"no {HEAD_PREFIX}weight: not a released COMEDIAN spotting checkpoint")
    width = head.shape[1]
    if TRUNK_PREFIX + "spatial_cls_token" in state and width == 192:
        return "vivit_tiny"
    if any(key.startswith(TRUNK_PREFIX + "spatial_transformer.layers.") for key in state) and width == 768:
        return "viswin_tiny"
    raise ValueError(f"unrecognised eztorch checkpoint (head width {width}); this importer knows the released "
                     f"ViViT-T (192, spatial class token) and ViSwin-T (768, Swin layers)")


def _trunk_name(name: str) -> str:
    for pattern, replacement in _TRUNK_RENAMES:
        if pattern.search(name):
            renamed = pattern.sub(replacement, name)
            return _SWIN_MLP.sub(lambda m: f"{m.group(1)}{0 if m.group(2) == '1' else 3}.", renamed)
    raise ValueError(f"unknown trunk key {TRUNK_PREFIX}{name}: not in the released ViViT / ViSwin layout")


def expected_relative_position_index(window: int) -> torch.Tensor:
    """(window^2, window^2) int64: (yi - yj + w - 1) * (2w - 1) + (xi - xj + w - 1), row-major window positions."""
    ys, xs = torch.meshgrid(torch.arange(window), torch.arange(window), indexing="ij")
    ys, xs = ys.flatten(), xs.flatten()
    return (ys[:, None] - ys[None, :] + window - 1) * (2 * window - 1) + (xs[:, None] - xs[None, :] + window - 1)


def convert_state(state: dict[str, torch.Tensor], preset: str | None = None) -> Conversion:
    """Rename a released eztorch state dict into SpottingModel names. Unknown keys raise; see the module doc."""
    preset = preset or infer_preset(state)
    converted: dict[str, torch.Tensor] = {}
    transforms, buffers, unknown = [], [], []
    for key, value in state.items():
        if key.startswith(TRANSFORM_PREFIXES):
            transforms.append(key)
        elif key.startswith(HEAD_PREFIX):
            converted["head." + key[len(HEAD_PREFIX):]] = value
        elif key.startswith(TRUNK_PREFIX) and _RECOMPUTED.search(key):
            if key.endswith("relative_position_index"):
                window = int(round(value.shape[0] ** 0.5))
                if not torch.equal(value.long(), expected_relative_position_index(window)):
                    raise ValueError(f"{key}: relative position index differs from the Swin formula; the file does "
                                     f"not follow the layout this importer knows")
            buffers.append(key)
        elif key.startswith(TRUNK_PREFIX):
            converted["trunk." + _trunk_name(key[len(TRUNK_PREFIX):])] = value
        else:
            unknown.append(key)
    if unknown:
        raise ValueError(f"{len(unknown)} keys outside trunk.transformer., head_class. and *_transform.: "
                         + ", ".join(unknown[:10]))
    return Conversion(converted, preset, transforms, buffers)
