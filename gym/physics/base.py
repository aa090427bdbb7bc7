"""The batched-physics interface that `LeggedRobot` talks to.

Two backends implement it: `WarpPhysics` (MuJoCo Warp, CUDA or Warp's CPU device) and
`MujocoPhysics` (MuJoCo's C library with worker threads). The env only ever reads and writes the
torch tensors below and calls the methods; it never branches on the backend.

All tensors are float32, shape (num_envs, ...), on `self.device`, and are the live state: reading
them after `step()` gives the new state, writing `ctrl` in place sets the next targets.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

import mujoco
import torch


class PhysicsError(RuntimeError):
    """Raised when the simulation state becomes invalid (NaN / Inf) or a buffer overflows."""


class Physics(ABC):
    """`num_envs` copies of one `mujoco.MjModel`, stepped together.

    Attributes (torch tensors, float32, live views or buffers refreshed by `step` / `reset_envs`):
        qpos: (num_envs, nq) generalized positions; free joint = world pos [m] + quat (w, x, y, z).
        qvel: (num_envs, nv) generalized velocities; free joint = world linear [m/s] + body angular
            [rad/s] (MuJoCo convention).
        ctrl: (num_envs, nu) actuator controls (joint position targets [rad] for position actuators).
        sensordata: (num_envs, nsensordata) every sensor of the model, addresses as in `mj_model`.
    """

    name: str = "base"

    def __init__(self, mj_model: mujoco.MjModel, num_envs: int, device: str, decimation: int) -> None:
        if num_envs < 1:
            raise ValueError(f"num_envs must be >= 1, got {num_envs}")
        if decimation < 1:
            raise ValueError(f"decimation must be >= 1, got {decimation}")
        self.mj_model = mj_model
        self.num_envs = num_envs
        self.device = torch.device(device)
        self.decimation = decimation
        self.qpos: torch.Tensor
        self.qvel: torch.Tensor
        self.ctrl: torch.Tensor
        self.sensordata: torch.Tensor

    @abstractmethod
    def step(self) -> None:
        """Advance every env by `decimation` physics steps with `ctrl` held (zero-order hold)."""

    @abstractmethod
    def reset_envs(self, env_ids: torch.Tensor, qpos: torch.Tensor, qvel: torch.Tensor) -> None:
        """Set the state of `env_ids` (long, (k,)) to `qpos` (k, nq) and `qvel` (k, nv).

        Zeroes their controls' history (warm start) and recomputes derived quantities so that
        `sensordata` is valid for the new state. Other envs are untouched.
        """

    @abstractmethod
    def set_geom_friction(self, env_ids: torch.Tensor, geom_ids: list[int], friction: torch.Tensor) -> None:
        """Set the sliding friction of `geom_ids` in `env_ids`; `friction` is (len(env_ids), len(geom_ids))."""

    @abstractmethod
    def set_body_mass(self, env_ids: torch.Tensor, body_id: int, mass: torch.Tensor) -> None:
        """Set the mass [kg] of `body_id` in `env_ids` (`mass`: (len(env_ids),)).

        The body's inertia is scaled by the same ratio (same shape, denser material) and derived
        quantities (subtree masses, inverse weights) are recomputed (`mj_setConst` / `set_const`).
        """

    def check_finite(self) -> None:
        """Raise `PhysicsError` naming the first bad env if qpos or qvel holds NaN or Inf.

        This synchronizes with the device; call it at iteration boundaries, not inside the step.
        """
        bad = ~(torch.isfinite(self.qpos).all(dim=1) & torch.isfinite(self.qvel).all(dim=1))
        if bool(bad.any()):
            env = int(torch.nonzero(bad)[0])
            raise PhysicsError(
                f"physics diverged (NaN/Inf in qpos/qvel) in {int(bad.sum())} env(s), first env {env} "
                f"on the {self.name} backend. Lower sim.dt, raise control.damping, or check the "
                "model's masses and joint limits."
            )
