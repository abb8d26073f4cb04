"""The losses of the three stages (docs/METHOD.md sections 2-4), computed in float32 whatever the autocast dtype.

SCE (Denize et al., WACV 2023): the student distribution over candidates, p = softmax(q . c / tau), is trained
towards w = lambda * onehot(positive) + (1 - lambda) * s, where s = softmax(k . c / tau_m) is the teacher's relational
distribution over the same candidates. With lambda = 1 this is InfoNCE.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

LARGE = 1e9  # subtracted from logits to remove candidates (the official value)


def sce_loss(q: torch.Tensor, k: torch.Tensor, queue: torch.Tensor, coeff: float, temp: float,
             temp_m: float) -> torch.Tensor:
    """Stage 1. q: (N, d) normalised student predictions; k: (N, d) normalised teacher keys of the other view;
    queue: (K, d) normalised past keys. Candidates: [the positive key, the queue]. The official `use_keys: False`
    form: the teacher's logit at the positive slot is 0 (not removed), which matters only when coeff < 1."""
    q, k, queue = q.float(), k.float(), queue.float()
    logits_q = torch.cat([(q * k).sum(1, keepdim=True), q @ queue.T], dim=1) / temp  # (N, 1 + K)
    logits_k = torch.cat([torch.zeros_like(logits_q[:, :1]), k @ queue.T], dim=1) / temp_m
    positive = F.one_hot(torch.zeros(len(q), dtype=torch.long, device=q.device), logits_q.shape[1]).float()
    target = F.normalize(coeff * positive + (1 - coeff) * logits_k.softmax(dim=1), p=1, dim=1)
    return -(target * logits_q.log_softmax(dim=1)).sum(dim=1).mean()


def sce_token_loss(q: torch.Tensor, k: torch.Tensor, tokens_per_window: int, queue: torch.Tensor, coeff: float,
                   temp: float, temp_m: float) -> torch.Tensor:
    """Stage 2 (official `use_keys: True, keep_aligned_positive: True, positive_radius: 0`).

    q: (B*T, d) normalised student tokens; k: (B*T, d) normalised bank rows aligned to them (window by window);
    queue: (K, d) past bank rows. For token i of window b, candidates are the T bank rows of window b and the queue;
    rows of the batch's other windows are removed. The positive is the aligned row; the teacher's relational
    distribution excludes it (it covers the other T - 1 rows of the window and the queue).
    """
    q, k, queue = q.float(), k.float(), queue.float()
    n = q.shape[0]
    window = torch.arange(n, device=q.device) // tokens_per_window
    other_window = window[:, None] != window[None, :]  # (N, N)
    aligned = torch.eye(n, dtype=torch.bool, device=q.device)
    logits_q = torch.cat([(q @ k.T).masked_fill(other_window, -LARGE), q @ queue.T], dim=1) / temp
    logits_k = torch.cat([(k @ k.T).masked_fill(other_window | aligned, -LARGE), k @ queue.T], dim=1) / temp_m
    positive = torch.cat([aligned.float(), torch.zeros(n, queue.shape[0], device=q.device)], dim=1)
    target = F.normalize(coeff * positive + (1 - coeff) * logits_k.softmax(dim=1), p=1, dim=1)
    log_q = logits_q.log_softmax(dim=1)
    keep = torch.cat([~other_window, torch.ones(n, queue.shape[0], dtype=torch.bool, device=q.device)], dim=1)
    return -(target * torch.where(keep, log_q, 0.0)).sum(dim=1).mean()


def mixup_bce(logits: torch.Tensor, targets: torch.Tensor, permutation: torch.Tensor | None,
              lam: torch.Tensor | None) -> torch.Tensor:
    """Stage 3. logits, targets: (B, T, C). Without mixup, the mean BCE over every logit. With mixup (inputs mixed as
    lam x + (1 - lam) x[perm]), sum_b [lam_b BCE(y_b) + (1 - lam_b) BCE(y_perm(b))] / (B T C)."""
    logits = logits.float()
    if permutation is None:
        return F.binary_cross_entropy_with_logits(logits, targets)
    own = F.binary_cross_entropy_with_logits(logits, targets, reduction="none").mean(dim=(1, 2))
    mixed = F.binary_cross_entropy_with_logits(logits, targets[permutation], reduction="none").mean(dim=(1, 2))
    return (lam * own + (1 - lam) * mixed).mean()
