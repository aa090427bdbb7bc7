"""The batched-physics interface that `LeggedRobot` talks to.

Two backends implement it: `WarpPhysics` (MuJoCo Warp, CUDA or Warp's CPU device) and
`MujocoPhysics` (MuJoCo's C library with worker threads). The env only ever reads and writes the
torch tensors below and calls the methods; it never branches on the backend.

All tensors are float32, shape (num_envs, ...), on `self.device`, and are the live state: reading
them after `step()` gives the new state, writing `ctrl` in place sets the next targets.

Per-env writes take a fixed-shape boolean mask (num_envs,) and full-batch values, never index
lists: on CUDA a mask costs no host synchronisation, an index list built from a condition does.

Observation age (the same on both backends): after `step()`, `sensordata` was computed by the
last physics tick's forward pass, i.e. from the state one tick (`opt.timestep`) before `qpos` /
`qvel`, as MuJoCo's `mj_step` does. After `reset_envs`, the reset envs' position- and
velocity-stage sensors describe the new state itself and their acceleration-stage sensors
(contact found / force) read 0 until the next step. `qpos` / `qvel` are the state after the last
tick (age 0); `qpos_history` / `qvel_history` keep every tick of the last `step()` for measurements
that are older (observation latency).

Zero-order hold and action latency (the same on both backends): `step()` runs `decimation` ticks.
Tick t (0-based) applies the new targets `ctrl` when t >= `action_delay` of the env, else the
targets of the previous `step()` (held since then). `action_delay` 0 is the plain hold; `decimation`
delays the new targets by one whole policy step. No interpolation, as the firmware does (§16).
"""

from __future__ import annotations

from abc import ABC, abstractmethod

import mujoco
import torch


class PhysicsError(RuntimeError):
    """The simulation cannot go on correctly: buffers too small, or most envs diverged."""


