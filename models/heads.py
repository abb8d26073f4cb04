"""The MLP heads of stages 1 and 2 (docs/METHOD.md sections 2 and 3): no normalisation, GELU after every layer but the
last, PyTorch's default Linear initialisation (uniform, biases included), as the official heads, which are built
outside timm's init. The spotting head is models/spotting.py."""

from __future__ import annotations

import torch
from torch import nn



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
