"""AdamW with the official parameter groups, and applying per-step schedule values.

No weight decay on LayerNorm parameters, biases, position / time embeddings, class tokens and mask tokens (eztorch's
optimizer factory and its no-decay list). Everything else with requires_grad decays, Swin's 2-D relative-position
bias tables included: they are not in the official list.
"""

from __future__ import annotations

import torch


# Parameter names (last component) that never decay, besides every 0-d and 1-d tensor (biases, norm weights). timm's
# Swin lists its relative_position_bias_table under `no_weight_decay_keywords`, but the official optimizer does not
# read that list, so the tables decay there and here.
NO_WEIGHT_DECAY_SUFFIXES = ("pos_embed", "cls_token", "time_embed", "mask_token")


def skips_weight_decay(name: str, param: torch.Tensor) -> bool:
    return param.ndim <= 1 or name.rsplit(".", 1)[-1].endswith(NO_WEIGHT_DECAY_SUFFIXES)


def param_groups(model: torch.nn.Module, weight_decay: float) -> list[dict]:
    """Two AdamW groups over the trainable parameters: 'decay' and 'no_decay'. Frozen parameters are left out."""
    decay, no_decay = [], []
    decay_names, no_decay_names = [], []
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        if skips_weight_decay(name, param):
            no_decay.append(param)
            no_decay_names.append(name)
        else:
            decay.append(param)
            decay_names.append(name)
    groups = [
        {"name": "decay", "params": decay, "weight_decay": weight_decay, "apply_weight_decay": True,
         "param_names": decay_names},
        {"name": "no_decay", "params": no_decay, "weight_decay": 0.0, "apply_weight_decay": False,
         "param_names": no_decay_names},
    ]
    return [group for group in groups if group["params"]]


def build_adamw(model: torch.nn.Module, optim_cfg, fused: bool | None = None) -> torch.optim.AdamW:
    """AdamW over `param_groups`. The LR is set every step by `apply_schedules`; the value here is a placeholder 0."""
    groups = param_groups(model, optim_cfg.weight_decay)
    if not groups:
        raise ValueError("the model has no trainable parameter: nothing to optimise (is everything frozen?)")
    if fused is None:  # the fused CUDA kernel is the fastest AdamW on GPU; it does not exist on CPU
        fused = all(p.is_cuda for group in groups for p in group["params"])
    return torch.optim.AdamW(groups, lr=0.0, betas=tuple(optim_cfg.betas), eps=optim_cfg.eps, fused=fused)


def apply_schedules(optimizer: torch.optim.Optimizer, lr: float, weight_decay: float) -> None:
    """Set this step's LR on every group and weight decay on the groups that decay.

    Values are cast to Python floats: schedule arrays hold numpy scalars, which would end up in the optimizer's
    state_dict and make the checkpoint unloadable with weights_only=True.
    """
    for group in optimizer.param_groups:
        group["lr"] = float(lr)
        group["weight_decay"] = float(weight_decay) if group.get("apply_weight_decay", True) else 0.0
