"""Factorised-encoder video transformers (ViViT model 2 / ViSwin): spatial trunk per second, temporal transformer.

A window (B, 3, 128, 224, 224) is cut into 64 one-second clips of 2 frames; the spatial trunk turns every clip into
one token (all clips of the batch in one call), the temporal transformer contextualises the 64 tokens: (B, 64, D).

Temporal masking (docs/METHOD.md section 3): in training, a ratio of the clips of each window (25% in the paper: 16 of
64) is removed *before* the spatial trunk, which saves its compute, and the shared mask token takes their place. No
masking in eval mode, hence none when the trunk is frozen (stage 3a holds it in eval mode).
"""

from __future__ import annotations

import torch
from torch import nn

from models.vit import Block, drop_path_rates, init_vit_weights, layer_norm, run_blocks
from utils.rates import FRAMES_PER_TOKEN


class TemporalTransformer(nn.Module):
    """ViT blocks over per-second tokens: learnable time embedding of the window length, no class token, final norm,
    optional shared mask token (zero-initialised)."""

    def __init__(self, dim: int, depth: int = 6, num_heads: int = 3, num_tokens: int = 64, drop_path: float = 0.1,
                 mask_token: bool = True, grad_checkpointing: bool = False):
        super().__init__()
        self.num_tokens = num_tokens
        self.time_embed = nn.Parameter(torch.zeros(1, num_tokens, dim))
        self.mask_token = nn.Parameter(torch.zeros(1, 1, dim)) if mask_token else None
        self.blocks = nn.ModuleList(Block(dim, num_heads, drop_path=rate) for rate in drop_path_rates(drop_path, depth))
        self.norm = layer_norm(dim)
        self.grad_checkpointing = grad_checkpointing
        init_vit_weights(self)
        nn.init.trunc_normal_(self.time_embed, std=0.02)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        """tokens (B, T, D), T = num_tokens -> (B, T, D)."""
        if tokens.shape[1] != self.num_tokens:
            raise ValueError(f"the temporal transformer takes {self.num_tokens} tokens (its time embedding), "
                             f"got {tokens.shape[1]}: windows must be {FRAMES_PER_TOKEN * self.num_tokens} frames")
        x = run_blocks(self.blocks, tokens + self.time_embed, self.grad_checkpointing)
        return self.norm(x)


class VideoTransformer(nn.Module):
    """Spatial trunk + temporal transformer. forward: (B, 3, F, H, W) frames -> (B, F / tube, D) tokens."""

    def __init__(self, spatial: nn.Module, temporal: TemporalTransformer, mask_ratio: float = 0.0):
        super().__init__()
        self.spatial = spatial
        self.temporal = temporal
        self.tube_size = spatial.tube_size
        self.mask_ratio = mask_ratio
        if mask_ratio > 0 and temporal.mask_token is None:
            raise ValueError("temporal masking needs the temporal transformer's mask token (mask_token=True)")
        if mask_ratio == 0 and temporal.mask_token is not None:
            # never used: kept in the state dict (checkpoint layout) but out of the optimiser and of DDP, whose
            # gradient buckets would otherwise wait for it and skip averaging their other gradients
            temporal.mask_token.requires_grad_(False)

    @property
    def out_dim(self) -> int:
        return self.spatial.out_dim

    def num_masked(self, num_clips: int) -> int:
        return int(round(num_clips * self.mask_ratio)) if self.training else 0

    def _clips(self, video: torch.Tensor) -> torch.Tensor:
        """(B, 3, F, H, W) -> (B, T, 3, tube, H, W): one clip of `tube` frames per token."""
        batch, channels, frames, height, width = video.shape
        if frames % self.tube_size:
            raise ValueError(f"{frames} frames do not split into clips of {self.tube_size}")
        return video.view(batch, channels, frames // self.tube_size, self.tube_size, height, width).transpose(1, 2)

    def clip_tokens(self, video: torch.Tensor) -> torch.Tensor:
        """(B, 3, F, H, W) frames of any whole number of clips -> (B, F / tube, D): each clip's spatial token, none
        masked. A clip's token does not depend on its neighbours, so inference over overlapping windows computes it
        once (evaluation/inference.py: HalfSpotter) and `forward` in eval mode is temporal(clip_tokens(video))."""
        clips = self._clips(video)
        batch, num_clips = clips.shape[:2]
        return self.spatial(clips.flatten(0, 1)).view(batch, num_clips, -1)

    def forward(self, video: torch.Tensor) -> torch.Tensor:
        clips = self._clips(video)  # (B, T, 3, tube, H, W)
        batch, clips_per_window = clips.shape[:2]
        masked = self.num_masked(clips_per_window)
        if masked == 0:
            return self.temporal(self.clip_tokens(video))

        kept = clips_per_window - masked
        # a random subset of each window's clips, in time order
        keep_index = torch.rand(batch, clips_per_window, device=video.device).argsort(dim=1)[:, :kept].sort(1).values
        kept_clips = clips[torch.arange(batch, device=video.device)[:, None], keep_index]  # (B, kept, 3, tube, H, W)
        kept_tokens = self.spatial(kept_clips.flatten(0, 1)).view(batch, kept, -1)
        dim = kept_tokens.shape[-1]
        # mask tokens everywhere, the computed tokens scattered back to their seconds (gradients reach both)
        base = self.temporal.mask_token.to(kept_tokens.dtype).expand(batch, clips_per_window, dim)
        tokens = base.scatter(1, keep_index[..., None].expand(-1, -1, dim), kept_tokens)
        return self.temporal(tokens)
