"""`MujocoPhysics`: the `Physics` interface on MuJoCo's C library, stepped by `mujoco.rollout`.

All envs are advanced by one `Rollout.rollout` call per `step()`; it releases the GIL and runs
MuJoCo's `mj_step` on a C++ thread pool. The simulation state lives in float64 numpy buffers
(MuJoCo's `mjSTATE_FULLPHYSICS` layout: time, qpos, qvel, act, ...); the float32 torch tensors of
the interface are refreshed from them once per `step()` / `reset_envs()`.

Warm start: the rollout API takes `qacc_warmstart` per env but does not return it (the state spec
it writes is FULLPHYSICS, which excludes mjSTATE_WARMSTART). It is rebuilt after each step from
the last two velocities, `(qvel[t] - qvel[t-1]) / dt`: exact for the Euler integrator without
joint damping, the (implicitly damped) acceleration otherwise, which only serves as the Newton
solver's starting point.
"""

from __future__ import annotations

import copy
import os

import mujoco
import mujoco.rollout
import numpy as np
import torch

from gym.physics.base import Physics

_FULL = mujoco.mjtState.mjSTATE_FULLPHYSICS.value
_CTRL = mujoco.mjtState.mjSTATE_CTRL.value


def default_nthread() -> int:
    """Rollout threads per process: the usable cores (affinity mask) divided among the
    LOCAL_WORLD_SIZE processes torchrun / train.py --num_processes start on this machine."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    try:
        local_ranks = max(1, int(os.environ.get("LOCAL_WORLD_SIZE", "1")))
    except ValueError:
        local_ranks = 1
    return max(1, cores // local_ranks)


class MujocoPhysics(Physics):
    """`num_envs` MuJoCo C simulations stepped by a thread pool (CPU).

    Args:
        mj_model: the model; its `opt.timestep` [s] is the physics step. Not modified.
        num_envs: number of envs (>= 1).
        device: torch device of the public tensors. "cpu" gives zero-copy views; another device
            costs one host-to-device copy of qpos/qvel/sensordata per step.
        decimation: physics steps per `step()` with `ctrl` held.
        nthread: worker threads of the rollout pool (default `default_nthread()`: the cores this
            process may use, shared among the LOCAL_WORLD_SIZE ranks of a multi-process run).

    Per-env parameters (`set_model_fields`) give the changed envs a modified
    `MjModel` copy (copy-on-write); the others keep sharing `mj_model`, and envs given equal values
    (from the same model) share one copy. A copy costs `mujoco.mj_sizeModel(mj_model)` bytes: ~42 KB
    for the project's primitive-shape Asimov, a few MB with a generated terrain, 73 MB for the
    reference mesh model (mostly mesh BVHs), so randomizing thousands of envs needs light geometry
    or few distinct values (`domain_rand.num_buckets`); a copy that would not fit raises MemoryError.
    """

    name = "mujoco"

    def __init__(
        self,
        mj_model: mujoco.MjModel,
        num_envs: int,
        device: str = "cpu",
        decimation: int = 4,
        nthread: int | None = None,
    ) -> None:
        super().__init__(mj_model, num_envs, device, decimation)
        m, n = mj_model, num_envs
        self.nthread = max(1, nthread if nthread is not None else default_nthread())
        self.dt = float(m.opt.timestep)
        nstate = mujoco.mj_stateSize(m, _FULL)
        self._qpos_sl = slice(1, 1 + m.nq)  # FULLPHYSICS = [time, qpos, qvel, act, ...]
        self._qvel_sl = slice(1 + m.nq, 1 + m.nq + m.nv)

        self._pool = mujoco.rollout.Rollout(nthread=self.nthread)
        self._models: list[mujoco.MjModel] = [m] * n  # per-env list the rollout reads
        self._datas = [mujoco.MjData(m) for _ in range(self.nthread)]  # one per worker thread
        self._scratch = mujoco.MjData(m)  # for resets / mj_setConst

        # float64 simulation buffers (MuJoCo side)
        self._default_state = np.empty(nstate)
        mujoco.mj_getState(m, self._scratch, self._default_state, _FULL)
        self._state = np.tile(self._default_state, (n, 1))  # (N, nstate) state at step start
        self._warm = np.zeros((n, m.nv))  # (N, nv) qacc_warmstart [m/s^2, rad/s^2]
        self._control = np.zeros((n, decimation, m.nu))  # (N, decimation, nu) ctrl of each tick
        self._held = np.zeros((n, m.nu))  # (N, nu) targets of the previous step (action latency)
        self._tick = np.arange(decimation)
        self._state_out = np.empty((n, decimation, nstate))
        self._sens_out = np.empty((n, decimation, m.nsensordata))

        # float32 published buffers; on CPU the tensors are views of these arrays
        self._qpos32 = self._state[:, self._qpos_sl].astype(np.float32)
        self._qvel32 = self._state[:, self._qvel_sl].astype(np.float32)
        self._sens32 = np.zeros((n, m.nsensordata), dtype=np.float32)
        self._qpos_hist32 = np.repeat(self._qpos32[None], decimation + 1, axis=0)  # (dec+1, N, nq)
        self._qvel_hist32 = np.repeat(self._qvel32[None], decimation + 1, axis=0)
        self._on_cpu = self.device.type == "cpu"
        self.qpos = self._publish(self._qpos32)
        self.qvel = self._publish(self._qvel32)
        self.sensordata = self._publish(self._sens32)
        self.qpos_history = self._publish(self._qpos_hist32)
        self.qvel_history = self._publish(self._qvel_hist32)
        self.ctrl = torch.zeros((n, m.nu), dtype=torch.float32, device=self.device)
        self._fault = np.zeros(n, dtype=bool)
        self.fault = self._publish(self._fault)
        self._forward(np.arange(n))

    # ------------------------------------------------------------------ stepping
    def step(self) -> None:
        """Advance all envs by `decimation` physics steps: per env, the previous targets for its
        first `action_delay` ticks, then `ctrl` (one (N, decimation, nu) control array).

        Never raises for one bad env: `fault` (num_envs,) marks envs whose control was NaN/Inf or
        beyond `mjMAXVAL` (MuJoCo would silently zero it; it is held at 0 instead) and envs that
        MuJoCo reset (bad qpos/qvel/qacc) or stopped early (contact arena full) inside the
        rollout. Detection compares the env's time with t0 + decimation * dt, so one case slips
        through: decimation 1 and a reset inside the first physics step after `reset_envs`
        (time 0 -> dt); the env's own non-finite check still sees a NaN state.
        """
        target, ok = self._safe_ctrl()
        late = self._tick[None, :] < self.action_delay.cpu().numpy()[:, None]  # (N, dec): still held
        np.copyto(self._control, np.where(late[:, :, None], self._held[:, None, :], target[:, None, :]))
        np.copyto(self._held, target)
        self._qpos_hist32[0] = self._state[:, self._qpos_sl]
        self._qvel_hist32[0] = self._state[:, self._qvel_sl]
        self._pool.rollout(
            self._models, self._datas, self._state, self._control,
            control_spec=_CTRL, skip_checks=True, nstep=self.decimation,
            initial_warmstart=self._warm, state=self._state_out, sensordata=self._sens_out,
        )  # fmt: skip
        last = self._state_out[:, -1]
        prev = self._state_out[:, -2] if self.decimation > 1 else self._state
        np.subtract(last[:, self._qvel_sl], prev[:, self._qvel_sl], out=self._warm)
        self._warm *= 1.0 / self.dt
        # a reset (mj_resetData) or an early stop shows as time != t0 + decimation * dt
        stopped = np.abs(last[:, 0] - self._state[:, 0] - self.decimation * self.dt) > 0.5 * self.dt
        np.copyto(self._fault, stopped | ~ok)
        np.copyto(self._state, last)
        np.copyto(self._qpos32, last[:, self._qpos_sl])
        np.copyto(self._qvel32, last[:, self._qvel_sl])
        np.copyto(self._sens32, self._sens_out[:, -1])
        np.copyto(self._qpos_hist32[1:], self._state_out[:, :, self._qpos_sl].transpose(1, 0, 2))
        np.copyto(self._qvel_hist32[1:], self._state_out[:, :, self._qvel_sl].transpose(1, 0, 2))
        self._sync()

    def reset_envs(self, mask: torch.Tensor, qpos: torch.Tensor, qvel: torch.Tensor) -> None:
        """Set the envs of `mask` (N,) to `qpos[mask]` / `qvel[mask]`; time, act, warm start to 0.

        Position- and velocity-stage sensors of the reset envs are recomputed for the new state
        (`mj_kinematics`, `mj_comPos`, `mj_sensorPos`, `mj_comVel`, `mj_sensorVel`, as the Warp
        backend does); their acceleration-stage sensors (contacts) read 0 until the next step.
        """
        ids = np.flatnonzero(mask.detach().cpu().numpy().reshape(-1))
        if ids.size == 0:
            return
        self._state[ids] = self._default_state
        self._state[ids, self._qpos_sl] = qpos.detach().cpu().numpy()[ids]
        self._state[ids, self._qvel_sl] = qvel.detach().cpu().numpy()[ids]
        self._warm[ids] = 0.0
        self._fault[ids] = False
        self._qpos32[ids] = self._state[ids, self._qpos_sl]
        self._qvel32[ids] = self._state[ids, self._qvel_sl]
        self._qpos_hist32[:, ids] = self._qpos32[ids]
        self._qvel_hist32[:, ids] = self._qvel32[ids]
        self._held[ids] = self._safe_ctrl()[0][ids]
        self._forward(ids, full=False)
        self._sync()

    def set_qvel(self, mask: torch.Tensor, qvel: torch.Tensor) -> None:
        """Overwrite `qvel` of the envs of `mask`; effective at the next physics tick (no forward)."""
        ids = np.flatnonzero(mask.detach().cpu().numpy().reshape(-1))
        if ids.size == 0:
            return
        self._state[ids, self._qvel_sl] = qvel.detach().cpu().numpy()[ids]
        self._qvel32[ids] = self._state[ids, self._qvel_sl]
        self._sync()

    def _safe_ctrl(self) -> tuple[np.ndarray, np.ndarray]:
        """(`ctrl` as (N, nu) numpy with non-finite or beyond-`mjMAXVAL` rows zeroed, (N,) bool: row ok)."""
        ctrl = self.ctrl.detach().cpu().numpy()
        ok = (np.abs(ctrl) <= mujoco.mjMAXVAL).all(axis=1)  # False for NaN
        return np.where(ok[:, None], ctrl, 0.0), ok

    def _forward(self, ids: np.ndarray, full: bool = True) -> None:
        """Recompute sensordata of the envs `ids` from `_state` in the scratch data.

        full: `mj_forward` (all sensors); else only the position and velocity stages and their
        sensors (acceleration-stage sensors 0), the same work the Warp backend does at a reset.
        """
        d = self._scratch
        ctrl = self.ctrl.detach().cpu().numpy()
        for env in ids.tolist():
            m = self._models[env]
            mujoco.mj_setState(m, d, self._state[env], _FULL)
            d.ctrl[:] = ctrl[env]
            d.qacc_warmstart[:] = 0.0
            if full:
                mujoco.mj_forward(m, d)
            else:
                d.sensordata[:] = 0.0
                mujoco.mj_kinematics(m, d)
                mujoco.mj_comPos(m, d)
                mujoco.mj_sensorPos(m, d)
                mujoco.mj_comVel(m, d)
                d.flg_subtreevel = 0  # else mj_sensorVel keeps the subtree momenta of the previous env
                mujoco.mj_sensorVel(m, d)
            self._sens32[env] = d.sensordata

    def _publish(self, buf: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(buf) if self._on_cpu else torch.from_numpy(buf).to(self.device)

    def _sync(self) -> None:
        """Copy the float32 host buffers to the device tensors (no-op on CPU, they are views)."""
        if not self._on_cpu:
            self.qpos.copy_(torch.from_numpy(self._qpos32))
            self.qvel.copy_(torch.from_numpy(self._qvel32))
            self.sensordata.copy_(torch.from_numpy(self._sens32))
            self.fault.copy_(torch.from_numpy(self._fault))
            self.qpos_history.copy_(torch.from_numpy(self._qpos_hist32))
            self.qvel_history.copy_(torch.from_numpy(self._qvel_hist32))

    # ------------------------------------------------------------------ per-env parameters
    def _modify(self, env_ids: torch.Tensor, values: np.ndarray, apply) -> None:
        """Give each env of `env_ids` a copy of its current model changed by `apply(model, row)`,
        `row` = its row of `values` (len(env_ids), k). Envs with the same current model and the same
        row share one copy; `mj_model` itself is never changed."""
        made: dict[tuple[int, bytes], mujoco.MjModel] = {}
        for row, env in zip(values, env_ids.detach().cpu().tolist(), strict=True):
            key = (id(self._models[env]), row.tobytes())
            if key not in made:
                need = mujoco.mj_sizeModel(self.mj_model)
                avail = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
                if need > avail // 2:
                    raise MemoryError(
                        f"per-env MjModel copy for env {env} needs {need / 2**20:.0f} MiB, only {avail / 2**20:.0f} "
                        "MiB free; randomize fewer envs, use domain_rand.num_buckets or lighten the geometry")
                made[key] = copy.copy(self._models[env])
                apply(made[key], row)
            self._models[env] = made[key]

    def set_model_fields(self, env_ids: torch.Tensor, values: dict[str, torch.Tensor]) -> None:
        """See `Physics.set_model_fields`: one model copy per distinct set of values, then `mj_setConst`."""
        names = list(values)
        self._check_model_fields(names)
        parts = [values[n].detach().cpu().double().numpy().reshape(len(env_ids), -1) for n in names]
        splits = np.cumsum([p.shape[1] for p in parts])[:-1]

        def apply(m: mujoco.MjModel, row: np.ndarray) -> None:
            for name, part in zip(names, np.split(row, splits)):
                field = getattr(m, name)
                field[...] = part.reshape(field.shape)
            mujoco.mj_setConst(m, self._scratch)

        self._modify(env_ids, np.concatenate(parts, axis=1), apply)

    def get_model_field(self, name: str) -> torch.Tensor:
        return torch.from_numpy(np.stack([np.array(getattr(m, name), dtype=np.float64) for m in self._models]))

    def close(self) -> None:
        """Stop the rollout thread pool."""
        self._pool.close()
