"""legged_gym's two curricula, as fixed-shape masked tensor updates (no host synchronisation).

`TerrainCurriculum`: each env has a terrain level (row) and type (column); its spawn origin is that
tile's origin. At a reset, an env that walked farther than half a tile from its origin moves up a
level, one that walked less than half its commanded distance (|cmd_xy| * episode length * 0.5) moves
down; an env that solves the top level goes to a random level. Without `terrain.curriculum` levels
stay where they were drawn (every row).

`CommandCurriculum`: once per episode length, if the episodes that ended since the last check
earned more than 80 % of the maximum of `commands.curriculum_reward` (legged_gym: tracking_lin_vel),
the lin_vel_x range widens by `commands.curriculum_step` at both ends, up to +-`commands.max_curriculum`.
"""

from __future__ import annotations

import torch

from gym.utils.terrain import Terrain


class TerrainCurriculum:
    """Per-env `levels` (N,) long, `types` (N,) long and `origins` (N, 3) [m] (world, tile centre on
    the surface; zeros on a plane). Envs are spread evenly over the columns (legged_gym)."""

    def __init__(self, terrain: Terrain | None, cfg, num_envs: int, device: torch.device) -> None:
        self.enabled = terrain is not None
        self.device = device
        self.origins = torch.zeros(num_envs, 3, device=device)
        if not self.enabled:
            return
        self.active = bool(cfg.curriculum)
        self.num_rows, num_cols = terrain.tile_types.shape
        self.half_tile = cfg.terrain_length / 2  # [m] walked farther: up a level
        self.tile_origins = torch.as_tensor(terrain.tile_origins, dtype=torch.float32, device=device)
        top = min(cfg.max_init_terrain_level, self.num_rows - 1) if self.active else self.num_rows - 1
        self.levels = torch.randint(0, top + 1, (num_envs,), device=device)
        self.types = torch.div(torch.arange(num_envs, device=device) * num_cols, num_envs, rounding_mode="floor")
        self.origins = self.tile_origins[self.levels, self.types]

    def update(self, mask: torch.Tensor, base_xy: torch.Tensor, command_xy: torch.Tensor,
               episode_length_s: float) -> None:
        """Move the envs of `mask` (N,) bool up / down (see the module docstring) and set their origins.

        `base_xy` (N, 2) [m] world, before the reset; `command_xy` (N, 2) [m/s], the current command.
        """
        if not (self.enabled and self.active):
            return
        distance = torch.norm(base_xy - self.origins[:, :2], dim=1)
        up = distance > self.half_tile
        down = (distance < torch.norm(command_xy, dim=1) * episode_length_s * 0.5) & ~up
        level = self.levels + up.long() - down.long()
        level = torch.where(level >= self.num_rows, torch.randint_like(level, self.num_rows), level.clamp(min=0))
        self.levels = torch.where(mask, level, self.levels)
        self.origins = self.tile_origins[self.levels, self.types]

    def mean_level(self) -> torch.Tensor:
        """Mean terrain level over all envs (0-dim, on the device)."""
        return self.levels.float().mean()

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {"terrain_levels": self.levels.clone()} if self.enabled else {}

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        """Levels from `state`; with another env count, each env draws one of the saved levels."""
        saved = state.get("terrain_levels")
        if not self.enabled or saved is None:
            return
        saved = torch.as_tensor(saved, device=self.device).long().clamp(0, self.num_rows - 1)
        if saved.numel() != self.levels.numel():
            saved = saved[torch.randint(0, saved.numel(), self.levels.shape, device=self.device)]
        self.levels = saved.clone()
        self.origins = self.tile_origins[self.levels, self.types]


