"""`WarpPhysics`: batched MuJoCo Warp worlds with zero-copy torch views.

One `mujoco_warp.Data` holds all `num_envs` worlds. `qpos`, `qvel`, `ctrl` and `sensordata` are
`wp.to_torch` views of its arrays (no copies): the env reads the state directly. `ctrl` (the new
targets) and the held targets of the previous step are torch buffers seen by Warp zero-copy; before
each physics tick a small kernel writes the tick's control into the model's `ctrl` per world (the
held targets while the tick is below the world's `action_delay`, else the new ones), and a copy
after each tick fills `qpos_history` / `qvel_history`. `step()` runs these and `decimation`
`mujoco_warp.step` calls, captured once as a Warp graph (CUDA graph on GPU, Warp's CPU graph on
CPU) and replayed, with no host synchronisation inside it. On CUDA all Warp work runs on torch's
current stream, so it is ordered after the env's torch writes.

Graph capture is checked, not hoped for: without conditional graph nodes (CUDA driver and toolkit
12.4+) the solver loops are captured with a fixed iteration count (`opt.graph_conditional =
False`); a capture that still fails on CUDA raises `PhysicsError` with the reason and the fix.
`sim.graph_capture = False` forces eager launches (slower, for debugging).

Per-env parameters (`Physics.MODEL_FIELDS`: friction, solref, masses, inertias, CoM, armature,
damping, friction loss, actuator gains and force ranges) and the constants `set_const` derives from
them (`body_subtreemass`, `body_invweight0`, `dof_invweight0`, `actuator_acc0`) are batched model
fields (`put_model(batch_sizes=...)`), so each world has its own copy.
"""

from __future__ import annotations

import copy
import logging
import os
import threading
import time

import mujoco
import mujoco_warp as mjw
import torch
import warp as wp

from gym.physics.base import Physics, PhysicsError

log = logging.getLogger(__name__)
_BATCHED_FIELDS = (*Physics.MODEL_FIELDS,  # set per env by set_model_fields; the rest set_const derives
                   "body_subtreemass", "body_invweight0", "dof_invweight0", "actuator_acc0")
_COMPILE_NOTICE_AFTER_S = 3.0  # a first call slower than this is compiling kernels
_OVERFLOW = mjw.OverflowType
_SLEEP = int(mujoco.mjtEnableBit.mjENBL_SLEEP)


@wp.kernel
def _tick_ctrl(tick: int, delay: wp.array(dtype=wp.int32), held: wp.array2d(dtype=float),
               target: wp.array2d(dtype=float), ctrl: wp.array2d(dtype=float)):
    """ctrl[w] = held[w] for ticks before world w's action delay, else target[w]."""
    w, i = wp.tid()
    if tick < delay[w]:
        ctrl[w, i] = held[w, i]
    else:
        ctrl[w, i] = target[w, i]


def warp_device(device: str) -> wp.context.Device:
    """The Warp device for a torch device string; a clear error when Warp cannot see CUDA.

    Raises PhysicsError when `device` is CUDA but Warp finds no CUDA device (driver too old for
    this Warp build, or a CPU-only Warp wheel) although torch may see one.
    """
    wp.init()
    if torch.device(device).type != "cuda":
        return wp.get_device("cpu")
    if wp.get_cuda_device_count() == 0:
        torch_sees = torch.cuda.is_available()
        raise PhysicsError(
            f"sim_device={device!r} asks for CUDA but Warp {wp.config.version} sees no CUDA device"
            f"{' although torch does (torch CUDA ' + str(torch.version.cuda) + ')' if torch_sees else ''}. "
            "Warp needs an NVIDIA driver that supports its CUDA build: the CUDA-13 warp-lang wheel "
            "needs driver R580 or newer, a CUDA-12 build needs 12.4+ for graph conditionals. Update "
            "the driver or install a warp-lang build for your CUDA version; or run on the CPU with "
            "--sim_device=cpu."
        )
    return wp.get_device("cuda:0" if device == "cuda" else device)


