"""Seeding of every random number generator the trainer uses."""

from __future__ import annotations

import random
from typing import Any

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


def get_rng_state() -> dict[str, Any]:
    """Every random stream the trainer draws from, as plain data that `torch.load(weights_only=True)`
    accepts: {"torch": uint8 tensor, "torch_cuda": [uint8 tensor per device] (empty while CUDA is unused),
    "numpy": {"keys": int64 tensor (624,), "pos", "has_gauss", "cached_gaussian"}, "python": [...]}."""
    _, keys, pos, has_gauss, cached = np.random.get_state()
    version, internal, gauss_next = random.getstate()
    return {
        "torch": torch.get_rng_state(),
        # only once CUDA is in use: reading the states would otherwise initialise it (a CPU run on a GPU box)
        "torch_cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_initialized() else [],
        "numpy": {"keys": torch.from_numpy(np.asarray(keys, dtype=np.int64)), "pos": int(pos),
                  "has_gauss": int(has_gauss), "cached_gaussian": float(cached)},
        "python": [version, list(internal), gauss_next],
    }


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore `get_rng_state()`. CUDA states are restored for as many devices as both have.

    Raises KeyError / TypeError / ValueError / RuntimeError on a malformed state.
    """
    torch.set_rng_state(state["torch"].cpu())
    cuda = state.get("torch_cuda") or []
    if cuda and torch.cuda.is_available():
        n = min(len(cuda), torch.cuda.device_count())
        for device, s in enumerate(cuda[:n]):
            torch.cuda.set_rng_state(s.cpu(), device)
    npy = state["numpy"]
    np.random.set_state(("MT19937", npy["keys"].cpu().numpy().astype(np.uint32), int(npy["pos"]),
                         int(npy["has_gauss"]), float(npy["cached_gaussian"])))
    version, internal, gauss_next = state["python"]
    random.setstate((int(version), tuple(int(v) for v in internal), gauss_next))
