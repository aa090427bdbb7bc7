"""Run a trained policy: `python gym/scripts/play.py --task=asimov [--headless] [--video] [--plot]`.

Loads the newest model_<it>.pt of the newest run of the task's experiment (or --load_run /
--checkpoint, or any file with --checkpoint_file), runs --num_envs envs with the deterministic policy
under a fixed --command (v_x, v_y, w_z), and prints falls, mean episode length and tracking errors.

- With a display and without --headless, env 0 is shown in MuJoCo's viewer, camera tracking the
  robot; keys steer the command, pause and reset (gym/utils/viewer_keys.py); it runs until the window
  is closed (or --duration seconds).
- --video: renders env 0 headless for --video_length seconds into <run>/videos/model_<it>.mp4
  (gym/utils/video.py). The OpenGL backend is chosen before mujoco is imported: EGL, else OSMesa; a
  MUJOCO_GL set by the user wins.
- --plot: PNG plots of env 0 (velocities, joints, torques, feet) next to the video (gym/utils/play_plots.py).
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # run from a checkout without installing

from gym.utils.gl_backend import RenderBackendError, check_video_args, select_gl_backend, wants_rendering  # noqa: E402

if __name__ == "__main__" and wants_rendering(sys.argv[1:]):  # before anything imports mujoco
    try:
        select_gl_backend()
    except RenderBackendError as e:
        sys.exit(f"error: {e}")

import torch  # noqa: E402

from gym.utils.cli import get_args  # noqa: E402
from gym.utils.task_registry import ResolvedTask, resolve_task_cfgs  # noqa: E402
from gym.utils.validation import SETUP_ERRORS  # noqa: E402

PLAY_ARGS = [
    {"name": "--duration", "type": float, "default": None,
     "help": "seconds of simulated time (default 10; with the viewer: until the window is closed)"},
    {"name": "--command", "type": float, "nargs": 3, "default": [0.5, 0.0, 0.0], "metavar": ("VX", "VY", "WZ"),
     "help": "velocity command: v_x [m/s], v_y [m/s], w_z [rad/s], body frame"},
    {"name": "--video", "action": "store_true", "help": "record env 0 to <run>/videos/model_<it>.mp4"},
    {"name": "--plot", "action": "store_true", "help": "write PNG plots of env 0 to <run>/videos/"},
    {"name": "--checkpoint_file", "metavar": "PATH", "help": "play this checkpoint file (any folder)"},
]


def play(args, task: ResolvedTask | None = None) -> dict[str, float]:
    """Roll out the policy and return the summary printed at the end.

    `task`: configs already resolved with `resolve_task_cfgs(args, for_play=True)` (fixed command,
    no pushes / noise / friction randomization, the checkpoint's policy shape); resolved here if None.
    """
    from gym.utils.play_plots import StateLogger
    from gym.utils.viewer_keys import CommandKeys, InteractiveViewer, has_display

    task = task or resolve_task_cfgs(args, for_play=True)
    path = task.load_path
    env = task.make_env()
    runner = task.make_runner(env, log_dir=None)
    runner.load(path, load_optimizer=False)
    policy = runner.get_inference_policy(device=env.device)
    out_dir, prefix = path.parent / "videos", f"model_{runner.current_learning_iteration}"
    clip = make_clip(args, env) if args.video else None
    log = StateLogger(env) if args.plot else None
    keys = CommandKeys(args.command)
    viewer = None
    if not args.headless:
        if has_display():
            viewer = InteractiveViewer(env, keys)
        else:
            print("No display found: running headless (pass --headless to silence this).")
    duration = args.duration if args.duration is not None else (float("inf") if viewer else 10.0)
    duration = max(duration, args.video_length if clip is not None else 0.0)
    print(f"Playing {path} on {env.num_envs} envs for {duration} s, command {args.command}")

    steps, falls, lengths = 0, 0, []
    err = torch.zeros(3, device=env.device)
    obs = env.get_observations()
    if clip is not None:
        clip.capture(env)
    with torch.inference_mode():
        while steps * env.dt < duration - 1e-9:
            if viewer is not None:
                if not viewer.is_running():
                    break
                if keys.apply(env):
                    obs = env.get_observations()
                if keys.paused:
                    viewer.sync(env.dt)
                    continue
            length_before = env.episode_length_buf.clone()
            obs, _, _, dones, extras = env.step(policy(obs))
            steps += 1
            err += torch.abs(env.commands[:, :3] - torch.cat([env.base_lin_vel[:, :2], env.base_ang_vel[:, 2:]], 1)
                             ).mean(0)
            falls += int((dones & ~extras["time_outs"]).sum())
            lengths += (length_before[dones] + 1).tolist()
            if clip is not None:
                clip.capture(env)
            if log is not None:
                log.record(env)
            if viewer is not None:
                viewer.sync(env.dt)
    lengths += [n for n in env.episode_length_buf.tolist() if n > 0]  # episodes still running at the end
    err /= max(steps, 1)
    summary = {"falls": falls, "mean_episode_length_s": sum(lengths) / max(len(lengths), 1) * env.dt,
               "vx_error": float(err[0]), "vy_error": float(err[1]), "wz_error": float(err[2])}
    print("\nPlay summary")
    print(f"  envs x duration        {env.num_envs} x {steps * env.dt:.1f} s")
    print(f"  falls                  {summary['falls']}")
    print(f"  mean episode length    {summary['mean_episode_length_s']:.2f} s")
    print(f"  mean |v_x error|       {summary['vx_error']:.3f} m/s")
    print(f"  mean |v_y error|       {summary['vy_error']:.3f} m/s")
    print(f"  mean |w_z error|       {summary['wz_error']:.3f} rad/s")
    if clip is not None:
        from gym.utils.video import render_fps

        video = clip.save(out_dir / f"{prefix}.mp4")
        print(f"  video                  {video} ({len(clip.frames)} frames, {clip.recorder.width}x"
              f"{clip.recorder.height}, {clip.fps:g} fps; rendered at {render_fps(clip.recorder):.0f} frames/s)")
    if log is not None:
        for plot in log.plot(out_dir, prefix):
            print(f"  plot                   {plot}")
    if viewer is not None:
        viewer.close()
    return summary


def make_clip(args, env):
    """A `Clip` of env 0: --video_length seconds at --video_size (default 640 x 480)."""
    from gym.utils.video import Clip, VideoRecorder

    width, height = args.video_size or (640, 480)
    recorder = VideoRecorder(env.robot.mj_model, env.robot.base_body_id, width, height)
    return Clip(recorder, env.dt, args.video_length)


def main(argv: list[str] | None = None) -> None:
    """Command line entry: bad input exits with its message (no traceback) before anything is built."""
    args = get_args(argv, description=__doc__, extra=PLAY_ARGS)
    try:
        check_video_args(args)
        task = resolve_task_cfgs(args, for_play=True)
    except SETUP_ERRORS as e:
        sys.exit(f"error: {e}")
    try:
        play(args, task)
    except RenderBackendError as e:
        sys.exit(f"error: {e}")


if __name__ == "__main__":
    main()
