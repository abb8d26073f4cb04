"""The spatial Swin-T for 1-second clips, built from torchvision's Swin blocks.

torchvision provides the block (`SwinTransformerBlock`: pre-norm, stochastic depth, MLP), the shifted-window
attention module (its qkv / proj / relative position bias table) and `PatchMerging` (2x2 neighbours concatenated as
(even row, even col), (odd row, even col), (even row, odd col), (odd row, odd col), then LayerNorm and a bias-free
reduction). Two things are added here:
- the attention's forward runs through `F.scaled_dot_product_attention`, with the relative position bias and the
  shift mask as an additive mask, so GPUs use a fused kernel (torchvision computes the softmax by hand);
- the layout follows timm 0.6.13, as the official checkpoints do: `layers.{i}.blocks.{j}` and the patch merging at
  the *end* of stages 0-2 (`layers.{i}.downsample`), a Conv3d 2x4x4 patch embedding with LayerNorm, final norm and
  the mean of the 7x7 last tokens (768-d).
All LayerNorms use eps 1e-6; the 7x7 last stage has no shift (window = resolution), as in timm and torchvision.
"""

from __future__ import annotations

from functools import partial

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.models.swin_transformer import PatchMerging, ShiftedWindowAttention, SwinTransformerBlock

from configs.architectures import SwinShape
from models.vit import LAYER_NORM_EPS, PatchEmbed3d, drop_path_rates, init_vit_weights, layer_norm, run_blocks
from utils.rates import FRAMES_PER_TOKEN

SHIFT_MASK_VALUE = -100.0  # what timm and torchvision put between tokens of different shifted regions


