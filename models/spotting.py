"""Stage 3's model: the video trunk and one linear layer per token, a logit per column of the dataset (SoccerNet-v2's
17 classes; a class and a team each for Team-BAS: data/catalog.py), no background class (docs/METHOD.md section 4).
The head is N(0, 0.01) with a zero bias, as eztorch's `models/heads/linear.py: LinearHead` (init_std 0.01).

`model.head=token` (the paper's) gives one row of logits per token; `frame` gives one per frame (rows_per_token =
FRAMES_PER_TOKEN): the same linear layer, FRAMES_PER_TOKEN times wider, each token's output read as its frames' rows.
Ball Action Spotting's actions come less than a token's width apart at 12.5 fps; a row per frame keeps them apart at
no cost to the trunk (the T-DEED and lRomul models also score every frame)."""

from __future__ import annotations

import math

import torch
from torch import nn


def linear_head(in_dim: int, out_dim: int, bias_prior: float = 0.0) -> nn.Linear:
    """Stage 3's linear layer as eztorch initialises it, N(0, 0.01) weights and a zero bias; bias_prior > 0 starts
    every output at that probability instead (`SpottingModel`)."""
    head = nn.Linear(in_dim, out_dim)
    nn.init.normal_(head.weight, std=0.01)
    nn.init.zeros_(head.bias)
    if bias_prior > 0:
        nn.init.constant_(head.bias, -math.log((1 - bias_prior) / bias_prior))
    return head


class SpottingModel(nn.Module):
    """Stage 3: video trunk + one linear layer per token. (B, 3, F, H, W) -> (B, T x rows_per_token, C) logits,
    T = F / FRAMES_PER_TOKEN tokens (F = 128: (B, 64, C) with the token head, (B, 128, C) with the frame head).

    bias_prior > 0 starts every class at that probability (bias -log((1 - p) / p), the RetinaNet prior): with ~1%
    positives, a zero bias spends the first hundreds of steps learning the prior, which a short run (the CPU quick
    start) cannot afford. 0 keeps the official zero bias."""

    def __init__(self, trunk: nn.Module, num_classes: int, bias_prior: float = 0.0, rows_per_token: int = 1):
        super().__init__()
        self.trunk, self.num_classes = trunk, num_classes
        self.head = linear_head(trunk.out_dim, num_classes * rows_per_token, bias_prior)  # token j's rows: its frames

    def forward(self, video: torch.Tensor) -> torch.Tensor:
        return self._rows(self.head(self.trunk(video)))  # (B, T x rows_per_token, C)

    def clip_tokens(self, video: torch.Tensor) -> torch.Tensor:
        """(B, 3, F, H, W) -> (B, F / 2, D): the trunk's per-clip spatial tokens (models/video.py: clip_tokens)."""
        return self.trunk.clip_tokens(video)

    def token_logits(self, tokens: torch.Tensor) -> torch.Tensor:
        """(B, T, D) clip tokens of whole windows -> (B, T x rows_per_token, C): in eval mode,
        token_logits(clip_tokens(video)) is forward(video)."""
        return self._rows(self.head(self.trunk.temporal(tokens)))

    def _rows(self, logits: torch.Tensor) -> torch.Tensor:
        return logits.view(logits.shape[0], -1, self.num_classes)  # (B, T, rows_per_token x C) -> (B, rows, C)
