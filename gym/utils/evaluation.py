"""Policy evaluation under a fixed, seeded command schedule (gym/scripts/evaluate.py; issue 9's grid).

    task = resolve_eval_task(args)                    # play's checkpoint + training's noise / friction / pushes
    env = task.make_env(); policy = ...               # any callable obs (N, O) -> actions (N, A)
    schedule = make_schedule(env.num_envs, 5, round(4.0 / env.dt), seed=42, ranges=command_ranges(env.cfg))
    result = rollout(env, policy, schedule, settle_s=1.0)            # one episode per env
    rows = summarize(result)                                          # one dict per category, plus "all"

Each env runs one episode; its command changes every segment (`segment_steps` policy steps) to the
next category of its row of the schedule. A (env, segment) sample counts when the env had not fallen
(a non-timeout termination) by the segment's end; its measured velocity is the mean over the
segment after `settle_s`. Velocities are body frame: v_x, v_y [m/s] from the velocimeter
(`env.base_lin_vel`), w_z [rad/s] from the gyro (`env.base_ang_vel`).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from gym.rl.inference import torch_threads

# name -> (v_x [m/s], v_y [m/s], w_z [rad/s]) body frame, and which components get a random sign
CATEGORIES: dict[str, tuple[tuple[float, float, float], tuple[bool, bool, bool]]] = {
    "stand": ((0.0, 0.0, 0.0), (False, False, False)),
    "slow": ((0.1, 0.0, 0.0), (False, False, False)),
    "forward": ((0.5, 0.0, 0.0), (False, False, False)),
    "backward": ((-0.5, 0.0, 0.0), (False, False, False)),
    "lateral": ((0.0, 0.3, 0.0), (False, True, False)),
    "turn": ((0.0, 0.0, 0.5), (False, False, True)),
    "walk_turn": ((0.4, 0.0, 0.4), (False, False, True)),
}
METRICS = ("vx_error", "vy_error", "wz_error", "double_support", "touchdowns_per_s", "foot_speed")


@dataclass
class Schedule:
    """Commands of `num_envs` envs over `num_segments` segments of `segment_steps` policy steps."""

    categories: torch.Tensor  # (N, S) long, index into `names`
    commands: torch.Tensor  # (N, S, 3) v_x, v_y [m/s], w_z [rad/s], body frame, clipped to the ranges
    segment_steps: int
    names: tuple[str, ...]

    def rows(self, start: int, stop: int) -> Schedule:
        """The schedule of envs start..stop-1 (e.g. one episode's share)."""
        return Schedule(self.categories[start:stop], self.commands[start:stop], self.segment_steps, self.names)


def make_schedule(num_envs: int, num_segments: int, segment_steps: int, seed: int,
                  ranges: tuple[list[float], list[float], list[float]] | None = None,
                  device: str | torch.device = "cpu") -> Schedule:
    """A seeded schedule: the same seed gives the same schedule, on any device.

    Categories are the N*S cells read row by row from a chain of seeded random permutations of
    `CATEGORIES`, so each category appears N*S // C or N*S // C + 1 times (exactly equally often
    when N*S is a multiple of C = 7) and no env gets the same category twice in a row. Signs of
    lateral / turn / walk_turn are drawn per segment. `ranges`: (lin_vel_x, lin_vel_y, ang_vel_yaw)
    [min, max] to clip to (the task's `commands.ranges`).
    """
    if num_envs < 1 or num_segments < 1 or segment_steps < 1:
        raise ValueError(f"a schedule needs num_envs, num_segments and segment_steps >= 1; got "
                         f"{num_envs}, {num_segments}, {segment_steps}")
    names = tuple(CATEGORIES)
    c, cells = len(names), num_envs * num_segments
    g = torch.Generator().manual_seed(int(seed))
    blocks = torch.rand(math.ceil(cells / c), c, generator=g).argsort(dim=1)  # (B, C) permutations
    # where a block starts with the category the previous one ended with, swap its head with one
    # of positions 1..C-2 (its tail stays, so each block's fix is independent of the others)
    swap_with = torch.randint(1, c - 1, (blocks.shape[0],), generator=g)
    clash = torch.zeros(blocks.shape[0], dtype=torch.bool)
    clash[1:] = blocks[1:, 0] == blocks[:-1, -1]
    rows = torch.arange(blocks.shape[0])[clash]
    head, other = blocks[rows, 0].clone(), blocks[rows, swap_with[clash]].clone()
    blocks[rows, 0], blocks[rows, swap_with[clash]] = other, head
    categories = blocks.flatten()[:cells].view(num_envs, num_segments)
    base = torch.tensor([CATEGORIES[n][0] for n in names])  # (C, 3)
    signed = torch.tensor([CATEGORIES[n][1] for n in names])  # (C, 3)
    signs = torch.randint(0, 2, (num_envs, num_segments, 3), generator=g) * 2.0 - 1.0
    commands = base[categories] * torch.where(signed[categories], signs, 1.0)
    if ranges is not None:
        lo = torch.tensor([float(r[0]) for r in ranges])
        hi = torch.tensor([float(r[1]) for r in ranges])
        commands = torch.maximum(torch.minimum(commands, hi), lo)
    return Schedule(categories.to(device), commands.to(device), int(segment_steps), names)


def speed_schedule(speeds: list[float], envs_per_speed: int, num_segments: int, segment_steps: int,
                   device: str | torch.device = "cpu") -> Schedule:
    """Constant straight-ahead commands for a speed sweep: env i walks at v_x = speeds[i // envs_per_speed]
    [m/s] (v_y = w_z = 0) in every segment; category i is named "vx=<speed>". Shows where a policy
    switches from standing to stepping (double support and touchdowns against the command).

    Raises ValueError on no speeds, repeated speeds, or envs_per_speed / num_segments / segment_steps < 1.
    """
    if not speeds or len(set(speeds)) != len(speeds):
        raise ValueError(f"a speed sweep needs distinct speeds; got {speeds}")
    if envs_per_speed < 1 or num_segments < 1 or segment_steps < 1:
        raise ValueError(f"a speed sweep needs envs_per_speed, num_segments and segment_steps >= 1; got "
                         f"{envs_per_speed}, {num_segments}, {segment_steps}")
    categories = torch.arange(len(speeds)).repeat_interleave(envs_per_speed).unsqueeze(1).expand(-1, num_segments)
    commands = torch.zeros(*categories.shape, 3)
    commands[..., 0] = torch.tensor([float(v) for v in speeds])[categories]
    names = tuple(f"vx={float(v):g}" for v in speeds)
    return Schedule(categories.contiguous().to(device), commands.to(device), int(segment_steps), names)


def describe_command(name: str) -> str:
    """A category's command as text, e.g. "lateral" -> "0 ±0.3 0" (v_x, v_y [m/s], w_z [rad/s])."""
    command, signed = CATEGORIES[name]
    return " ".join(("±" if s and v else "") + f"{v:g}" for v, s in zip(command, signed))


def command_ranges(env_cfg: Any) -> tuple[list[float], list[float], list[float]]:
    """(lin_vel_x, lin_vel_y, ang_vel_yaw) [min, max] of a task config's `commands.ranges`."""
    r = env_cfg.commands.ranges
    return r.lin_vel_x, r.lin_vel_y, r.ang_vel_yaw


@dataclass
class Kicks:
    """Pushes replaced by kicks: `velocity` [m/s] added to the base velocity in a uniformly random
    horizontal (world-frame) direction every `interval_s` [s]; the first at a random time (per env)
    between `interval_s` and 2 * `interval_s` after the episode start. `velocity` is one value for
    every env or a (num_envs,) tensor of per-env kicks (an env with 0 is never touched)."""

    velocity: float | torch.Tensor = 1.0
    interval_s: float = 2.0


@dataclass
class RolloutResult:
    """Per (env, segment) sums over each segment's measuring window (after settling) of one episode
    per env; `summarize` turns them into per-category metrics. Samples after a fall are left out."""

    schedule: Schedule
    vel_sum: torch.Tensor  # (N, S, 3) sum of measured v_x, v_y [m/s], w_z [rad/s], body frame
    steps: torch.Tensor  # (N, S) policy steps summed
    double_support_steps: torch.Tensor  # (N, S) steps with every foot in contact
    touchdowns: torch.Tensor  # (N, S) touchdowns, all feet together
    foot_speed_sum: torch.Tensor  # (N, S) sum of the mean horizontal foot speed [m/s], world frame
    alive: torch.Tensor  # (N, S) bool: not fallen by the end of the segment
    fell: torch.Tensor  # (N,) bool: the episode ended in a non-timeout termination
    dt: float  # policy step [s]
    num_feet: int
    episode_steps: torch.Tensor  # (N,) long: policy steps of the episode (to its fall or time-out)
    reward_sum: torch.Tensor  # (N, S, T) sum of each reward term's scale * dt * r_i (`env.reward_terms`)
    reward_names: tuple[str, ...]  # the T terms, in `env.reward_scales` order

    @property
    def valid(self) -> torch.Tensor:
        """(N, S) bool: samples that count (not fallen by the segment end, a non-empty window)."""
        return self.alive & (self.steps > 0)

    @property
    def fall_rate(self) -> float:
        """Fraction of env-episodes that ended in a fall."""
        return float(self.fell.float().mean())

    def mean_velocity(self) -> torch.Tensor:
        """(N, S, 3) measured velocity averaged over each window (NaN where the window is empty)."""
        return self.vel_sum / self.steps.unsqueeze(-1)

    def reward_rates(self) -> torch.Tensor:
        """(N, S, T) each reward term's mean rate over each window [reward per second, scale included]."""
        return self.reward_sum / (self.steps.unsqueeze(-1) * self.dt)

    def errors(self) -> torch.Tensor:
        """(N, S, 3) |mean measured velocity - command|: v_x, v_y [m/s], w_z [rad/s]."""
        return (self.mean_velocity() - self.schedule.commands).abs()

    @staticmethod
    def cat(results: list[RolloutResult]) -> RolloutResult:
        """Several episodes' results (same segments and dt) as one, envs stacked."""
        first = results[0]
        cat = lambda name: torch.cat([getattr(r, name) for r in results])  # noqa: E731
        schedule = Schedule(torch.cat([r.schedule.categories for r in results]),
                            torch.cat([r.schedule.commands for r in results]),
                            first.schedule.segment_steps, first.schedule.names)
        return RolloutResult(schedule, cat("vel_sum"), cat("steps"), cat("double_support_steps"), cat("touchdowns"),
                             cat("foot_speed_sum"), cat("alive"), cat("fell"), first.dt, first.num_feet,
                             cat("episode_steps"), cat("reward_sum"), first.reward_names)


def rollout(env: Any, policy: Callable[[torch.Tensor], torch.Tensor], schedule: Schedule, settle_s: float,
            kicks: Kicks | None = None, seed: int = 0) -> RolloutResult:
    """Run one episode (`env.max_episode_length` policy steps) of every env from a fresh reset.

    `env`: an already-built `LeggedRobot` whose noise, domain randomization and pushes are as the
    evaluation wants them; `policy`: obs (N, O) -> actions (N, A). At each segment start the
    schedule's commands are written to `env.commands` (heading control off, no resampling), and the
    observation is recomputed so the policy sees them at once. With `kicks`, the env's own pushes
    are off for the episode (restored after) and kicks act instead (directions seeded by `seed`).
    Vectorised over envs; no host synchronisation inside the loop.
    """
    n, dev, dt = env.num_envs, env.device, env.dt
    seg, num_segments = schedule.segment_steps, schedule.categories.shape[1]
    total = int(env.max_episode_length)
    if schedule.categories.shape[0] != n:
        raise ValueError(f"the schedule has {schedule.categories.shape[0]} envs; the env has {n}")
    if seg * num_segments > total:
        raise ValueError(f"{num_segments} segments of {seg} steps exceed the episode ({total} steps)")
    settle = round(settle_s / dt)
    commands = schedule.commands.to(dev)
    num_feet = env.foot_contact.shape[1]
    zeros = lambda *shape, dtype=torch.float32: torch.zeros(*shape, device=dev, dtype=dtype)  # noqa: E731
    vel_sum, steps = zeros(n, num_segments, 3), zeros(n, num_segments)
    double_support, touchdowns, foot_speed = zeros(n, num_segments), zeros(n, num_segments), zeros(n, num_segments)
    reward_names = tuple(env.reward_scales)
    reward_sum = zeros(n, num_segments, len(reward_names))
    alive, fell = zeros(n, num_segments, dtype=torch.bool), zeros(n, dtype=torch.bool)
    ended, episode_steps = zeros(n, dtype=torch.bool), zeros(n, dtype=torch.long)
    if kicks is not None:
        kick_steps = max(1, round(kicks.interval_s / dt))
        g = torch.Generator(device=dev).manual_seed(int(seed))
        first_kick = kick_steps + torch.randint(0, kick_steps, (n,), generator=g, device=dev)
        kick_vel = torch.as_tensor(kicks.velocity, dtype=torch.float32, device=dev).expand(n)
    dr = env.cfg.domain_rand
    pushes = dr.push_robots
    try:
        if kicks is not None:
            dr.push_robots = False
        with torch.inference_mode(), torch_threads(1 if dev.type == "cpu" else 0):
            env.reset()
            for k in range(total):
                j, t = divmod(k, seg)
                if t == 0 and j < num_segments:
                    env.commands[:, :3] = commands[:, j]
                    env.heading_env[:] = False
                    env.command_time_left[:] = float("inf")
                    env.compute_observations()
                _, _, _, dones, extras = env.step(policy(env.get_observations()))
                fell |= dones & ~extras["time_outs"]
                episode_steps += (~ended).long()
                ended |= dones
                if kicks is not None:
                    due = (k + 1 >= first_kick) & ((k + 1 - first_kick) % kick_steps == 0) & ~(fell | dones)
                    due &= kick_vel > 0
                    angle = torch.rand(n, generator=g, device=dev) * (2 * math.pi)
                    qvel = env.physics.qvel.clone()
                    qvel[:, 0] += kick_vel * torch.cos(angle)
                    qvel[:, 1] += kick_vel * torch.sin(angle)
                    env.physics.set_qvel(due, qvel)
                if j >= num_segments:
                    continue
                if t >= settle:
                    w = (~(fell | dones)).float()  # a reset env's state is its next episode's start
                    vel_sum[:, j] += w.unsqueeze(1) * torch.cat([env.base_lin_vel[:, :2], env.base_ang_vel[:, 2:3]], 1)
                    steps[:, j] += w
                    double_support[:, j] += w * env.foot_contact.all(dim=1).float()
                    touchdowns[:, j] += w * env.first_contact.sum(dim=1).float()
                    foot_speed[:, j] += w * env.foot_vel[..., :2].norm(dim=-1).mean(dim=1)
                    reward_sum[:, j] += w.unsqueeze(1) * env.reward_terms
                if t == seg - 1:
                    alive[:, j] = ~fell
    finally:
        dr.push_robots = pushes
    return RolloutResult(schedule, vel_sum, steps, double_support, touchdowns, foot_speed, alive, fell.clone(),
                         dt, num_feet, episode_steps, reward_sum, reward_names)


def summarize(result: RolloutResult) -> list[dict[str, Any]]:
    """One row per category (in `CATEGORIES` order) and a final "all" row, pooled over the valid
    (env, segment) samples: `n` samples; mean |error| of v_x, v_y [m/s] and w_z [rad/s]; the
    fraction of steps with every foot in contact (`double_support`); touchdowns per foot per
    second; mean horizontal foot speed [m/s]; `reward_rates`: per reward term, its mean rate [reward
    per second, scale included]. A category without samples has NaN metrics."""
    valid = result.valid.cpu()
    steps = result.steps.cpu().clamp(min=1)
    per_sample = torch.cat([
        result.errors().cpu().nan_to_num(0.0),
        (result.double_support_steps.cpu() / steps).unsqueeze(-1),
        (result.touchdowns.cpu() / (steps * result.dt * result.num_feet)).unsqueeze(-1),
        (result.foot_speed_sum.cpu() / steps).unsqueeze(-1),
    ], dim=-1)  # (N, S, len(METRICS))
    rates = result.reward_rates().cpu().nan_to_num(0.0)  # (N, S, T)
    categories = result.schedule.categories.cpu()
    rows = []
    for i, name in enumerate([*result.schedule.names, "all"]):
        mask = valid & (categories == i) if name != "all" else valid
        count = int(mask.sum())
        means = per_sample[mask].mean(dim=0) if count else torch.full((len(METRICS),), float("nan"))
        term_means = rates[mask].mean(dim=0) if count else torch.full((rates.shape[-1],), float("nan"))
        rows.append({"category": name, "n": count, **{m: round(float(v), 6) for m, v in zip(METRICS, means)},
                     "reward_rates": {t: round(float(v), 6) for t, v in zip(result.reward_names, term_means)}})
    return rows


def format_table(rows: list[dict[str, Any]]) -> str:
    """The rows of `summarize` as a fixed-width text table."""
    head = (f"{'category':<11}{'n':>6}{'|e_vx| m/s':>12}{'|e_vy| m/s':>12}{'|e_wz| rad/s':>14}"
            f"{'double support':>16}{'touchdowns/s':>14}{'foot speed m/s':>16}")
    lines = [head, "-" * len(head)]
    for r in rows:
        lines.append(f"{r['category']:<11}{r['n']:>6}{r['vx_error']:>12.3f}{r['vy_error']:>12.3f}"
                     f"{r['wz_error']:>14.3f}{r['double_support']:>16.2f}{r['touchdowns_per_s']:>14.2f}"
                     f"{r['foot_speed']:>16.3f}")
    return "\n".join(lines)


def format_reward_table(rows: list[dict[str, Any]]) -> str:
    """The `reward_rates` of the rows of `summarize` as a text table: one line per reward term, one
    column per row (category), and a total line. Shows which terms pay for a gait at each command."""
    names = list(rows[0]["reward_rates"]) if rows else []
    width = max([len("reward rate [1/s]"), *map(len, names)]) + 2
    head = f"{'reward rate [1/s]':<{width}}" + "".join(f"{r['category']:>11}" for r in rows)
    lines = [head, "-" * len(head)]
    for t in names:
        lines.append(f"{t:<{width}}" + "".join(f"{r['reward_rates'][t]:>11.3f}" for r in rows))
    lines.append(f"{'total':<{width}}" + "".join(f"{sum(r['reward_rates'].values()):>11.3f}" for r in rows))
    return "\n".join(lines)


def resolve_eval_task(args: Any, registry: Any = None) -> Any:
    """`resolve_task_cfgs(args, for_play=True)` (the checkpoint, its policy shape, the flags), then
    training's conditions put back: observation noise (`noise`), domain randomization with friction
    and pushes (`domain_rand`), the reward terms (`rewards`, for the reward-rate table) and the command
    ranges (to clip the schedule to); play's resolution already took the run's observation terms. They come from the
    task's training config with the checkpoint's run folder `env_cfg.yaml` applied (what that run
    trained with, its `--set` overrides included), then this evaluation's flags and `--set`; then
    everything is validated again.

    Returns the `ResolvedTask`; raises what `resolve_task_cfgs` raises (SETUP_ERRORS).
    """
    from gym.utils.cli import update_cfgs_from_args
    from gym.utils.export import apply_saved_env_cfg
    from gym.utils.task_registry import resolve_sim_device, resolve_task_cfgs, task_registry
    from gym.utils.validation import ConfigError, config_problems

    task = resolve_task_cfgs(args, for_play=True, registry=registry)
    train_env_cfg, train_cfg = (registry or task_registry).get_cfgs(task.name, sim_device=resolve_sim_device(args))
    if task.load_path is not None:
        apply_saved_env_cfg(train_env_cfg, task.load_path.parent)
    train_env_cfg, _ = update_cfgs_from_args(train_env_cfg, train_cfg, args)
    cfg = task.env_cfg
    cfg.noise, cfg.domain_rand, cfg.rewards = train_env_cfg.noise, train_env_cfg.domain_rand, train_env_cfg.rewards
    cfg.commands.ranges = train_env_cfg.commands.ranges
    problems = config_problems(task.task_class, cfg, task.train_cfg)
    if problems:
        raise ConfigError(problems, task.name)
    return task


def eval_problems(segment_s: float, settle_s: float, episode_length_s: float, dt: float, episodes: int,
                  kick_vel: float, kick_interval_s: float) -> list[str]:
    """Problems of the evaluation flags against the episode length and policy step `dt` [s]."""
    problems = []
    if segment_s <= 0 or abs(segment_s / dt - round(segment_s / dt)) > 1e-6:
        problems.append(f"--segment_s={segment_s}: must be a positive multiple of the policy step {dt:g} s")
    if not 0 <= settle_s < segment_s:
        problems.append(f"--settle_s={settle_s}: must be >= 0 and shorter than --segment_s={segment_s} "
                        "(the velocity is averaged over the rest of each segment)")
    if segment_s > episode_length_s:
        problems.append(f"--segment_s={segment_s}: longer than the episode (env.episode_length_s="
                        f"{episode_length_s}); use a shorter segment or --set env.episode_length_s=...")
    if episodes < 1:
        problems.append(f"--episodes={episodes}: must be >= 1")
    if kick_vel < 0:
        problems.append(f"--kick_vel={kick_vel}: must be >= 0 (0 skips the kick pass)")
    if kick_interval_s <= 0:
        problems.append(f"--kick_interval_s={kick_interval_s}: must be > 0")
    return problems
