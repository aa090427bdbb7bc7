"""`WarpPhysics`: batched MuJoCo Warp worlds with zero-copy torch views.

One `mujoco_warp.Data` holds all `num_envs` worlds. `qpos`, `qvel`, `ctrl` and `sensordata` are
`wp.to_torch` views of its arrays (no copies): the env writes `ctrl` in place and reads the state
directly. `step()` runs `decimation` `mujoco_warp.step` calls, captured once as a Warp graph (CUDA
graph on GPU, Warp's CPU graph on CPU) and replayed, with no host synchronisation inside it.

Per-env parameters (`geom_friction`, `body_mass`, `body_inertia`) are batched model fields
(`put_model(batch_sizes=...)`), so each world has its own copy.
"""

from __future__ import annotations

import logging

import mujoco
import mujoco_warp as mjw
import torch
import warp as wp

from gym.physics.base import Physics

log = logging.getLogger(__name__)
_BATCHED_FIELDS = ("geom_friction", "body_mass", "body_inertia")


class WarpPhysics(Physics):
    """MuJoCo Warp backend; `device` is a torch/Warp device string ("cpu", "cuda", "cuda:0")."""

    name = "warp"

    def __init__(self, mj_model: mujoco.MjModel, num_envs: int, device: str, decimation: int,
                 nconmax: int = 24, njmax: int = 96, graph_capture: bool = True) -> None:
        super().__init__(mj_model, num_envs, device, decimation)
        wp.config.log_level = wp.LOG_WARNING  # no per-kernel "Module ... load" lines
        wp.init()
        self.wp_device = wp.get_device("cuda:0" if device == "cuda" else device)
        mj_data = mujoco.MjData(mj_model)
        mujoco.mj_forward(mj_model, mj_data)
        with wp.ScopedDevice(self.wp_device):
            self.model = mjw.put_model(mj_model, batch_sizes={f: num_envs for f in _BATCHED_FIELDS})
            # Solver iteration caps are expected (MuJoCo C stops there silently too); keep the
            # contact / constraint buffer overflow warnings, which mean results are wrong.
            self.model.opt.warn_overflow &= ~(int(mjw.OverflowType.ITERATIONS) | int(mjw.OverflowType.LS_ITERATIONS))
            self.data = mjw.put_data(mj_model, mj_data, nworld=num_envs, nconmax=nconmax, njmax=njmax)
        d = self.data
        self.qpos, self.qvel = wp.to_torch(d.qpos), wp.to_torch(d.qvel)
        self.ctrl, self.sensordata = wp.to_torch(d.ctrl), wp.to_torch(d.sensordata)
        self.qacc_warmstart = wp.to_torch(d.qacc_warmstart)
        self.act = wp.to_torch(d.act) if mj_model.na else None
        self.geom_friction = wp.to_torch(self.model.geom_friction)  # (num_envs, ngeom, 3)
        self.body_mass = wp.to_torch(self.model.body_mass)  # (num_envs, nbody)
        self.body_inertia = wp.to_torch(self.model.body_inertia)  # (num_envs, nbody, 3)
        self._graph = None
        self._graph_capture = graph_capture
        self._forward_graph = None
        # On CUDA, run Warp's work on torch's current stream so it is ordered after the env's
        # in-place torch writes (ctrl, resets) without any host synchronisation.
        self._stream = wp.stream_from_torch(self.qpos.device) if self.wp_device.is_cuda else None

    # -- stepping ---------------------------------------------------------------------------
    def _step_eager(self) -> None:
        for _ in range(self.decimation):
            mjw.step(self.model, self.data)

    def _capture(self, fn):
        """Capture `fn` as a Warp graph; return None (and say why, once) when capture fails."""
        try:
            if self._stream is not None:
                torch.cuda.current_stream(self.qpos.device).synchronize()  # setup writes land first
            with wp.ScopedDevice(self.wp_device):
                fn()  # compiles / loads every kernel before capture
                with wp.ScopedCapture(device=self.wp_device) as capture:
                    fn()
            return capture.graph
        except Exception as exc:  # noqa: BLE001 - any capture failure falls back to eager launches
            log.warning("MuJoCo Warp graph capture failed on %s (%s: %s); falling back to eager kernel "
                        "launches, which is slower.", self.wp_device, type(exc).__name__, exc)
            self._graph_capture = False
            return None

    def step(self) -> None:
        if self._graph is None and self._graph_capture:
            saved = self._save_state()
            self._graph = self._capture(self._step_eager)
            self._restore_state(saved)  # capture ran the physics twice; undo that
        with wp.ScopedDevice(self.wp_device), wp.ScopedStream(self._stream):
            if self._graph is not None:
                wp.capture_launch(self._graph, stream=self._stream)
            else:
                self._step_eager()

    def _state_fields(self) -> list[torch.Tensor]:
        fields = [self.qpos, self.qvel, self.ctrl, self.qacc_warmstart, wp.to_torch(self.data.time)]
        return fields + ([self.act] if self.act is not None else [])

    def _save_state(self) -> list[torch.Tensor]:
        return [f.clone() for f in self._state_fields()]

    def _restore_state(self, saved: list[torch.Tensor]) -> None:
        for dst, src in zip(self._state_fields(), saved):
            dst.copy_(src)
        self.forward()

    def forward(self) -> None:
        """Recompute positions, velocities, contacts and sensors for every world (no time step)."""
        if self._forward_graph is None and self._graph_capture:
            self._forward_graph = self._capture(lambda: mjw.forward(self.model, self.data))
        with wp.ScopedDevice(self.wp_device), wp.ScopedStream(self._stream):
            if self._forward_graph is not None:
                wp.capture_launch(self._forward_graph, stream=self._stream)
            else:
                mjw.forward(self.model, self.data)

    # -- resets and parameters --------------------------------------------------------------
    def reset_envs(self, env_ids: torch.Tensor, qpos: torch.Tensor, qvel: torch.Tensor) -> None:
        if env_ids.numel() == 0:
            return
        self.qpos[env_ids] = qpos
        self.qvel[env_ids] = qvel
        self.qacc_warmstart[env_ids] = 0.0
        if self.act is not None:
            self.act[env_ids] = 0.0
        # forward() over all worlds is one batched launch; the others are recomputed from their own
        # unchanged state, so they are not disturbed.
        self.forward()

    def set_geom_friction(self, env_ids: torch.Tensor, geom_ids: list[int], friction: torch.Tensor) -> None:
        idx = torch.as_tensor(geom_ids, device=self.device)
        self.geom_friction[env_ids[:, None], idx[None, :], 0] = friction.to(self.geom_friction)

    def set_body_mass(self, env_ids: torch.Tensor, body_id: int, mass: torch.Tensor) -> None:
        ratio = mass.to(self.body_mass) / self.body_mass[env_ids, body_id]
        self.body_mass[env_ids, body_id] = mass.to(self.body_mass)
        self.body_inertia[env_ids, body_id] *= ratio[:, None]
        with wp.ScopedDevice(self.wp_device), wp.ScopedStream(self._stream):
            mjw.set_const(self.model, self.data)
        self.forward()
