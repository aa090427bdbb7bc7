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
import yaml  # noqa: E402

from gym import LOGS_DIR  # noqa: E402
from gym.envs import task_registry  # noqa: E402
from gym.utils.cli import get_args, update_cfgs_from_args  # noqa: E402
from gym.utils.run_dirs import get_load_path  # noqa: E402
from gym.utils.task_registry import resolve_sim_device  # noqa: E402

PLAY_ARGS = [
    {"name": "--duration", "type": float, "default": 10.0, "help": "seconds of simulated time"},
    {"name": "--command", "type": float, "nargs": 3, "default": [0.5, 0.0, 0.0], "metavar": ("VX", "VY", "WZ"),
     "help": "velocity command: v_x [m/s], v_y [m/s], w_z [rad/s], body frame"},
]


def configure_play(env_cfg, command: list[float]) -> None:
    """A fixed command, no pushes, noise or friction randomization; every env tracks the same command."""
    c = env_cfg.commands
    c.ranges.lin_vel_x, c.ranges.lin_vel_y, c.ranges.ang_vel_yaw = ([v, v] for v in command)
    c.heading_command, c.rel_standing_envs, c.resampling_time_range = False, 0.0, [1e9, 1e9]
    env_cfg.domain_rand.push_robots = False
    env_cfg.domain_rand.randomize_friction = False
    env_cfg.noise.add_noise = False


def play(args) -> dict[str, float]:
    """Roll out the policy and return the summary printed at the end."""
    env_cfg, train_cfg = task_registry.get_cfgs(args.task, sim_device=resolve_sim_device(args))
    env_cfg.env.num_envs = 16
    env_cfg, train_cfg = update_cfgs_from_args(env_cfg, train_cfg, args)
    configure_play(env_cfg, args.command)
    r = train_cfg.runner
    path = get_load_path(LOGS_DIR / r.experiment_name, r.load_run, r.checkpoint)
    use_saved_policy_shape(train_cfg, path.parent / "train_cfg.yaml")
    env, _ = task_registry.make_env(args.task, args, env_cfg=env_cfg)
    runner, _ = task_registry.make_alg_runner(env, args=args, train_cfg=train_cfg, log_dir=None)
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


def use_saved_policy_shape(train_cfg, saved_cfg: Path) -> None:
    """Build the policy as the run that wrote the checkpoint did (e.g. trained on GPU, played on CPU)."""
    if not saved_cfg.is_file():
        return
    saved = yaml.safe_load(saved_cfg.read_text()) or {}
    for key, value in saved.get("policy", {}).items():
        if hasattr(train_cfg.policy, key):
            setattr(train_cfg.policy, key, value)
    if "empirical_normalization" in saved.get("runner", {}):
        train_cfg.runner.empirical_normalization = saved["runner"]["empirical_normalization"]


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


if __name__ == "__main__":
    play(get_args(description=__doc__, extra=PLAY_ARGS))