class CommandCurriculum:
    """Widens the lin_vel_x range [lo[0], lo[0] + span[0]] in place; `lo`, `span` are the env's
    command draw tensors (v_x in column 0)."""

    def __init__(self, cfg, reward_scales: dict[str, float], max_episode_length: int, lo: torch.Tensor,
                 span: torch.Tensor) -> None:
        self.enabled = bool(cfg.commands.curriculum)
        self.cfg, self.lo, self.span = cfg.commands, lo, span
        self.period = max_episode_length  # [policy steps] between checks
        self.reward = cfg.commands.curriculum_reward
        if self.enabled and not reward_scales.get(self.reward):
            raise ValueError(f"commands.curriculum needs the reward term commands.curriculum_reward="
                             f"{self.reward!r} with a non-zero scale; the env's terms: {sorted(reward_scales)}")
        self.max_step_reward = reward_scales.get(self.reward, 0.0)  # scale * dt
        self.sum = torch.zeros((), device=lo.device)  # the term's episode sums since the last check
        self.count = torch.zeros((), device=lo.device)  # episodes in `sum`

    def record(self, logged: torch.Tensor, tracking_sums: torch.Tensor) -> None:
        """Add the episodes of `logged` (N,) bool with their episode sums (N,) of the reward term."""
        if self.enabled:
            self.sum += torch.where(logged, tracking_sums, 0.0).sum()
            self.count += logged.sum()

    def update(self, step: int) -> None:
        """At every `period`-th policy `step`: widen the range if tracking was good."""
        if not self.enabled or step == 0 or step % self.period:
            return
        lo, span = self.lo, self.span
        mean_per_step = self.sum / self.count.clamp(min=1.0) / self.period
        good = (self.count > 0) & (mean_per_step > 0.8 * self.max_step_reward)
        c = self.cfg
        new_lo = (lo[0] - c.curriculum_step).clamp(-c.max_curriculum, 0.0)
        new_hi = (lo[0] + span[0] + c.curriculum_step).clamp(0.0, c.max_curriculum)
        hi = torch.where(good, new_hi, lo[0] + span[0])
        lo[0] = torch.where(good, new_lo, lo[0])
        span[0] = hi - lo[0]
        self.sum.zero_()
        self.count.zero_()

    def range_x(self) -> torch.Tensor:
        """(2,) current [min, max] lin_vel_x [m/s]."""
        return torch.stack([self.lo[0], self.lo[0] + self.span[0]])

    def load_range_x(self, value: torch.Tensor) -> None:
        lo, hi = torch.as_tensor(value, device=self.lo.device).float().unbind()
        self.lo[0], self.span[0] = lo, hi - lo


class Curricula:
    """Both curricula of an env, moved at its resets (`LeggedRobot.reset_envs` calls `update`)."""

    def __init__(self, terrain: TerrainCurriculum, command: CommandCurriculum) -> None:
        self.terrain, self.command = terrain, command

    def update(self, logged: torch.Tensor, step: int, base_xy: torch.Tensor, command_xy: torch.Tensor,
               tracking_sums: torch.Tensor | None, episode_length_s: float) -> dict[str, torch.Tensor]:
        """Move the envs of `logged` (N,) bool (reset, not faulted) at policy step `step` (nothing at
        step 0, the initial reset); returns the values to log (0-dim tensors): "terrain_level" (mean
        over all envs) and "max_lin_vel_x" [m/s], for the curricula that are on."""
        log = {}
        if step > 0:
            self.terrain.update(logged, base_xy, command_xy, episode_length_s)
        if self.terrain.enabled:
            log["terrain_level"] = self.terrain.mean_level()
        if self.command.enabled:
            self.command.record(logged, tracking_sums)
            self.command.update(step)
            log["max_lin_vel_x"] = self.command.lo[0] + self.command.span[0]
        return log

    def state_dict(self) -> dict[str, torch.Tensor]:
        """Terrain levels and the lin_vel_x range: what a checkpoint keeps so a resume continues them."""
        return {**self.terrain.state_dict(), "lin_vel_x_range": self.command.range_x().clone()}

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        self.terrain.load_state_dict(state)
        if self.command.enabled and state.get("lin_vel_x_range") is not None:
            self.command.load_range_x(state["lin_vel_x_range"])
