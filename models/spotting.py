"""Stage 3's model: the video trunk and one linear layer per token, a logit per column of the dataset (SoccerNet-v2's
17 classes; a class and a team each for Team-BAS: data/catalog.py), no background class (docs/METHOD.md section 4).
The head is N(0, 0.01) with a zero bias, as eztorch's `models/heads/linear.py: LinearHead` (init_std 0.01)."""

from __future__ import annotations

import math

import torch
from torch import nn


class SpottingModel(nn.Module):
    """Stage 3: video trunk + one linear layer per token. (B, 3, 128, H, W) -> (B, 64, C) logits.

    bias_prior > 0 starts every class at that probability (bias -log((1 - p) / p), the RetinaNet prior): with ~1%
    positives, a zero bias spends the first hundreds of steps learning the prior, which a short run (the CPU quick
    start) cannot afford. 0 keeps the official zero bias."""

    def __init__(self, trunk: nn.Module, num_classes: int, bias_prior: float = 0.0):
        super().__init__()
        self.trunk = trunk
        self.head = nn.Linear(trunk.out_dim, num_classes)
        nn.init.normal_(self.head.weight, std=0.01)
        nn.init.zeros_(self.head.bias)
        if bias_prior > 0:
            nn.init.constant_(self.head.bias, -math.log((1 - bias_prior) / bias_prior))

    def forward(self, video: torch.Tensor) -> torch.Tensor:
        return self.head(self.trunk(video))
