"""`OnPolicyRunner`: collects rollouts from a `VecEnv`, trains PPO, logs, saves / loads checkpoints."""

from __future__ import annotations

import copy
import random
import signal
import sys
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn

from gym.envs.base.legged_robot_config import LeggedRobotCfgPPO
from gym.physics.base import PhysicsError
from gym.rl.actor_critic import ActorCritic
from gym.rl.checkpoint import (
    CheckpointError,
    CheckpointWriteError,
    env_info,
    env_info_problems,
    policy_dims_problems,
    read_checkpoint,
    save_finite_checkpoint,
    state_dict_problems,
)
from gym.rl.distributed import Distributed, to_cpu
from gym.rl.errors import NonFiniteError, NonFiniteResetsError, PhysicsBufferError, TrainingInterrupted
from gym.rl.inference import InferencePolicy, torch_threads
from gym.rl.logger import EpisodeStats, LoggerFn, MetricsLogger
from gym.rl.normalizer import EmpiricalNormalization
from gym.rl.ppo import PPO
from gym.rl.signals import GracefulStop, resume_line
from gym.rl.vec_env import VecEnv
from gym.utils.seeding import get_rng_state, set_rng_state, set_seed

NORMALIZER_UNTIL = int(1e8)  # samples after which the observation statistics freeze (rsl_rl)
MAX_NONFINITE_FRACTION = 0.25  # default of runner.max_nonfinite_fraction
# checked for NaN / Inf before any save
_SAVED_KEYS = ("model_state_dict", "optimizer_state_dict", "obs_norm_state_dict", "critic_obs_norm_state_dict",
               "learning_rate")


