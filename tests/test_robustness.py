"""gym/utils/robustness.py and `evaluate.py --robustness`: the grid's levels and beyond-training flags
from the task's training ranges, per-env dynamics and latency of each cell on the real Asimov model
(MuJoCo C), and the CI-sized script run writing CSV, JSON and PNG (untrained checkpoint)."""

from __future__ import annotations

import csv
import json
import math

import pytest
import torch

from gym.utils.robustness import AXIS_NAMES, CSV_COLUMNS, apply_grid, configure_env_cfg, make_grid
from tests.test_evaluate import SMALL, load_script, logs  # noqa: F401 - `logs`: the untrained checkpoint

CI = [*SMALL[:4], "--robustness", "--envs_per_cell=1", "--robustness_s=2", "--segment_s=2", "--settle_s=0.5",
      "--kick_interval_s=0.5"]


def asimov_cfg():
    import gym.envs  # noqa: F401 - registers asimov
    from gym.utils.task_registry import task_registry

    cfg, _ = task_registry.get_cfgs("asimov", sim_device="cpu")
    cfg.sim.physics = "mujoco"
    return cfg


def levels(grid, axis: str) -> dict[float, bool]:
    """level -> beyond_training of one axis."""
    return {c.level: c.beyond_training for c in grid.cells if c.axis == axis}


def test_levels_and_beyond_training_flags_follow_the_training_config():
    cfg = asimov_cfg()
    grid = make_grid(cfg)
    assert list(dict.fromkeys(c.axis for c in grid.cells)) == list(AXIS_NAMES)
    # friction: Asimov trains on [0.3, 1.2]; nominal = the foot geoms' 0.8 in the MJCF
    assert grid.nominal["friction"] == pytest.approx(0.8)
    assert levels(grid, "friction") == {0.1: True, 0.2: True, 0.3: False, 0.8: False, 1.2: False, 2.0: True}
    assert levels(grid, "added_mass") == {-2.0: True, -1.0: True, -0.5: False, 0.0: False, 1.0: False, 3.0: True,
                                          5.0: True}
    # gains are not randomized in training: only x1 is inside, and the range ends coincide with it
    assert levels(grid, "kp_scale") == {0.6: True, 0.8: True, 1.0: False, 1.2: True, 1.4: True}
    assert levels(grid, "action_latency") == {0.0: False, 1.0: True, 2.0: True, 3.0: True, 4.0: True}
    # pushes: per-axis U(-1, 1) m/s reach sqrt(2) m/s
    assert levels(grid, "push") == {0.0: False, 0.5: False, 1.0: False, 1.5: True, 2.0: True, 2.5: True}
    assert [c.nominal for c in grid.cells if c.axis == "push"] == [True] + [False] * 5

    dr = cfg.domain_rand
    dr.randomize_gains, dr.kp_scale_range = True, [0.9, 1.1]
    dr.randomize_latency, dr.imu_latency_range, dr.joint_latency_range = True, [0, 2], [1, 3]
    dr.push_robots, cfg.control.decimation = False, 3
    grid = make_grid(cfg, ["kp_scale", "sensor_latency", "push"])
    assert levels(grid, "kp_scale") == {0.6: True, 0.8: True, 0.9: False, 1.0: False, 1.1: False, 1.2: True,
                                        1.4: True}
    assert levels(grid, "sensor_latency") == {0.0: True, 1.0: False, 2.0: False, 3.0: True}  # both ranges, <= 3
    assert not levels(grid, "push")[0.0] and all(levels(grid, "push")[x] for x in (0.5, 1.0, 2.5))
    with pytest.raises(ValueError, match=r"unknown robustness axes \['gravity'\]"):
        make_grid(cfg, ["friction", "gravity"])


