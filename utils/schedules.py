"""Per-step schedules (LR, weight decay, EMA momentum) as arrays indexed by the global step.

Schedules are functions of the step alone, so resuming needs nothing but the step. COMEDIAN steps every schedule per
iteration (docs/METHOD.md).
"""

from __future__ import annotations

import numpy as np

from utils.config import ConfigError


def scaled_lr(base_lr: float, global_batch_size: int) -> float:
    """The paper's linear scaling rule: base x global_batch / 256 (also applied to eta_min and warmup_start_lr)."""
    return base_lr * global_batch_size / 256


def warmup_cosine(base: float, final: float, total_steps: int, warmup_steps: int = 0,
                  warmup_start: float = 0.0) -> np.ndarray:
    """Linear warmup from `warmup_start` to `base`, then a cosine from `base` to `final`; shape (total_steps,).

    step 0 = warmup_start (or base without warmup), step warmup_steps = base, step total_steps - 1 = final exactly.
    The EMA momentum schedule of stage 1 is warmup_cosine(0.99, 1.0, T): m(t) = 1 - 0.01 (cos(pi t / (T-1)) + 1) / 2.
    """
    if total_steps <= 0:
        raise ValueError(f"a schedule needs at least one step, got total_steps={total_steps}")
    if not 0 <= warmup_steps <= total_steps:
        raise ValueError(f"warmup_steps={warmup_steps} must lie in [0, total_steps={total_steps}]")
    warmup = warmup_start + (base - warmup_start) * np.arange(warmup_steps) / max(warmup_steps, 1)
    cosine_steps = total_steps - warmup_steps
    progress = np.arange(cosine_steps) / max(cosine_steps - 1, 1)
    cosine = final + 0.5 * (base - final) * (1.0 + np.cos(np.pi * progress))
    return np.concatenate([warmup, cosine]).astype(np.float64)


def build_schedules(optim, global_batch_size: int, steps_per_epoch: int, total_steps: int,
                    momentum: tuple[float, float] | None = None) -> dict[str, np.ndarray]:
    """Every per-step schedule of a run, each of shape (total_steps,):
    - lr: linear warmup over optim.warmup_epochs from warmup_start_lr, then a cosine to min_lr, every value scaled by
      global_batch / 256;
    - wd: optim.weight_decay, constant, or a cosine to optim.weight_decay_end when one is given (0.0 included);
    - momentum (stage 1's teacher): a cosine from momentum[0] to momentum[1] over the whole run."""
    warmup = int(round(optim.warmup_epochs * steps_per_epoch))
    if warmup > total_steps:  # a user's override (fewer epochs, a step cap), not a bug: named before anything runs
        raise ConfigError(f"optim.warmup_epochs={optim.warmup_epochs:g} ({warmup} steps) is longer than the run "
                          f"({total_steps} steps: run.epochs x {steps_per_epoch} steps per epoch); lower "
                          f"optim.warmup_epochs or raise run.epochs")
    schedules = {
        "lr": warmup_cosine(scaled_lr(optim.lr, global_batch_size), scaled_lr(optim.min_lr, global_batch_size),
                            total_steps, warmup, scaled_lr(optim.warmup_start_lr, global_batch_size)),
        "wd": warmup_cosine(optim.weight_decay, optim.weight_decay if optim.weight_decay_end is None
                            else optim.weight_decay_end, total_steps),
    }
    if momentum is not None:
        schedules["momentum"] = warmup_cosine(momentum[0], momentum[1], total_steps)
    return schedules