class OnPolicyRunner:
    """PPO training loop for `env` configured by `train_cfg` (seed, policy, algorithm, runner).

    Set `task_name` (train.py does) so that an interrupted run prints the exact train.py command
    that resumes it, or `resume_hint`, a format string with {checkpoint}, {run} and {iteration}.

    With `dist` (several ranks, gym/rl/distributed.py) each rank steps its own env with seed
    train_cfg.seed + rank; `learn` starts every rank from rank 0's state; only rank 0 logs and
    writes files (`log_dir` is ignored on the others); stop and failure decisions are agreed.
    """

    def __init__(self, env: VecEnv, train_cfg: LeggedRobotCfgPPO, log_dir: str | Path | None,
                 device: str = "cpu", dist: Distributed | None = None) -> None:
        self.env = env
        self.cfg = train_cfg
        self.device = torch.device(device)
        self.dist = dist if dist is not None else Distributed()
        self.log_dir = Path(log_dir) if log_dir is not None and self.dist.is_main else None
        random.seed(train_cfg.seed + self.dist.rank)
        torch.manual_seed(train_cfg.seed + self.dist.rank)

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
            desired_kl=alg.desired_kl, device=self.device, dist=self.dist,
        )
        self.num_steps_per_env = int(run.num_steps_per_env)
        # Small per-step env ops on the CPU are slower with several threads (OpenMP barriers, and the
        # physics worker threads want the cores); learning keeps torch's full thread count.
        self.collection_threads = int(run.collection_threads) if env.device.type == "cpu" else 0
        self.save_interval = int(run.save_interval)
        budget = getattr(run, "max_wall_time_min", None)
        self.max_wall_time_s = None if budget is None else 60.0 * float(budget)
        if self.num_steps_per_env < 1 or self.save_interval < 1:
            raise ValueError(
                f"runner.num_steps_per_env ({self.num_steps_per_env}) and runner.save_interval "
                f"({self.save_interval}) must be >= 1"
            )
        self.max_nonfinite_fraction = float(getattr(run, "max_nonfinite_fraction", MAX_NONFINITE_FRACTION))
        self.empirical_normalization = bool(run.empirical_normalization)
        if self.empirical_normalization:
            self.obs_normalizer: nn.Module = EmpiricalNormalization(env.num_obs, until=NORMALIZER_UNTIL,
                                                                    dist=self.dist)
            self.critic_obs_normalizer: nn.Module = EmpiricalNormalization(
                num_critic_obs, until=NORMALIZER_UNTIL, dist=self.dist)
        else:
            self.obs_normalizer, self.critic_obs_normalizer = nn.Identity(), nn.Identity()
        self.obs_normalizer.to(self.device)
        self.critic_obs_normalizer.to(self.device)
        self.alg.init_storage(
            env.num_envs, self.num_steps_per_env, (env.num_obs,), (num_critic_obs,), (env.num_actions,)
        )
        self.current_learning_iteration = 0
        self.episode_stats = EpisodeStats(env.num_envs, self.device)
        self.logger = MetricsLogger(self.log_dir)
        self.task_name: str | None = None
        self.resume_hint: str | None = None
        self._stop = GracefulStop()
        self._last_good: dict[str, Any] | None = None  # state at the start of the current iteration
        self._checkpoint_callbacks: list[Callable[[Path], Any]] = []

    # ------------------------------------------------------------------ training
    def add_logger(self, fn: LoggerFn) -> None:
        """Call `fn(metrics: dict[str, float], iteration: int)` after every learning iteration."""
        self.logger.add_logger(fn)

    def add_checkpoint_callback(self, fn: Callable[[Path], Any]) -> None:
        """Call `fn(path)` after every checkpoint `save` has written (e.g. to upload it)."""
        self._checkpoint_callbacks.append(fn)

    def _observations(
        self, obs: torch.Tensor, privileged_obs: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Raw env observations -> normalized (actor (N, O), critic (N, P)) on the runner's device."""
        obs = obs.to(self.device)
        critic_obs = privileged_obs.to(self.device) if privileged_obs is not None else obs
        return self.obs_normalizer(obs), self.critic_obs_normalizer(critic_obs)

    def collect(self, obs: torch.Tensor, critic_obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, bool]:
        """One rollout of num_steps_per_env steps from normalized obs (N, O) / critic_obs (N, P),
        then GAE. Device work only: nothing is read back to the host. Returns the last (obs,
        critic_obs) and whether the rollout is complete (False: a stop signal cut it short)."""
        env = self.env
        with torch.inference_mode(), torch_threads(self.collection_threads):
            for _ in range(self.num_steps_per_env):
                actions = self.alg.act(obs, critic_obs)
                # a NaN action is counted in alg.nonfinite_policy_steps; the env never sees it
                env_actions = torch.nan_to_num(actions, nan=0.0, posinf=0.0, neginf=0.0).to(env.device)
                raw_obs, raw_priv, rewards, dones, extras = env.step(env_actions)
                obs, critic_obs = self._observations(raw_obs, raw_priv)
                rewards, dones = rewards.to(self.device), dones.to(self.device)
                self.alg.process_env_step(rewards, dones, extras)
                self.episode_stats.step(rewards, dones, extras)
                if self._stop.requested and not self.dist.active:  # distributed: agreed after the rollout
                    return obs, critic_obs, False
            self.alg.compute_returns(critic_obs)
        return obs, critic_obs, True

    def learn(self, num_learning_iterations: int, init_at_random_ep_len: bool = False) -> None:
        """Run `num_learning_iterations` iterations of (rollout, PPO update), continuing the count
        from `current_learning_iteration`; saves model_<it>.pt every save_interval and at the end.
        With `runner.max_wall_time_min`, the run ends early after the first iteration that finishes
        past that much wall time since this call began (the slowest rank's clock), and saves there.

        Raises:
            TrainingInterrupted: SIGINT / SIGTERM arrived (a SystemExit, code 130 / 143), after
                the last completed iteration was saved and a resume command printed.
            NonFiniteError: NaN / Inf policy output, loss or gradient, after saving the state at
                the start of the iteration (its `checkpoint`).
            NonFiniteResetsError: more than runner.max_nonfinite_fraction * num_envs envs went
                non-finite in one iteration, after saving the state at the start of it.
            CheckpointWriteError: the final checkpoint could not be written (a failed periodic
                save only warns and training goes on).
            DistributedError: (several ranks) a collective failed or timed out: another rank died.
        """
        env = self.env
        if init_at_random_ep_len:
            env.episode_length_buf = torch.randint_like(
                env.episode_length_buf, high=max(int(env.max_episode_length), 1)
            )
        self.train_mode()
        if self.dist.active:  # ---- distributed: every rank starts from rank 0's state
            self._sync_from_main()
        self.alg.storage.clear()  # a rollout cut short by an earlier interrupt or error is discarded
        self.alg.nonfinite_policy_steps.zero_()
        obs, critic_obs = self._observations(env.get_observations(), env.get_privileged_observations())
        start = self.current_learning_iteration
        end = start + num_learning_iterations
        steps_per_iteration = self.num_steps_per_env * env.num_envs * self.dist.world_size  # all ranks
        if self.dist.is_main:
            self.logger.start(start, end, self.max_wall_time_s)
        learn_start = time.perf_counter()
        with self._stop:
            try:
                for it in range(start, end):
                    self._last_good = self._checkpoint_state(clone=True)
                    t0 = time.perf_counter()
                    obs, critic_obs, complete = self.collect(obs, critic_obs)
                    if not complete:
                        self._interrupt(self._last_good)
                    self._check_collection(it)  # distributed: also the agreed stop after the rollout
                    t1 = time.perf_counter()
                    try:
                        losses = self.alg.update()
                    except NonFiniteError as e:
                        raise self._failed(NonFiniteError, str(e)) from e
                    t2 = time.perf_counter()

                    self.current_learning_iteration = it + 1
                    times = {"collection": t1 - t0, "learning": t2 - t1, "iteration": t2 - t0,
                             "wall": t2 - learn_start, "stop": float(self._stop.signum or 0)}
                    totals = self.episode_stats.pop_totals()
                    if self.dist.active:  # ---- distributed: episodes summed, slowest rank's times, stop flag
                        means = {f"Loss/{k}": v / self.dist.world_size for k, v in losses.items()
                                 if k != "learning_rate"}  # the same on every rank
                        totals, times = self.dist.combine({**totals, **means}, times)
                        losses.update({k[5:]: totals.pop(k) for k in means})
                    metrics = EpisodeStats.metrics_from_totals(totals)
                    metrics.update({
                        "Perf/fps": steps_per_iteration / times["iteration"],
                        "Perf/collection_time": times["collection"],
                        "Perf/learning_time": times["learning"],
                        "Perf/total_timesteps": float(steps_per_iteration * (it + 1)),
                        "Perf/wall_time": times["wall"],  # [s] since this learn() call began
                    })
                    metrics.update({f"Loss/{k}": v for k, v in losses.items()})
                    metrics["Policy/mean_action_std"] = float(self.alg.actor_critic.log_std.detach().exp().mean())
                    if self.dist.is_main:
                        self.logger.log(metrics, self.current_learning_iteration)
                    if times["stop"]:
                        self._interrupt(None, int(times["stop"]))
                    if self.log_dir is not None and self.current_learning_iteration % self.save_interval == 0:
                        self._periodic_save(self.log_dir / f"model_{self.current_learning_iteration}.pt")
                    if self.max_wall_time_s is not None and times["wall"] >= self.max_wall_time_s:
                        end = self.current_learning_iteration  # the same on every rank: times are combined
                        if self.dist.is_main:
                            self.logger.write(f"max_wall_time_min: stopping after {times['wall'] / 60:.1f} min "
                                              f"at iteration {end}")
                        break
            finally:
                if self.dist.is_main:
                    self.logger.close()
                self._last_good = None
        if self.log_dir is not None and end % self.save_interval != 0 and end > start:
            self.save(self.log_dir / f"model_{end}.pt")

    def _check_collection(self, it: int) -> None:
        """One host read per iteration: non-finite policy steps (-> NonFiniteError) and envs reset
        for non-finite physics (-> NonFiniteResetsError above the allowed fraction). Distributed:
        the worst rank's counts and any rank's stop signal decide for all ranks alike."""
        bad_steps, nonfinite = torch.stack(
            [self.alg.nonfinite_policy_steps, self.episode_stats.nonfinite_resets]
        ).tolist()
        self.alg.nonfinite_policy_steps.zero_()
        if self.dist.active:  # ---- distributed: one all-reduce (max) of [bad steps, resets, signal]
            bad_steps, nonfinite, signum = self.dist.reduce_max([bad_steps, nonfinite, self._stop.signum or 0])
            if signum:
                self._interrupt(self._last_good, int(signum))
        if bad_steps:
            raise self._failed(NonFiniteError, (
                f"the policy produced NaN / Inf actions or values in {bad_steps} of {self.num_steps_per_env} "
                f"steps of iteration {it + 1}. Likely causes: weights diverged (learning rate too high: "
                "lower algorithm.learning_rate or use schedule='adaptive') or non-finite observations"))
        check_buffers = getattr(self.env, "check_buffers", None)  # MuJoCo Warp nconmax / njmax
        if check_buffers is not None:
            try:
                check_buffers()
            except PhysicsError as e:
                raise self._failed(PhysicsBufferError, str(e)) from e
        limit = self.max_nonfinite_fraction * self.env.num_envs
        if nonfinite > limit:
            raise self._failed(NonFiniteResetsError, (
                f"{nonfinite} envs went non-finite (NaN / Inf physics, observations or rewards) and were reset "
                f"in iteration {it + 1}: more than runner.max_nonfinite_fraction = {self.max_nonfinite_fraction:g} "
                f"of {self.env.num_envs} envs. Likely causes: sim.dt too large for the gains, PD gains "
                "(control.stiffness / damping) or action_scale too high, bad masses, inertias or joint limits "
                "in the MJCF, or a broken model"))

    def _failed(self, kind: type[NonFiniteError] | type[PhysicsError], message: str) -> Exception:
        """Write the last good state (start of this iteration) and build the error to raise."""
        path = None
        if self.log_dir is not None and self._last_good is not None:
            path = self.log_dir / f"model_{self._last_good['iter']}.pt"
            try:
                save_finite_checkpoint(dict(self._last_good, infos=None), path, _SAVED_KEYS)
            except (CheckpointError, NonFiniteError) as e:
                message += f". The last good state could not be saved either: {e}"
                path = None
        if path is not None:
            message += f". Last good state (iteration {self._last_good['iter']}) saved to {path}"
        return kind(message, checkpoint=path)

    def _interrupt(self, state: dict[str, Any] | None, signum: int | None = None) -> None:
        """Save `state` (None: the current, completed iteration), print how to resume (rank 0),
        raise TrainingInterrupted. A failed save raises CheckpointWriteError instead. `signum`:
        the signal agreed by all ranks (default: the one this process received)."""
        signum = signum or self._stop.signum or signal.SIGINT
        iteration = self.current_learning_iteration if state is None else int(state["iter"])
        path = None
        if self.log_dir is not None:
            path = self.log_dir / f"model_{iteration}.pt"
            if state is None:
                self.save(path)
            else:
                save_finite_checkpoint(dict(state, infos=None), path, _SAVED_KEYS)
        where = "no checkpoint written (the runner has no log_dir)" if path is None else (
            f"checkpoint {path}. {resume_line(path, iteration, self.task_name, self.resume_hint)}")
        message = f"{signal.Signals(signum).name}: interrupted at iteration {iteration}; {where}"
        if not self.dist.is_main:
            message = f"rank {self.dist.rank}: interrupted at iteration {iteration} (rank 0 writes the checkpoint)"
        else:
            print(message, file=sys.stderr, flush=True)
        raise TrainingInterrupted(signum, iteration, path, message)

    def _periodic_save(self, path: Path) -> None:
        """A periodic checkpoint that cannot be written warns loudly; training goes on."""
        try:
            self.save(path)
        except CheckpointWriteError as e:
            message = f"WARNING: periodic checkpoint not written, training continues: {e}"
            print(message, file=sys.stderr, flush=True)
            warnings.warn(message, RuntimeWarning, stacklevel=2)
        except NonFiniteError as e:
            raise self._failed(NonFiniteError, str(e)) from e

    def _sync_from_main(self) -> None:
        """Distributed: every rank takes rank 0's model, optimizer, normalizers, iteration and lr
        (after a resume, those rank 0 loaded). The other ranks' RNG streams stay their own; after a
        resume they restart from seed + rank + world_size * iteration (rank 0's come from the file)."""
        state = self.dist.broadcast_object(to_cpu(self._checkpoint_state(clone=False)) if self.dist.is_main else None)
        if self.dist.is_main:
            return
        self.alg.actor_critic.load_state_dict(state["model_state_dict"])
        self.alg.optimizer.load_state_dict(state["optimizer_state_dict"])
        self.obs_normalizer.load_state_dict(state["obs_norm_state_dict"])
        self.critic_obs_normalizer.load_state_dict(state["critic_obs_norm_state_dict"])
        self.alg.set_learning_rate(float(state["learning_rate"]))
        self._load_env_state(state.get("env_state"))
        if state["iter"] != self.current_learning_iteration:
            self.current_learning_iteration = int(state["iter"])
            set_seed(self.cfg.seed + self.dist.rank + self.dist.world_size * self.current_learning_iteration)

    def _load_env_state(self, state: dict[str, Any] | None) -> None:
        """Hand a checkpoint's "env_state" to the env's `load_curriculum_state`, if both exist."""
        load = getattr(self.env, "load_curriculum_state", None)
        if state and load is not None:
            load(state)

    def train_mode(self) -> None:
        """Policy, critic and normalizers in training mode (normalizer statistics update)."""
        self.alg.actor_critic.train()
        self.obs_normalizer.train()
        self.critic_obs_normalizer.train()

    def eval_mode(self) -> None:
        """Policy, critic and normalizers in eval mode (normalizer statistics frozen)."""
        self.alg.actor_critic.eval()
        self.obs_normalizer.eval()
        self.critic_obs_normalizer.eval()

    def get_inference_policy(self, device: str | torch.device | None = None,
                             copy_always: bool = False) -> InferencePolicy:
        """Callable obs (N, O) -> mean actions (N, A), normalizer applied; switches to eval mode.
        With a `device` other than the runner's, or `copy_always` (a frozen snapshot, e.g. for a
        video while training goes on), a copy living on that device is returned."""
        self.eval_mode()
        policy = InferencePolicy(self.obs_normalizer, self.alg.actor_critic)
        if copy_always or (device is not None and torch.device(device) != self.device):
            ac = self.alg.actor_critic
            cached, ac.distribution = ac.distribution, None  # after an update it has autograd history,
            try:  # which copy.deepcopy refuses
                policy = copy.deepcopy(policy).to(device or self.device)
            finally:
                ac.distribution = cached
        return policy

    # ------------------------------------------------------------------ checkpoints
    def _checkpoint_state(self, clone: bool) -> dict[str, Any]:
        """Everything a checkpoint holds except "infos"; `clone` deep-copies the tensors."""
        def c(x: Any) -> Any:
            return copy.deepcopy(x) if clone else x

        return {
            "model_state_dict": c(self.alg.actor_critic.state_dict()),
            "optimizer_state_dict": c(self.alg.optimizer.state_dict()),
            "iter": self.current_learning_iteration,
            "learning_rate": self.alg.learning_rate,
            "obs_norm_state_dict": c(self.obs_normalizer.state_dict()),
            "critic_obs_norm_state_dict": c(self.critic_obs_normalizer.state_dict()),
            "rng_state": get_rng_state(),
            "episode_stats": self.episode_stats.state_dict(),
            "env_info": env_info(self.env),
            "env_state": c(getattr(self.env, "curriculum_state", dict)()),  # e.g. terrain levels
        }

    def save(self, path: str | Path, infos: dict[str, Any] | None = None) -> Path:
        """Write the checkpoint atomically (temp file + fsync + os.replace); returns the path.

        Holds model, optimizer, iteration, learning rate, normalizers, RNG streams (torch, CUDA,
        numpy, python), the episode-statistics windows, `env_info()` and the env's
        `curriculum_state()` (as "env_state", if the env has one). Raises NonFiniteError
        (nothing written) if any parameter, optimizer moment or normalizer statistic is NaN / Inf,
        CheckpointWriteError (the previous file intact) if the file cannot be written. Then calls each
        `add_checkpoint_callback` function with the path."""
        path = save_finite_checkpoint(dict(self._checkpoint_state(clone=False), infos=infos), path, _SAVED_KEYS)
        for fn in self._checkpoint_callbacks:
            fn(path)
        return path

    def load(self, path: str | Path, load_optimizer: bool = True) -> dict[str, Any] | None:
        """Restore model, normalizers, iteration and (with load_optimizer, i.e. resuming training)
        the optimizer state, learning rate, RNG streams, episode-statistics windows and the env's
        curriculum state where the checkpoint has them; returns the checkpoint's infos. Raises
        CheckpointError on any problem (unreadable file, other robot / joints / observation size /
        network shape)."""
        path = Path(path)
        ckpt = read_checkpoint(path, map_location=self.device)
        problems = env_info_problems(ckpt.get("env_info"), env_info(self.env))
        problems += policy_dims_problems(self.alg.actor_critic, ckpt["model_state_dict"])
        parts = [
            ("model_state_dict", self.alg.actor_critic),
            ("obs_norm_state_dict", self.obs_normalizer),
            ("critic_obs_norm_state_dict", self.critic_obs_normalizer),
        ]
        for key, module in parts:
            problems += state_dict_problems(key, module.state_dict(), ckpt[key])
        if problems:
            raise CheckpointError(
                f"checkpoint {path} does not fit this env / config: " + "; ".join(problems)
                + ". Load a checkpoint trained with this robot and config (--load_run / --checkpoint), "
                "or train from scratch without --resume")
        try:
            for key, module in parts:
                module.load_state_dict(ckpt[key])
            if load_optimizer:
                self.alg.optimizer.load_state_dict(ckpt["optimizer_state_dict"])
                self.alg.set_learning_rate(float(ckpt["learning_rate"]))
                if ckpt.get("rng_state") is not None:
                    set_rng_state(ckpt["rng_state"])
                if ckpt.get("episode_stats") is not None:
                    self.episode_stats.load_state_dict(ckpt["episode_stats"])
                self._load_env_state(ckpt.get("env_state"))
            self.episode_stats.reset_running()
            self.current_learning_iteration = int(ckpt["iter"])
        except (RuntimeError, ValueError, KeyError, TypeError, IndexError) as e:
            raise CheckpointError(f"checkpoint {path}: cannot be restored ({type(e).__name__}: {e})") from e
        return ckpt["infos"]
