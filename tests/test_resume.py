"""Exact resume (Asimov, MuJoCo C, CPU) and checkpoint files that are corrupt, unwritable or from
another robot."""

from __future__ import annotations

import copy
import errno
import os
import tempfile
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from gym.envs import task_registry
from gym.rl import CheckpointError, CheckpointWriteError, OnPolicyRunner
from gym.utils.run_dirs import get_load_path
from gym.utils.seeding import get_rng_state
from tests.test_runner import DeviceEnv, make_cfg, read_metrics

pytestmark = pytest.mark.usefixtures("single_thread")


def make_asimov(log_dir: Path) -> OnPolicyRunner:
    """8 Asimov envs with 0.1 s episodes (so episodes finish), 4 steps per iteration, small nets."""
    env_cfg, train_cfg = task_registry.get_cfgs("asimov", sim_device="cpu")
    env_cfg.env.num_envs = 8
    env_cfg.env.episode_length_s = 0.1
    train_cfg.seed = 7
    train_cfg.policy.actor_hidden_dims = train_cfg.policy.critic_hidden_dims = [32, 32]
    train_cfg.runner.num_steps_per_env = 4
    train_cfg.runner.save_interval = 2
    env, _ = task_registry.make_env("asimov", SimpleNamespace(physics="mujoco", sim_device="cpu"), env_cfg=env_cfg)
    runner, _ = task_registry.make_alg_runner(env, train_cfg=train_cfg, log_dir=log_dir)
    return runner


def test_resume_continues_lr_optimizer_normalizer_rng_and_metrics(tmp_path):
    """4 iterations straight vs 2 + save + new env / runner + load + 2, in the same run folder.

    The resumed envs restart from fresh resets (as in rsl_rl), so parameters need not match the
    straight run's; what must continue exactly where it stopped is the state: iteration, learning
    rate (adaptive, so no longer the config's), Adam moments and step counts, normalizer
    statistics, the RNG streams (torch, numpy, python) and the episode-statistics windows.
    metrics.jsonl, which already holds iterations 3 and 4 of the straight run, ends with each
    iteration exactly once.
    """
    straight = make_asimov(tmp_path)
    at_2: dict = {}

    def capture(metrics: dict, it: int) -> None:  # runs before model_2.pt is written
        if it == 2:
            at_2.update(rng=get_rng_state(), lr=metrics["Loss/learning_rate"],
                        optimizer=copy.deepcopy(straight.alg.optimizer.state_dict()["state"]),
                        norm=copy.deepcopy(straight.obs_normalizer.state_dict()),
                        windows=straight.episode_stats.state_dict())

    straight.add_logger(capture)
    straight.learn(4, init_at_random_ep_len=True)
    assert [r["iteration"] for r in read_metrics(tmp_path)] == [1, 2, 3, 4]
    steps_straight = straight.alg.optimizer.state_dict()["state"][0]["step"]

    resumed = make_asimov(tmp_path)
    resumed.load(tmp_path / "model_2.pt")
    assert resumed.current_learning_iteration == 2
    assert resumed.alg.learning_rate == at_2["lr"] != resumed.cfg.algorithm.learning_rate
    assert all(g["lr"] == at_2["lr"] for g in resumed.alg.optimizer.param_groups)
    for i, moments in at_2["optimizer"].items():
        for key in ("step", "exp_avg", "exp_avg_sq"):
            assert torch.equal(resumed.alg.optimizer.state_dict()["state"][i][key], moments[key]), (i, key)
    for key, value in at_2["norm"].items():
        assert torch.equal(resumed.obs_normalizer.state_dict()[key], value), key
    now = get_rng_state()
    assert torch.equal(now["torch"], at_2["rng"]["torch"])
    assert torch.equal(now["numpy"]["keys"], at_2["rng"]["numpy"]["keys"])
    assert now["numpy"]["pos"] == at_2["rng"]["numpy"]["pos"] and now["python"] == at_2["rng"]["python"]
    for key, value in at_2["windows"].items():
        assert torch.equal(resumed.episode_stats.state_dict()[key], value), key
    assert int(at_2["windows"]["num_finished"]) > 0  # episodes did finish: the windows are not trivial

    with pytest.warns(UserWarning, match="dropped 2 record"):
        resumed.learn(2)
    assert [r["iteration"] for r in read_metrics(tmp_path)] == [1, 2, 3, 4]
    assert torch.load(tmp_path / "model_4.pt", weights_only=True)["iter"] == 4
    assert resumed.alg.optimizer.state_dict()["state"][0]["step"] == steps_straight  # same number of steps
    # the same samples plus one batch: the fresh envs' first observation at the start of learn()
    assert int(resumed.obs_normalizer.count) == int(straight.obs_normalizer.count) + 8


def _saved(tmp_path: Path, name: str = "model_1.pt", env: DeviceEnv | None = None) -> tuple[OnPolicyRunner, Path]:
    runner = OnPolicyRunner(env or DeviceEnv(num_envs=8), make_cfg(), tmp_path)
    return runner, runner.save(tmp_path / name)


