"""Heads of the three stages (docs/METHOD.md, "Models"): MLPs without normalisation, GELU after every layer but the
last; the spotting head is one linear layer per token, 17 logits, no background class.

Initialisation as in the official code: the stage-1 and stage-2 MLPs keep PyTorch's default Linear initialisation
(uniform, biases included: eztorch's MLP heads are built outside timm's init); the spotting head is N(0, 0.01) with
a zero bias (eztorch `models/heads/linear.py: LinearHead`, init_std 0.01)."""

from __future__ import annotations

import math

import torch
from torch import nn

from data.labels import NUM_CLASSES


class MLPHead(nn.Module):
    """Linear layers of widths dims[0] -> dims[1] -> ... -> dims[-1], GELU in between, no norm.

    Names: layers.0, layers.2, ... (GELUs at the odd indices)."""

    def __init__(self, dims: list[int], last_bias: bool = True):
        super().__init__()
        modules: list[nn.Module] = []
        for index, (width_in, width_out) in enumerate(zip(dims[:-1], dims[1:])):
            last = index == len(dims) - 2
            modules.append(nn.Linear(width_in, width_out, bias=last_bias or not last))
            if not last:
                modules.append(nn.GELU())
        self.layers = nn.Sequential(*modules)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)


def ssl_projector(trunk_dim: int, hidden: int = 1024, out: int = 256) -> MLPHead:
    """Stage 1: 3 layers to 256 (ViT-T / Swin-T hidden 1024, ViT-S hidden 2048)."""
    return MLPHead([trunk_dim, hidden, hidden, out])


def ssl_predictor(dim: int = 256, hidden: int = 1024) -> MLPHead:
    """Stage 1: 2 layers, no bias on the last."""
    return MLPHead([dim, hidden, dim], last_bias=False)


def distill_projector(trunk_dim: int, hidden: int = 1024, out: int = 512) -> MLPHead:
    """Stage 2: 3 layers to the 512-d PCA space of the feature bank."""
    return MLPHead([trunk_dim, hidden, hidden, out])


class SpottingModel(nn.Module):
    """Stage 3: video trunk + one linear layer per token. (B, 3, 128, H, W) -> (B, 64, 17) logits.

    bias_prior > 0 starts every class at that probability (bias -log((1 - p) / p), the RetinaNet prior): with ~1%
    positives, a zero bias spends the first hundreds of steps learning the prior, which a short run (the CPU quick
    start) cannot afford. 0 keeps the official zero bias."""

    def __init__(self, trunk: nn.Module, num_classes: int = NUM_CLASSES, bias_prior: float = 0.0):
        super().__init__()
        self.trunk = trunk
        self.head = nn.Linear(trunk.out_dim, num_classes)
        nn.init.normal_(self.head.weight, std=0.01)
        nn.init.zeros_(self.head.bias)
        if bias_prior > 0:
            nn.init.constant_(self.head.bias, -math.log((1 - bias_prior) / bias_prior))

    def forward(self, video: torch.Tensor) -> torch.Tensor:
        return self.head(self.trunk(video))
