"""Policy export (ONNX + TorchScript + JSON metadata) and the firmware-contract check (issue 9, §16)."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnxruntime
import pytest
import torch

from gym.envs import task_registry
from gym.physics.model_builder import match_joint_param
from gym.rl import OnPolicyRunner
from gym.utils.export import ExportError, export_checkpoint, policy_metadata, read_metadata

ROOT = Path(__file__).resolve().parents[1]


def load_script(name: str):
    spec = importlib.util.spec_from_file_location(f"{name}_script", ROOT / "gym" / "scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


check_firmware_contract = load_script("check_firmware_contract")
export_policy = load_script("export_policy")


def make_env(**changes):
    """A 1-env Asimov env on MuJoCo C (CPU) with `changes` applied: {"env.observations": [...]}."""
    env_cfg, train_cfg = task_registry.get_cfgs("asimov", "cpu")
    env_cfg.env.num_envs = 1
    for key, value in changes.items():
        group, leaf = key.split(".")
        setattr(getattr(env_cfg, group), leaf, value)
    return task_registry.get_task_class("asimov")(env_cfg, sim_device="cpu", physics="mujoco"), train_cfg


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """(env, runner, paths) for a checkpoint of iteration 5 with non-trivial normalizer statistics."""
    run = tmp_path_factory.mktemp("run")
    (run / "git_commit.txt").write_text("0123abcd-dirty\n")
    env, train_cfg = make_env()
    train_cfg.policy.actor_hidden_dims = train_cfg.policy.critic_hidden_dims = [32, 16]
    runner = OnPolicyRunner(env, train_cfg, run)
    gen = torch.Generator().manual_seed(0)
    norm = runner.obs_normalizer
    norm._mean.copy_(torch.randn(norm._mean.shape, generator=gen))
    norm._std.copy_(torch.rand(norm._std.shape, generator=gen) + 0.1)
    runner.current_learning_iteration = 5
    path = runner.save(run / "model_5.pt")
    paths = export_checkpoint(path, policy_metadata(env, "asimov"), activation=train_cfg.policy.activation)
    return env, runner, paths


@pytest.mark.filterwarnings("ignore:`torch.jit.load` is deprecated:DeprecationWarning")
@pytest.mark.parametrize("batch", [1, 7])
def test_onnxruntime_and_torchscript_match_the_torch_policy(exported, batch):
    env, runner, paths = exported
    assert {p.name for p in paths.values()} == {"model_5.onnx", "model_5.torchscript.pt", "model_5.json"}
    assert all(p.parent.name == "exported" for p in paths.values())
    policy = runner.get_inference_policy()
    obs = torch.randn(batch, env.num_obs, generator=torch.Generator().manual_seed(batch)) * 3.0
    session = onnxruntime.InferenceSession(str(paths["onnx"]), providers=["CPUExecutionProvider"])
    (onnx_actions,) = session.run(None, {"obs": obs.numpy()})
    with torch.no_grad():
        want = policy(obs).numpy()
        scripted = torch.jit.load(str(paths["torchscript"]))(obs).numpy()
    assert onnx_actions.shape == (batch, env.num_actions)
    assert np.abs(onnx_actions - want).max() < 1e-5
    assert np.abs(scripted - want).max() < 1e-5
    assert np.abs(want).max() > 1e-3  # not a trivially zero policy


def test_onnx_graph_has_opset_17_plus_and_a_dynamic_batch(exported):
    import onnx

    model = onnx.load(str(exported[2]["onnx"]))
    assert max(o.version for o in model.opset_import if o.domain in ("", "ai.onnx")) >= 17
    dims = model.graph.input[0].type.tensor_type.shape.dim
    assert model.graph.input[0].name == "obs" and dims[0].dim_param and dims[1].dim_value == 47
    assert model.graph.output[0].name == "actions"


def test_metadata_equals_the_config_at_full_precision(exported):
    env, _, paths = exported
    cfg = env.cfg
    metas = [read_metadata(paths[k]) for k in ("onnx", "json", "torchscript")]
    assert metas[0] == metas[1] == metas[2]
    meta = metas[0]
    joints = env.joint_names
    assert meta["joint_names"] == joints and len(joints) == 12
    for key, table in (("kp", cfg.control.stiffness), ("kd", cfg.control.damping),
                       ("effort_limit", cfg.control.effort_limit), ("armature", cfg.control.armature),
                       ("action_scale", cfg.control.action_scale)):
        assert meta[key] == [match_joint_param(table, j, key) for j in joints], key  # exact, not rounded
    assert abs(meta["kp"][0] - 25.714713) < 1e-6  # data sheet §5
    assert meta["action_scale"][0] != round(meta["action_scale"][0], 3)  # full precision kept
    assert meta["default_joint_pos"] == [cfg.init_state.default_joint_angles[j] for j in joints]
    assert meta["observation_names"] == cfg.env.observations
    assert meta["observation_dims"] == [3, 3, 3, 12, 12, 12, 2]  # §16's 45 floats + the gait clock
    assert meta["observation_slices"][2] == [6, 9] and meta["num_obs"] == 47
    assert meta["gait_clock"]["period_s"] == cfg.gait.period
    assert meta["observation_scales"] == [getattr(cfg.normalization.obs_scales, t) for t in cfg.env.observations]
    assert meta["dt"] == cfg.sim.dt * cfg.control.decimation and meta["sim_dt"] == cfg.sim.dt
    assert meta["decimation"] == 4
    assert meta["command_ranges"]["lin_vel_x"] == cfg.commands.ranges.lin_vel_x
    assert meta["command_ranges"]["heading"] == [-np.pi, np.pi]
    assert meta["checkpoint_iteration"] == 5 and meta["git_commit"] == "0123abcd-dirty"
    assert meta["task"] == "asimov" and meta["robot"] == "asimov"
    onnx_props = {p.key for p in __import__("onnx").load(str(paths["onnx"])).metadata_props}
    assert {"joint_names", "kp", "kd", "default_joint_pos", "action_scale", "observation_names",
            "observation_scales", "dt", "decimation", "command_ranges", "git_commit"} <= onnx_props


def test_the_asimov_export_meets_the_firmware_contract(exported):
    code, report = check_firmware_contract.check(exported[2]["onnx"])
    assert code == 0, report
    assert "action scale left_hip_pitch_joint" in report and "DEVIATION" not in report
    assert "IMU mounting" in report
    assert check_firmware_contract.check(exported[2]["json"])[0] == 0
    assert check_firmware_contract.check(exported[2]["onnx"].parent)[0] == 0  # the exported/ folder


def test_a_wrong_config_fails_the_contract_naming_each_deviation(exported, tmp_path):
    _, runner, paths = exported
    swapped = ["base_ang_vel", "commands", "projected_gravity", "dof_pos", "dof_vel", "actions", "gait_phase"]
    env, _ = make_env(**{"env.observations": swapped, "control.action_scale": 0.5})
    wrong = export_checkpoint(paths["onnx"].parents[1] / "model_5.pt", policy_metadata(env), tmp_path)
    code, report = check_firmware_contract.check(wrong["onnx"])
    assert code == 1
    assert "observation order differs (swapped / reordered terms)" in report
    assert "term 1 'projected_gravity' (exported: 'commands'); term 2 'commands' (exported: " in report
    assert "one global action scale 0.5 for every joint" in report
    assert "action scale of left_knee_joint is 0.5, contract 0.65749" in report
    assert check_firmware_contract.main([str(wrong["json"])]) == 1


def test_a_truncated_onnx_file_gives_a_clear_error(exported, tmp_path, capsys):
    data = exported[2]["onnx"].read_bytes()
    bad = tmp_path / "model_5.onnx"
    bad.write_bytes(data[: len(data) // 2])
    with pytest.raises(ExportError, match=r"model_5.onnx: not a readable ONNX model \(truncated or corrupt"):
        read_metadata(bad)
    assert check_firmware_contract.main([str(bad)]) == 2
    assert "not a readable ONNX model" in capsys.readouterr().err


def test_export_script_on_a_checkpoint_file(exported, tmp_path, capsys):
    _, _, paths = exported
    checkpoint = paths["onnx"].parents[1] / "model_5.pt"
    assert export_policy.main([str(checkpoint), "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert str(tmp_path / "model_5.onnx") in out and "max |difference|" in out
    assert read_metadata(tmp_path / "model_5.json") == read_metadata(paths["json"])
    assert export_policy.main([str(tmp_path / "missing.pt")]) == 2


def test_training_exports_every_checkpoint_and_the_script_redoes_it(tmp_path):
    env = {**os.environ, "LEGGED_GYM_LOGS_DIR": str(tmp_path), "OMP_NUM_THREADS": "1"}
    args = ["--task=asimov", "--num_envs=8", "--physics=mujoco", "--headless", "--sim_device=cpu",
            "--max_iterations=2", "--set", "runner.num_steps_per_env=8", "runner.save_interval=1"]
    out = subprocess.run([sys.executable, str(ROOT / "gym/scripts/train.py"), *args], env=env,
                         capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    (run,) = (tmp_path / "asimov_velocity").iterdir()
    names = {p.name for p in (run / "exported").iterdir()}
    assert {f"model_{i}.{ext}" for i in (1, 2) for ext in ("onnx", "torchscript.pt", "json")} <= names
    meta = json.loads((run / "exported/model_2.json").read_text())
    assert meta["checkpoint_iteration"] == 2 and meta["git_commit"] == (run / "git_commit.txt").read_text().strip()
    assert check_firmware_contract.check(run)[0] == 0
    drawn = (run / "domain_rand_values.yaml").read_text()  # Asimov's friction and pelvis mass draws
    assert "friction:" in drawn and "added_base_mass:" in drawn
    (run / "exported/model_2.onnx").unlink()
    assert export_policy.main([str(run)]) == 0  # the run folder's newest checkpoint
    assert read_metadata(run / "exported/model_2.onnx")["checkpoint_iteration"] == 2
