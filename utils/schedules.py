"""Per-step schedules (LR, weight decay, EMA momentum) as arrays indexed by the global step.

Schedules are functions of the step alone, so resuming needs nothing but the step. COMEDIAN steps every schedule per
iteration (docs/METHOD.md).
"""

from __future__ import annotations

import numpy as np

from utils.config import ConfigError


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


def build_schedules(optim, plan, momentum: tuple[float, float] | None = None) -> dict[str, np.ndarray]:
    """Every per-step schedule of a run (`plan`: utils/plan.py), each of shape (plan.total_steps,):
    - lr: linear warmup over optim.warmup_epochs from warmup_start_lr, then a cosine to min_lr, every value times
      plan.lr_scale (global batch / 256, the paper's rule);
    - wd: optim.weight_decay, constant, or a cosine to optim.weight_decay_end when one is given (0.0 included);
    - momentum (stage 1's teacher): a cosine from momentum[0] to momentum[1] over the whole run."""
    total_steps = plan.total_steps
    warmup = int(round(optim.warmup_epochs * plan.steps_per_epoch))
    if warmup > total_steps:  # a user's override (fewer epochs, a step cap), not a bug: named before anything runs
        raise ConfigError(f"optim.warmup_epochs={optim.warmup_epochs:g} ({warmup} steps) is longer than the run "
                          f"({total_steps} steps: run.epochs x {plan.steps_per_epoch} steps per epoch); lower "
                          f"optim.warmup_epochs or raise run.epochs")
    schedules = {
        "lr": warmup_cosine(plan.scaled_lr, optim.min_lr * plan.lr_scale, total_steps, warmup,
                            optim.warmup_start_lr * plan.lr_scale),
        "wd": warmup_cosine(optim.weight_decay, optim.weight_decay if optim.weight_decay_end is None
                            else optim.weight_decay_end, total_steps),
    }
    if momentum is not None:
        schedules["momentum"] = warmup_cosine(momentum[0], momentum[1], total_steps)
    return schedules
