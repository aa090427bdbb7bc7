"""Headless videos of a policy: MuJoCo's offscreen renderer, a camera tracking the robot, mp4 files.

    recorder = VideoRecorder(env.robot.mj_model, env.robot.base_body_id, width=640, height=480)
    clip = Clip(recorder, env.dt, seconds=5.0)
    ... each policy step: clip.capture(env)          # env 0, every `clip.every` steps
    clip.save(run_dir / "videos" / "model_1500.mp4")

During training, `add_training_videos(runner, ...)` records a clip every N iterations in a separate
1-env MuJoCo C env on the CPU with a frozen copy of the current policy, from a callback registered
with `runner.add_logger` (nothing runs in the iterations in between).

Rendering needs an OpenGL backend chosen before mujoco is imported: see `gym.utils.gl_backend`.
Shadows and reflections are off by default (they cost about a third of the frame time on a CPU).
"""

from __future__ import annotations

import copy
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import mujoco
import numpy as np
import torch

from gym.utils.gl_backend import RenderBackendError, backend_error

TARGET_FPS = 30.0  # frames are taken every round(1 / (dt * TARGET_FPS)) policy steps: 25 fps at 50 Hz
GRID_SPACING = 0.5  # [m] floor grid lines drawn around the robot (a plain floor hides its motion)
GRID_HALF_SIZE = 5.0  # [m]


class VideoRecorder:
    """Renders (H, W, 3) uint8 RGB frames of a model's state, camera tracking body `track_body`."""

    def __init__(self, model: mujoco.MjModel, track_body: int, width: int = 640, height: int = 480,
                 shadows: bool = False, reflections: bool = False, distance: float = 3.0,
                 azimuth: float = 135.0, elevation: float = -20.0) -> None:
        """`width` x `height` [px], even numbers (H.264); camera `distance` [m], `azimuth` /
        `elevation` [deg] around the tracked body. Raises ValueError for bad sizes and
        RenderBackendError when no OpenGL backend can render offscreen."""
        if width < 16 or height < 16 or width % 2 or height % 2:
            raise ValueError(f"video size {width}x{height}: width and height must be even and >= 16 "
                             "(H.264 needs even sizes), e.g. --video_size 640 480")
        self.model = model
        vis = model.vis.global_
        vis.offwidth, vis.offheight = max(vis.offwidth, width), max(vis.offheight, height)
        if model.nlight == 0:  # only the headlight: brighten it (render-only fields, physics unchanged)
            model.vis.headlight.ambient[:] = np.maximum(model.vis.headlight.ambient, 0.35)
            model.vis.headlight.diffuse[:] = np.maximum(model.vis.headlight.diffuse, 0.65)
        try:
            self.renderer = mujoco.Renderer(model, height=height, width=width)
        except Exception as e:  # noqa: BLE001 - every GL failure becomes one message with the fix
            raise backend_error(e) from e
        self.width, self.height = width, height
        self.data = mujoco.MjData(model)
        self.camera = mujoco.MjvCamera()
        mujoco.mjv_defaultFreeCamera(model, self.camera)
        self.camera.type = mujoco.mjtCamera.mjCAMERA_TRACKING
        self.camera.trackbodyid = int(track_body)
        self.camera.distance, self.camera.azimuth, self.camera.elevation = distance, azimuth, elevation
        self.option = mujoco.MjvOption()
        flags = self.renderer.scene.flags
        flags[mujoco.mjtRndFlag.mjRND_SHADOW] = shadows
        flags[mujoco.mjtRndFlag.mjRND_REFLECTION] = reflections
        flags[mujoco.mjtRndFlag.mjRND_HAZE] = False
        self.render_seconds = 0.0  # [s] wall time spent in `frame`
        self.frames_rendered = 0

    def frame(self, qpos: np.ndarray, qvel: np.ndarray | None = None) -> np.ndarray:
        """The image of state `qpos` (nq,) [and `qvel` (nv,)]: (height, width, 3) uint8."""
        t0 = time.perf_counter()
        self.data.qpos[:] = qpos
        if qvel is not None:
            self.data.qvel[:] = qvel
        mujoco.mj_forward(self.model, self.data)  # body poses, subtree centres (tracking), lights
        self.renderer.update_scene(self.data, camera=self.camera, scene_option=self.option)
        _add_floor_grid(self.renderer.scene, self.data.xpos[self.camera.trackbodyid])
        image = self.renderer.render()
        self.render_seconds += time.perf_counter() - t0
        self.frames_rendered += 1
        return image

    def close(self) -> None:
        """Free the GL context."""
        self.renderer.close()