class Physics(ABC):
    """`num_envs` copies of one `mujoco.MjModel`, stepped together.

    Attributes (torch tensors, float32 unless noted, live views or buffers refreshed by `step`):
        qpos: (num_envs, nq) generalized positions; free joint = world pos [m] + quat (w, x, y, z).
        qvel: (num_envs, nv) generalized velocities; free joint = world linear [m/s] + body angular
            [rad/s] (MuJoCo convention).
        ctrl: (num_envs, nu) actuator controls (joint position targets [rad] for position actuators).
        sensordata: (num_envs, nsensordata) every sensor of the model, addresses as in `mj_model`.
        fault: (num_envs,) bool, set by `step()`: the backend itself found the env's simulation
            broken in that step (MuJoCo C reset a diverged state or stopped early; a non-finite
            control). Non-finite states are found by the env from `qpos` / `qvel` / `sensordata`.
        action_delay: (num_envs,) int32 [physics ticks, 0..decimation], written in place by the env:
            how many ticks into the next `step()` the new `ctrl` takes effect (see the module doc).
        qpos_history: (decimation + 1, num_envs, nq): row k is `qpos` after k ticks of the last
            `step()` (row 0 its start state, row `decimation` equals `qpos`). A reset env's rows all
            hold its new state. `qvel_history`: the same for `qvel` (num_envs, nv) (a push written
            by `set_qvel` shows in row 0 of the next step).
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
        self.fault = torch.zeros(num_envs, dtype=torch.bool, device=self.device)
        self.action_delay = torch.zeros(num_envs, dtype=torch.int32, device=self.device)
        self.qpos_history: torch.Tensor
        self.qvel_history: torch.Tensor

    @abstractmethod
    def step(self) -> None:
        """Advance every env by `decimation` physics steps: the previous targets for the env's first
        `action_delay` ticks, then `ctrl` (zero-order hold, see the module doc)."""

    @abstractmethod
    def reset_envs(self, mask: torch.Tensor, qpos: torch.Tensor, qvel: torch.Tensor) -> None:
        """Give the envs where `mask` (num_envs,) bool is set the state `qpos[mask]` / `qvel[mask]`.

        `qpos` (num_envs, nq) and `qvel` (num_envs, nv) are full-batch; rows outside the mask are
        ignored. Time, activations and the solver warm start of the reset envs go to 0 and their
        position / velocity sensors are recomputed for the new state (see the module docstring).
        Their held targets become the current `ctrl` rows (write the reset pose's targets first) and
        every row of their `qpos_history` / `qvel_history` the new state. Other envs are untouched.
        No host synchronisation on CUDA.
        """

    @abstractmethod
    def set_qvel(self, mask: torch.Tensor, qvel: torch.Tensor) -> None:
        """Overwrite the velocities of the envs where `mask` (num_envs,) is set with `qvel[mask]`.

        `qvel` is (num_envs, nv). The change takes effect at the next physics tick (a push, as in
        legged_gym); sensors are not recomputed. No host synchronisation on CUDA.
        """

    # Model fields that `set_model_fields` may change per env (domain randomization).
    MODEL_FIELDS = ("geom_friction", "geom_solref", "body_mass", "body_inertia", "body_ipos", "dof_armature",
                    "dof_damping", "dof_frictionloss", "actuator_gainprm", "actuator_biasprm",
                    "actuator_forcerange")

    @abstractmethod
    def set_model_fields(self, env_ids: torch.Tensor, values: dict[str, torch.Tensor]) -> None:
        """Set per-env model parameters: `values[name]` is (len(env_ids), *mj_model.<name>.shape) for
        names in `MODEL_FIELDS`, in MuJoCo's units. Derived constants (subtree masses, inverse
        weights, actuator constants) are then recomputed (`mj_setConst` / `set_const`). Meant for
        startup: MuJoCo C makes model copies (envs with equal values share one). Raises ValueError
        for a name outside `MODEL_FIELDS`."""

    @abstractmethod
    def get_model_field(self, name: str) -> torch.Tensor:
        """(num_envs, *mj_model.<name>.shape) float64 CPU copy of model field `name` as each env
        simulates it (for checks and tests; reads every env's model)."""

    def _check_model_fields(self, names) -> None:
        unknown = [n for n in names if n not in self.MODEL_FIELDS]
        if unknown:
            raise ValueError(f"set_model_fields: {unknown} not in {self.MODEL_FIELDS}")

    def set_geom_friction(self, env_ids: torch.Tensor, geom_ids: list[int], friction: torch.Tensor) -> None:
        """Set the sliding friction of `geom_ids` in `env_ids`; `friction` is (len(env_ids), len(geom_ids))."""
        rows = torch.as_tensor(env_ids).long().cpu()
        value = self.get_model_field("geom_friction")[rows]
        value[:, geom_ids, 0] = friction.detach().cpu().double().reshape(len(rows), len(geom_ids))
        self.set_model_fields(env_ids, {"geom_friction": value})

    def set_body_mass(self, env_ids: torch.Tensor, body_id: int, mass: torch.Tensor) -> None:
        """Set the mass [kg] of `body_id` in `env_ids` (`mass`: (len(env_ids),)).

        The body's inertia is scaled by the same ratio (same shape, denser material; a massless body
        keeps its zero inertia) and derived quantities (subtree masses, inverse weights) are
        recomputed (`mj_setConst` / `set_const`).
        """
        rows = torch.as_tensor(env_ids).long().cpu()
        masses, inertia = self.get_model_field("body_mass")[rows], self.get_model_field("body_inertia")[rows]
        new = mass.detach().cpu().double().reshape(-1)
        old = masses[:, body_id]
        inertia[:, body_id] *= torch.where(old > 0, new / old, 1.0)[:, None]
        masses[:, body_id] = new
        self.set_model_fields(env_ids, {"body_mass": masses, "body_inertia": inertia})

    def check_buffers(self) -> None:
        """Raise `PhysicsError` with the sizes to set if a contact / constraint buffer overflowed.

        Synchronises with the device: call it once per training iteration, not per policy step.
        Backends with growable buffers (MuJoCo C) report nothing here.
        """
        return None

    def nonfinite(self) -> torch.Tensor:
        """(num_envs,) bool: qpos, qvel or sensordata holds NaN / Inf. No host synchronisation.

        One row sum per tensor: a NaN or Inf anywhere makes the sum non-finite (so does a sum
        beyond float32's range, ~3e38, which is a diverged state too)."""
        return ~torch.isfinite(self.qpos.sum(dim=1) + self.qvel.sum(dim=1) + self.sensordata.sum(dim=1))

    def set_state(self, env_ids: torch.Tensor, qpos: torch.Tensor, qvel: torch.Tensor) -> None:
        """`reset_envs` by index: `env_ids` (k,) long, `qpos` (k, nq), `qvel` (k, nv).

        A convenience for tests and tools (it builds full-batch copies); the env uses masks.
        """
        env_ids = torch.as_tensor(env_ids, device=self.device).long().reshape(-1)
        mask = torch.zeros(self.num_envs, dtype=torch.bool, device=self.device)
        mask[env_ids] = True
        dtype = torch.promote_types(qpos.dtype, self.qpos.dtype)  # keep float64 states exact
        full_qpos, full_qvel = self.qpos.to(dtype).clone(), self.qvel.to(dtype).clone()
        full_qpos[env_ids] = qpos.to(full_qpos)
        full_qvel[env_ids] = qvel.to(full_qvel)
        self.reset_envs(mask, full_qpos, full_qvel)