def shifted_window_mask(height: int, width: int, window: tuple[int, int], shift: tuple[int, int],
                        device: torch.device) -> torch.Tensor:
    """(num_windows, N, N) additive mask: 0 within a region of the rolled map, -100 across regions."""
    regions = torch.zeros(height, width, device=device)
    label = 0
    for rows in ((0, -window[0]), (-window[0], -shift[0]), (-shift[0], None)):
        for cols in ((0, -window[1]), (-window[1], -shift[1]), (-shift[1], None)):
            regions[rows[0]:rows[1], cols[0]:cols[1]] = label
            label += 1
    windows = regions.view(height // window[0], window[0], width // window[1], window[1])
    windows = windows.permute(0, 2, 1, 3).reshape(-1, window[0] * window[1])  # (num_windows, N)
    different = windows[:, None, :] != windows[:, :, None]
    return torch.zeros_like(different, dtype=torch.float32).masked_fill(different, SHIFT_MASK_VALUE)


class WindowAttentionSDPA(ShiftedWindowAttention):
    """torchvision's shifted-window attention (same parameters) computed with fused SDPA."""

    def define_relative_position_index(self) -> None:
        super().define_relative_position_index()
        index = self.relative_position_index
        del self.relative_position_index
        # deterministic, so recomputed rather than stored: checkpoints stay free of it
        self.register_buffer("relative_position_index", index, persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x (B, H, W, C) -> (B, H, W, C)."""
        batch, height, width, channels = x.shape
        window = self.window_size
        pad_bottom, pad_right = (-height) % window[0], (-width) % window[1]
        x = F.pad(x, (0, 0, 0, pad_right, 0, pad_bottom))
        padded_h, padded_w = height + pad_bottom, width + pad_right
        # no shift where one window covers the whole map (the 7x7 last stage)
        shift = [0 if window[0] >= padded_h else self.shift_size[0], 0 if window[1] >= padded_w else self.shift_size[1]]
        shifted = shift[0] > 0 or shift[1] > 0
        if shifted:
            x = torch.roll(x, shifts=(-shift[0], -shift[1]), dims=(1, 2))
        rows, cols = padded_h // window[0], padded_w // window[1]
        tokens = window[0] * window[1]
        x = x.view(batch, rows, window[0], cols, window[1], channels).permute(0, 1, 3, 2, 4, 5)
        x = x.reshape(batch, rows * cols, tokens, channels)  # (B, windows, N, C)
        qkv = self.qkv(x).reshape(batch, rows * cols, tokens, 3, self.num_heads, channels // self.num_heads)
        q, k, v = qkv.permute(3, 0, 1, 4, 2, 5).unbind(0)  # each (B, windows, heads, N, head_dim)
        bias = self.get_relative_position_bias()[0].to(q.dtype)  # (heads, N, N)
        if shifted:
            mask = shifted_window_mask(padded_h, padded_w, tuple(window), tuple(shift), x.device).to(q.dtype)
            bias = bias[None] + mask[:, None]  # (windows, heads, N, N), broadcast over the batch
        x = F.scaled_dot_product_attention(q, k, v, attn_mask=bias)  # scale head_dim ** -0.5
        x = self.proj(x.transpose(2, 3).reshape(batch, rows * cols, tokens, channels))
        x = x.view(batch, rows, cols, window[0], window[1], channels).permute(0, 1, 3, 2, 4, 5)
        x = x.reshape(batch, padded_h, padded_w, channels)
        if shifted:
            x = torch.roll(x, shifts=(shift[0], shift[1]), dims=(1, 2))
        return x[:, :height, :width].contiguous()


class SwinStage(nn.Module):
    """timm-0.6.13 `BasicLayer`: blocks alternating unshifted / shifted windows, then optional patch merging."""

    def __init__(self, dim: int, num_heads: int, window: int, drop_paths: list[float], downsample: bool,
                 grad_checkpointing: bool = False):
        super().__init__()
        norm = partial(nn.LayerNorm, eps=LAYER_NORM_EPS)
        self.blocks = nn.ModuleList(  # one block per drop-path rate
            SwinTransformerBlock(dim, num_heads, window_size=[window, window],
                                 shift_size=[0, 0] if index % 2 == 0 else [window // 2, window // 2],
                                 stochastic_depth_prob=rate, norm_layer=norm, attn_layer=WindowAttentionSDPA)
            for index, rate in enumerate(drop_paths))
        self.downsample = PatchMerging(dim, norm_layer=norm) if downsample else None
        self.grad_checkpointing = grad_checkpointing

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = run_blocks(self.blocks, x, self.grad_checkpointing)
        return self.downsample(x) if self.downsample is not None else x


class SpatialSwin(nn.Module):
    """Swin over one 1-second clip: Conv3d 2x4x4 patch embedding + LayerNorm to 56x56 tokens, four stages, final
    norm, mean of the 7x7 last tokens. Input (N, 3, 2, 224, 224), output (N, 8 * embed_dim)."""

    def __init__(self, shape: SwinShape, img_size: int = 224, tube_size: int = FRAMES_PER_TOKEN,
                 drop_path: float = 0.1, grad_checkpointing: bool = False):
        super().__init__()
        embed_dim, depths = shape.embed_dim, shape.depths
        self.img_size, self.tube_size, self.grid = img_size, tube_size, img_size // shape.patch_size
        self.patch_embed = PatchEmbed3d(embed_dim, shape.patch_size, tube_size, norm=True)
        rates = drop_path_rates(drop_path, sum(depths))
        self.layers = nn.ModuleList()
        for index, (depth, heads) in enumerate(zip(depths, shape.num_heads)):
            first = sum(depths[:index])
            self.layers.append(SwinStage(embed_dim * 2 ** index, heads, shape.window, rates[first:first + depth],
                                         downsample=index < len(depths) - 1, grad_checkpointing=grad_checkpointing))
        self.dim = embed_dim * 2 ** (len(depths) - 1)
        self.norm = layer_norm(self.dim)
        init_vit_weights(self)  # timm's Swin init: trunc-normal(0.02) linear weights, zero biases

    @property
    def out_dim(self) -> int:
        return self.dim

    def forward(self, clips: torch.Tensor) -> torch.Tensor:
        """clips (N, 3, tube, H, W) -> (N, dim)."""
        x = self.patch_embed(clips)  # (N, 56 * 56, 96)
        x = x.view(x.shape[0], self.grid, self.grid, x.shape[-1])  # channels-last map, as torchvision's blocks take
        for layer in self.layers:
            x = layer(x)
        return self.norm(x).mean(dim=(1, 2))  # (N, 7, 7, 768) -> (N, 768)
