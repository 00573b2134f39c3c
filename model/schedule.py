"""Learning-rate schedules: functions of the step number."""

from __future__ import annotations

import math


def one_cycle(step: int, total: int, max_lr: float, warmup: float = 0.2, floor: float = 1e-3):
    """Return the one-cycle rate: linear warm-up to `max_lr`, then cosine down to ~0.

    `warmup` is the fraction of `total` steps spent rising from `max_lr * 0.04`;
    the rate ends at `max_lr * floor`.
    """
    rise = max(1, int(total * warmup))
    if step < rise:
        return max_lr * (0.04 + 0.96 * step / rise)
    progress = min(1.0, (step - rise) / max(1, total - rise))
    return max_lr * (floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * progress)))


def cosine(step: int, total: int, max_lr: float, floor: float = 1e-3) -> float:
    """Return the cosine-annealed rate from `max_lr` down to `max_lr * floor`."""
    progress = min(1.0, step / max(1, total))
    return max_lr * (floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * progress)))
