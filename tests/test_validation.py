"""Bad input is refused by `resolve_task_cfgs` before any heavy work, each message naming the key and a fix.

Every test here runs with the model builder, the physics backends and the env constructor patched to
fail the test if called, so a refusal proves it came before the model was compiled into an env.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import mujoco
import pytest
import torch

import gym
import gym.envs.base.legged_robot as legged_robot_module
import gym.physics
import gym.physics.model_builder
from gym.envs import Asimov, AsimovCfg, AsimovCfgPPO, LeggedRobot
from gym.envs.asimov.asimov_config import ACTION_SCALE, DAMPING, EFFORT, JOINT_MOTOR, STIFFNESS
from gym.utils.cli import ConfigKeyError, get_args
from gym.utils.task_registry import TaskRegistry, UnknownTaskError, resolve_task_cfgs
from gym.utils.validation import ConfigError, actuated_joints, config_problems, validate_cfgs

ROOT = Path(__file__).resolve().parents[1]
ASIMOV_XML = ROOT / "resources" / "robots" / "asimov" / "asimov.xml"
BASE = ["--task=asimov", "--sim_device=cpu", "--physics=mujoco", "--num_envs=8"]


@pytest.fixture(autouse=True)
def no_heavy_work(monkeypatch, tmp_path):
    """Fail the test if the env, the robot model or a physics backend is built; logs go to tmp_path."""
    def forbidden(*args, **kwargs):
        raise AssertionError("heavy work started: validation must refuse bad input before this")

    monkeypatch.setattr(gym.physics.model_builder, "build_model", forbidden)
    monkeypatch.setattr(legged_robot_module, "build_model", forbidden)
    monkeypatch.setattr(legged_robot_module, "make_physics", forbidden)
    monkeypatch.setattr(gym.physics, "make_physics", forbidden)
    monkeypatch.setattr(LeggedRobot, "__init__", forbidden)
    monkeypatch.setattr(gym, "LOGS_DIR", tmp_path / "logs")


def refused(*argv: str, **kwargs) -> ConfigError:
    """The ConfigError that resolving the asimov task with `argv` (after BASE) raises."""
    with pytest.raises(ConfigError) as info:
        resolve_task_cfgs(get_args([*BASE, *argv]), **kwargs)
    return info.value


def mjcf_copy(tmp_path: Path, edit: Callable[[str], str]) -> str:
    """`--set` item pointing asset.file at an edited copy of the project's asimov.xml."""
    text = ASIMOV_XML.read_text()
    edited = edit(text)
    assert edited != text, "the edit changed nothing"
    path = tmp_path / "robot.xml"
    path.write_text(edited)
    return f"asset.file={path}"


def gains(table: dict[str, float], **changed: float) -> str:
    return repr({**table, **changed}).replace(" ", "")


def test_default_asimov_config_passes():
    task = resolve_task_cfgs(get_args(["--task=asimov", "--sim_device=cpu"]))
    assert task.env_cfg.env.num_envs == 1024 and task.sim_device == "cpu" and task.load_path is None
    assert task.task_class is Asimov
    # the plain CPU command ends within an hour whatever this machine's speed that day (issue 8)
    assert (task.train_cfg.runner.max_iterations, task.train_cfg.runner.max_wall_time_min) == (3000, 60.0)
    assert config_problems(Asimov, AsimovCfg(), AsimovCfgPPO()) == []  # the GPU defaults too


