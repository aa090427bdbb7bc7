"""play.py's interactive viewer: MuJoCo's passive viewer on env 0 with keys that steer the command.

Keys (GLFW key codes, as `mujoco.viewer.launch_passive(key_callback=...)` passes them):

| key | effect |
|---|---|
| Up / Down, keypad 8 / 2 | v_x +/- 0.1 m/s |
| Home / End, keypad 4 / 6 | v_y +/- 0.1 m/s (+ = left) |
| Left / Right, keypad 7 / 9 | w_z +/- 0.2 rad/s (+ = counter-clockwise, turn left) |
| Delete, keypad 5 | command to zero |
| Space | pause / resume the policy |
| Backspace | reset every env |

The key callback runs on the viewer's thread, so `CommandKeys` only records what was asked (under a
lock); the play loop applies it between policy steps with `apply`. The overlay (top left) shows the
command and env 0's measured base velocities (body frame).
"""

from __future__ import annotations

import os
import sys
import threading
import time
from typing import Any

import numpy as np
import torch

KEY_SPACE, KEY_BACKSPACE, KEY_DELETE = 32, 259, 261
KEY_RIGHT, KEY_LEFT, KEY_DOWN, KEY_UP, KEY_HOME, KEY_END = 262, 263, 264, 265, 268, 269
KEY_KP_2, KEY_KP_4, KEY_KP_5, KEY_KP_6, KEY_KP_7, KEY_KP_8, KEY_KP_9 = 322, 324, 325, 326, 327, 328, 329
STEP = np.array([0.1, 0.1, 0.2])  # command increments: v_x [m/s], v_y [m/s], w_z [rad/s]
DELTAS: dict[int, tuple[int, float]] = {  # key -> (command index, sign)
    KEY_UP: (0, 1.0), KEY_KP_8: (0, 1.0), KEY_DOWN: (0, -1.0), KEY_KP_2: (0, -1.0),
    KEY_HOME: (1, 1.0), KEY_KP_4: (1, 1.0), KEY_END: (1, -1.0), KEY_KP_6: (1, -1.0),
    KEY_LEFT: (2, 1.0), KEY_KP_7: (2, 1.0), KEY_RIGHT: (2, -1.0), KEY_KP_9: (2, -1.0),
}
HELP = ("Up/Down v_x, Home/End v_y, Left/Right w_z (or keypad 8/2, 4/6, 7/9), Delete zero, "
        "Space pause, Backspace reset")


class CommandKeys:
    """The command (v_x [m/s], v_y [m/s], w_z [rad/s], body frame) steered by keys, clipped to `limits`."""

    def __init__(self, command: list[float], limits: np.ndarray | None = None) -> None:
        """`limits`: (3, 2) [min, max] per command component (default +-1.5 m/s, +-1.5 m/s, +-2 rad/s)."""
        self.command = np.asarray(command, dtype=float).copy()
        self.limits = np.array([[-1.5, 1.5], [-1.5, 1.5], [-2.0, 2.0]]) if limits is None else np.asarray(limits)
        self.paused = False
        self._reset_requested = False
        self._changed = False
        self._lock = threading.Lock()

    def __call__(self, keycode: int) -> None:
        """The viewer's key callback: change the command, pause or ask for a reset."""
        with self._lock:
            if keycode in DELTAS:
                i, sign = DELTAS[keycode]
                value = round(self.command[i] + sign * STEP[i], 6)
                self.command[i] = float(np.clip(value, *self.limits[i]))
                self._changed = True
            elif keycode in (KEY_DELETE, KEY_KP_5):
                self.command[:] = 0.0
                self._changed = True
            elif keycode == KEY_SPACE:
                self.paused = not self.paused
            elif keycode == KEY_BACKSPACE:
                self._reset_requested = True

    def take(self) -> tuple[np.ndarray | None, bool]:
        """(new command (3,) or None if unchanged, reset requested) since the last call."""
        with self._lock:
            command = self.command.copy() if self._changed else None
            reset, self._changed, self._reset_requested = self._reset_requested, False, False
        return command, reset

    def apply(self, env: Any) -> bool:
        """Apply pending changes to `env` (every env; resets keep the new command); True if it was reset."""
        command, reset = self.take()
        if command is not None:
            set_play_command(env, command)
        if reset:
            env.reset()
            set_play_command(env, self.command)
        return reset


