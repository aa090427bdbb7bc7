"""`ActorCritic`: MLP actor (Gaussian policy with a learnable per-action log-std) and MLP critic.

Shapes: B = batch, O = num_actor_obs, C = num_critic_obs, A = num_actions.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn
from torch.distributions import Normal

ACTIVATIONS: dict[str, type[nn.Module]] = {
    "elu": nn.ELU,
    "relu": nn.ReLU,
    "selu": nn.SELU,
    "tanh": nn.Tanh,
    "leaky_relu": nn.LeakyReLU,
    "sigmoid": nn.Sigmoid,
    "gelu": nn.GELU,
    "silu": nn.SiLU,
}


def get_activation(name: str) -> nn.Module:
    """A fresh activation module by name; ValueError listing the valid names otherwise."""
    try:
        return ACTIVATIONS[name.lower()]()
    except (KeyError, AttributeError):
        raise ValueError(
            f"unknown activation {name!r}; valid activations: {', '.join(sorted(ACTIVATIONS))}"
        ) from None


def mlp(in_dim: int, hidden_dims: Sequence[int], out_dim: int, activation: str) -> nn.Sequential:
    """Linear -> act -> ... -> Linear (no activation after the output layer)."""
    dims = [in_dim, *hidden_dims]
    layers: list[nn.Module] = []
    for d_in, d_out in zip(dims[:-1], dims[1:]):
        layers += [nn.Linear(d_in, d_out), get_activation(activation)]
    layers.append(nn.Linear(dims[-1], out_dim))
    return nn.Sequential(*layers)


class ActorCritic(nn.Module):
    """pi(a|o) = N(mu(o), diag(sigma^2)) with sigma = exp(log_std) state independent; V(c) an MLP."""

    is_recurrent = False

    def __init__(
        self,
        num_actor_obs: int,
        num_critic_obs: int,
        num_actions: int,
        actor_hidden_dims: Sequence[int] = (256, 256, 256),
        critic_hidden_dims: Sequence[int] = (256, 256, 256),
        activation: str = "elu",
        init_noise_std: float = 1.0,
        tanh_mean: bool = False,
    ) -> None:
        super().__init__()
        if init_noise_std <= 0.0:
            raise ValueError(f"init_noise_std must be > 0, got {init_noise_std}")
        get_activation(activation)  # fail early on a bad name
        self.num_actor_obs = num_actor_obs
        self.num_critic_obs = num_critic_obs
        self.num_actions = num_actions
        self.tanh_mean = tanh_mean
        self.actor = mlp(num_actor_obs, actor_hidden_dims, num_actions, activation)
        self.critic = mlp(num_critic_obs, critic_hidden_dims, 1, activation)
        self.log_std = nn.Parameter(torch.full((num_actions,), math.log(init_noise_std)))
        self.distribution: Normal | None = None

    def reset(self, dones: torch.Tensor | None = None) -> None:
        """No hidden state (kept for interface compatibility with recurrent policies)."""

    def _mean(self, observations: torch.Tensor) -> torch.Tensor:
        mean = self.actor(observations)
        return torch.tanh(mean) if self.tanh_mean else mean

    def update_distribution(self, observations: torch.Tensor) -> None:
        """Set pi(.|o) for observations (B, O)."""
        mean = self._mean(observations)
        self.distribution = Normal(mean, self.log_std.exp().expand_as(mean), validate_args=False)

    def _dist(self) -> Normal:
        if self.distribution is None:
            raise RuntimeError("call act(obs) or update_distribution(obs) first")
        return self.distribution

    def act(self, observations: torch.Tensor) -> torch.Tensor:
        """Sample a ~ pi(.|o): (B, O) -> (B, A)."""
        self.update_distribution(observations)
        return self._dist().sample()

    def get_actions_log_prob(self, actions: torch.Tensor) -> torch.Tensor:
        """log pi(a|o) summed over action dims: (B, A) -> (B,)."""
        return self._dist().log_prob(actions).sum(dim=-1)

    def act_inference(self, observations: torch.Tensor) -> torch.Tensor:
        """Deterministic action mu(o): (B, O) -> (B, A)."""
        return self._mean(observations)

    def evaluate(self, critic_observations: torch.Tensor) -> torch.Tensor:
        """V(c): (B, C) -> (B,)."""
        return self.critic(critic_observations).squeeze(-1)

    @property
    def action_mean(self) -> torch.Tensor:
        """mu of the current distribution, (B, A)."""
        return self._dist().mean

    @property
    def action_std(self) -> torch.Tensor:
        """sigma of the current distribution, (B, A)."""
        return self._dist().stddev

    @property
    def entropy(self) -> torch.Tensor:
        """Entropy of the current distribution summed over action dims, (B,)."""
        return self._dist().entropy().sum(dim=-1)
