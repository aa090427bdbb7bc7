"""`EmpiricalNormalization`: running mean / variance of observations, y = (x - mean) / (std + eps).

The statistics are merged batch by batch with the parallel (Chan et al.) update, so after batches
x_1..x_k they equal the population mean / variance of all samples seen.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from gym.rl.distributed import Distributed, combine_moments


class EmpiricalNormalization(nn.Module):
    """Normalize (B, *shape) inputs with running statistics; updated only in training mode.

    Args:
        shape: feature shape (int or tuple), e.g. num_obs.
        eps: added to the std in the denominator.
        until: stop updating once this many samples have been seen (None = never stop).
        dist: with several ranks, every update merges the batch statistics of all ranks first, so
            every rank holds the same statistics (those of all ranks' samples); None: this process only.
    """

    def __init__(self, shape: int | Sequence[int], eps: float = 1e-2, until: int | None = None,
                 dist: Distributed | None = None) -> None:
        super().__init__()
        shape = (shape,) if isinstance(shape, int) else tuple(shape)
        self.eps = eps
        self.until = until
        self.dist = dist
        self.register_buffer("_mean", torch.zeros(1, *shape))
        self.register_buffer("_var", torch.ones(1, *shape))
        self.register_buffer("_std", torch.ones(1, *shape))
        self.register_buffer("count", torch.tensor(0, dtype=torch.long))

    @property
    def mean(self) -> torch.Tensor:
        """Running mean, (*shape)."""
        return self._mean.squeeze(0).clone()

    @property
    def std(self) -> torch.Tensor:
        """Running (population) standard deviation, (*shape)."""
        return self._std.squeeze(0).clone()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, *shape) -> (B, *shape); in training mode first folds x into the statistics."""
        if self.training:
            self.update(x)
        return (x - self._mean) / (self._std + self.eps)

    def inverse(self, y: torch.Tensor) -> torch.Tensor:
        """Undo `forward`: x = y * (std + eps) + mean."""
        return y * (self._std + self.eps) + self._mean

    @torch.no_grad()
    def update(self, x: torch.Tensor) -> None:
        """Merge batch statistics (n_b, mean_b, var_b) of x (B, *shape) into (n_a, mean_a, var_a)
        with `combine_moments` (the parallel formula).

        With `dist` active, (n_b, mean_b, var_b) are first those of all ranks' batches together.
        Once `count` >= `until` the statistics stay as they are. That test is a device-side
        `torch.where`, so an update never reads a value back to the host (no CUDA sync per step).
        """
        n_b = x.shape[0]
        if n_b == 0:
            return
        x = x.detach().to(self._mean.dtype)
        mean_b = x.mean(dim=0, keepdim=True)
        var_b = x.var(dim=0, unbiased=False, keepdim=True)
        if self.dist is not None and self.dist.active:  # distributed: the batch of all ranks (one all-gather)
            n_all, mean_b, var_b = self.dist.merge_moments(n_b, mean_b, var_b)
            n_b = n_all.round().long()
        _, mean, var = combine_moments(self.count.to(self._mean.dtype), self._mean, self._var, n_b, mean_b, var_b)
        std = var.sqrt()
        if self.until is not None:
            active = self.count < self.until  # 0-dim bool on the device
            mean = torch.where(active, mean, self._mean)
            var = torch.where(active, var, self._var)
            std = torch.where(active, std, self._std)
            n_b = active.long() * n_b
        # in-place copies keep the buffers ordinary tensors even under torch.inference_mode()
        self._mean.copy_(mean)
        self._var.copy_(var)
        self._std.copy_(std)
        self.count.add_(n_b)
