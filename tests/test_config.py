"""Config inheritance, instance isolation, dotted overrides, YAML dumps and the task registry."""

from __future__ import annotations

import pytest
import torch
import yaml

from gym.envs import AsimovCfg, AsimovCfgPPO, LeggedRobotCfg, task_registry
from gym.envs.asimov.asimov_config import ACTION_SCALE, DAMPING, STIFFNESS
from gym.envs.base.base_config import class_to_dict
from gym.utils.cli import ConfigKeyError, apply_overrides, get_args, parse_value, update_cfgs_from_args
from gym.utils.run_dirs import dump_configs, get_load_path
from gym.utils.task_registry import UnknownTaskError


def test_nested_classes_are_instantiated_and_inherit():
    cfg = AsimovCfg()
    assert isinstance(cfg.env, AsimovCfg.env)
    assert cfg.env.num_actions == 12
    assert cfg.env.send_timeouts is True  # inherited from LeggedRobotCfg.env
    assert cfg.rewards.scales.pose == 1.0  # Asimov's own scales class replaces the base set
    assert not hasattr(cfg.rewards.scales, "torques")
    assert cfg.rewards.only_positive_rewards is False
    assert cfg.sim.integrator == "implicitfast"  # inherited


def test_instances_do_not_share_mutable_state():
    a, b = AsimovCfg(), AsimovCfg()
    a.env.observations.append("base_lin_vel")
    a.control.stiffness["knee"] = 1.0
    assert b.env.observations[-1] == "gait_phase"
    assert b.control.stiffness["knee"] == pytest.approx(63.422994, abs=1e-6)
    assert AsimovCfg.control.stiffness["knee"] == pytest.approx(63.422994, abs=1e-6)


def test_asimov_gains_match_data_sheet():
    # Data sheet §5 table: Kp, Kd and action scale per joint type.
    assert STIFFNESS["hip_pitch"] == pytest.approx(25.714713, abs=1e-6)
    assert STIFFNESS["knee"] == pytest.approx(63.422994, abs=1e-6)
    assert STIFFNESS["ankle_roll"] == pytest.approx(18.240798, abs=1e-6)
    assert DAMPING["hip_yaw"] == pytest.approx(1.841681, abs=1e-6)
    assert DAMPING["hip_roll"] == pytest.approx(4.542337, abs=1e-6)
    assert DAMPING["ankle_pitch"] == pytest.approx(1.306401, abs=1e-6)
    assert ACTION_SCALE["hip_pitch"] == pytest.approx(1.026650, abs=1e-6)
    assert ACTION_SCALE["knee"] == pytest.approx(0.657490, abs=1e-6)
    assert ACTION_SCALE["ankle_roll"] == pytest.approx(0.822332, abs=1e-6)


def test_override_parses_to_existing_type():
    env_cfg, train_cfg = AsimovCfg(), AsimovCfgPPO()
    apply_overrides(env_cfg, train_cfg, ["rewards.scales.air_time=0.25", "algorithm.learning_rate=3e-4",
                                         "env.num_envs=128", "commands.heading_command=false",
                                         "runner.experiment_name=exp", "commands.ranges.lin_vel_x=[-0.1, 0.4]"])
    assert env_cfg.rewards.scales.air_time == 0.25
    assert train_cfg.algorithm.learning_rate == 3e-4
    assert env_cfg.env.num_envs == 128 and isinstance(env_cfg.env.num_envs, int)
    assert env_cfg.commands.heading_command is False
    assert train_cfg.runner.experiment_name == "exp"
    assert env_cfg.commands.ranges.lin_vel_x == [-0.1, 0.4]


def test_none_unsets_an_optional_key_only():
    train_cfg = AsimovCfgPPO()
    apply_overrides(None, train_cfg, ["runner.max_wall_time_min=60"])
    assert train_cfg.runner.max_wall_time_min == 60.0
    apply_overrides(None, train_cfg, ["runner.max_wall_time_min=None"])  # `float | None`: the time limit off
    assert train_cfg.runner.max_wall_time_min is None
    with pytest.raises(ValueError, match="learning_rate"):  # a plain float stays a float
        apply_overrides(None, train_cfg, ["algorithm.learning_rate=None"])


def test_unknown_key_names_closest_valid_keys():
    with pytest.raises(ConfigKeyError, match=r"rewards\.scales\.air_tim.*rewards\.scales\.air_time"):
        apply_overrides(AsimovCfg(), AsimovCfgPPO(), ["rewards.scales.air_tim=0.5"])


@pytest.mark.parametrize("item,match", [("env.num_envs=1.5", "integer"), ("commands.heading_command=maybe", "true"),
                                        ("algorithm.learning_rate=fast", "learning_rate"), ("noequals", "key=value")])
