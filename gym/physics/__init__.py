"""Batched physics backends behind one interface (`Physics`).

`make_physics("warp" | "mujoco", ...)` builds MuJoCo Warp (CUDA or Warp's CPU device) or MuJoCo C
with worker threads (CPU only). `default_physics()` picks warp where CUDA exists, else mujoco.
"""

from __future__ import annotations

import mujoco
import torch

from gym.physics.base import Physics, PhysicsError

BACKENDS = ("warp", "mujoco")


def default_physics() -> str:
    """"warp" when a CUDA device is present, else "mujoco" (MuJoCo C is much faster on CPU)."""
    return "warp" if torch.cuda.is_available() else "mujoco"


def make_physics(name: str, mj_model: mujoco.MjModel, num_envs: int, device: str, decimation: int,
                 nconmax: int = 24, njmax: int = 128, graph_capture: bool = True) -> Physics:
    """Build backend `name` for `num_envs` copies of `mj_model` on `device`.

    nconmax / njmax / graph_capture apply to MuJoCo Warp only (see `WarpPhysics`).
    Raises ValueError for an unknown backend or for the mujoco backend on a CUDA device.
    """
    if name == "auto":
        name = default_physics()
    if name == "warp":
        from gym.physics.warp_backend import WarpPhysics

        return WarpPhysics(mj_model, num_envs, device, decimation, nconmax=nconmax, njmax=njmax,
                           graph_capture=graph_capture)
    if name == "mujoco":
        if torch.device(device).type != "cpu":
            raise ValueError(f"the mujoco physics backend runs on the CPU only, got sim_device={device!r}; "
                             "use --physics=warp for CUDA or --sim_device=cpu")
        from gym.physics.mujoco_backend import MujocoPhysics

        return MujocoPhysics(mj_model, num_envs, device, decimation)
    raise ValueError(f"unknown physics backend {name!r}; choose one of {BACKENDS} (or 'auto')")


__all__ = ["BACKENDS", "Physics", "PhysicsError", "default_physics", "make_physics"]