def _add_floor_grid(scene: mujoco.MjvScene, center: np.ndarray) -> None:
    """Append grid lines on the floor (z = 1 mm) around `center` (3,) [m, world] to `scene`."""
    lo = np.floor((center[:2] - GRID_HALF_SIZE) / GRID_SPACING) * GRID_SPACING
    ticks = np.arange(int(2 * GRID_HALF_SIZE / GRID_SPACING) + 1) * GRID_SPACING
    span = 2 * GRID_HALF_SIZE
    rgba = np.array([0.55, 0.6, 0.65, 1.0], dtype=np.float32)
    for axis in (0, 1):
        for t in ticks:
            if scene.ngeom >= scene.maxgeom:
                return
            a, b = np.array([lo[0], lo[1], 1e-3]), np.array([lo[0], lo[1], 1e-3])
            a[axis] = b[axis] = lo[axis] + t
            b[1 - axis] += span
            geom = scene.geoms[scene.ngeom]
            mujoco.mjv_initGeom(geom, mujoco.mjtGeom.mjGEOM_LINE, np.zeros(3), np.zeros(3), np.zeros(9), rgba)
            mujoco.mjv_connector(geom, mujoco.mjtGeom.mjGEOM_LINE, 2.0, a, b)
            scene.ngeom += 1


class Clip:
    """Frames of env 0 over `seconds` of simulated time, one every `every` policy steps."""

    def __init__(self, recorder: VideoRecorder, dt: float, seconds: float) -> None:
        """`dt`: policy step [s]; `seconds`: clip length [s] of simulated time."""
        if seconds <= 0:
            raise ValueError(f"video length {seconds} s: must be > 0, e.g. --video_length 5")
        self.recorder = recorder
        self.every = max(1, round(1.0 / (dt * TARGET_FPS)))
        self.fps = 1.0 / (dt * self.every)  # played back in real time
        self.num_frames = max(1, round(seconds * self.fps))
        self.frames: list[np.ndarray] = []
        self._step = 0

    @property
    def done(self) -> bool:
        return len(self.frames) >= self.num_frames

    def capture(self, env: Any) -> None:
        """Call once per policy step (after `env.step`, and once before the first): renders env 0
        every `every` calls until the clip is full."""
        if not self.done and self._step % self.every == 0:
            qpos = env.physics.qpos[0].detach().double().cpu().numpy()
            qvel = env.physics.qvel[0].detach().double().cpu().numpy()
            self.frames.append(self.recorder.frame(qpos, qvel))
        self._step += 1

    def save(self, path: str | Path) -> Path:
        """Write the frames as an H.264 mp4 at `fps` (atomically: temp file, then rename)."""
        return write_mp4(self.frames, path, self.fps)