def test_each_cell_gets_its_dynamics_latency_and_kicks():
    from gym.utils.task_registry import task_registry

    cfg = asimov_cfg()
    grid = make_grid(cfg)
    configure_env_cfg(cfg, grid, envs_per_cell=2, seconds=2.0)
    assert not any(getattr(cfg.domain_rand, k) for k in dir(cfg.domain_rand) if k.startswith("randomize_"))
    assert cfg.env.num_envs == 2 * len(grid.cells) and not cfg.domain_rand.push_robots
    env = task_registry.get_task_class("asimov")(cfg, sim_device="cpu", physics="mujoco")
    kicks = apply_grid(env, grid, envs_per_cell=2)
    cell = {(c.axis, c.level): 2 * i for i, c in enumerate(grid.cells)}  # first env of each cell
    feet, nominal_kp = list(env.robot.foot_geom_ids), torch.as_tensor(env.robot.stiffness, dtype=torch.float32)
    friction = env.physics.get_model_field("geom_friction")[:, feet, 0]
    for level in (0.1, 2.0):
        assert friction[cell["friction", level]].tolist() == pytest.approx([level, level])
        assert friction[cell["friction", level] + 1].tolist() == pytest.approx([level, level])  # its cell-mate
    assert friction[cell["kp_scale", 0.6]].tolist() == pytest.approx([0.8, 0.8])  # other rows: nominal
    assert torch.allclose(env.p_gains[cell["kp_scale", 0.6]], 0.6 * nominal_kp)
    assert torch.allclose(env.p_gains[cell["kp_scale", 1.4]], 1.4 * nominal_kp)
    assert torch.allclose(env.p_gains[cell["friction", 0.1]], nominal_kp)
    gain = env.physics.get_model_field("actuator_gainprm")[:, :, 0]
    assert torch.allclose(gain[cell["kp_scale", 1.4]], 1.4 * gain[cell["kd_scale", 0.5]].double())
    kd = -env.physics.get_model_field("actuator_biasprm")[:, :, 2]
    assert torch.allclose(kd[cell["kd_scale", 0.5]], 0.5 * kd[cell["push", 0.0]])
    limit = env.physics.get_model_field("actuator_forcerange")[:, :, 1]
    assert torch.allclose(limit[cell["motor_strength", 0.5]], 0.5 * limit[cell["push", 0.0]])
    assert torch.allclose(env.torque_limits[cell["motor_strength", 0.5]],
                          0.5 * torch.as_tensor(env.robot.effort_limit, dtype=torch.float32))
    body = env.robot.mj_model.body(cfg.domain_rand.added_mass_body).id
    mass = env.physics.get_model_field("body_mass")[:, body]
    assert mass[cell["added_mass", 5.0]] - mass[cell["added_mass", 0.0]] == pytest.approx(5.0)
    assert mass[cell["added_mass", -2.0]] == pytest.approx(env.robot.mj_model.body_mass[body] - 2.0)
    for kind in ("action", "sensor"):
        for level in (0.0, 3.0, 4.0):
            i = cell[f"{kind}_latency", level]
            action, imu, joint = (int(getattr(env.latency, k)[i + 1]) for k in ("action", "imu", "joint"))
            assert (action, imu, joint) == ((level, 0, 0) if kind == "action" else (0, level, level))
    assert int(env.physics.action_delay[cell["action_latency", 3.0]]) == 3
    assert kicks[cell["push", 1.5] + 1] == 1.5 and kicks[cell["push", 2.5]] == 2.5
    assert kicks.count_nonzero() == 2 * 5  # only the push row kicks (0 m/s is its nominal cell)
    nominal = cell["push", 0.0]  # a nominal cell is the nominal robot exactly
    for name in ("geom_friction", "body_mass", "actuator_gainprm", "actuator_biasprm", "actuator_forcerange"):
        assert torch.equal(env.physics.get_model_field(name)[nominal],
                           torch.as_tensor(getattr(env.robot.mj_model, name), dtype=torch.float64)), name
    # MuJoCo C: the cells' envs share one model copy per distinct dynamics (nominal cells share one)
    assert len({id(m) for m in env.physics._models}) == 1 + sum(
        not c.nominal for c in grid.cells if c.axis in ("friction", "added_mass", "kp_scale", "kd_scale",
                                                         "motor_strength"))


def test_ci_sized_run_writes_the_table_as_csv_json_and_png(logs, monkeypatch, capsys):  # noqa: F811
    import gym

    monkeypatch.setattr(gym, "LOGS_DIR", logs)
    report = load_script().main(CI)
    folder = next((logs / "asimov_velocity").iterdir()) / "evaluation"
    paths = {kind: folder / f"robustness_model_3.{kind}" for kind in ("csv", "json", "png")}
    assert {kind: report[kind] for kind in paths} == {kind: str(p) for kind, p in paths.items()}
    out = capsys.readouterr().out
    assert "|e_vx| m/s" in out and "friction" in out and f"png                    {paths['png']}" in out
    rows = list(csv.DictReader(paths["csv"].read_text().splitlines()))
    assert tuple(rows[0]) == CSV_COLUMNS and len(rows) == report["num_cells"] == len(make_grid(asimov_cfg()).cells)
    null = lambda row: {k: None if isinstance(v, float) and math.isnan(v) else v for k, v in row.items()}  # noqa: E731
    assert json.loads(paths["json"].read_text())["cells"] == [null(r) for r in report["cells"]]
    assert list(report["axes"]) == list(AXIS_NAMES) and report["envs_per_cell"] == 1
    for row, line in zip(report["cells"], rows):
        assert line["axis"] == row["axis"] and float(line["level"]) == row["level"] and int(line["iteration"]) == 3
        assert line["beyond_training"] == str(row["beyond_training"]) and row["envs"] == 1
        assert 0 <= row["fall_rate"] <= 1 and row["falls"] == round(row["fall_rate"])
        assert 0 < row["episode_length_s"] <= 2 and (row["episode_length_s"] == 2) == (row["falls"] == 0)
        assert row["samples"] <= 1 and (row["samples"] == 1) == (row["falls"] == 0)  # 1 segment, 0.5 s settling
        errors = [row[k] for k in ("vx_error", "vy_error", "wz_error")]
        assert all(e >= 0 for e in errors) if row["samples"] else all(math.isnan(e) for e in errors)
    push = {r["level"]: r for r in report["cells"] if r["axis"] == "push"}
    assert push[0.0]["falls"] == 0 and push[2.5]["falls"] == 1  # an untrained policy stands until kicked over
    assert push[2.5]["episode_length_s"] < 2
    png = paths["png"].read_bytes()
    assert png.startswith(b"\x89PNG\r\n\x1a\n")
    import matplotlib.image

    assert matplotlib.image.imread(paths["png"]).shape[:2] > (300, 600)


@pytest.mark.parametrize("flags, message", [
    (["--envs_per_cell=0"], "--envs_per_cell=0: must be >= 1"),
    (["--robustness_axes", "friction", "gravity"], "--robustness_axes: unknown ['gravity']"),
    (["--robustness_s=1"], "--segment_s=2.0: longer than the episode (--robustness_s=1.0)"),
    (["--kick_interval_s=1.5"], "--kick_interval_s=1.5: the push axis' first kick"),
    (["--num_envs=8"], "--num_envs=8: the grid has cells x --envs_per_cell envs"),
])
def test_bad_robustness_flags_are_refused_before_building(logs, monkeypatch, flags, message):  # noqa: F811
    import gym

    monkeypatch.setattr(gym, "LOGS_DIR", logs)
    with pytest.raises(SystemExit) as e:
        load_script().main([*CI, *flags])
    assert str(e.value.code).startswith("error: bad robustness flags") and message in str(e.value.code)
