"""`PPO`: proximal policy optimization (clipped surrogate, clipped value loss, entropy bonus,
KL-adaptive learning rate), as in rsl_rl. The loss math lives in small pure functions below.

Shapes: N envs, B mini-batch, O / P actor / critic obs, A actions.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from gym.rl.actor_critic import ActorCritic
from gym.rl.distributed import Distributed
from gym.rl.errors import NonFiniteError
from gym.rl.storage import RolloutStorage, Transition

MIN_LEARNING_RATE = 1e-5
MAX_LEARNING_RATE = 1e-2


def surrogate_loss(ratio: torch.Tensor, advantages: torch.Tensor, clip: float) -> torch.Tensor:
    """L = mean(max(-A * r, -A * clamp(r, 1 - clip, 1 + clip))), r = pi / pi_old, all (B,)."""
    unclipped = -advantages * ratio
    clipped = -advantages * ratio.clamp(1.0 - clip, 1.0 + clip)
    return torch.max(unclipped, clipped).mean()


def value_loss(
    values: torch.Tensor, old_values: torch.Tensor, returns: torch.Tensor, clip: float, use_clipped: bool
) -> torch.Tensor:
    """mean((V - R)^2), or with clipping mean(max((V - R)^2, (V_clip - R)^2)) where
    V_clip = V_old + clamp(V - V_old, -clip, clip). All (B,)."""
    loss = (values - returns).square()
    if use_clipped:
        values_clipped = old_values + (values - old_values).clamp(-clip, clip)
        loss = torch.max(loss, (values_clipped - returns).square())
    return loss.mean()


def gaussian_kl(
    mu_old: torch.Tensor, sigma_old: torch.Tensor, mu: torch.Tensor, sigma: torch.Tensor
) -> torch.Tensor:
    """KL(N_old || N) of diagonal Gaussians, summed over actions: (B, A) -> (B,)."""
    return torch.sum(
        torch.log(sigma / sigma_old) + (sigma_old.square() + (mu_old - mu).square()) / (2.0 * sigma.square())
        - 0.5,
        dim=-1,
    )


def adapt_learning_rate(learning_rate: float, kl: float, desired_kl: float) -> float:
    """rsl_rl rule: kl > 2 * desired -> lr / 1.5 (>= 1e-5); 0 < kl < desired / 2 -> lr * 1.5 (<= 1e-2).

    (kl == 0, e.g. the first mini-batch before any step, leaves the lr unchanged.)
    """
    if kl > 2.0 * desired_kl:
        return max(MIN_LEARNING_RATE, learning_rate / 1.5)
    if 0.0 < kl < desired_kl / 2.0:
        return min(MAX_LEARNING_RATE, learning_rate * 1.5)
    return learning_rate


def explained_variance(values: torch.Tensor, returns: torch.Tensor) -> float:
    """1 - Var(R - V) / Var(R): 1 = perfect value function, 0 = no better than a constant."""
    var_returns = returns.var()
    if var_returns == 0:
        return float("nan")
    return float(1.0 - (returns - values).var() / var_returns)


class PPO:
    """Owns the actor-critic's optimizer and the rollout storage.

    `dist` (several ranks): every mini-batch's gradients are averaged over the ranks in one flat
    all-reduce, which also averages the KL for the adaptive learning rate; advantages are normalized
    over the global batch. All ranks then take the same optimizer step. None: this process alone.
    """

    def __init__(
        self,
        actor_critic: ActorCritic,
        num_learning_epochs: int = 5,
        num_mini_batches: int = 4,
        clip_param: float = 0.2,
        gamma: float = 0.99,
        lam: float = 0.95,
        value_loss_coef: float = 1.0,
        entropy_coef: float = 0.0,
        learning_rate: float = 1e-3,
        max_grad_norm: float = 1.0,
        use_clipped_value_loss: bool = True,
        schedule: str = "fixed",
        desired_kl: float = 0.01,
        device: str | torch.device = "cpu",
        dist: Distributed | None = None,
    ) -> None:
        if schedule not in ("fixed", "adaptive"):
            raise ValueError(f"unknown schedule {schedule!r}; valid: 'fixed', 'adaptive'")
        self.device = torch.device(device)
        self.dist = dist if dist is not None else Distributed()
        self.actor_critic = actor_critic.to(self.device)
        self.optimizer = torch.optim.Adam(self.actor_critic.parameters(), lr=learning_rate)
        self.storage: RolloutStorage | None = None
        self.transition = Transition()
        self.num_learning_epochs = num_learning_epochs
        self.num_mini_batches = num_mini_batches
        self.clip_param = clip_param
        self.gamma = gamma
        self.lam = lam
        self.value_loss_coef = value_loss_coef
        self.entropy_coef = entropy_coef
        self.learning_rate = learning_rate
        self.max_grad_norm = max_grad_norm
        self.use_clipped_value_loss = use_clipped_value_loss
        self.schedule = schedule
        self.desired_kl = desired_kl
        # policy steps whose actions or values held NaN / Inf since the last pop (device counter)
        self.nonfinite_policy_steps = torch.zeros((), dtype=torch.long, device=self.device)

    def init_storage(
        self,
        num_envs: int,
        num_transitions_per_env: int,
        actor_obs_shape: tuple[int, ...],
        critic_obs_shape: tuple[int, ...] | None,
        actions_shape: tuple[int, ...],
    ) -> None:
        self.storage = RolloutStorage(
            num_envs, num_transitions_per_env, actor_obs_shape, critic_obs_shape, actions_shape, self.device
        )

    def set_learning_rate(self, learning_rate: float) -> None:
        """Set the lr in this object and in every optimizer param group."""
        self.learning_rate = learning_rate
        for group in self.optimizer.param_groups:
            group["lr"] = learning_rate

    def _storage(self) -> RolloutStorage:
        if self.storage is None:
            raise RuntimeError("call PPO.init_storage(...) first")
        return self.storage

    def act(self, obs: torch.Tensor, critic_obs: torch.Tensor) -> torch.Tensor:
        """Sample actions (N, A) for obs (N, O) and record the step's policy outputs.

        A step whose actions or values hold NaN / Inf increments `nonfinite_policy_steps` on the
        device (no host read here; the runner checks it once per iteration)."""
        ac = self.actor_critic
        t = self.transition
        t.actions = ac.act(obs).detach()
        t.values = ac.evaluate(critic_obs).detach()
        finite = torch.isfinite(t.actions).all() & torch.isfinite(t.values).all()
        self.nonfinite_policy_steps += (~finite).long()
        t.actions_log_prob = ac.get_actions_log_prob(t.actions).detach()
        t.action_mean = ac.action_mean.detach()
        t.action_sigma = ac.action_std.detach()
        t.observations = obs
        t.critic_observations = critic_obs
        return t.actions

    def process_env_step(self, rewards: torch.Tensor, dones: torch.Tensor, extras: dict[str, Any]) -> None:
        """Store the step's rewards (N,) and dones (N,); on a time-out (truncation) the value of the
        last state is bootstrapped: r <- r + gamma * V(s) * time_out."""
        t = self.transition
        t.rewards = rewards.to(self.device, torch.float32).clone()
        t.dones = dones.to(self.device).float()
        time_outs = extras.get("time_outs")
        if time_outs is not None:
            t.rewards += self.gamma * t.values * time_outs.to(self.device).float().reshape_as(t.rewards)
        self._storage().add_transition(t)
        t.clear()
        self.actor_critic.reset(dones)

    def compute_returns(self, last_critic_obs: torch.Tensor) -> None:
        """GAE with V(s_T) from the critic observation after the last step, (N, P)."""
        last_values = self.actor_critic.evaluate(last_critic_obs).detach()
        self._storage().compute_returns(last_values, self.gamma, self.lam, dist=self.dist)

    def update(self) -> dict[str, float]:
        """num_learning_epochs x num_mini_batches gradient steps; returns mean statistics.

        Raises `NonFiniteError` (before that mini-batch's optimizer step) when the loss or the
        gradient norm is NaN / Inf; earlier mini-batches of this update have changed the model.
        """
        storage = self._storage()
        ac = self.actor_critic
        sums = dict.fromkeys(("value_loss", "surrogate_loss", "entropy", "approx_kl", "clip_fraction"), 0.0)
        num_updates = 0
        distributed = self.dist.active
        for batch in storage.mini_batch_generator(self.num_mini_batches, self.num_learning_epochs):
            ac.update_distribution(batch.observations)
            log_prob = ac.get_actions_log_prob(batch.actions)
            values = ac.evaluate(batch.critic_observations)
            mu, sigma, entropy = ac.action_mean, ac.action_std, ac.entropy

            with torch.no_grad():
                kl_local = gaussian_kl(batch.action_mean, batch.action_sigma, mu, sigma).mean()
            if not distributed:
                kl = kl_local.item()
                self._adapt_learning_rate(kl)

            ratio = torch.exp(log_prob - batch.actions_log_prob)
            surrogate = surrogate_loss(ratio, batch.advantages, self.clip_param)
            v_loss = value_loss(
                values, batch.values, batch.returns, self.clip_param, self.use_clipped_value_loss
            )
            loss = surrogate + self.value_loss_coef * v_loss - self.entropy_coef * entropy.mean()

            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            peers_finite = True
            if distributed:  # ---- distributed: one all-reduce of [every gradient, KL, non-finite loss flag]
                local_bad = (~torch.isfinite(torch.stack([surrogate, v_loss, entropy.mean()]).detach())).any()
                kl, bad = self.dist.all_reduce_gradients(
                    ac.parameters(), torch.stack([kl_local, local_bad.to(kl_local.dtype)])).tolist()
                peers_finite = bad == 0.0  # averaged flag: > 0 when any rank's loss is NaN / Inf
                self._adapt_learning_rate(kl)  # from the KL averaged over ranks, before the step as above
            grad_norm = nn.utils.clip_grad_norm_(ac.parameters(), self.max_grad_norm)
            self._check_finite(num_updates, surrogate, v_loss, entropy.mean(), grad_norm, peers_finite)
            self.optimizer.step()

            sums["value_loss"] += v_loss.item()
            sums["surrogate_loss"] += surrogate.item()
            sums["entropy"] += entropy.mean().item()
            sums["approx_kl"] += kl
            sums["clip_fraction"] += ((ratio - 1.0).abs() > self.clip_param).float().mean().item()
            num_updates += 1

        stats = {k: v / max(num_updates, 1) for k, v in sums.items()}
        stats["explained_variance"] = explained_variance(storage.values, storage.returns)
        stats["learning_rate"] = self.learning_rate
        storage.clear()
        return stats

    def _adapt_learning_rate(self, kl: float) -> None:
        """The adaptive schedule's step (`adapt_learning_rate`); the fixed schedule keeps the lr."""
        if self.schedule == "adaptive" and self.desired_kl > 0.0:
            self.set_learning_rate(adapt_learning_rate(self.learning_rate, kl, self.desired_kl))

    def _check_finite(self, step: int, surrogate: torch.Tensor, v_loss: torch.Tensor,
                      entropy: torch.Tensor, grad_norm: torch.Tensor, peers_finite: bool = True) -> None:
        """Raise NonFiniteError naming the non-finite loss terms / gradient of mini-batch `step`
        (`peers_finite` False: another rank's loss was non-finite; every rank raises alike)."""
        values = torch.stack([surrogate.detach(), v_loss.detach(), entropy.detach(), grad_norm.detach()])
        if peers_finite and bool(torch.isfinite(values).all()):
            return
        named = dict(zip(("surrogate loss", "value loss", "entropy", "gradient norm"), values.tolist()))
        bad = ", ".join(f"{k} = {v}" for k, v in named.items() if not torch.isfinite(torch.tensor(v)))
        bad = bad or "the loss of another rank (see its error)"
        raise NonFiniteError(
            f"non-finite PPO update at mini-batch {step} (epoch {step // self.num_mini_batches}): {bad}. "
            "Likely causes: a learning rate that is too high (algorithm.learning_rate), returns or "
            "observations out of range (check reward scales and observation scales), or "
            "max_grad_norm disabled; the optimizer step was skipped"
        )
