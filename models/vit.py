"""ViT building blocks (timm naming) and the spatial ViT that turns a 1-second clip into one token.

Pre-norm blocks with LayerNorm eps 1e-6, exact GELU MLP of ratio 4, packed qkv with bias, stochastic depth, and
attention through `F.scaled_dot_product_attention` (fused flash / memory-efficient kernels on GPU).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint
from torchvision.ops import StochasticDepth

from configs.architectures import ViTShape
from utils.rates import FRAMES_PER_TOKEN

LAYER_NORM_EPS = 1e-6  # every LayerNorm of the released models (tests/data/eztorch_checkpoint_keys.json)


def layer_norm(dim: int) -> nn.LayerNorm:
    return nn.LayerNorm(dim, eps=LAYER_NORM_EPS)


class Attention(nn.Module):
    """Multi-head self-attention with a packed qkv projection: rows [all q | all k | all v], heads contiguous."""

    def __init__(self, dim: int, num_heads: int, qkv_bias: bool = True):
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"attention width {dim} is not divisible by {num_heads} heads")
        self.num_heads = num_heads
        self.qkv = nn.Linear(dim, dim * 3, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, tokens, dim = x.shape
        qkv = self.qkv(x).reshape(batch, tokens, 3, self.num_heads, dim // self.num_heads)
        q, k, v = qkv.permute(2, 0, 3, 1, 4).unbind(0)  # each (B, heads, N, head_dim)
        x = F.scaled_dot_product_attention(q, k, v)  # scale head_dim ** -0.5
        return self.proj(x.transpose(1, 2).reshape(batch, tokens, dim))


class Mlp(nn.Module):
    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()  # exact (erf) form, as the official models
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


class Block(nn.Module):
    """Pre-norm transformer block: x + DropPath(Attn(LN(x))), then x + DropPath(MLP(LN(x)))."""

    def __init__(self, dim: int, num_heads: int, mlp_ratio: float = 4.0, drop_path: float = 0.0):
        super().__init__()
        self.norm1 = layer_norm(dim)
        self.attn = Attention(dim, num_heads)
        self.norm2 = layer_norm(dim)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))
        self.drop_path = StochasticDepth(drop_path, "row")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.drop_path(self.attn(self.norm1(x)))
        return x + self.drop_path(self.mlp(self.norm2(x)))


def drop_path_rates(drop_path: float, depth: int) -> list[float]:
    """Stochastic depth rising linearly from 0 at the first block to `drop_path` at the last."""
    return torch.linspace(0, drop_path, depth).tolist() if depth > 1 else [0.0] * depth


def run_blocks(blocks: nn.ModuleList, x: torch.Tensor, grad_checkpointing: bool) -> torch.Tensor:
    """Apply blocks in order; with activation checkpointing, recompute each block's activations in backward."""
    for block in blocks:
        if grad_checkpointing and torch.is_grad_enabled():
            x = checkpoint(block, x, use_reentrant=False)
        else:
            x = block(x)
    return x


class PatchEmbed3d(nn.Module):
    """Tubelet embedding: (N, 3, T, H, W) -> (N, T/t * H/p * W/p, dim) tokens, row-major within a frame.

    The parameter is a Conv3d with kernel = stride (the released checkpoints' layout), but the forward pass cuts the
    tubelets out with a reshape and applies the flattened kernel as one matrix product: the same arithmetic, without
    cuDNN's implicit 3-D convolution and its layout transposes, which took ~30% of a ViViT-T training step's GPU
    time on an H200 (benchmarks/bench_model.py --profile; docs/PERFORMANCE.md)."""

    def __init__(self, dim: int, patch_size: int, tube_size: int = FRAMES_PER_TOKEN, norm: bool = False):
        super().__init__()
        self.proj = nn.Conv3d(3, dim, kernel_size=(tube_size, patch_size, patch_size),
                              stride=(tube_size, patch_size, patch_size))
        self.norm = layer_norm(dim) if norm else nn.Identity()
        # eztorch's PatchEmbed.init_weights (which timm's ViT init calls): kaiming-normal on fan_in with the ReLU gain,
        # zero bias. std sqrt(2 / fan_in): 0.036 for ViT-T's 3x2x16x16 tubelets, 0.144 for Swin-T's 3x2x4x4.
        nn.init.kaiming_normal_(self.proj.weight, mode="fan_in", nonlinearity="relu")
        nn.init.zeros_(self.proj.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, t, h, w = x.shape
        tube, p, _ = self.proj.kernel_size
        if t % tube or h % p or w % p:
            raise ValueError(f"input (T={t}, H={h}, W={w}) does not split into {tube}x{p}x{p} tubelets")
        x = x.view(n, c, t // tube, tube, h // p, p, w // p, p)
        x = x.permute(0, 2, 4, 6, 1, 3, 5, 7).reshape(n, -1, c * tube * p * p)  # (N, tokens, C*t*p*p) as (C, t, kh, kw)
        x = F.linear(x, self.proj.weight.view(self.proj.out_channels, -1), self.proj.bias)
        return self.norm(x)  # (N, tokens, dim)


class SpatialViT(nn.Module):
    """ViT over one 1-second clip (2 frames): a tubelet embedding to 14x14 tokens, a class token, a learnable position
    embedding, pre-norm blocks and a final norm. Output: the normed class token, (N, dim)."""

    def __init__(self, shape: ViTShape, img_size: int = 224, tube_size: int = FRAMES_PER_TOKEN,
                 drop_path: float = 0.1, grad_checkpointing: bool = False):
        super().__init__()
        dim = shape.dim
        self.dim, self.img_size, self.tube_size = dim, img_size, tube_size
        self.num_patches = (img_size // shape.patch_size) ** 2
        self.patch_embed = PatchEmbed3d(dim, shape.patch_size, tube_size)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, self.num_patches + 1, dim))
        self.blocks = nn.ModuleList(Block(dim, shape.num_heads, drop_path=rate)
                                    for rate in drop_path_rates(drop_path, shape.depth))
        self.norm = layer_norm(dim)
        self.grad_checkpointing = grad_checkpointing
        init_vit_weights(self)
        nn.init.trunc_normal_(self.pos_embed, std=0.02)
        nn.init.normal_(self.cls_token, std=1e-6)  # timm 0.6.13's VisionTransformer.init_weights

    @property
    def out_dim(self) -> int:
        return self.dim

    def forward(self, clips: torch.Tensor) -> torch.Tensor:
        """clips (N, 3, tube, H, W) -> (N, dim)."""
        x = self.patch_embed(clips)  # (N, 196, dim)
        x = torch.cat([self.cls_token.expand(x.shape[0], -1, -1), x], dim=1) + self.pos_embed  # (N, 197, dim)
        x = self.norm(run_blocks(self.blocks, x, self.grad_checkpointing))
        return x[:, 0]


def init_vit_weights(module: nn.Module) -> None:
    """timm's ViT initialisation, as the official code: trunc-normal(0.02) linear weights, zero biases, unit norms.
    Convolutions are left alone: the patch embedding initialises itself (PatchEmbed3d)."""
    for sub in module.modules():
        if isinstance(sub, nn.Linear):
            nn.init.trunc_normal_(sub.weight, std=0.02)
            if sub.bias is not None:
                nn.init.zeros_(sub.bias)
        elif isinstance(sub, nn.LayerNorm):
            nn.init.ones_(sub.weight)
            nn.init.zeros_(sub.bias)