def write_mp4(frames: list[np.ndarray], path: str | Path, fps: float) -> Path:
    """Encode (H, W, 3) uint8 frames to `path` (.mp4, H.264, yuv420p) with imageio-ffmpeg; returns path."""
    try:
        import imageio.v2 as imageio
    except ImportError as e:
        raise ImportError("writing mp4 needs imageio and imageio-ffmpeg: pip install imageio imageio-ffmpeg") from e
    if not frames:
        raise ValueError(f"no frames to write to {path}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.stem + ".tmp.mp4")
    with imageio.get_writer(tmp, fps=fps, codec="libx264", macro_block_size=2, quality=7,
                            pixelformat="yuv420p", ffmpeg_log_level="error") as writer:
        for frame in frames:
            writer.append_data(frame)
    os.replace(tmp, path)
    return path


def render_fps(recorder: VideoRecorder) -> float:
    """Frames per second of wall time spent rendering so far (0 before the first frame)."""
    return recorder.frames_rendered / recorder.render_seconds if recorder.render_seconds > 0 else 0.0


class TrainingVideos:
    """A `runner.add_logger` callback: every `interval` iterations, a clip of the current policy.

    The clip runs in its own 1-env MuJoCo C env on the CPU (play settings: fixed `command`, no pushes
    or noise) with a deep copy of the policy, so the training envs, the runner's modules and the
    global torch RNG are left exactly as they were; the runner is put back in train mode.
    """

    def __init__(self, runner: Any, task_class: type, env_cfg: Any, run_dir: Path, interval: int,
                 seconds: float, size: tuple[int, int] = (320, 240), command: tuple[float, float, float] =
                 (0.5, 0.0, 0.0), on_video: Callable[[Path, int], Any] | None = None) -> None:
        """`env_cfg`: the training env config (copied); `on_video(path, iteration)` e.g. a wandb upload."""
        from gym.utils.task_registry import configure_play

        if interval < 1:
            raise ValueError(f"--video_interval {interval}: must be >= 1 (iterations between clips)")
        cfg = copy.deepcopy(env_cfg)
        cfg.env.num_envs, cfg.sim.physics = 1, "mujoco"
        configure_play(cfg, list(command))
        self.runner, self.interval, self.seconds = runner, int(interval), float(seconds)
        self.folder = Path(run_dir) / "videos"
        self.on_video = on_video
        with torch.random.fork_rng(devices=[]):
            self.env = task_class(cfg, sim_device="cpu", physics="mujoco")
        self.recorder = VideoRecorder(self.env.robot.mj_model, self.env.robot.base_body_id, *size)
        Clip(self.recorder, self.env.dt, self.seconds)  # checks the length now, not at the first clip
        self.paths: list[Path] = []

    def __call__(self, metrics: dict[str, float], iteration: int) -> None:
        if iteration % self.interval:
            return
        try:
            path = self.record(iteration)
        except (OSError, RuntimeError, ValueError) as e:  # a clip never stops training
            print(f"WARNING: training video at iteration {iteration} failed ({type(e).__name__}: {e}); "
                  "training goes on", file=sys.stderr, flush=True)
            return
        if self.on_video is not None:
            self.on_video(path, iteration)

    def record(self, iteration: int) -> Path:
        """Roll out a copy of the current policy for `seconds` and write videos/train_<iteration>.mp4."""
        policy = policy_snapshot(self.runner)
        threads = torch.get_num_threads()
        torch.set_num_threads(1)  # one env: thread fan-out costs more than it gives
        try:
            with torch.random.fork_rng(devices=[]), torch.inference_mode():
                clip = Clip(self.recorder, self.env.dt, self.seconds)
                obs, _ = self.env.reset()
                clip.capture(self.env)
                while not clip.done:
                    obs = self.env.step(policy(obs))[0]
                    clip.capture(self.env)
        finally:
            torch.set_num_threads(threads)
        path = clip.save(self.folder / f"train_{iteration}.mp4")
        self.paths.append(path)
        return path


def policy_snapshot(runner: Any) -> torch.nn.Module:
    """A frozen CPU copy of the runner's inference policy (obs (N, O) -> actions (N, A)); the runner is
    left in the train / eval mode it was in.

    `runner.get_inference_policy` switches the runner to eval mode; it is switched back here.
    """
    was_training = runner.alg.actor_critic.training
    try:
        policy = runner.get_inference_policy(device="cpu", copy_always=True)
    finally:
        if was_training:
            runner.train_mode()
    return policy.eval()


def add_training_videos(runner: Any, task: Any, run_dir: Path, interval: int, seconds: float,
                        size: tuple[int, int] = (320, 240), wandb_run: Any = None) -> TrainingVideos:
    """Register a clip every `interval` iterations (train.py `--video_interval`); with `wandb_run`
    (or `videos.on_video = wandb_run.log_video` later), each clip is logged to wandb at its
    iteration. `task`: a ResolvedTask. Raises RenderBackendError now if nothing can render."""
    on_video = wandb_run.log_video if wandb_run is not None else None
    videos = TrainingVideos(runner, task.task_class, task.env_cfg, run_dir, interval, seconds, size,
                            on_video=on_video)
    runner.add_logger(videos)
    return videos


__all__ = ["Clip", "RenderBackendError", "TrainingVideos", "VideoRecorder", "add_training_videos", "policy_snapshot",
           "render_fps", "write_mp4"]
