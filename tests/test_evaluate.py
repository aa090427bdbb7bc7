"""gym/scripts/evaluate.py and gym/utils/evaluation.py: the seeded command schedule, the per-segment
metrics on a scripted env (checked by hand), the training conditions the evaluation restores, and
the script end to end on an untrained checkpoint (7 envs, 4-s episodes, MuJoCo C on the CPU)."""

from __future__ import annotations

import csv
import importlib.util
import json
import math
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from gym.utils.evaluation import (
    CATEGORIES,
    METRICS,
    Kicks,
    Schedule,
    describe_command,
    format_reward_table,
    make_schedule,
    rollout,
    speed_schedule,
    summarize,
)

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "gym" / "scripts" / "evaluate.py"
NAMES = tuple(CATEGORIES)
SMALL = ["--task=asimov", "--physics=mujoco", "--sim_device=cpu", "--headless", "--num_envs=7",
         "--segment_s=2", "--settle_s=0.5", "--set", "env.episode_length_s=4"]


def load_script():
    spec = importlib.util.spec_from_file_location("evaluate_script", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def logs(tmp_path_factory) -> Path:
    """logs/ with one run holding an untrained checkpoint saved as iteration 3 (no train_cfg.yaml:
    the policy shape comes from the task's CPU defaults, as the runner was built)."""
    import gym.envs  # noqa: F401 - registers asimov
    from gym.rl import OnPolicyRunner
    from gym.utils.task_registry import task_registry

    logs = tmp_path_factory.mktemp("logs")
    env_cfg, train_cfg = task_registry.get_cfgs("asimov", sim_device="cpu")
    env_cfg.env.num_envs, env_cfg.sim.physics = 1, "mujoco"
    env = task_registry.get_task_class("asimov")(env_cfg, sim_device="cpu", physics="mujoco")
    runner = OnPolicyRunner(env, train_cfg, None)
    runner.current_learning_iteration = 3
    runner.save(logs / "asimov_velocity" / "2026-01-01_00-00-00_a" / "model_3.pt")
    return logs


def test_schedule_covers_every_category_equally_and_is_seeded():
    ranges = ([-0.3, 0.8], [-0.6, 0.6], [-0.6, 0.6])
    s = make_schedule(14, 5, 200, seed=7, ranges=ranges)
    assert s.categories.shape == (14, 5) and s.commands.shape == (14, 5, 3) and s.names == NAMES
    assert torch.bincount(s.categories.flatten(), minlength=7).tolist() == [10] * 7  # 70 cells / 7
    assert not (s.categories[:, 1:] == s.categories[:, :-1]).any()  # a switch at every segment
    uneven = torch.bincount(make_schedule(16, 5, 200, seed=7).categories.flatten(), minlength=7)
    assert uneven.max() - uneven.min() <= 1  # 80 cells: 11 or 12 each
    again, other = make_schedule(14, 5, 200, seed=7, ranges=ranges), make_schedule(14, 5, 200, seed=8, ranges=ranges)
    assert torch.equal(s.categories, again.categories) and torch.equal(s.commands, again.commands)
    assert not torch.equal(s.categories, other.categories)
    for i, name in enumerate(NAMES):  # each cell's command: the category's, signs drawn, clipped
        (command, signed), cells = CATEGORIES[name], s.commands[s.categories == i]
        expected = torch.tensor(command).clamp(torch.tensor([-0.3, -0.6, -0.6]), torch.tensor([0.8, 0.6, 0.6]))
        assert torch.allclose(cells.abs(), expected.abs().expand_as(cells))
        for axis in range(3):
            signs = set(torch.sign(cells[:, axis]).tolist()) - {0.0}
            if command[axis] == 0:
                assert not signs, (name, axis)
            else:
                assert signs == ({-1.0, 1.0} if signed[axis] else {math.copysign(1.0, command[axis])}), (name, axis)
    assert s.commands[s.categories == NAMES.index("backward")][:, 0].eq(-0.3).all()  # clipped to lin_vel_x
    assert describe_command("lateral") == "0 ±0.3 0" and describe_command("walk_turn") == "0.4 0 ±0.4"
    with pytest.raises(ValueError, match="num_segments"):
        make_schedule(4, 0, 200, seed=1)


class ScriptedEnv:
    """A stand-in for LeggedRobot whose state after step k comes from tables: vel (K, N, 3) as
    (v_x, v_y, w_z), contact / first (K, N, 2) bool, foot_vel (K, N, 2, 3), dones / time_outs (K, N)."""

    def __init__(self, vel, contact, first, foot_vel, dones, time_outs, dt=0.5):
        self.tables = vel, contact, first, foot_vel, dones, time_outs
        self.num_envs, self.dt, self.device = vel.shape[1], dt, torch.device("cpu")
        self.max_episode_length = vel.shape[0]
        self.cfg = SimpleNamespace(domain_rand=SimpleNamespace(push_robots=True))
        n = self.num_envs
        self.commands, self.command_time_left = torch.zeros(n, 4), torch.zeros(n)
        self.heading_env = torch.ones(n, dtype=bool)
        self.kicks, self.pushes_seen, self.policy_inputs, self.k = [], [], [], 0
        record = lambda mask, qvel: self.kicks.append((self.k, mask.clone(), qvel.clone()))  # noqa: E731
        self.physics = SimpleNamespace(qvel=torch.zeros(n, 6), set_qvel=record)  # k = steps taken so far
        self.foot_contact = torch.zeros(n, 2, dtype=bool)
        self.reward_scales = {"alive": 1.0, "step_index": 1.0}  # terms: 1 and k at the k-th step

    def reset(self):
        self.k = 0

    def compute_observations(self):
        self.obs = self.commands[:, :3].clone()

    def get_observations(self):
        return self.obs

    def step(self, actions):
        vel, contact, first, foot_vel, dones, time_outs = (t[self.k] for t in self.tables)
        self.policy_inputs.append(actions.clone())
        self.pushes_seen.append(self.cfg.domain_rand.push_robots)
        zero = torch.zeros(self.num_envs, 1)
        self.base_lin_vel, self.base_ang_vel = torch.cat([vel[:, :2], zero], 1), torch.cat([zero, zero, vel[:, 2:]], 1)
        self.foot_contact, self.first_contact, self.foot_vel = contact, first, foot_vel
        self.reward_terms = torch.tensor([[1.0, float(self.k)]]).expand(self.num_envs, 2)
        self.k += 1
        return self.obs, None, torch.zeros(self.num_envs), dones, {"time_outs": time_outs}


def scripted_episode() -> tuple[ScriptedEnv, Schedule]:
    """2 envs, 8 steps of 0.5 s, 2 segments of 4 steps, 1 s settling: steps 2, 3 and 6, 7 measured.
    env 0: slow then forward, times out at step 7 (left out: its state is the next episode's);
    env 1: turn (w_z -0.5) then stand, falls at step 5 (its second segment does not count)."""
    k, n = 8, 2
    vel = torch.full((k, n, 3), 9.0)  # settling and post-fall steps hold junk that must not count
    vel[2, 0], vel[3, 0] = torch.tensor([0.2, 0.1, 0.0]), torch.tensor([0.0, -0.1, 0.2])  # mean (0.1, 0, 0.1)
    vel[6, 0] = torch.tensor([0.4, 0.05, -0.1])
    vel[2, 1], vel[3, 1] = torch.tensor([0.1, 0.0, -0.3]), torch.tensor([-0.1, 0.0, -0.5])  # mean (0, 0, -0.4)
    contact, first = torch.ones(k, n, 2, dtype=bool), torch.ones(k, n, 2, dtype=bool)
    contact[3, 0], first[2, 0], first[3, 0] = torch.tensor([True, False]), torch.tensor([False, True]), False
    contact[2:4, 1], first[2:4, 1] = torch.tensor([False, True]), False
    foot_vel = torch.full((k, n, 2, 3), 5.0)
    foot_vel[2:4, 0] = foot_vel[6, 0] = foot_vel[2:4, 1] = 0.0
    foot_vel[2, 0, 0], foot_vel[3, 0, 1], foot_vel[6, 0, 0] = torch.tensor([0.3, 0.4, 5.0]), torch.tensor(
        [0.0, 0.2, 0.0]), torch.tensor([0.6, 0.8, 0.0])  # mean horizontal speeds 0.25, 0.1; 0.5
    dones, time_outs = torch.zeros(k, n, dtype=bool), torch.zeros(k, n, dtype=bool)
    dones[5, 1] = dones[7, 0] = time_outs[7, 0] = True
    ids = [NAMES.index(c) for c in ("slow", "forward", "turn", "stand")]
    schedule = Schedule(torch.tensor(ids).view(2, 2), torch.tensor(
        [[[0.1, 0.0, 0.0], [0.5, 0.0, 0.0]], [[0.0, 0.0, -0.5], [0.0, 0.0, 0.0]]]), 4, NAMES)
    return ScriptedEnv(vel, contact, first, foot_vel, dones, time_outs), schedule


def test_segment_errors_and_gait_metrics_match_a_hand_computation():
    env, schedule = scripted_episode()
    result = rollout(env, lambda obs: obs, schedule, settle_s=1.0)
    assert torch.allclose(torch.stack(env.policy_inputs[:4]), schedule.commands[:, 0].expand(4, 2, 3))
    assert torch.allclose(torch.stack(env.policy_inputs[4:]), schedule.commands[:, 1].expand(4, 2, 3))
    assert not env.heading_env.any() and torch.isinf(env.command_time_left).all() and all(env.pushes_seen)
    assert result.fell.tolist() == [False, True] and result.fall_rate == 0.5
    assert result.valid.tolist() == [[True, True], [True, False]] and result.steps[0].tolist() == [2, 1]
    rows = {r["category"]: r for r in summarize(result)}
    expected = {  # n, |e_vx|, |e_vy|, |e_wz|, double support, touchdowns / foot / s, foot speed
        "slow": (1, 0.0, 0.0, 0.1, 0.5, 1 / (2 * 0.5 * 2), 0.175),
        "forward": (1, 0.1, 0.05, 0.1, 1.0, 2 / (1 * 0.5 * 2), 0.5),
        "turn": (1, 0.0, 0.0, 0.1, 0.0, 0.0, 0.0),
        "all": (3, 0.1 / 3, 0.05 / 3, 0.1, 0.5, 2.5 / 3, 0.675 / 3),
    }
    keys = ("n", "vx_error", "vy_error", "wz_error", "double_support", "touchdowns_per_s", "foot_speed")
    for name, values in expected.items():
        assert [rows[name][key] for key in keys] == pytest.approx(values, abs=1e-5), name
    rates = {  # per second of the window (dt 0.5 s): 1 / dt, and mean k / dt over the measured steps
        "slow": {"alive": 2.0, "step_index": 5.0}, "forward": {"alive": 2.0, "step_index": 12.0},
        "turn": {"alive": 2.0, "step_index": 5.0}, "all": {"alive": 2.0, "step_index": 22 / 3},
    }
    for name, expected_rates in rates.items():
        assert rows[name]["reward_rates"] == pytest.approx(expected_rates, abs=1e-5), name
    for name in ("stand", "backward", "lateral", "walk_turn"):  # no sample: NaN, not 0
        assert rows[name]["n"] == 0 and math.isnan(rows[name]["vx_error"])
        assert math.isnan(rows[name]["reward_rates"]["alive"])
    table = format_reward_table(summarize(result)).splitlines()
    assert table[0].split()[-1] == "all" and table[2].split()[:5] == ["alive", "nan", "2.000", "2.000", "nan"]
    assert table[-1].split()[0] == "total" and float(table[-1].split()[-1]) == pytest.approx(2 + 22 / 3, abs=1e-3)
    assert list(rows) == [*NAMES, "all"]


def test_kicks_replace_pushes_every_interval_in_random_directions():
    env, schedule = scripted_episode()
    result = rollout(env, lambda obs: obs, schedule, settle_s=1.0, kicks=Kicks(velocity=1.5, interval_s=1.0), seed=3)
    assert not any(env.pushes_seen) and env.cfg.domain_rand.push_robots  # off during the pass, restored after
    assert result.fell.tolist() == [False, True]
    kicked = {0: [], 1: []}
    for steps, mask, qvel in env.kicks:
        assert torch.allclose(qvel[:, :2].norm(dim=1), torch.tensor(1.5)) and not qvel[:, 2:].any()
        for i in mask.nonzero().flatten().tolist():
            kicked[i].append(steps)  # kicked after this many policy steps
    for i, times in kicked.items():  # the first between 1 and 2 intervals in (2 or 3 steps), then every 2 steps
        assert times and times[0] in (2, 3) and all(b - a == 2 for a, b in zip(times, times[1:])), (i, times)
    assert max(kicked[0]) < 8 and max(kicked[1]) < 6  # none at the time-out, none from env 1's fall on
    angles = {round(math.atan2(q[0, 1].item(), q[0, 0].item()), 4) for _, _, q in env.kicks}
    assert len(angles) == len(env.kicks)


def test_evaluation_restores_training_noise_friction_pushes_and_ranges(logs, monkeypatch):
    import gym
    from gym.utils.cli import get_args
    from gym.utils.evaluation import resolve_eval_task
    from gym.utils.task_registry import task_registry

    monkeypatch.setattr(gym, "LOGS_DIR", logs)
    script = load_script()
    registered, _ = task_registry.get_cfgs("asimov", sim_device="cpu")
    task = resolve_eval_task(get_args(SMALL, extra=script.EVAL_ARGS))
    cfg = task.env_cfg
    assert task.load_path.name == "model_3.pt" and cfg.env.num_envs == 7 and cfg.env.episode_length_s == 4
    assert cfg.noise.add_noise == registered.noise.add_noise is True
    assert cfg.domain_rand.randomize_friction is True
    assert cfg.domain_rand.friction_range == registered.domain_rand.friction_range
    assert cfg.domain_rand.push_robots == registered.domain_rand.push_robots is True
    assert cfg.commands.ranges.lin_vel_x == registered.commands.ranges.lin_vel_x and not cfg.commands.heading_command
    off = resolve_eval_task(get_args([*SMALL, "domain_rand.push_robots=false"], extra=script.EVAL_ARGS))
    assert off.env_cfg.domain_rand.push_robots is False and off.env_cfg.noise.add_noise  # a --set wins


def test_evaluation_takes_the_training_conditions_the_run_saved(logs, monkeypatch, tmp_path):
    import shutil

    import yaml

    import gym
    from gym.utils.cli import get_args
    from gym.utils.evaluation import resolve_eval_task

    run = tmp_path / "asimov_velocity" / "2026-01-02_00-00-00_b"  # trained with --set overrides
    run.mkdir(parents=True)
    shutil.copy(next((logs / "asimov_velocity").glob("*/model_3.pt")), run / "model_3.pt")
    saved = {"domain_rand": {"max_push_vel_xy": 0.5, "push_interval_s": [2.0, 5.0]}, "noise": {"add_noise": False},
             "commands": {"ranges": {"lin_vel_x": [-0.3, 0.6]}}, "no_longer_a_group": {"x": 1},
             "env": {"observations": ["commands", "dof_pos", "gait_phase"], "num_envs": 4096},
             "normalization": {"obs_scales": {"dof_vel": 0.1}}, "gait": {"period": 0.7},
             "rewards": {"scales": {"gait_contact": 0.7}}}
    (run / "env_cfg.yaml").write_text(yaml.safe_dump(saved))
    monkeypatch.setattr(gym, "LOGS_DIR", tmp_path)
    script = load_script()
    cfg = resolve_eval_task(get_args(SMALL, extra=script.EVAL_ARGS)).env_cfg
    assert cfg.domain_rand.max_push_vel_xy == 0.5 and cfg.domain_rand.push_interval_s == [2.0, 5.0]
    assert cfg.noise.add_noise is False and cfg.commands.ranges.lin_vel_x == [-0.3, 0.6]
    assert cfg.domain_rand.push_robots is True  # not in the saved file: the task's value
    # what the policy observes comes from the run too (play's resolution), and the rewards it was paid
    assert cfg.env.observations == ["commands", "dof_pos", "gait_phase"] and cfg.env.num_envs == 7
    assert cfg.normalization.obs_scales.dof_vel == 0.1 and cfg.gait.period == 0.7
    assert cfg.rewards.scales.gait_contact == 0.7
    flags = [*SMALL, "domain_rand.max_push_vel_xy=1.0"]  # this evaluation's --set wins over the run's
    assert resolve_eval_task(get_args(flags, extra=script.EVAL_ARGS)).env_cfg.domain_rand.max_push_vel_xy == 1.0


def test_script_writes_the_table_as_csv_and_json(logs):
    env = {**os.environ, "LEGGED_GYM_LOGS_DIR": str(logs), "OMP_NUM_THREADS": "1"}
    # pushes off: an untrained policy stands still until pushed over, so every category gets samples
    flags = [*SMALL, "domain_rand.push_robots=false", "--episodes=2", "--kick_vel=0.5", "--kick_interval_s=1"]
    out = subprocess.run([sys.executable, str(SCRIPT), *flags], env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    folder = next((logs / "asimov_velocity").iterdir()) / "evaluation"
    csv_path, json_path = folder / "eval_model_3.csv", folder / "eval_model_3.json"
    assert f"csv                    {csv_path}" in out.stdout and str(json_path) in out.stdout
    assert "|e_vx| m/s" in out.stdout and "iteration              3" in out.stdout and "falls under kicks" in out.stdout
    rows = list(csv.DictReader(csv_path.read_text().splitlines()))
    assert [r["category"] for r in rows] == [*NAMES, "all"]
    report = json.loads(json_path.read_text())
    assert report["iteration"] == 3 and report["seed"] == 42 and report["num_envs"] == 7 and report["episodes"] == 2
    assert report["segments_per_episode"] == 2 and report["env_episodes"] == 14
    assert "noise on" in report["conditions"] and "friction U(" in report["conditions"]
    assert 0 <= report["fall_rate"] <= 1 and 0 <= report["kick_fall_rate"] <= 1
    for row, line in zip(report["categories"], rows):
        assert row["category"] == line["category"] and int(line["n"]) == row["n"] and int(line["iteration"]) == 3
        assert row["n"] > 0 and all(math.isfinite(row[m]) and row[m] >= 0 for m in METRICS)
        assert row["reward_rates"] and all(float(line[f"rew_{t}"]) == v for t, v in row["reward_rates"].items())
    assert sum(r["n"] for r in report["categories"][:-1]) == report["categories"][-1]["n"] <= 28
    forward = next(r for r in report["categories"] if r["category"] == "forward")
    assert forward["vx_error"] > 0.25  # an untrained policy does not walk at the commanded 0.5 m/s


def test_checkpoint_file_results_go_beside_the_file(logs, tmp_path):
    import shutil

    file = tmp_path / "elsewhere" / "model_3.pt"
    file.parent.mkdir()
    shutil.copy(next((logs / "asimov_velocity").iterdir()) / "model_3.pt", file)
    report = load_script().main([*SMALL, "domain_rand.push_robots=false", f"--checkpoint_file={file}", "--kick_vel=0"])
    assert report["kick_fall_rate"] is None and (file.parent / "evaluation" / "eval_model_3.json").is_file()
    assert (file.parent / "evaluation" / "eval_model_3.csv").is_file()


def test_speed_schedule_holds_one_forward_command_per_env_group():
    s = speed_schedule([0.0, 0.1, -0.5], envs_per_speed=2, num_segments=3, segment_steps=50)
    assert s.names == ("vx=0", "vx=0.1", "vx=-0.5") and s.segment_steps == 50
    assert s.categories.tolist() == [[0] * 3, [0] * 3, [1] * 3, [1] * 3, [2] * 3, [2] * 3]
    torch.testing.assert_close(s.commands[:, 0, 0], torch.tensor([0.0, 0.0, 0.1, 0.1, -0.5, -0.5]))
    assert torch.equal(s.commands, s.commands[:, :1].expand(-1, 3, -1)) and not s.commands[..., 1:].any()
    for bad in ([], [0.1, 0.1]):
        with pytest.raises(ValueError, match="distinct speeds"):
            speed_schedule(bad, 2, 3, 50)
    with pytest.raises(ValueError, match="envs_per_speed"):
        speed_schedule([0.1], 0, 3, 50)


SWEEP = [f for f in SMALL if not f.startswith("--num_envs")]


def test_speed_sweep_writes_one_row_per_speed_with_pushes_off(logs, monkeypatch):
    import gym

    monkeypatch.setattr(gym, "LOGS_DIR", logs)
    report = load_script().main([*SWEEP, "--speed_sweep", "0", "0.3", "--envs_per_speed=2"])
    assert report["iteration"] == 3 and report["speeds"] == [0.0, 0.3] and "pushes off" in report["conditions"]
    assert [r["category"] for r in report["categories"]] == ["vx=0", "vx=0.3"]
    assert all(r["n"] <= 4 for r in report["categories"])  # 2 envs x 2 segments per speed
    folder = next((logs / "asimov_velocity").iterdir()) / "evaluation"
    rows = list(csv.DictReader((folder / "speed_sweep_model_3.csv").read_text().splitlines()))
    assert [r["category"] for r in rows] == ["vx=0", "vx=0.3"]
    standing, moving_csv = rows  # reward terms per command: double support is paid only while moving,
    assert float(standing["rew_double_support"]) == 0.0  # stand_still_feet only at a zero command
    assert float(moving_csv["rew_stand_still_feet"]) == 0.0 and float(standing["rew_upright"]) > 0.0
    assert json.loads((folder / "speed_sweep_model_3.json").read_text())["envs_per_speed"] == 2
    moving = report["categories"][1]
    if moving["n"]:  # an untrained policy does not walk at 0.3 m/s
        assert moving["vx_error"] > 0.15


@pytest.mark.parametrize("flags, message", [
    (["--speed_sweep", "0.1", "0.1"], "repeated speeds"),
    (["--speed_sweep", "2.0"], "outside the trained commands.ranges.lin_vel_x"),
    (["--speed_sweep", "0.1", "--envs_per_speed=0"], "--envs_per_speed=0: must be >= 1"),
    (["--speed_sweep", "0.1", "--num_envs=4"], "use --envs_per_speed"),
    (["--speed_sweep", "0.1", "--robustness"], "give one"),
])
def test_bad_speed_sweep_flags_are_refused_before_building(logs, monkeypatch, flags, message):
    import gym

    monkeypatch.setattr(gym, "LOGS_DIR", logs)
    with pytest.raises(SystemExit) as e:
        load_script().main([*SWEEP, *flags])
    assert str(e.value.code).startswith("error: ") and message in str(e.value.code)


@pytest.mark.parametrize("flags, message", [
    (["--segment_s=30"], "longer than the episode"),
    (["--settle_s=2"], "--settle_s=2.0: must be >= 0 and shorter than --segment_s"),
    (["--segment_s=0.03"], "multiple of the policy step"),
    (["--episodes=0", "--kick_interval_s=0"], "--kick_interval_s=0.0: must be > 0"),
    (["--checkpoint=9"], "model_9.pt does not exist"),
])
def test_bad_flags_are_refused_before_building(logs, monkeypatch, flags, message):
    import gym

    monkeypatch.setattr(gym, "LOGS_DIR", logs)
    with pytest.raises(SystemExit) as e:
        load_script().main([*SMALL, *flags])
    assert str(e.value.code).startswith("error: ") and message in str(e.value.code)


def test_bad_flag_exits_non_zero_from_the_command_line(tmp_path):
    env = {**os.environ, "LEGGED_GYM_LOGS_DIR": str(tmp_path), "OMP_NUM_THREADS": "1"}
    out = subprocess.run([sys.executable, str(SCRIPT), *SMALL], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode != 0 and out.stderr.startswith("error: ") and "no run with a model" in out.stderr
    assert "Traceback" not in out.stderr