def test_load_path_skips_unreadable_checkpoints(tmp_path):
    old_run, new_run = tmp_path / "2024-01-01_00-00-00", tmp_path / "2024-01-02_00-00-00"
    _, good = _saved(old_run)
    _saved(new_run)
    data = good.read_bytes()
    (old_run / "model_2.pt").write_bytes(data[: len(data) // 2])  # truncated
    (new_run / "model_1.pt").write_bytes(b"garbage")
    with pytest.warns(UserWarning) as seen:
        assert get_load_path(tmp_path, -1, -1) == old_run / "model_1.pt"
    assert [str(new_run / "model_1.pt") in str(w.message) for w in seen] == [True, False]
    assert "model_2.pt" in str(seen[1].message) and "truncated or corrupt" in str(seen[1].message)
    assert get_load_path(tmp_path, old_run.name, 2) == old_run / "model_2.pt"  # named: returned as is
    with pytest.raises(CheckpointError, match="model_2.pt"):
        OnPolicyRunner(DeviceEnv(num_envs=8), make_cfg(), None).load(old_run / "model_2.pt")
    with pytest.warns(UserWarning), pytest.raises(FileNotFoundError, match="no readable model_<it>.pt in"):
        get_load_path(tmp_path, new_run.name, -1)


def test_disk_full_and_unwritable_folder_keep_the_old_checkpoint(tmp_path, monkeypatch):
    runner, path = _saved(tmp_path)
    before = path.read_bytes()
    runner.alg.set_learning_rate(1e-4)

    def enospc(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", enospc)
    with pytest.raises(CheckpointWriteError, match=f"cannot write checkpoint {path}: the disk is full") as info:
        runner.save(path)
    assert isinstance(info.value, OSError) and info.value.errno == errno.ENOSPC
    monkeypatch.undo()

    def eacces(*args, **kwargs):
        raise PermissionError(errno.EACCES, "Permission denied")

    monkeypatch.setattr(tempfile, "mkstemp", eacces)
    with pytest.raises(CheckpointWriteError, match=f"no permission to write in {tmp_path}"):
        runner.save(path)
    monkeypatch.undo()
    assert path.read_bytes() == before and sorted(p.name for p in tmp_path.iterdir()) == ["model_1.pt"]
    (tmp_path / "a_file").write_text("")
    with pytest.raises(CheckpointWriteError, match="a_file/model_1.pt"):  # a folder that cannot exist
        runner.save(tmp_path / "a_file" / "model_1.pt")


def test_failed_periodic_save_warns_and_training_goes_on(tmp_path, monkeypatch):
    def enospc(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(torch, "save", enospc)
    runner = OnPolicyRunner(DeviceEnv(num_envs=8), make_cfg(save_interval=1), tmp_path)
    with pytest.warns(RuntimeWarning, match="periodic checkpoint not written, training continues"):
        runner.learn(2)
    assert runner.current_learning_iteration == 2 and len(read_metrics(tmp_path)) == 2
    final = OnPolicyRunner(DeviceEnv(num_envs=8), make_cfg(save_interval=50), tmp_path / "final")
    with pytest.raises(CheckpointWriteError, match="disk is full"):  # the final save is not optional
        final.learn(1)


class Robot(DeviceEnv):
    def __init__(self, robot: str, joints: list[str]) -> None:
        super().__init__(num_envs=8)
        self.joint_names = joints
        self.cfg = SimpleNamespace(asset=SimpleNamespace(name=robot))


def test_checkpoint_from_another_robot_is_refused(tmp_path):
    _, path = _saved(tmp_path, env=Robot("bot", ["hip", "knee"]))
    cases = [(Robot("other", ["hip", "knee"]), "trained for robot 'bot'; this env is robot 'other'"),
             (Robot("bot", ["knee", "hip"]), "joint order differs: checkpoint ['hip', 'knee'], env ['knee', 'hip']"),
             (Robot("bot", ["hip", "ankle"]), "only in the checkpoint: ['knee']; only in the env: ['ankle']")]
    for env, expected in cases:
        with pytest.raises(CheckpointError, match="model_1.pt does not fit") as info:
            OnPolicyRunner(env, make_cfg(), None).load(path)
        assert expected in str(info.value) and "train from scratch" in str(info.value)
    OnPolicyRunner(Robot("bot", ["hip", "knee"]), make_cfg(), None).load(path)


def test_old_checkpoints_without_the_new_keys_still_load(tmp_path):
    runner, path = _saved(tmp_path)
    ckpt = torch.load(path, weights_only=True)
    for key in ("rng_state", "episode_stats", "env_info"):
        del ckpt[key]
    torch.save(ckpt, path)
    other = OnPolicyRunner(DeviceEnv(num_envs=8), make_cfg(), None)
    other.load(path)
    assert other.current_learning_iteration == 0