@pytest.mark.parametrize("argv,needles", [
    (["--num_envs=0"], ["env.num_envs=0", "--num_envs="]),
    (["--set", "sim.dt=0"], ["sim.dt=0.0", "--set sim.dt="]),
    (["--set", "sim.dt=-0.001"], ["sim.dt=-0.001", "> 0"]),
    (["--set", "control.decimation=0"], ["control.decimation=0", "--set control.decimation=4"]),
    (["--set", "env.episode_length_s=0"], ["env.episode_length_s=0.0", "--set env.episode_length_s="]),
    (["--set", "env.episode_length_s=-5"], ["env.episode_length_s=-5.0", "> 0"]),
    (["--set", "sim.njmax=0"], ["sim.njmax=0", "--set sim.njmax="]),
    (["--set", "sim.physics=bullet"], ["sim.physics='bullet'", "'warp'"]),
    (["--set", "sim.integrator=verlet"], ["sim.integrator='verlet'", "implicitfast"]),
    (["--set", "algorithm.num_mini_batches=5"], ["algorithm.num_mini_batches=5", "8 * 24 = 192", "divisor"]),
    (["--set", "algorithm.num_learning_epochs=0"], ["algorithm.num_learning_epochs=0", ">= 1"]),
    (["--set", "env.num_actions=10"], ["env.num_actions=10", "set env.num_actions=12"]),
    (["--set", "env.observations=['base_ang_vel','gyro_bias']"],
     ["env.observations term 'gyro_bias'", "_obs_gyro_bias", "known terms"]),
    (["--set", "env.critic_observations=['base_ang_vel','foot_heigth']"],
     ["env.critic_observations term 'foot_heigth'", "did you mean 'foot_height'"]),
    (["--set", "env.observations=[]"], ["env.observations=[]", "at least one"]),
    (["--max_wall_time_min=0"], ["runner.max_wall_time_min=0.0", "minutes > 0", "--max_wall_time_min 30"]),
    (["--set", "runner.max_wall_time_min=-5"], ["runner.max_wall_time_min=-5", "or None"]),
    (["--set", "commands.rel_slow_envs=1.5"], ["commands.rel_slow_envs=1.5", "fraction in [0, 1]"]),
    (["--set", "commands.slow_yaw_scale=2"], ["commands.slow_yaw_scale=2", "fraction in [0, 1]"]),
    (["--set", "commands.min_norm=-0.1"], ["commands.min_norm=-0.1", "speed >= 0"]),
    (["--set", "commands.rel_turn_envs=-0.1"], ["commands.rel_turn_envs=-0.1", "fraction in [0, 1]"]),
    (["--set", "commands.ranges.turn_ang_vel=[-0.6,0.6]"], ["turn_ang_vel=[-0.6, 0.6]", "min must be >= 0",
                                                            "turn_ang_vel=[0.3,0.6]"]),
])
def test_invalid_values_are_refused(argv, needles):
    message = str(refused(*argv))
    for needle in needles:
        assert needle in message, message


@pytest.mark.parametrize("key,value", [
    ("commands.ranges.lin_vel_x", "[1.0,-1.0]"), ("commands.ranges.heading", "[3.0,-3.0]"),
    ("commands.ranges.turn_ang_vel", "[0.6,0.3]"),
    ("commands.resampling_time_range", "[8.0,3.0]"), ("domain_rand.friction_range", "[1.2,0.3]"),
    ("domain_rand.added_mass_range", "[1.0,-0.5]"), ("domain_rand.push_interval_s", "[3.0,1.0]"),
    ("init_state.xy_range", "[0.5,-0.5]"), ("init_state.yaw_range", "[1.0,-1.0]"),
])
def test_range_with_min_above_max_is_refused(key, value):
    e = refused("--set", f"{key}={value}")
    assert len(e.problems) == 1
    assert key in e.problems[0] and "min > max" in e.problems[0] and "swap them" in e.problems[0]


def test_malformed_range_is_refused():
    message = str(refused("--set", "domain_rand.friction_range=[0.3]"))
    assert "domain_rand.friction_range=[0.3]" in message and "[min, max] pair" in message


@pytest.mark.parametrize("key,table", [("stiffness", STIFFNESS), ("damping", DAMPING),
                                       ("effort_limit", {j: EFFORT[m] for j, m in JOINT_MOTOR.items()})])
def test_negative_gain_or_effort_is_refused(key, table):
    e = refused("--set", f"control.{key}={gains(table, knee=-1.0)}")
    assert len(e.problems) == 1
    assert f"control.{key}['knee']=-1.0" in e.problems[0] and ">= 0" in e.problems[0]


