"""The deployable policy (`InferencePolicy`: normalizer + actor) and the torch thread-count switch."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import nn

from gym.rl.actor_critic import ActorCritic


class InferencePolicy(nn.Module):
    """obs (N, O) -> deterministic actions (N, A), observation normalizer applied, no gradients."""

    def __init__(self, normalizer: nn.Module, actor_critic: ActorCritic) -> None:
        super().__init__()
        self.normalizer = normalizer
        self.actor_critic = actor_critic

    @torch.no_grad()
    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return self.actor_critic.act_inference(self.normalizer(obs))


@contextmanager
def torch_threads(n: int) -> Iterator[None]:
    """Run the block with `n` torch intra-op threads (n <= 0: unchanged)."""
    if n <= 0:
        yield
        return
    previous = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(previous)
