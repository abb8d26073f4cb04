"""Stage 2's model: the video trunk, a 512-d projector per token and a queue of past bank rows (section 4.2).

There is no teacher network: the teacher is the fixed, PCA-reduced feature bank. The projector (3 layers, GELU, no
norm) maps each second's token to the bank's space; the output is L2-normalised.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from models.heads import distill_projector
from models.sce import FeatureQueue
from models.video import VideoTransformer


class DistillModel(nn.Module):
    def __init__(self, trunk: VideoTransformer, dim: int = 512, hidden: int = 1024, queue_size: int = 65536,
                 seed: int = 0):
        super().__init__()
        self.trunk = trunk
        self.projector = distill_projector(trunk.out_dim, hidden, dim)
        self.queue = FeatureQueue(queue_size, dim, seed)

    def forward(self, video: torch.Tensor) -> torch.Tensor:
        """(B, 3, F, H, W) -> (B * T, dim) normalised token projections (T = F / FRAMES_PER_TOKEN), window by window."""
        tokens = self.trunk(video)  # (B, T, D)
        return F.normalize(self.projector(tokens.flatten(0, 1)).float(), dim=1)
