"""play.py videos, plots, command keys, --checkpoint_file, rendering-backend errors, and train.py
--video_interval. Small on purpose: 2 envs, 160x120 videos of 1-2 s, MuJoCo C physics on the CPU."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from gym.utils import gl_backend
from gym.utils.viewer_keys import (
    KEY_BACKSPACE,
    KEY_DELETE,
    KEY_DOWN,
    KEY_END,
    KEY_KP_4,
    KEY_LEFT,
    KEY_RIGHT,
    KEY_SPACE,
    KEY_UP,
    CommandKeys,
    overlay_text,
    set_play_command,
)

ROOT = Path(__file__).resolve().parents[1]
SMALL = ["--task=asimov", "--num_envs=2", "--physics=mujoco", "--headless", "--sim_device=cpu",
         "--set", "runner.num_steps_per_env=8", "runner.save_interval=1"]
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def run_script(script: str, args: list[str], logs: Path, env: dict | None = None,
               check: bool = True) -> subprocess.CompletedProcess:
    env = {**os.environ, "LEGGED_GYM_LOGS_DIR": str(logs), "OMP_NUM_THREADS": "1", **(env or {})}
    out = subprocess.run([sys.executable, str(ROOT / "gym" / "scripts" / script), *args], env=env,
                         capture_output=True, text=True, timeout=600)
    if check:
        assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    return out


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    """logs/ with one run of 2 iterations (model_1.pt, model_2.pt), a clip recorded at iteration 2."""
    logs = tmp_path_factory.mktemp("logs")
    run_script("train.py", [*SMALL, "--max_iterations=2", "--run_name=v", "--video_interval=2",
                            "--video_length=0.5", "--video_size", "160", "120"], logs)
    return logs


def run_dir(logs: Path) -> Path:
    return next((logs / "asimov_velocity").iterdir())


def read_video(path: Path) -> tuple[list[np.ndarray], float]:
    import imageio.v2 as imageio

    reader = imageio.get_reader(path)
    fps = reader.get_meta_data()["fps"]
    frames = [f for f in reader]
    reader.close()
    return frames, fps


def test_play_video_and_plots(trained):
    out = run_script("play.py", ["--task=asimov", "--num_envs=2", "--physics=mujoco", "--headless", "--duration=1",
                                 "--video", "--video_length=2", "--video_size", "160", "120", "--plot"], trained)
    video = run_dir(trained) / "videos" / "model_2.mp4"  # the checkpoint's iteration in the name
    assert video.is_file() and str(video) in out.stdout
    frames, fps = read_video(video)
    assert fps == pytest.approx(25.0)  # 50 Hz policy, a frame every 2nd step
    assert len(frames) == 50  # 2 s at 25 fps (the run is stretched from 1 s to the video's 2 s)
    assert frames[0].shape == (120, 160, 3) and frames[0].dtype == np.uint8
    assert frames[0].std() > 5 and not np.array_equal(frames[0], frames[-1])  # a scene, and it moves
    assert "envs x duration        2 x 2.0 s" in out.stdout
    for suffix in ("velocities", "joints", "torques", "feet"):
        plot = run_dir(trained) / "videos" / f"model_2_{suffix}.png"
        assert str(plot) in out.stdout
        data = plot.read_bytes()
        assert len(data) > 5000 and data[:8] == PNG_MAGIC


def test_training_clip_at_the_chosen_iterations(trained):
    videos = run_dir(trained) / "videos"
    assert sorted(p.name for p in videos.glob("train_*.mp4")) == ["train_2.mp4"]  # every 2nd: not at 1
    frames, fps = read_video(videos / "train_2.mp4")
    assert len(frames) == round(0.5 * fps) and frames[0].shape == (120, 160, 3)


def test_checkpoint_file_from_outside_logs(trained, tmp_path):
    # a colleague's file: no train_cfg.yaml beside it, networks of another size than the CPU default
    src = run_dir(trained) / "model_1.pt"
    ckpt = torch.load(src, weights_only=True)
    elsewhere = tmp_path / "from_a_colleague" / "policy.pt"
    elsewhere.parent.mkdir()
    torch.save(ckpt, elsewhere)
    empty_logs = tmp_path / "no_logs"
    out = run_script("play.py", ["--task=asimov", "--num_envs=2", "--physics=mujoco", "--headless", "--duration=0.2",
                                 f"--checkpoint_file={elsewhere}", "--plot"], empty_logs)
    assert f"Playing {elsewhere}" in out.stdout and "Play summary" in out.stdout
    assert (elsewhere.parent / "videos" / "model_1_velocities.png").is_file()
    missing = run_script("play.py", ["--headless", "--physics=mujoco", f"--checkpoint_file={tmp_path / 'nope.pt'}"],
                         empty_logs, check=False)
    assert missing.returncode != 0 and "--checkpoint_file" in missing.stderr and "no such file" in missing.stderr


def test_policy_shape_read_from_a_bare_checkpoint(tmp_path):
    from gym.envs.asimov.asimov_config import AsimovCfgPPO
    from gym.utils.task_registry import use_checkpoint_policy_shape

    state = {"actor.0.weight": torch.zeros(32, 45), "actor.2.weight": torch.zeros(16, 32),
             "actor.4.weight": torch.zeros(12, 16), "critic.0.weight": torch.zeros(24, 60),
             "critic.2.weight": torch.zeros(1, 24)}
    torch.save({"model_state_dict": state, "obs_norm_state_dict": {}}, tmp_path / "m.pt")
    cfg = AsimovCfgPPO()
    use_checkpoint_policy_shape(cfg, tmp_path / "m.pt")
    assert cfg.policy.actor_hidden_dims == [32, 16] and cfg.policy.critic_hidden_dims == [24]
    assert cfg.runner.empirical_normalization is False


def test_command_keys_change_the_command():
    keys = CommandKeys([0.5, 0.0, 0.0])
    for key in (KEY_UP, KEY_UP, KEY_DOWN, KEY_KP_4, KEY_LEFT, KEY_LEFT, KEY_RIGHT):
        keys(key)
    assert keys.command == pytest.approx([0.6, 0.1, 0.2])
    command, reset = keys.take()
    assert command == pytest.approx([0.6, 0.1, 0.2]) and not reset
    assert keys.take() == (None, False)  # nothing new since
    for _ in range(40):
        keys(KEY_END)
    assert keys.command[1] == pytest.approx(-1.5)  # clipped to the limit
    keys(KEY_DELETE)
    assert keys.command == pytest.approx([0.0, 0.0, 0.0])
    keys(KEY_SPACE)
    assert keys.paused
    keys(KEY_SPACE)
    assert not keys.paused
    keys(KEY_BACKSPACE)
    assert keys.take()[1] is True
    keys(ord("X"))  # a viewer shortcut, not ours: ignored
    assert keys.take() == (None, False) and keys.command == pytest.approx([0.0, 0.0, 0.0])
    left, right = overlay_text(np.array([0.6, 0.1, 0.2]), np.array([0.55, 0.0, 0.18]), paused=True)
    assert "PAUSED" in left and "v_x +0.60" in right and "w_z +0.18" in right


def test_command_keys_drive_the_env_and_survive_resets(single_thread):
    import gym.envs  # noqa: F401 - registers asimov
    from gym.utils.task_registry import configure_play, task_registry

    cfg, _ = task_registry.get_cfgs("asimov", sim_device="cpu")
    cfg.env.num_envs = 2
    configure_play(cfg, [0.5, 0.0, 0.0])
    env = task_registry.get_task_class("asimov")(cfg, sim_device="cpu", physics="mujoco")
    keys = CommandKeys([0.5, 0.0, 0.0])
    keys(KEY_UP)
    keys(KEY_RIGHT)
    assert keys.apply(env) is False
    assert torch.allclose(env.commands[:, :3], torch.tensor([[0.6, 0.0, -0.2]] * 2))
    keys(KEY_BACKSPACE)
    assert keys.apply(env) is True  # reset: the command drawn at reset is the keys' command
    assert torch.allclose(env.commands[:, :3], torch.tensor([[0.6, 0.0, -0.2]] * 2))
    assert env.episode_length_buf.tolist() == [0, 0]
    set_play_command(env, [0.0, 0.3, 0.0])
    env.step(torch.zeros(2, env.num_actions))
    assert torch.allclose(env.commands[:, :3], torch.tensor([[0.0, 0.3, 0.0]] * 2))


def test_play_gives_every_env_the_play_command(single_thread):
    """No standing, turn-in-place or heading envs at play time: all 64 envs get --command."""
    import gym.envs  # noqa: F401 - registers asimov
    from gym.utils.task_registry import configure_play, task_registry

    cfg, _ = task_registry.get_cfgs("asimov", sim_device="cpu")
    cfg.env.num_envs = 64
    configure_play(cfg, [0.5, 0.1, 0.2])
    env = task_registry.get_task_class("asimov")(cfg, sim_device="cpu", physics="mujoco")
    env.step(torch.zeros(64, env.num_actions))
    assert torch.allclose(env.commands[:, :3], torch.tensor([[0.5, 0.1, 0.2]] * 64))


@pytest.mark.parametrize("gl, expected", [
    ("bogus", "MUJOCO_GL='bogus' is not a rendering backend"),
    ("egl", "cannot render offscreen with MUJOCO_GL=egl"),  # EGL with no vendor library: libegl-mesa0 missing
])
def test_missing_render_backend_names_the_fix(trained, gl, expected):
    no_vendor = {"MUJOCO_GL": gl, "__EGL_VENDOR_LIBRARY_FILENAMES": "/nonexistent/vendor.json"}
    out = run_script("play.py", ["--task=asimov", "--num_envs=1", "--physics=mujoco", "--headless", "--duration=0.1",
                                 "--video", "--video_size", "160", "120"], trained, env=no_vendor, check=False)
    assert out.returncode != 0 and "Traceback" not in out.stderr
    assert expected in out.stderr and "libegl-mesa0" in out.stderr and "libosmesa6" in out.stderr


def test_no_display_plays_headless_with_a_note(trained):
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY")}
    env.update(LEGGED_GYM_LOGS_DIR=str(trained), OMP_NUM_THREADS="1")
    out = subprocess.run([sys.executable, str(ROOT / "gym/scripts/play.py"), "--task=asimov", "--num_envs=1",
                          "--physics=mujoco", "--duration=0.1"], env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "No display found: running headless" in out.stdout


def test_bad_video_flags_are_refused_before_building(tmp_path):
    for flags, fix in ((["--video_size", "161", "120"], "--video_size 640 480"),
                       (["--video_length=0"], "--video_length 5")):
        out = run_script("play.py", ["--headless", "--video", *flags], tmp_path, check=False)
        assert out.returncode != 0 and fix in out.stderr and "Traceback" not in out.stderr


def test_user_set_backend_wins_and_render_flags_are_detected(monkeypatch):
    monkeypatch.setenv("MUJOCO_GL", "osmesa")
    assert gl_backend.select_gl_backend() == "osmesa"  # kept, not probed or replaced
    assert gl_backend.wants_rendering(["--video"]) and gl_backend.wants_rendering(["--video_interval=5"])
    assert not gl_backend.wants_rendering(["--video_length=5", "--headless"])
    with pytest.raises(ValueError, match="--video_interval 0"):
        gl_backend.check_video_args(SimpleNamespace(video_interval=0, video_length=5.0, video_size=None))


def test_training_clip_uses_a_copy_and_leaves_the_runner_as_it_was(tmp_path, single_thread):
    import gym.envs  # noqa: F401 - registers asimov
    from gym.rl import OnPolicyRunner
    from gym.utils.task_registry import task_registry
    from gym.utils.video import TrainingVideos

    env_cfg, train_cfg = task_registry.get_cfgs("asimov", sim_device="cpu")
    env_cfg.env.num_envs, env_cfg.sim.physics = 2, "mujoco"
    train_cfg.runner.num_steps_per_env = 8
    env = task_registry.get_task_class("asimov")(env_cfg, sim_device="cpu", physics="mujoco")
    runner = OnPolicyRunner(env, train_cfg, None)
    runner.learn(1)  # leaves a Normal with autograd history in actor_critic.distribution
    runner.train_mode()
    videos = TrainingVideos(runner, type(env), env_cfg, tmp_path, interval=3, seconds=0.2, size=(32, 24))
    logged = []
    videos.on_video = lambda path, it: logged.append((path.name, it))
    weights = [p.detach().clone() for p in runner.alg.actor_critic.parameters()]
    rng = torch.get_rng_state()
    for iteration in (1, 2, 3, 4):
        videos({}, iteration)
    assert logged == [("train_3.mp4", 3)] and (tmp_path / "videos" / "train_3.mp4").is_file()
    assert runner.alg.actor_critic.training and runner.obs_normalizer.training  # back in train mode
    assert torch.equal(torch.get_rng_state(), rng)  # training's random stream untouched
    assert all(torch.equal(a, b) for a, b in zip(weights, runner.alg.actor_critic.parameters()))
    assert env_cfg.env.num_envs == 2 and videos.env.num_envs == 1  # its own env, the config copied