def test_negative_armature_and_non_positive_action_scale_are_refused():
    e = refused("--set", "control.armature={'hip':0.01,'knee':-0.01,'ankle':0.01}",
                f"control.action_scale={gains(ACTION_SCALE, hip_pitch=0.0)}")
    assert "control.armature['knee']=-0.01" in str(e)
    assert "control.action_scale['hip_pitch']=0.0" in str(e) and "> 0" in str(e)


def test_reward_scale_on_a_missing_term_is_refused():
    env_cfg, train_cfg = AsimovCfg(), AsimovCfgPPO()
    env_cfg.rewards.scales.jump_height = 0.5
    env_cfg.rewards.scales.air_time = 0.0  # a zero scale never runs: no method needed
    with pytest.raises(ConfigError) as info:
        validate_cfgs(Asimov, env_cfg, train_cfg, task="asimov")
    assert len(info.value.problems) == 1 and "jump_height" in info.value.problems[0]
    assert "rewards.scales.jump_height=0.5" in str(info.value) and "set the scale to 0" in str(info.value)


def test_asimov_configs_on_the_base_env_class_name_the_asimov_only_rewards():
    registry = TaskRegistry()
    registry.register("plain", LeggedRobot, AsimovCfg(), AsimovCfgPPO())
    with pytest.raises(ConfigError) as info:
        resolve_task_cfgs(get_args(["--task=plain", *BASE[1:]]), registry=registry)
    named = {n for n in ("upright", "pose", "foot_clearance") if f"no method _reward_{n};" in str(info.value)}
    assert named == {"upright", "pose", "foot_clearance"}
    assert "task 'plain'" in str(info.value)


def test_errors_are_aggregated():
    e = refused("--num_envs=0", "--set", "sim.dt=0", "domain_rand.friction_range=[2.0,1.0]")
    assert len(e.problems) == 3
    message = str(e)
    assert message.startswith("3 problems in the config of task 'asimov'; nothing was built")
    for key in ("env.num_envs=0", "sim.dt=0.0", "domain_rand.friction_range=[2.0, 1.0]"):
        assert key in message


def test_missing_mjcf_is_refused(tmp_path):
    message = str(refused("--set", f"asset.file={tmp_path}/nowhere/robot.xml"))
    assert "asset.file=" in message and "robot MJCF not found" in message and "Check the path" in message


def test_missing_mesh_is_refused(tmp_path):
    item = mjcf_copy(tmp_path, lambda s: s.replace(
        "<asset>", '<asset>\n    <mesh name="shin" file="meshes/shin.stl"/>', 1).replace(
        '<site name="imu" pos="0 0 0" quat="1 0 0 0"/>',
        '<site name="imu" pos="0 0 0" quat="1 0 0 0"/><geom type="mesh" mesh="shin" contype="0" conaffinity="0"/>'))
    message = str(refused("--set", item))
    assert "shin.stl" in message and "does not load or compile" in message and "mesh / asset paths" in message


@pytest.mark.parametrize("old,new,needles", [
    ('"left_ankle_roll_joint_site"', '"left_sole_site"',
     ["asset.foot_sites='left_ankle_roll_joint_site'", "no site", "closest: ['right_ankle_roll_joint_site'"]),
    ('"left_ankle_roll_link"', '"left_foot_link"',
     ["asset.foot_bodies='left_ankle_roll_link'", "no body", "closest: ['right_ankle_roll_link'"]),
    ('<site name="imu"', '<site name="gyro"', ["asset.imu_site='imu'", "no site"]),
    ('"left_knee_link"', '"left_shin_link"', ["asset.penalize_contacts_on='left_knee_link'", "no body"]),
    ('"pelvis_link"', '"torso_link"', ["asset.terminate_after_contacts_on='pelvis_link'",
                                       "domain_rand.added_mass_body='pelvis_link'"]),
])
def test_mjcf_lacking_a_configured_name_is_refused(tmp_path, old, new, needles):
    message = str(refused("--set", mjcf_copy(tmp_path, lambda s: s.replace(old, new))))
    for needle in needles:
        assert needle in message, message
    assert "add the" in message  # the fix: rename in the config or add it to the MJCF


