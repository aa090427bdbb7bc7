"""`OnPolicyRunner`: collects rollouts from a `VecEnv`, trains PPO, logs, saves / loads checkpoints."""

from __future__ import annotations

import copy
import random
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch
from torch import nn

from gym.envs.base.legged_robot_config import LeggedRobotCfgPPO
from gym.rl.actor_critic import ActorCritic
from gym.rl.checkpoint import CheckpointError, atomic_save, read_checkpoint, state_dict_problems
from gym.rl.logger import EpisodeStats, LoggerFn, MetricsLogger
from gym.rl.normalizer import EmpiricalNormalization
from gym.rl.ppo import PPO
from gym.rl.vec_env import VecEnv

NORMALIZER_UNTIL = int(1e8)  # samples after which the observation statistics freeze (rsl_rl)


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


class OnPolicyRunner:
    """PPO training loop for `env` configured by `train_cfg` (seed, policy, algorithm, runner)."""

    def __init__(
        self, env: VecEnv, train_cfg: LeggedRobotCfgPPO, log_dir: str | Path | None, device: str = "cpu"
    ) -> None:
        self.env = env
        self.cfg = train_cfg
        self.device = torch.device(device)
        self.log_dir = Path(log_dir) if log_dir is not None else None
        random.seed(train_cfg.seed)
        torch.manual_seed(train_cfg.seed)

        pol, alg, run = train_cfg.policy, train_cfg.algorithm, train_cfg.runner
        num_critic_obs = env.num_privileged_obs or env.num_obs
        actor_critic = ActorCritic(
            env.num_obs, num_critic_obs, env.num_actions,
            actor_hidden_dims=pol.actor_hidden_dims, critic_hidden_dims=pol.critic_hidden_dims,
            activation=pol.activation, init_noise_std=pol.init_noise_std, tanh_mean=pol.tanh_mean,
        )
        self.alg = PPO(
            actor_critic,
            num_learning_epochs=alg.num_learning_epochs, num_mini_batches=alg.num_mini_batches,
            clip_param=alg.clip_param, gamma=alg.gamma, lam=alg.lam, value_loss_coef=alg.value_loss_coef,
            entropy_coef=alg.entropy_coef, learning_rate=alg.learning_rate, max_grad_norm=alg.max_grad_norm,
            use_clipped_value_loss=alg.use_clipped_value_loss, schedule=alg.schedule,
            desired_kl=alg.desired_kl, device=self.device,
        )
        self.num_steps_per_env = int(run.num_steps_per_env)
        # Small per-step env ops on the CPU are slower with several threads (OpenMP barriers, and the
        # physics worker threads want the cores); learning keeps torch's full thread count.
        self.collection_threads = int(run.collection_threads) if env.device.type == "cpu" else 0
        self.save_interval = int(run.save_interval)
        if self.num_steps_per_env < 1 or self.save_interval < 1:
            raise ValueError(
                f"runner.num_steps_per_env ({self.num_steps_per_env}) and runner.save_interval "
                f"({self.save_interval}) must be >= 1"
            )
        self.empirical_normalization = bool(run.empirical_normalization)
        if self.empirical_normalization:
            self.obs_normalizer: nn.Module = EmpiricalNormalization(env.num_obs, until=NORMALIZER_UNTIL)
            self.critic_obs_normalizer: nn.Module = EmpiricalNormalization(
                num_critic_obs, until=NORMALIZER_UNTIL
            )
        else:
            self.obs_normalizer, self.critic_obs_normalizer = nn.Identity(), nn.Identity()
        self.obs_normalizer.to(self.device)
        self.critic_obs_normalizer.to(self.device)
        self.alg.init_storage(
            env.num_envs, self.num_steps_per_env, (env.num_obs,), (num_critic_obs,), (env.num_actions,)
        )
        self.current_learning_iteration = 0
        self.logger = MetricsLogger(self.log_dir)

    # ------------------------------------------------------------------ training
    def add_logger(self, fn: LoggerFn) -> None:
        """Call `fn(metrics: dict[str, float], iteration: int)` after every learning iteration."""
        self.logger.add_logger(fn)

    def _observations(
        self, obs: torch.Tensor, privileged_obs: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Raw env observations -> normalized (actor (N, O), critic (N, P)) on the runner's device."""
        obs = obs.to(self.device)
        critic_obs = privileged_obs.to(self.device) if privileged_obs is not None else obs
        return self.obs_normalizer(obs), self.critic_obs_normalizer(critic_obs)

    def learn(self, num_learning_iterations: int, init_at_random_ep_len: bool = False) -> None:
        """Run `num_learning_iterations` iterations of (rollout, PPO update), continuing the count
        from `current_learning_iteration`; saves model_<it>.pt every save_interval and at the end."""
        env = self.env
        if init_at_random_ep_len:
            env.episode_length_buf = torch.randint_like(
                env.episode_length_buf, high=max(int(env.max_episode_length), 1)
            )
        self.train_mode()
        obs, critic_obs = self._observations(env.get_observations(), env.get_privileged_observations())
        stats = EpisodeStats(env.num_envs, self.device)
        start = self.current_learning_iteration
        end = start + num_learning_iterations
        steps_per_iteration = self.num_steps_per_env * env.num_envs
        self.logger.start(start, end)
        learn_start = time.perf_counter()
        try:
            for it in range(start, end):
                t0 = time.perf_counter()
                with torch.inference_mode(), torch_threads(self.collection_threads):
                    for _ in range(self.num_steps_per_env):
                        actions = self.alg.act(obs, critic_obs)
                        raw_obs, raw_priv, rewards, dones, extras = env.step(actions.to(env.device))
                        obs, critic_obs = self._observations(raw_obs, raw_priv)
                        rewards, dones = rewards.to(self.device), dones.to(self.device)
                        self.alg.process_env_step(rewards, dones, extras)
                        stats.step(rewards, dones, extras)
                    self.alg.compute_returns(critic_obs)
                t1 = time.perf_counter()
                losses = self.alg.update()
                t2 = time.perf_counter()

                self.current_learning_iteration = it + 1
                metrics = stats.pop_metrics()
                metrics.update({
                    "Perf/fps": steps_per_iteration / (t2 - t0),
                    "Perf/collection_time": t1 - t0,
                    "Perf/learning_time": t2 - t1,
                    "Perf/total_timesteps": float(steps_per_iteration * (it + 1)),
                    "Perf/wall_time": t2 - learn_start,  # [s] since this learn() call began
                })
                metrics.update({f"Loss/{k}": v for k, v in losses.items()})
                metrics["Policy/mean_action_std"] = float(self.alg.actor_critic.log_std.detach().exp().mean())
                self.logger.log(metrics, self.current_learning_iteration)
                if self.log_dir is not None and self.current_learning_iteration % self.save_interval == 0:
                    self.save(self.log_dir / f"model_{self.current_learning_iteration}.pt")
        finally:
            self.logger.close()
        if self.log_dir is not None and end % self.save_interval != 0 and num_learning_iterations > 0:
            self.save(self.log_dir / f"model_{end}.pt")

    def train_mode(self) -> None:
        self.alg.actor_critic.train()
        self.obs_normalizer.train()
        self.critic_obs_normalizer.train()

    def eval_mode(self) -> None:
        self.alg.actor_critic.eval()
        self.obs_normalizer.eval()
        self.critic_obs_normalizer.eval()

    def get_inference_policy(self, device: str | torch.device | None = None) -> InferencePolicy:
        """Callable obs (N, O) -> mean actions (N, A), normalizer applied; switches to eval mode.
        With a `device` other than the runner's, a copy living on that device is returned."""
        self.eval_mode()
        policy = InferencePolicy(self.obs_normalizer, self.alg.actor_critic)
        if device is not None and torch.device(device) != self.device:
            policy = copy.deepcopy(policy).to(device)
        return policy

    # ------------------------------------------------------------------ checkpoints
    def save(self, path: str | Path, infos: dict[str, Any] | None = None) -> Path:
        """Write the checkpoint atomically (temp file + fsync + os.replace); returns the path."""
        checkpoint = {
            "model_state_dict": self.alg.actor_critic.state_dict(),
            "optimizer_state_dict": self.alg.optimizer.state_dict(),
            "iter": self.current_learning_iteration,
            "learning_rate": self.alg.learning_rate,
            "obs_norm_state_dict": self.obs_normalizer.state_dict(),
            "critic_obs_norm_state_dict": self.critic_obs_normalizer.state_dict(),
            "infos": infos,
        }
        return atomic_save(checkpoint, path)

    def load(self, path: str | Path, load_optimizer: bool = True) -> dict[str, Any] | None:
        """Restore model, normalizers, iteration and (with load_optimizer) the optimizer state and
        learning rate; returns the checkpoint's infos. Raises CheckpointError on any problem."""
        path = Path(path)
        ckpt = read_checkpoint(path, map_location=self.device)
        problems = self._dims_problems(ckpt["model_state_dict"])
        parts = [
            ("model_state_dict", self.alg.actor_critic),
            ("obs_norm_state_dict", self.obs_normalizer),
            ("critic_obs_norm_state_dict", self.critic_obs_normalizer),
        ]
        for key, module in parts:
            problems += state_dict_problems(key, module.state_dict(), ckpt[key])
        if problems:
            raise CheckpointError(f"checkpoint {path} does not fit this env / config: " + "; ".join(problems))
        try:
            for key, module in parts:
                module.load_state_dict(ckpt[key])
            if load_optimizer:
                self.alg.optimizer.load_state_dict(ckpt["optimizer_state_dict"])
                self.alg.set_learning_rate(float(ckpt["learning_rate"]))
            self.current_learning_iteration = int(ckpt["iter"])
        except (RuntimeError, ValueError, KeyError, TypeError) as e:
            raise CheckpointError(f"checkpoint {path}: cannot be restored ({type(e).__name__}: {e})") from e
        return ckpt["infos"]

    def _dims_problems(self, model_state: Any) -> list[str]:
        """Plain-words mismatches of num_obs / num_privileged_obs / num_actions."""
        if not isinstance(model_state, dict):
            return []
        ac = self.alg.actor_critic
        checks = [
            ("actor.0.weight", 1, ac.num_actor_obs, "the policy input (num_obs)"),
            ("critic.0.weight", 1, ac.num_critic_obs, "the critic input (num_privileged_obs)"),
            ("log_std", 0, ac.num_actions, "the action size (num_actions)"),
        ]
        problems = []
        for key, dim, here, what in checks:
            tensor = model_state.get(key)
            if isinstance(tensor, torch.Tensor) and tensor.dim() > dim and tensor.shape[dim] != here:
                problems.append(f"{what} is {tensor.shape[dim]} in the checkpoint but {here} in the env")
        return problems
