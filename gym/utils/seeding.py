"""Seeding of every random number generator the trainer uses."""

from __future__ import annotations

import random

import numpy as np
import torch


def set_seed(seed: int) -> int:
    """Seed Python, NumPy and torch (CPU and CUDA) with `seed`; -1 draws a random seed. Returns it."""
    if seed == -1:
        seed = int(np.random.default_rng().integers(0, 10000))
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    torch.cuda.manual_seed_all(seed)
    return seed
