"""`RolloutStorage`: one rollout of T = num_transitions_per_env steps of N envs, GAE, mini-batches.

Shapes: T steps, N envs, O obs, P privileged (critic) obs, A actions; batch = T * N.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import NamedTuple

import torch

from gym.rl.distributed import Distributed


@dataclass
class Transition:
    """One env step of N envs (filled by `PPO.act` / `PPO.process_env_step`)."""

    observations: torch.Tensor | None = None  # (N, O)
    critic_observations: torch.Tensor | None = None  # (N, P), or None: the critic sees observations
    actions: torch.Tensor | None = None  # (N, A)
    rewards: torch.Tensor | None = None  # (N,)
    dones: torch.Tensor | None = None  # (N,)
    values: torch.Tensor | None = None  # (N,)
    actions_log_prob: torch.Tensor | None = None  # (N,)
    action_mean: torch.Tensor | None = None  # (N, A)
    action_sigma: torch.Tensor | None = None  # (N, A)

    def clear(self) -> None:
        self.__init__()


class MiniBatch(NamedTuple):
    """A random subset of B flattened transitions; `indices` (B,) index the T * N batch."""

    observations: torch.Tensor  # (B, O)
    critic_observations: torch.Tensor  # (B, P)
    actions: torch.Tensor  # (B, A)
    values: torch.Tensor  # (B,) V at collection time
    advantages: torch.Tensor  # (B,) normalized over the whole batch
    returns: torch.Tensor  # (B,)
    actions_log_prob: torch.Tensor  # (B,) log pi_old(a|o)
    action_mean: torch.Tensor  # (B, A) mu_old
    action_sigma: torch.Tensor  # (B, A) sigma_old
    indices: torch.Tensor  # (B,) long


def compute_gae(
    rewards: torch.Tensor,
    values: torch.Tensor,
    dones: torch.Tensor,
    last_values: torch.Tensor,
    gamma: float,
    lam: float,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Generalized advantage estimation over (T, N) tensors; last_values (N,) = V(s_T).

    delta_t = r_t + gamma * (1 - d_t) * V(s_{t+1}) - V(s_t)
    A_t     = delta_t + gamma * lam * (1 - d_t) * A_{t+1}
    R_t     = A_t + V(s_t)
    Returns (returns (T, N), advantages (T, N)).
    """
    advantages = torch.zeros_like(values)
    next_advantage = torch.zeros_like(last_values)
    next_values = last_values
    for t in reversed(range(rewards.shape[0])):
        not_done = 1.0 - dones[t].float()
        delta = rewards[t] + gamma * not_done * next_values - values[t]
        next_advantage = delta + gamma * lam * not_done * next_advantage
        advantages[t] = next_advantage
        next_values = values[t]
    return advantages + values, advantages


class RolloutStorage:
    """Fixed-size buffers (T, N, ...) filled one `Transition` per step, then used for T * N samples."""

    def __init__(
        self,
        num_envs: int,
        num_transitions_per_env: int,
        obs_shape: Sequence[int],
        privileged_obs_shape: Sequence[int] | None,
        actions_shape: Sequence[int],
        device: str | torch.device = "cpu",
    ) -> None:
        self.num_envs = num_envs
        self.num_transitions_per_env = num_transitions_per_env
        self.device = torch.device(device)
        T, N = num_transitions_per_env, num_envs

        def zeros(*shape: int) -> torch.Tensor:
            return torch.zeros(T, N, *shape, device=self.device)

        self.observations = zeros(*obs_shape)
        self.privileged_observations = zeros(*privileged_obs_shape) if privileged_obs_shape else None
        self.actions = zeros(*actions_shape)
        self.rewards = zeros()
        self.dones = zeros()
        self.values = zeros()
        self.actions_log_prob = zeros()
        self.mu = zeros(*actions_shape)
        self.sigma = zeros(*actions_shape)
        self.returns = zeros()
        self.advantages = zeros()
        self.step = 0

    def add_transition(self, transition: Transition) -> None:
        """Store one step; raises RuntimeError once T transitions are stored (call `clear()`)."""
        if self.step >= self.num_transitions_per_env:
            raise RuntimeError(
                f"RolloutStorage overflow: already holds num_transitions_per_env="
                f"{self.num_transitions_per_env} transitions; call clear() after the update"
            )
        t = self.step
        self.observations[t].copy_(transition.observations)
        if self.privileged_observations is not None:
            critic_obs = transition.critic_observations
            self.privileged_observations[t].copy_(
                critic_obs if critic_obs is not None else transition.observations
            )
        self.actions[t].copy_(transition.actions)
        self.rewards[t].copy_(transition.rewards.reshape(self.num_envs))
        self.dones[t].copy_(transition.dones.reshape(self.num_envs))
        self.values[t].copy_(transition.values.reshape(self.num_envs))
        self.actions_log_prob[t].copy_(transition.actions_log_prob.reshape(self.num_envs))
        self.mu[t].copy_(transition.action_mean)
        self.sigma[t].copy_(transition.action_sigma)
        self.step += 1

    def clear(self) -> None:
        self.step = 0

    def compute_returns(self, last_values: torch.Tensor, gamma: float, lam: float,
                        dist: Distributed | None = None) -> None:
        """GAE (see `compute_gae`) with last_values (N,) = V(s_T); advantages are then normalized
        over the whole T * N batch: A <- (A - mean(A)) / (std(A) + 1e-8). With `dist` active, mean
        and (unbiased) std are those of the global batch of all ranks, as one process would compute."""
        if self.step != self.num_transitions_per_env:
            raise RuntimeError(
                f"compute_returns needs a full rollout: {self.step} of "
                f"{self.num_transitions_per_env} transitions stored"
            )
        returns, advantages = compute_gae(
            self.rewards, self.values, self.dones, last_values.reshape(self.num_envs), gamma, lam
        )
        self.returns.copy_(returns)
        if dist is not None and dist.active:  # distributed: statistics of all ranks' advantages
            n, mean, var = dist.merge_moments(advantages.numel(), advantages.mean(), advantages.var(unbiased=False))
            std = (var * n / (n - 1)).sqrt()
        else:
            mean, std = advantages.mean(), advantages.std()
        self.advantages.copy_((advantages - mean) / (std + 1e-8))

    def mini_batch_generator(self, num_mini_batches: int, num_epochs: int = 1) -> Iterator[MiniBatch]:
        """For each epoch, a fresh random permutation of the T * N transitions split into
        `num_mini_batches` near-equal parts: every transition is visited exactly once per epoch."""
        batch_size = self.num_envs * self.num_transitions_per_env
        if not 1 <= num_mini_batches <= batch_size:
            raise ValueError(f"num_mini_batches={num_mini_batches} must be in [1, batch size {batch_size}]")
        obs = self.observations.flatten(0, 1)
        privileged = self.privileged_observations
        critic = privileged.flatten(0, 1) if privileged is not None else obs
        flat = (
            obs, critic, self.actions.flatten(0, 1), self.values.flatten(), self.advantages.flatten(),
            self.returns.flatten(), self.actions_log_prob.flatten(), self.mu.flatten(0, 1),
            self.sigma.flatten(0, 1),
        )
        for _ in range(num_epochs):
            permutation = torch.randperm(batch_size, device=self.device)
            for idx in permutation.tensor_split(num_mini_batches):
                yield MiniBatch(*(x[idx] for x in flat), indices=idx)