def test_bad_values_raise(item, match):
    with pytest.raises(ValueError, match=match):
        apply_overrides(AsimovCfg(), AsimovCfgPPO(), [item])


def test_parse_value_types():
    assert parse_value("7", 1) == 7
    assert parse_value("1e3", 1.0) == 1000.0
    assert parse_value("{'knee': 2.0}", {"knee": 1.0}) == {"knee": 2.0}
    with pytest.raises(ValueError, match="list"):
        parse_value("3", [1, 2])


def test_cli_flags_map_onto_configs():
    args = get_args(["--task=asimov", "--num_envs=8", "--seed=3", "--max_iterations=5", "--run_name=r",
                     "--experiment_name=e", "--load_run=-1", "--checkpoint=10", "--resume", "--physics=warp",
                     "--set", "rewards.scales.pose=0.5"])
    env_cfg, train_cfg = update_cfgs_from_args(AsimovCfg(), AsimovCfgPPO(), args)
    assert env_cfg.env.num_envs == 8 and env_cfg.sim.physics == "warp"
    assert train_cfg.seed == 3
    r = train_cfg.runner
    assert (r.max_iterations, r.run_name, r.experiment_name, r.checkpoint, r.resume) == (5, "r", "e", 10, True)
    assert env_cfg.rewards.scales.pose == 0.5


def test_registry_returns_fresh_copies_and_rejects_unknown_tasks():
    env_cfg, train_cfg = task_registry.get_cfgs("asimov")
    env_cfg.env.num_envs = 3
    assert task_registry.get_cfgs("asimov")[0].env.num_envs == 4096
    assert train_cfg.runner.experiment_name == "asimov_velocity"
    with pytest.raises(UnknownTaskError, match=r"asimow.*Did you mean 'asimov'.*Registered tasks"):
        task_registry.get_cfgs("asimow")


def test_class_to_dict_and_yaml_dump(tmp_path):
    d = class_to_dict(LeggedRobotCfg())
    assert d["env"]["num_envs"] == 4096 and d["rewards"]["scales"]["tracking_lin_vel"] == 1.0
    dump_configs(tmp_path, AsimovCfg(), AsimovCfgPPO())
    loaded = yaml.safe_load((tmp_path / "env_cfg.yaml").read_text())
    assert loaded["control"]["decimation"] == 4
    assert loaded["init_state"]["default_joint_angles"]["left_knee_joint"] == -0.4
    assert yaml.safe_load((tmp_path / "train_cfg.yaml").read_text())["algorithm"]["num_mini_batches"] == 4
    assert (tmp_path / "git_commit.txt").read_text().strip()


def test_get_load_path_picks_newest_and_explains_missing(tmp_path):
    with pytest.raises(FileNotFoundError, match="train first"):
        get_load_path(tmp_path)
    for run, its in (("2026-01-01_00-00-00", [50, 100]), ("2026-01-02_00-00-00", [50, 300, 1000])):
        (tmp_path / run).mkdir()
        for it in its:
            torch.save({"iter": it}, tmp_path / run / f"model_{it}.pt")  # a readable checkpoint zip
    (tmp_path / "2026-01-03_00-00-00").mkdir()  # a run that crashed before its first checkpoint
    assert get_load_path(tmp_path).name == "model_1000.pt"
    assert get_load_path(tmp_path).parent.name == "2026-01-02_00-00-00"
    assert get_load_path(tmp_path, "2026-01-01_00-00-00", 50).name == "model_50.pt"
    with pytest.raises(FileNotFoundError, match="available"):
        get_load_path(tmp_path, "2026-01-01_00-00-00", 70)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        get_load_path(tmp_path, "nope")


def test_cpu_defaults_apply_only_on_cpu_and_are_validated():
    assert task_registry.get_cfgs("asimov", sim_device="cpu")[0].env.num_envs == 1024
    assert task_registry.get_cfgs("asimov", sim_device="cuda:0")[0].env.num_envs == 4096
    assert task_registry.get_cfgs("asimov")[0].env.num_envs == 4096
    from gym.utils.cli import apply_values

    with pytest.raises(ConfigKeyError, match="env.num_env"):
        apply_values(AsimovCfg(), AsimovCfgPPO(), {"env.num_env": 8})


def test_forcing_the_mujoco_backend_picks_the_cpu():
    from gym.utils.task_registry import resolve_sim_device

    assert resolve_sim_device(get_args(["--physics=mujoco"])) == "cpu"
    assert resolve_sim_device(get_args(["--physics=warp", "--sim_device=cpu"])) == "cpu"
    assert resolve_sim_device(get_args(["--sim_device=cuda:1"])) == "cuda:1"
