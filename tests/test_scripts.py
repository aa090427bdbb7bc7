"""train.py and play.py end to end, and the add-a-robot path with a minimal robot written here."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from gym.envs.base.legged_robot import LeggedRobot
from gym.envs.base.legged_robot_config import LeggedRobotCfg, LeggedRobotCfgPPO
from gym.utils.task_registry import TaskRegistry

ROOT = Path(__file__).resolve().parents[1]
SMALL = ["--task=asimov", "--num_envs=8", "--physics=mujoco", "--headless", "--sim_device=cpu",
         "--set", "runner.num_steps_per_env=8", "runner.save_interval=1"]


def run_script(script: str, args: list[str], logs: Path) -> str:
    env = {**os.environ, "LEGGED_GYM_LOGS_DIR": str(logs), "OMP_NUM_THREADS": "1"}
    out = subprocess.run([sys.executable, str(ROOT / "gym" / "scripts" / script), *args], env=env,
                         capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    return out.stdout


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    logs = tmp_path_factory.mktemp("logs")
    stdout = run_script("train.py", [*SMALL, "--max_iterations=2", "--run_name=t"], logs)
    (logs / "train_stdout.txt").write_text(stdout)
    return logs


def test_train_writes_checkpoints_configs_and_metrics(trained):
    runs = list((trained / "asimov_velocity").iterdir())
    assert len(runs) == 1 and runs[0].name.endswith("_t")
    run = runs[0]
    assert {"model_1.pt", "model_2.pt", "env_cfg.yaml", "train_cfg.yaml", "git_commit.txt",
            "metrics.jsonl"} <= {p.name for p in run.iterdir()}
    lines = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    assert [x["iteration"] for x in lines] == [1, 2]
    assert all("Perf/fps" in x and "Loss/value_loss" in x and "Loss/learning_rate" in x for x in lines)
    ckpt = torch.load(run / "model_2.pt", weights_only=True)
    assert ckpt["iter"] == 2
    assert "num_envs: 8" in (run / "env_cfg.yaml").read_text()
    assert not [p for p in run.iterdir() if p.name.endswith(".tmp")]


def test_train_ends_naming_the_checkpoint_and_how_to_play_it(trained):
    run = next((trained / "asimov_velocity").iterdir())
    out = (trained / "train_stdout.txt").read_text()
    assert f"last checkpoint: {run / 'model_2.pt'}" in out
    assert f"python gym/scripts/play.py --task=asimov --load_run={run.name}" in out


def test_resume_continues_numbering_in_a_new_run(trained):
    run_script("train.py", [*SMALL, "--max_iterations=1", "--resume", "--run_name=resumed"], trained)
    resumed = next(p for p in (trained / "asimov_velocity").iterdir() if p.name.endswith("_resumed"))
    assert (resumed / "model_3.pt").exists()
    assert torch.load(resumed / "model_3.pt", weights_only=True)["iter"] == 3


def test_resume_without_run_name_continues_in_the_checkpoint_folder(trained):
    runs_before = sorted(p.name for p in (trained / "asimov_velocity").iterdir())
    run = next(p for p in (trained / "asimov_velocity").iterdir() if p.name.endswith("_t"))
    out = run_script("train.py", [*SMALL, "--max_iterations=1", "--resume", f"--load_run={run.name}"], trained)
    assert sorted(p.name for p in (trained / "asimov_velocity").iterdir()) == runs_before  # no new folder
    assert torch.load(run / "model_3.pt", weights_only=True)["iter"] == 3
    assert [json.loads(x)["iteration"] for x in (run / "metrics.jsonl").read_text().splitlines()] == [1, 2, 3]
    assert "Training setup" in out and f"resumed from  {run / 'model_2.pt'}" in out
    assert "iterations    2 -> 3" in out and f"run folder    {run}" in out


def test_play_prints_tracking_summary(trained):
    out = run_script("play.py", ["--task=asimov", "--num_envs=2", "--physics=mujoco", "--headless",
                                 "--duration=1.0", "--command", "0.3", "0.0", "0.0"], trained)
    assert "Play summary" in out
    for key in ("falls", "mean episode length", "mean |v_x error|", "mean |v_y error|", "mean |w_z error|"):
        assert key in out


def test_play_episode_length_counts_whole_episodes(trained):
    # 0.2 s episodes over 1 s: every episode times out at exactly 0.2 s (a robot starting upright
    # cannot tip past 70 deg that fast); the zero-length episodes that start on the last step must
    # not pull the mean down (they halved it before).
    out = run_script("play.py", ["--task=asimov", "--num_envs=2", "--physics=mujoco", "--headless",
                                 "--duration=1.0", "--set", "env.episode_length_s=0.2"], trained)
    line = next(x for x in out.splitlines() if "mean episode length" in x)
    falls = int(next(x for x in out.splitlines() if x.strip().startswith("falls")).split()[-1])
    assert falls == 0
    assert float(line.split()[-2]) == pytest.approx(0.2, abs=1e-6)


def test_play_without_a_run_explains(tmp_path):
    env = {**os.environ, "LEGGED_GYM_LOGS_DIR": str(tmp_path)}
    out = subprocess.run([sys.executable, str(ROOT / "gym/scripts/play.py"), "--headless", "--physics=mujoco"],
                         env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode != 0 and "train first" in out.stderr


def test_unknown_task_lists_registered_ones(tmp_path):
    env = {**os.environ, "LEGGED_GYM_LOGS_DIR": str(tmp_path)}
    out = subprocess.run([sys.executable, str(ROOT / "gym/scripts/train.py"), "--task=asimovv"], env=env,
                         capture_output=True, text=True, timeout=300)
    assert out.returncode != 0 and "Registered tasks: ['asimov', 'asimov_rough']" in out.stderr


# -- a second robot: MJCF and configs written here, registered, trained one iteration ----------
BIPED_XML = """
<mujoco model="stick_biped">
  <compiler angle="radian"/>
  <worldbody>
    <body name="torso" pos="0 0 0.5">
      <freejoint name="root"/>
      <inertial pos="0 0 0" mass="4" diaginertia="0.05 0.05 0.03"/>
      <geom type="box" size="0.1 0.12 0.08" contype="0" conaffinity="1"/>
      <site name="imu"/>
      <body name="left_leg" pos="0 0.08 -0.08">
        <joint name="left_hip" axis="0 1 0" range="-1 1"/>
        <inertial pos="0 0 -0.2" mass="1" diaginertia="0.01 0.01 0.001"/>
        <body name="left_foot" pos="0 0 -0.36">
          <joint name="left_knee" axis="0 1 0" range="-1.5 0"/>
          <inertial pos="0 0 0" mass="0.3" diaginertia="0.001 0.001 0.001"/>
          <geom type="box" size="0.08 0.04 0.02" pos="0 0 -0.02" contype="0" conaffinity="1"/>
          <site name="left_foot_site"/>
        </body>
      </body>
      <body name="right_leg" pos="0 -0.08 -0.08">
        <joint name="right_hip" axis="0 1 0" range="-1 1"/>
        <inertial pos="0 0 -0.2" mass="1" diaginertia="0.01 0.01 0.001"/>
        <body name="right_foot" pos="0 0 -0.36">
          <joint name="right_knee" axis="0 1 0" range="-1.5 0"/>
          <inertial pos="0 0 0" mass="0.3" diaginertia="0.001 0.001 0.001"/>
          <geom type="box" size="0.08 0.04 0.02" pos="0 0 -0.02" contype="0" conaffinity="1"/>
          <site name="right_foot_site"/>
        </body>
      </body>
    </body>
  </worldbody>