def test_base_body_without_free_joint_is_refused():
    message = str(refused("--set", "asset.base_body=pelvis_link"))
    assert "asset.base_body='pelvis_link'" in message and "free joint" in message


def test_renamed_joint_is_refused_for_pose_and_gains(tmp_path):
    e = refused("--set", mjcf_copy(tmp_path, lambda s: s.replace('"left_knee_joint"', '"left_shin_joint"')))
    message = str(e)
    assert "init_state.default_joint_angles='left_knee_joint'" in message and "no joint" in message
    for what in ("stiffness", "damping", "effort_limit", "armature", "action_scale"):
        assert f"control.{what}: no key matches the joints ['left_shin_joint']" in message


def test_extra_hinge_joint_is_refused_for_gains_and_num_actions(tmp_path):
    toe = '<joint name="left_toe_joint" type="hinge" axis="0 1 0" range="-0.5 0.5"/>'
    item = mjcf_copy(tmp_path, lambda s: s.replace('<body name="left_ankle_roll_link" pos="-0.0015 0 -0.01">',
                                                   '<body name="left_ankle_roll_link" pos="-0.0015 0 -0.01">'
                                                   f'<body name="left_toe_link">{toe}'
                                                   '<inertial pos="0 0 0" mass="0.05" diaginertia="1e-5 1e-5 1e-5"/>'
                                                   '</body>'))
    message = str(refused("--set", item))
    assert "control.stiffness: no key matches the joints ['left_toe_joint']" in message
    assert "add a key for them" in message
    assert "env.num_actions=12: robot.xml has 13 hinge joints" in message and "set env.num_actions=13" in message


def test_slide_joint_is_refused(tmp_path):
    item = mjcf_copy(tmp_path, lambda s: s.replace(
        '<body name="left_ankle_roll_link" pos="-0.0015 0 -0.01">',
        '<body name="left_ankle_roll_link" pos="-0.0015 0 -0.01"><body name="left_rail_link">'
        '<joint name="left_rail" type="slide" axis="0 0 1" range="-0.01 0.01"/>'
        '<inertial pos="0 0 0" mass="0.05" diaginertia="1e-5 1e-5 1e-5"/></body>'))
    e = refused("--set", item)
    assert len(e.problems) == 1 and "slide joints ['left_rail']" in e.problems[0] and "hinge" in e.problems[0]


def test_a_second_robot_passes(tmp_path):
    from tests.test_scripts import BIPED_XML, make_stick_biped_cfgs

    xml = tmp_path / "stick_biped.xml"
    xml.write_text(BIPED_XML)
    env_cfg, train_cfg = make_stick_biped_cfgs(xml)
    validate_cfgs(LeggedRobot, env_cfg, train_cfg)  # raises on any problem
    env_cfg.env.num_actions = 6
    assert config_problems(LeggedRobot, env_cfg, train_cfg) == [
        "env.num_actions=6: stick_biped.xml has 4 hinge joints (the actuated ones); set env.num_actions=4"]


def test_mujoco_backend_on_a_gpu_device_is_refused():
    message = str(refused("--sim_device=cuda:0"))
    assert "--sim_device='cuda:0'" in message and "--sim_device=cpu" in message


def make_runs(logs: Path, runs: dict[str, list[int]]) -> None:
    for run, its in runs.items():
        (logs / "asimov_velocity" / run).mkdir(parents=True)
        for it in its:
            torch.save({"iter": it}, logs / "asimov_velocity" / run / f"model_{it}.pt")  # a readable zip


def test_missing_load_run_lists_the_runs_that_exist(tmp_path):
    make_runs(tmp_path / "logs", {"2026-01-01_00-00-00_a": [50], "2026-01-02_00-00-00_b": [50, 100]})
    with pytest.raises(FileNotFoundError) as info:
        resolve_task_cfgs(get_args([*BASE, "--resume", "--load_run=2026-01-03_00-00-00_c"]))
    assert "2026-01-03_00-00-00_c does not exist" in str(info.value)
    assert "2026-01-01_00-00-00_a" in str(info.value) and "2026-01-02_00-00-00_b" in str(info.value)
    with pytest.raises(FileNotFoundError, match=r"model_70\.pt does not exist; available: \[50, 100\]"):
        resolve_task_cfgs(get_args([*BASE, "--resume", "--load_run=2026-01-02_00-00-00_b", "--checkpoint=70"]))
    task = resolve_task_cfgs(get_args([*BASE, "--resume"]))
    assert task.load_path == tmp_path / "logs" / "asimov_velocity" / "2026-01-02_00-00-00_b" / "model_100.pt"


