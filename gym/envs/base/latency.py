"""Per-env action and measurement latency, in physics ticks (`sim.dt` each; 5 ms on Asimov).

- action: the CAN request-response delay. The policy's new targets take effect that many ticks into
  the policy step; earlier ticks keep the previous targets (`Physics.action_delay`, applied inside
  the backends' tick loops).
- imu: age of the IMU terms the policy sees (`base_ang_vel`, `projected_gravity`).
- joint: age of the joint terms the policy sees (`dof_pos`, `dof_vel`).

Each is in 0..`control.decimation` and is drawn per env, U{lo..hi} of
`domain_rand.<kind>_latency_range`, at every reset when `domain_rand.randomize_latency` is on;
otherwise all three are 0 unless `set` fixes them (evaluation). The delayed readings come from the
physics' per-tick `qpos_history` / `qvel_history` of the last policy step, so a reading `k` ticks old
is the state `k` ticks before the step's end (0 = the state the rewards see).
"""

from __future__ import annotations

from typing import Any

import torch

KINDS = ("action", "imu", "joint")


def latency_problems(domain_rand: Any, decimation: int) -> list[str]:
    """Problems with `domain_rand.<kind>_latency_range` (empty when valid): each must be [lo, hi]
    integers with 0 <= lo <= hi <= decimation (a delay beyond one policy step is not modelled)."""
    problems = []
    for kind in KINDS:
        key = f"{kind}_latency_range"
        rng = getattr(domain_rand, key, [0, 0])
        ok = (isinstance(rng, list | tuple) and len(rng) == 2
              and all(isinstance(x, int) and not isinstance(x, bool) for x in rng)
              and 0 <= rng[0] <= rng[1] <= decimation)
        if not ok:
            problems.append(f"domain_rand.{key}={rng!r}: give [lo, hi] integer physics ticks with "
                            f"0 <= lo <= hi <= control.decimation ({decimation}), e.g. [0, 2]")
    return problems


class Latency:
    """The per-env delays `action`, `imu`, `joint`: (num_envs,) long tensors [physics ticks]."""

    def __init__(self, cfg: Any, physics: Any, device: torch.device) -> None:
        dr = cfg.domain_rand
        self.decimation = cfg.control.decimation
        problems = latency_problems(dr, self.decimation)
        if problems:
            raise ValueError("; ".join(problems))
        self.physics = physics
        self.randomize = bool(getattr(dr, "randomize_latency", False))
        self.ranges = {k: tuple(getattr(dr, f"{k}_latency_range", [0, 0])) for k in KINDS}
        n = physics.num_envs
        self.action, self.imu, self.joint = (torch.zeros(n, dtype=torch.long, device=device) for _ in KINDS)
        self._rows = torch.arange(n, device=device)
        # measurements can be older than the current state: gather from the tick history
        self.delays_observations = self.randomize and any(self.ranges[k][1] > 0 for k in ("imu", "joint"))

    def resample(self, mask: torch.Tensor) -> None:
        """Draw new delays for the envs of `mask` (N,) bool (at reset); no host synchronisation."""
        if not self.randomize:
            return
        for kind in KINDS:
            lo, hi = self.ranges[kind]
            draw = torch.randint(lo, hi + 1, mask.shape, device=mask.device)
            buf = getattr(self, kind)
            buf.copy_(torch.where(mask, draw, buf))
        self.physics.action_delay.copy_(self.action)

    def set(self, action: int | torch.Tensor | None = None, imu: int | torch.Tensor | None = None,
            joint: int | torch.Tensor | None = None) -> None:
        """Fix delays (an int or a (num_envs,) int tensor per kind; None keeps it), e.g. for an
        evaluation grid. Raises ValueError outside 0..decimation (synchronises: not for a policy step)."""
        for kind, value in (("action", action), ("imu", imu), ("joint", joint)):
            if value is None:
                continue
            buf = getattr(self, kind)
            value = torch.as_tensor(value, device=buf.device)
            if value.is_floating_point() or int(value.min()) < 0 or int(value.max()) > self.decimation:
                raise ValueError(f"{kind} latency must be integer ticks in 0..{self.decimation} "
                                 f"(control.decimation), got {value.tolist()}")
            buf.copy_(value.expand_as(buf))
            if kind != "action" and int(value.max()) > 0:
                self.delays_observations = True
        self.physics.action_delay.copy_(self.action)

    def at(self, history: torch.Tensor, delay: torch.Tensor) -> torch.Tensor:
        """(N, k) row of `history` (decimation + 1, N, k) that is `delay` (N,) ticks old."""
        return history[self.decimation - delay, self._rows]

    def values(self) -> dict[str, torch.Tensor]:
        """The live per-env delays by item (`action_latency`, ...) for `env.domain_rand_values`."""
        return {f"{kind}_latency": getattr(self, kind) for kind in KINDS}
