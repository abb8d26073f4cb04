"""Stage 1's self-supervised method: SCE with a momentum teacher and a queue (docs/METHOD.md section 2).

Online branch: trunk -> projector -> predictor -> L2 norm (the query q). Momentum branch: a copy of trunk and
projector -> L2 norm (the key k), updated as teacher = m teacher + (1 - m) student after each optimiser step, m on a
cosine from 0.99 to 1. The queue holds 65,536 past keys, refreshed first-in first-out with the keys of both views
gathered from every rank, so it is identical everywhere. The teacher follows the module's mode, as in the official
code, where Lightning's `train()` reaches the momentum copy and nothing puts it back in eval mode: its stochastic depth
(0 rising to 0.1 over the blocks) is active during training.
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import nn

from models.heads import ssl_predictor, ssl_projector
from utils.dist import all_gather_cat


class SCEModel(nn.Module):
    def __init__(self, trunk: nn.Module, hidden: int, dim: int = 256, queue_size: int = 65536, seed: int = 0):
        super().__init__()
        self.trunk = trunk
        self.projector = ssl_projector(trunk.out_dim, hidden, dim)
        self.predictor = ssl_predictor(dim, hidden)
        self.momentum_trunk = copy.deepcopy(trunk).requires_grad_(False)
        self.momentum_projector = copy.deepcopy(self.projector).requires_grad_(False)
        self.queue = FeatureQueue(queue_size, dim, seed)

    def forward(self, clips: torch.Tensor) -> torch.Tensor:
        """Online queries: clips (N, 3, 2, H, W) -> (N, dim), L2-normalised."""
        return F.normalize(self.predictor(self.projector(self.trunk(clips))).float(), dim=1)

    @torch.no_grad()
    def keys(self, clips: torch.Tensor) -> torch.Tensor:
        """Momentum keys: clips -> (N, dim), L2-normalised."""
        return F.normalize(self.momentum_projector(self.momentum_trunk(clips)).float(), dim=1)

    @torch.no_grad()
    def update_teacher(self, momentum: float) -> None:
        student = list(self.trunk.parameters()) + list(self.projector.parameters())
        teacher = list(self.momentum_trunk.parameters()) + list(self.momentum_projector.parameters())
        for target, source in zip(teacher, student):
            target.lerp_(source, 1 - momentum)  # m * teacher + (1 - m) * student


class FeatureQueue(nn.Module):
    """First-in first-out queue of L2-normalised vectors, identical on every rank (stages 1 and 2).

    Starts as random unit vectors drawn from `seed` (the same on every rank); `enqueue` appends the vectors of all
    ranks in rank order, overwriting the oldest."""

    def __init__(self, size: int, dim: int, seed: int = 0):
        super().__init__()
        generator = torch.Generator().manual_seed(seed)
        self.register_buffer("keys", F.normalize(torch.randn(size, dim, generator=generator), dim=1))
        self.register_buffer("pointer", torch.zeros((), dtype=torch.long))

    @torch.no_grad()
    def enqueue(self, vectors: torch.Tensor) -> None:
        vectors = all_gather_cat(vectors.float())
        size = self.keys.shape[0]
        if vectors.shape[0] > size:
            vectors = vectors[-size:]
        index = (self.pointer + torch.arange(vectors.shape[0], device=vectors.device)) % size
        self.keys[index] = vectors
        self.pointer.copy_((self.pointer + vectors.shape[0]) % size)
