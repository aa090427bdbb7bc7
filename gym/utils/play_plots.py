"""State logger over a play run (one env) and its PNG plots (matplotlib, no display needed).

    log = StateLogger(env, env_index=0)
    ... after each env.step: log.record(env)
    paths = log.plot(folder, prefix="model_1500")   # *_velocities.png, *_joints.png, *_torques.png, *_feet.png

Everything is recorded at the policy rate (one row per `env.step`), in the units and frames the env uses:
command and measured base velocities (v_x, v_y [m/s], w_z [rad/s], body frame), joint positions and
their targets [rad], joint torques [N m], foot contact forces [N, world] and air times [s].
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import torch


class StateLogger:
    """Per-step records of one env; `arrays()` stacks them, `plot()` writes the PNGs."""

    def __init__(self, env: Any, env_index: int = 0) -> None:
        self.i = env_index
        self.dt = float(env.dt)  # [s] policy step
        self.joint_names: list[str] = list(env.joint_names)
        self.num_feet = int(env.num_feet)
        self.rows: dict[str, list[np.ndarray]] = {k: [] for k in (
            "command", "velocity", "dof_pos", "dof_target", "torque", "foot_force", "air_time", "contact")}

    def record(self, env: Any) -> None:
        """Append env `i`'s state after a policy step (call after `env.step`)."""
        i = self.i
        targets = torch.maximum(torch.minimum(env.compute_targets(env.actions)[i], env.joint_hi), env.joint_lo)
        values = {
            "command": env.commands[i, :3],
            "velocity": torch.cat([env.base_lin_vel[i, :2], env.base_ang_vel[i, 2:3]]),
            "dof_pos": env.dof_pos[i],
            "dof_target": targets,
            "torque": env.torques[i],
            "foot_force": env.foot_forces[i].norm(dim=-1),  # (feet,) [N]
            "air_time": env.feet_air_time[i],
            "contact": env.foot_contact[i].float(),
        }
        for key, value in values.items():
            self.rows[key].append(value.detach().double().cpu().numpy().copy())

    def __len__(self) -> int:
        return len(self.rows["command"])

    def arrays(self) -> dict[str, np.ndarray]:
        """Each record as an array (T, ...) plus "time" (T,) [s]."""
        out = {k: np.stack(v) for k, v in self.rows.items()}
        out["time"] = np.arange(1, len(self) + 1) * self.dt
        return out

    def plot(self, folder: str | Path, prefix: str) -> list[Path]:
        """Write <prefix>_velocities.png, _joints.png, _torques.png and _feet.png into `folder`; returns
        their paths. Raises ValueError if nothing was recorded."""
        if len(self) == 0:
            raise ValueError("no states recorded: call StateLogger.record(env) after each env.step")
        import matplotlib

        matplotlib.use("Agg", force=False)  # files only; never needs a display
        import matplotlib.pyplot as plt

        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        a = self.arrays()
        paths = []
        for suffix, draw in (("velocities", self._velocities), ("joints", self._joints),
                             ("torques", self._torques), ("feet", self._feet)):
            fig = draw(plt, a)
            path = folder / f"{prefix}_{suffix}.png"
            fig.savefig(path, dpi=100)
            plt.close(fig)
            paths.append(path)
        return paths

    def _velocities(self, plt: Any, a: dict[str, np.ndarray]) -> Any:
        fig, axes = plt.subplots(3, 1, figsize=(9, 7), sharex=True)
        labels = ("v_x [m/s]", "v_y [m/s]", "w_z [rad/s]")
        for k, ax in enumerate(axes):
            ax.plot(a["time"], a["command"][:, k], "--", color="k", label="commanded")
            ax.plot(a["time"], a["velocity"][:, k], color="tab:blue", label="measured")
            ax.set_ylabel(labels[k])
            ax.grid(alpha=0.3)
        axes[0].legend(loc="upper right")
        axes[0].set_title(f"Base velocity, body frame (env {self.i})")
        axes[-1].set_xlabel("time [s]")
        fig.tight_layout()
        return fig

    def _joint_grid(self, plt: Any, title: str) -> tuple[Any, np.ndarray]:
        n = len(self.joint_names)
        cols = min(4, n)
        rows = math.ceil(n / cols)
        fig, axes = plt.subplots(rows, cols, figsize=(3.2 * cols, 2.2 * rows), sharex=True, squeeze=False)
        for ax in axes.flat[n:]:
            ax.set_visible(False)
        fig.suptitle(title)
        return fig, axes.flat

    def _joints(self, plt: Any, a: dict[str, np.ndarray]) -> Any:
        fig, axes = self._joint_grid(plt, f"Joint positions vs targets [rad] (env {self.i})")
        for j, name in enumerate(self.joint_names):
            axes[j].plot(a["time"], a["dof_target"][:, j], "--", color="k", lw=1, label="target")
            axes[j].plot(a["time"], a["dof_pos"][:, j], color="tab:blue", lw=1, label="position")
            axes[j].set_title(name, fontsize=8)
            axes[j].grid(alpha=0.3)
        axes[0].legend(fontsize=7)
        fig.tight_layout()
        return fig

    def _torques(self, plt: Any, a: dict[str, np.ndarray]) -> Any:
        fig, axes = self._joint_grid(plt, f"Joint torques [N m] (env {self.i})")
        for j, name in enumerate(self.joint_names):
            axes[j].plot(a["time"], a["torque"][:, j], color="tab:red", lw=1)
            axes[j].set_title(name, fontsize=8)
            axes[j].grid(alpha=0.3)
        fig.tight_layout()
        return fig

    def _feet(self, plt: Any, a: dict[str, np.ndarray]) -> Any:
        fig, (force_ax, air_ax) = plt.subplots(2, 1, figsize=(9, 6), sharex=True)
        for f in range(self.num_feet):
            force_ax.plot(a["time"], a["foot_force"][:, f], label=f"foot {f}")
            air_ax.plot(a["time"], a["air_time"][:, f], label=f"foot {f}")
        force_ax.set_ylabel("contact force [N]")
        air_ax.set_ylabel("air time [s]")
        air_ax.set_xlabel("time [s]")
        force_ax.set_title(f"Feet (env {self.i})")
        for ax in (force_ax, air_ax):
            ax.grid(alpha=0.3)
            ax.legend(loc="upper right", fontsize=8)
        fig.tight_layout()
        return fig