</mujoco>
"""


def make_stick_biped_cfgs(xml_path: Path) -> tuple[LeggedRobotCfg, LeggedRobotCfgPPO]:
    class StickBipedCfg(LeggedRobotCfg):
        class env(LeggedRobotCfg.env):
            num_envs = 4
            num_actions = 4

        class init_state(LeggedRobotCfg.init_state):
            pos = [0.0, 0.0, 0.5]

        class control(LeggedRobotCfg.control):
            stiffness = {"hip": 30.0, "knee": 30.0}
            damping = {"hip": 1.0, "knee": 1.0}
            effort_limit = {"hip": 40.0, "knee": 40.0}
            armature = {"hip": 0.01, "knee": 0.01}

        class asset(LeggedRobotCfg.asset):
            file = str(xml_path)
            base_body = "torso"
            imu_site = "imu"
            foot_bodies = ["left_foot", "right_foot"]
            foot_sites = ["left_foot_site", "right_foot_site"]
            terminate_after_contacts_on = ["torso"]

        class sim(LeggedRobotCfg.sim):
            physics = "mujoco"

    class StickBipedCfgPPO(LeggedRobotCfgPPO):
        class runner(LeggedRobotCfgPPO.runner):
            num_steps_per_env = 8
            experiment_name = "stick_biped"

        class policy(LeggedRobotCfgPPO.policy):
            actor_hidden_dims = [32]
            critic_hidden_dims = [32]

    return StickBipedCfg(), StickBipedCfgPPO()


def test_second_robot_registers_and_trains(tmp_path):
    xml = tmp_path / "stick_biped.xml"
    xml.write_text(BIPED_XML)
    registry = TaskRegistry()
    registry.register("stick_biped", LeggedRobot, *make_stick_biped_cfgs(xml))
    env, env_cfg = registry.make_env("stick_biped")
    assert env.num_actions == 4 and env.num_obs == 3 + 3 + 3 + 3 + 4 + 4 + 4
    assert env.joint_names == ["left_hip", "left_knee", "right_hip", "right_knee"]
    runner, _ = registry.make_alg_runner(env, "stick_biped", log_dir=tmp_path / "run")
    runner.learn(num_learning_iterations=1)
    assert (tmp_path / "run" / "model_1.pt").exists()
    assert runner.current_learning_iteration == 1