class WarpPhysics(Physics):
    """MuJoCo Warp backend; `device` is a torch/Warp device string ("cpu", "cuda", "cuda:0").

    nconmax: contacts per world (a pool shared by all worlds: nconmax * num_envs in total).
    njmax: constraint rows per world (no world may exceed it).
    graph_capture: capture the decimation loop as a graph (False = eager launches, slower).
    """

    name = "warp"

    def __init__(self, mj_model: mujoco.MjModel, num_envs: int, device: str, decimation: int,
                 nconmax: int = 24, njmax: int = 128, graph_capture: bool = True) -> None:
        wp.config.log_level = wp.LOG_WARNING  # no per-kernel "Module ... load" lines
        self.wp_device = warp_device(device)  # first: a clear error before touching CUDA
        super().__init__(mj_model, num_envs, device, decimation)
        self.nconmax, self.njmax = nconmax, njmax
        if mj_model.opt.enableflags & _SLEEP:  # MuJoCo C's shortcut for static terrain geoms (see
            mj_model = copy.copy(mj_model)  # model_builder._add_terrain); here it costs 2x, so it is off
            mj_model.opt.enableflags &= ~_SLEEP
        mj_data = mujoco.MjData(mj_model)
        mujoco.mj_forward(mj_model, mj_data)
        with wp.ScopedDevice(self.wp_device):
            self.model = mjw.put_model(mj_model, batch_sizes={f: num_envs for f in _BATCHED_FIELDS})
            # Solver iteration caps are expected (MuJoCo C stops there silently too); buffer
            # overflows are read per world from `data.overflow` by `check_buffers`.
            self.model.opt.warn_overflow = 0
            self.conditional_graphs = self.wp_device.is_cuda and wp.is_conditional_graph_supported()
            if self.wp_device.is_cuda and not self.conditional_graphs:
                log.warning("CUDA conditional graph nodes are unavailable (driver/toolkit older than "
                            "12.4): capturing the solver with a fixed iteration count instead.")
            if not self.conditional_graphs:
                self.model.opt.graph_conditional = False
            self.data = mjw.put_data(mj_model, mj_data, nworld=num_envs, nconmax=nconmax, njmax=njmax)
        d = self.data
        self.qpos, self.qvel = wp.to_torch(d.qpos), wp.to_torch(d.qvel)
        self.sensordata = wp.to_torch(d.sensordata)
        self._tick_ctrl_t = wp.to_torch(d.ctrl)  # what each tick applies
        self.ctrl = self._tick_ctrl_t.clone()  # new targets (the env writes these)
        self._held = self._tick_ctrl_t.clone()  # targets of the previous step
        self.qpos_history = self.qpos.unsqueeze(0).repeat(decimation + 1, 1, 1).contiguous()
        self.qvel_history = self.qvel.unsqueeze(0).repeat(decimation + 1, 1, 1).contiguous()
        self._wp = {name: wp.from_torch(t) for name, t in (
            ("ctrl", self.ctrl), ("held", self._held), ("delay", self.action_delay),
            ("qpos_history", self.qpos_history), ("qvel_history", self.qvel_history))}
        self.qacc_warmstart = wp.to_torch(d.qacc_warmstart)
        self.time = wp.to_torch(d.time)
        self.act = wp.to_torch(d.act) if mj_model.na else None
        self._overflow = wp.to_torch(d.overflow)  # (num_envs,) int bitmask, sticky
        self._nefc, self._nacon = wp.to_torch(d.nefc), wp.to_torch(d.nacon)
        self.graph_capture = graph_capture
        self._graphs: dict[str, object] = {}
        # On CUDA, run Warp's work on torch's current stream so it is ordered after the env's
        # in-place torch writes (ctrl, resets) without any host synchronisation.
        self._stream = wp.stream_from_torch(self.qpos.device) if self.wp_device.is_cuda else None

    # -- graphs ------------------------------------------------------------------------------
    def _step_eager(self) -> None:
        d, a = self.data, self._wp
        nworld, nu = self.ctrl.shape
        wp.copy(a["qpos_history"][0], d.qpos)
        wp.copy(a["qvel_history"][0], d.qvel)
        for tick in range(self.decimation):
            if nu:
                wp.launch(_tick_ctrl, dim=(nworld, nu), inputs=[tick, a["delay"], a["held"], a["ctrl"]],
                          outputs=[d.ctrl])
            mjw.step(self.model, d)
            wp.copy(a["qpos_history"][tick + 1], d.qpos)
            wp.copy(a["qvel_history"][tick + 1], d.qvel)
        wp.copy(a["held"], a["ctrl"])

    def _reset_forward_eager(self) -> None:
        """Position / velocity stages and their sensors for every world (no collision, no solver)."""
        mjw.fwd_kinematics(self.model, self.data)
        mjw.sensor_pos(self.model, self.data)
        mjw.com_vel(self.model, self.data)
        mjw.sensor_vel(self.model, self.data)

    def _launch(self, name: str, fn) -> None:
        """Run `fn` as the captured graph `name` (captured on first use), or eagerly."""
        with wp.ScopedDevice(self.wp_device), wp.ScopedStream(self._stream):
            if not self.graph_capture:
                fn()
                return
            if name not in self._graphs:
                self._graphs[name] = self._capture(name, fn)
            if self._graphs[name] is None:
                fn()
            else:
                wp.capture_launch(self._graphs[name], stream=self._stream)

    def _capture(self, name: str, fn):
        """Capture `fn` (run once first to load every kernel) without changing the state.

        On CUDA a failure raises PhysicsError naming the cause and the fix; on Warp's CPU device it
        logs a warning and returns None (eager launches).
        """
        saved = [f.clone() for f in self._state_fields()]
        try:
            if self._stream is not None:
                torch.cuda.current_stream(self.qpos.device).synchronize()  # setup writes land first
            self._timed_first_call(fn)
            with wp.ScopedCapture(device=self.wp_device, stream=self._stream) as capture:
                fn()
            graph = capture.graph
        except Exception as exc:  # noqa: BLE001 - reported below with the fix
            if self.wp_device.is_cuda:
                raise PhysicsError(
                    f"MuJoCo Warp graph capture of {name!r} failed on {self.wp_device} "
                    f"({type(exc).__name__}: {exc}). Graph capture needs a CUDA driver and a Warp "
                    f"build of CUDA 12.4+ (conditional nodes: {self.conditional_graphs}); update the "
                    "driver / warp-lang, or run eagerly (5-10x slower) with --set sim.graph_capture=false."
                ) from exc
            log.warning("MuJoCo Warp graph capture of %r failed on %s (%s: %s); using eager launches.",
                        name, self.wp_device, type(exc).__name__, exc)
            graph = None
        for dst, src in zip(self._state_fields(), saved):
            dst.copy_(src)  # capture ran the work twice; undo that
        return graph

    def _timed_first_call(self, fn) -> None:
        """Run `fn` once; if it takes long (kernels compiling), say so while it runs."""
        cache = wp.config.kernel_cache_dir or os.path.expanduser("~/.cache/warp")
        start = time.perf_counter()
        notice = threading.Timer(_COMPILE_NOTICE_AFTER_S, print, args=(
            f"Compiling MuJoCo Warp kernels for {self.wp_device} (first run only; can take several "
            f"minutes; cached in {cache})...",), kwargs={"flush": True})
        notice.daemon = True
        notice.start()
        try:
            fn()
            wp.synchronize_device(self.wp_device)
        finally:
            notice.cancel()
        if time.perf_counter() - start > _COMPILE_NOTICE_AFTER_S:
            print(f"MuJoCo Warp kernels ready after {time.perf_counter() - start:.0f} s.", flush=True)

    def _state_fields(self) -> list[torch.Tensor]:
        fields = [self.qpos, self.qvel, self.ctrl, self._held, self._tick_ctrl_t, self.qacc_warmstart, self.time,
                  self.sensordata, self._overflow, self.qpos_history, self.qvel_history]
        return fields + ([self.act] if self.act is not None else [])

    # -- stepping ----------------------------------------------------------------------------
    def step(self) -> None:
        self._launch("step", self._step_eager)

    def forward(self) -> None:
        """Full forward pass (all sensors) for every world, no time step."""
        self._launch("forward", lambda: mjw.forward(self.model, self.data))

    def reset_envs(self, mask: torch.Tensor, qpos: torch.Tensor, qvel: torch.Tensor) -> None:
        m = mask.to(self.device).reshape(-1, 1)
        self.qpos.copy_(torch.where(m, qpos.to(self.qpos), self.qpos))
        self.qvel.copy_(torch.where(m, qvel.to(self.qvel), self.qvel))
        self.qacc_warmstart.masked_fill_(m, 0.0)
        self.time.masked_fill_(m.reshape(-1), 0.0)
        self._held.copy_(torch.where(m, self.ctrl, self._held))
        self.qpos_history.copy_(torch.where(m, self.qpos, self.qpos_history))
        self.qvel_history.copy_(torch.where(m, self.qvel, self.qvel_history))
        if self.act is not None:
            self.act.masked_fill_(m, 0.0)
        # Kinematics + velocity sensors over all worlds (cheap: no collision, no solver), kept
        # only for the reset worlds; the others keep the sensors of their last tick.
        kept = self.sensordata.clone()
        self.sensordata.zero_()
        self._launch("reset_forward", self._reset_forward_eager)
        self.sensordata.copy_(torch.where(m, self.sensordata, kept))

    def set_qvel(self, mask: torch.Tensor, qvel: torch.Tensor) -> None:
        m = mask.to(self.device).reshape(-1, 1)
        self.qvel.copy_(torch.where(m, qvel.to(self.qvel), self.qvel))

    def check_buffers(self) -> None:
        flags = 0
        for value in torch.unique(self._overflow).tolist():  # OR of the per-world bitmasks
            flags |= int(value)
        problems = []
        # the overflow flags are sticky; the counts are those of the last physics tick
        if flags & int(_OVERFLOW.NEFC):
            need = max(int(self._nefc.max()), self.njmax + 1)
            problems.append(f"constraint rows: a world needed at least {need} > sim.njmax={self.njmax}; "
                            f"set --set sim.njmax={_round_up(need * 1.5)}")
        if flags & int(_OVERFLOW.BROADPHASE | _OVERFLOW.NARROWPHASE):
            total = max(int(self._nacon[0]), self.nconmax * self.num_envs + 1)
            per_world = -(-total // self.num_envs)
            problems.append(f"contacts: at least {total} in all worlds > sim.nconmax={self.nconmax} "
                            f"x {self.num_envs} worlds; set --set sim.nconmax={_round_up(per_world * 1.5)}")
        other = flags & ~int(_OVERFLOW.NEFC | _OVERFLOW.BROADPHASE | _OVERFLOW.NARROWPHASE
                            | _OVERFLOW.ITERATIONS | _OVERFLOW.LS_ITERATIONS)
        if other:
            problems.append(f"other MuJoCo Warp overflow flags {_OVERFLOW(other)!r}")
        if problems:
            raise PhysicsError("MuJoCo Warp buffer overflow, so contacts or constraints were dropped "
                               "and the physics is wrong: " + "; ".join(problems))

    # -- per-env parameters ------------------------------------------------------------------
    def set_model_fields(self, env_ids: torch.Tensor, values: dict[str, torch.Tensor]) -> None:
        """See `Physics.set_model_fields`: writes the batched model fields, then `set_const`."""
        self._check_model_fields(values)
        ids = torch.as_tensor(env_ids, device=self.device).long()
        for name, value in values.items():
            field = wp.to_torch(getattr(self.model, name))  # (num_envs, ...) batched, zero-copy
            field[ids] = value.to(device=self.device, dtype=field.dtype).reshape(len(ids), *field.shape[1:])
        with wp.ScopedDevice(self.wp_device), wp.ScopedStream(self._stream):
            mjw.set_const(self.model, self.data)
        self.forward()

    def get_model_field(self, name: str) -> torch.Tensor:
        field = wp.to_torch(getattr(self.model, name))
        return field.detach().cpu().double().expand(self.num_envs, *field.shape[1:]).clone()


def _round_up(x: float, to: int = 16) -> int:
    return int(-(-int(x) // to) * to)