def test_checkpoint_of_another_robot_joints_or_network_is_refused_before_the_env(tmp_path):
    run = tmp_path / "logs" / "asimov_velocity" / "2026-01-01_00-00-00_a"
    run.mkdir(parents=True)
    joints = actuated_joints(mujoco.MjModel.from_xml_path(str(ASIMOV_XML)))
    actor = {"actor.0.weight": torch.zeros(256, 45), "actor.2.weight": torch.zeros(128, 256),
             "actor.4.weight": torch.zeros(64, 128), "actor.6.weight": torch.zeros(12, 64)}
    ckpt = {"iter": 5, "env_info": {"robot": "asimov", "joint_names": joints}, "model_state_dict": actor}
    torch.save(ckpt, run / "model_5.pt")
    task = resolve_task_cfgs(get_args([*BASE, "--resume"]))  # CPU defaults: 256-128-64, same robot: fits
    assert task.load_path == run / "model_5.pt"
    torch.save(dict(ckpt, env_info={"robot": "anymal", "joint_names": joints[::-1]}), run / "model_5.pt")
    message = str(refused("--resume"))
    assert "trained for robot 'anymal'" in message and "trained with joints" in message
    torch.save(ckpt, run / "model_5.pt")
    message = str(refused("--resume", "--set", "policy.actor_hidden_dims=[512,256,128]"))
    assert "actor hidden sizes [256, 128, 64], policy.actor_hidden_dims=[512, 256, 128]" in message


def test_play_without_runs_says_train_first():
    with pytest.raises(FileNotFoundError, match="train first"):
        resolve_task_cfgs(get_args(BASE), for_play=True)


def test_train_refuses_before_env_or_run_folder(tmp_path):
    from gym.scripts.train import train

    logs = tmp_path / "logs"  # gym.LOGS_DIR (patched)
    make_runs(logs, {"2026-01-01_00-00-00_a": [5]})
    with pytest.raises(FileNotFoundError, match="2026-01-01_00-00-00_a"):
        train(get_args([*BASE, "--resume", "--load_run=missing"]))
    with pytest.raises(ConfigError, match="env.num_envs=0"):
        train(get_args([*BASE, "--num_envs=0"]))
    assert [p.name for p in (logs / "asimov_velocity").iterdir()] == ["2026-01-01_00-00-00_a"]
    assert sorted(p.name for p in (logs / "asimov_velocity" / "2026-01-01_00-00-00_a").iterdir()) == ["model_5.pt"]


def test_unknown_task_key_and_flag_are_refused():
    with pytest.raises(UnknownTaskError, match="Registered tasks"):
        resolve_task_cfgs(get_args(["--task=asimovv"]))
    with pytest.raises(ConfigKeyError, match="sim.dt"):
        resolve_task_cfgs(get_args([*BASE, "--set", "sim.dtt=0.01"]))
    with pytest.raises(SystemExit):
        get_args(["--task=asimov", "--bogus_flag=1"])


def test_train_script_prints_the_error_without_a_traceback(tmp_path):
    env = {**os.environ, "LEGGED_GYM_LOGS_DIR": str(tmp_path), "OMP_NUM_THREADS": "1"}
    out = subprocess.run([sys.executable, str(ROOT / "gym/scripts/train.py"), *BASE, "--set", "sim.dt=0",
                          "control.decimation=0"], env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode != 0
    assert "error: 2 problems in the config of task 'asimov'" in out.stderr
    assert "sim.dt=0.0" in out.stderr and "control.decimation=0" in out.stderr
    assert "Traceback" not in out.stderr
    assert not any(tmp_path.iterdir())  # no run folder
