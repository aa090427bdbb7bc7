"""Run a trained policy: `python gym/scripts/play.py --task=asimov [--headless]`.

Loads the newest model_<it>.pt of the newest run of the task's experiment (or --load_run /
--checkpoint), runs --num_envs envs with the deterministic policy for --duration seconds under a
fixed --command (v_x, v_y, w_z), and prints falls, mean episode length and tracking errors.
Without --headless, and with a display, the first env is shown in `mujoco.viewer`.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # run from a checkout without installing

import torch  # noqa: E402

from gym.utils.cli import get_args  # noqa: E402
from gym.utils.task_registry import ResolvedTask, resolve_task_cfgs  # noqa: E402
from gym.utils.validation import SETUP_ERRORS  # noqa: E402

PLAY_ARGS = [
    {"name": "--duration", "type": float, "default": 10.0, "help": "seconds of simulated time"},
    {"name": "--command", "type": float, "nargs": 3, "default": [0.5, 0.0, 0.0], "metavar": ("VX", "VY", "WZ"),
     "help": "velocity command: v_x [m/s], v_y [m/s], w_z [rad/s], body frame"},
]


def play(args, task: ResolvedTask | None = None) -> dict[str, float]:
    """Roll out the policy and return the summary printed at the end.

    `task`: configs already resolved with `resolve_task_cfgs(args, for_play=True)` (fixed command,
    no pushes / noise / friction randomization, the checkpoint's policy shape); resolved here if None.
    """
    task = task or resolve_task_cfgs(args, for_play=True)
    path = task.load_path
    env = task.make_env()
    runner = task.make_runner(env, log_dir=None)
    runner.load(path, load_optimizer=False)
    policy = runner.get_inference_policy(device=env.device)
    viewer = None if args.headless else open_viewer(env)
    print(f"Playing {path} on {env.num_envs} envs for {args.duration} s, command {args.command}")

    steps = int(round(args.duration / env.dt))
    falls, lengths = 0, []
    err = torch.zeros(3, device=env.device)
    obs = env.get_observations()
    with torch.inference_mode():
        for _ in range(steps):
            length_before = env.episode_length_buf.clone()
            obs, _, _, dones, extras = env.step(policy(obs))
            err += torch.abs(env.commands[:, :3] - torch.cat([env.base_lin_vel[:, :2], env.base_ang_vel[:, 2:]], 1)
                             ).mean(0)
            fell = dones & ~extras["time_outs"]
            falls += int(fell.sum())
            lengths += (length_before[dones] + 1).tolist()
            if viewer is not None:
                if not viewer.is_running():
                    break
                sync_viewer(env, viewer)
    lengths += [n for n in env.episode_length_buf.tolist() if n > 0]  # episodes still running at the end
    err /= steps
    summary = {"falls": falls, "mean_episode_length_s": sum(lengths) / len(lengths) * env.dt,
               "vx_error": float(err[0]), "vy_error": float(err[1]), "wz_error": float(err[2])}
    print("\nPlay summary")
    print(f"  envs x duration        {env.num_envs} x {args.duration:.1f} s")
    print(f"  falls                  {summary['falls']}")
    print(f"  mean episode length    {summary['mean_episode_length_s']:.2f} s")
    print(f"  mean |v_x error|       {summary['vx_error']:.3f} m/s")
    print(f"  mean |v_y error|       {summary['vy_error']:.3f} m/s")
    print(f"  mean |w_z error|       {summary['wz_error']:.3f} rad/s")
    return summary


def open_viewer(env):
    """A passive `mujoco.viewer` on env 0, or None (with a note) when there is no display."""
    if sys.platform.startswith("linux") and not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        print("No display found: running headless (pass --headless to silence this).")
        return None
    import mujoco
    import mujoco.viewer

    env._viewer_data = mujoco.MjData(env.robot.mj_model)
    return mujoco.viewer.launch_passive(env.robot.mj_model, env._viewer_data)


def sync_viewer(env, viewer) -> None:
    import mujoco

    data, ref = env._viewer_data, env.cfg.viewer.ref_env
    data.qpos[:] = env.physics.qpos[ref].double().cpu().numpy()
    data.qvel[:] = env.physics.qvel[ref].double().cpu().numpy()
    mujoco.mj_forward(env.robot.mj_model, data)
    viewer.sync()
    time.sleep(env.dt)


def main(argv: list[str] | None = None) -> None:
    """Command line entry: bad input exits with its message (no traceback) before anything is built."""
    args = get_args(argv, description=__doc__, extra=PLAY_ARGS)
    try:
        task = resolve_task_cfgs(args, for_play=True)
    except SETUP_ERRORS as e:
        sys.exit(f"error: {e}")
    play(args, task)


if __name__ == "__main__":
    main()
