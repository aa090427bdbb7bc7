"""`VecEnv`: the interface `OnPolicyRunner` relies on (a `typing.Protocol`, so any class with these
members works; no inheritance needed).

Shapes: N = num_envs, O = num_obs, P = num_privileged_obs, A = num_actions.
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

import torch


@runtime_checkable
class VecEnv(Protocol):
    """A batch of N environments stepped together, tensors on `device`.

    `step` returns `extras` with:

    - ``extras["time_outs"]``: bool (N,), the episode ended by the time limit (a truncation, so the
      value of the last state is bootstrapped instead of treated as terminal).
    - ``extras["episode"]``: dict name -> 0-d tensor, the SUM over the envs that reset in this step
      of their episode's reward term per second; ``extras["episode_count"]``: 0-d tensor, how many
      envs reset. Logged as ``Episode/<name>`` = sum of the sums / sum of the counts over an
      iteration. (Without "episode_count" the values are taken as per-step means, weight 1 each.)
    - ``extras["nonfinite_resets"]`` (optional): 0-d long tensor, envs reset in this step because
      their physics, observations or rewards went non-finite (they return done=True, a finite
      reward and fresh observations); summed per iteration as ``Episode/nonfinite_resets``.

    `step` should not read device values back to the host (the runner's loop never does).
    """

    num_envs: int
    num_obs: int
    num_privileged_obs: int  # == num_obs when the critic has no extra terms
    num_actions: int
    max_episode_length: int  # [policy steps]
    device: torch.device
    episode_length_buf: torch.Tensor  # long (N,), steps since the last reset

    def get_observations(self) -> torch.Tensor:
        """Policy observation, (N, O)."""
        ...

    def get_privileged_observations(self) -> torch.Tensor | None:
        """Critic observation (N, P), or None when the critic sees the policy observation."""
        ...

    def reset(self) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Reset every env; returns (obs (N, O), privileged_obs (N, P) | None)."""
        ...

    def step(
        self, actions: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor, torch.Tensor, dict[str, Any]]:
        """Apply actions (N, A); returns (obs (N, O), privileged_obs (N, P) | None,
        rewards (N,), dones bool (N,), extras)."""
        ...