def set_play_command(env: Any, command: np.ndarray | list[float]) -> None:
    """Set every env's command to `command` (v_x, v_y, w_z) now and for the resets to come.

    play.py's config (`configure_play`) draws commands from the one-point ranges [c, c]; this moves
    those ranges and the env's draw bounds (`_cmd_lo`, `_cmd_span`) with the command.
    """
    c = torch.as_tensor(np.asarray(command, dtype=float), dtype=env.commands.dtype, device=env.device)
    env.commands[:, :3] = c
    env._cmd_lo[:3] = c
    env._cmd_span[:3] = 0.0
    r = env.cfg.commands.ranges
    r.lin_vel_x, r.lin_vel_y, r.ang_vel_yaw = ([float(v), float(v)] for v in c.tolist())


def measured_velocity(env: Any, i: int = 0) -> np.ndarray:
    """Env `i`'s base velocity (v_x, v_y [m/s], w_z [rad/s]), body frame, as the command is stated."""
    return torch.cat([env.base_lin_vel[i, :2], env.base_ang_vel[i, 2:3]]).double().cpu().numpy()


def overlay_text(command: np.ndarray, measured: np.ndarray, paused: bool) -> tuple[str, str]:
    """(left column, right column) of the viewer overlay."""
    left = "command\nmeasured\n" + ("PAUSED" if paused else "")
    right = (f"v_x {command[0]:+.2f}  v_y {command[1]:+.2f}  w_z {command[2]:+.2f}\n"
             f"v_x {measured[0]:+.2f}  v_y {measured[1]:+.2f}  w_z {measured[2]:+.2f}\n")
    return left, right


def has_display() -> bool:
    """True where a window can open (Linux: DISPLAY or WAYLAND_DISPLAY set; other systems: always)."""
    return not sys.platform.startswith("linux") or bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


class InteractiveViewer:
    """A passive `mujoco.viewer` showing env 0, camera tracking its base, keys from `CommandKeys`."""

    def __init__(self, env: Any, keys: CommandKeys) -> None:
        import mujoco
        import mujoco.viewer

        self.env, self.keys, self._mujoco = env, keys, mujoco
        self.model = env.robot.mj_model
        self.data = mujoco.MjData(self.model)
        self.handle = mujoco.viewer.launch_passive(self.model, self.data, key_callback=keys)
        with self.handle.lock():
            cam = self.handle.cam
            mujoco.mjv_defaultFreeCamera(self.model, cam)
            cam.type = mujoco.mjtCamera.mjCAMERA_TRACKING
            cam.trackbodyid = env.robot.base_body_id
            cam.distance, cam.azimuth, cam.elevation = 3.0, 135.0, -20.0
        print(f"Viewer keys: {HELP}")

    def is_running(self) -> bool:
        return self.handle.is_running()

    def sync(self, realtime_dt: float) -> None:
        """Show env 0's state and the overlay; sleep so that one call lasts about `realtime_dt` [s]."""
        t0 = time.perf_counter()
        ref = self.env.cfg.viewer.ref_env
        with self.handle.lock():
            self.data.qpos[:] = self.env.physics.qpos[ref].double().cpu().numpy()
            self.data.qvel[:] = self.env.physics.qvel[ref].double().cpu().numpy()
            self._mujoco.mj_forward(self.model, self.data)
        mj = self._mujoco
        left, right = overlay_text(self.keys.command, measured_velocity(self.env, ref), self.keys.paused)
        self.handle.set_texts((mj.mjtFontScale.mjFONTSCALE_150, mj.mjtGridPos.mjGRID_TOPLEFT, left, right))
        self.handle.sync()
        time.sleep(max(0.0, realtime_dt - (time.perf_counter() - t0)))

    def close(self) -> None:
        self.handle.close()
