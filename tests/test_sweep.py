"""sweep.py: sweep-config validation, offline sweeps on Optuna (random, grid, hyperband, failures, two
agents on one study) and the online path's fast failure without a wandb server.

Trials run in fresh processes. The cheap trial functions below stand in for training where only the
sweep machinery is under test (they are imported by the trial process through --sweep_trial_fn); the
random sweep trains the real Asimov env (8 envs, 2 iterations, tiny networks).
"""

from __future__ import annotations

import csv
import importlib.util
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest
import yaml

import gym
from gym.utils.sweep_agents import open_storage
from gym.utils.sweeps import RUNNER_METRICS, SweepConfigError, parse_sweep_config

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "gym" / "scripts" / "sweep.py"
_spec = importlib.util.spec_from_file_location("sweep_script", SCRIPT)
sweep = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(sweep)

SMALL = ["--task=asimov", "--num_envs=8", "--physics=mujoco", "--headless", "--sim_device=cpu", "--max_iterations=2",
         "--set", "policy.actor_hidden_dims=[32]", "policy.critic_hidden_dims=[32]", "runner.num_steps_per_env=4",
         "algorithm.num_mini_batches=1", "algorithm.schedule=fixed"]
METRIC = {"name": "Train/mean_reward", "goal": "maximize"}


# ---------------------------------------------------------------- cheap trial functions (trial process)
def echo_trial(ctx) -> None:
    """Metric = the first parameter's value at each of 2 iterations; records the agent's pid."""
    value = float(next(iter(ctx.params.values())))
    for it in (1, 2):
        ctx.log({"Train/mean_reward": value, "Perf/fps": 1.0}, it)
    ctx.resolved = {"agent_pid": os.getppid(), **ctx.params}


def slow_echo_trial(ctx) -> None:
    """echo_trial taking a second, so that two agents overlap."""
    time.sleep(1.0)
    echo_trial(ctx)


def failing_trial(ctx) -> None:
    """Trial 1 raises, trial 3 never logs the metric; the others echo."""
    if ctx.spec.number == 1:
        raise RuntimeError("boom in trial 1")
    if ctx.spec.number == 3:
        ctx.log({"Perf/fps": 1.0}, 1)
        return
    echo_trial(ctx)


def lagging_trial(ctx) -> None:
    """Trial 0 scores 10 at every iteration, later trials 1: they lag and Hyperband should stop them."""
    for it in (1, 2):
        ctx.log({"Train/mean_reward": 10.0 if ctx.spec.number == 0 else 1.0}, it)


# ---------------------------------------------------------------- helpers
@pytest.fixture
def logs(tmp_path, monkeypatch) -> Path:
    monkeypatch.setattr(gym, "LOGS_DIR", tmp_path / "logs")
    monkeypatch.setenv("LEGGED_GYM_LOGS_DIR", str(tmp_path / "logs"))
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    return tmp_path / "logs"


def args_for(*flags: str):
    return sweep.get_args([*SMALL, *flags], extra=sweep.SWEEP_FLAGS)


def write(tmp_path: Path, config: dict, name: str = "sweep.json") -> str:
    path = tmp_path / name
    path.write_text(json.dumps(config))
    return str(path)


def run_sweep(tmp_path: Path, config: dict, *flags: str):
    """Run sweep.py's offline agent in this process (trials in their own); returns (config, study)."""
    args = args_for("--wandb_sweep_config", write(tmp_path, config), "--wandb_mode", "disabled", *flags)
    cfg = sweep.run_sweep(args)
    study = optuna.load_study(study_name=cfg.name, storage=open_storage(str(study_dir(cfg.name) / "study.journal")))
    return cfg, study


def study_dir(name: str) -> Path:
    return gym.LOGS_DIR / "asimov_velocity" / "sweeps" / name


def problems(config: dict, *flags: str) -> str:
    with pytest.raises(SweepConfigError) as e:
        parse_sweep_config(config, args_for(*flags), "test.json")
    return str(e.value)


# ---------------------------------------------------------------- validation
def cfg_with(params: dict, **top) -> dict:
    return {"method": "random", "metric": METRIC, "parameters": params, **top}


@pytest.mark.parametrize("params, expected", [
    ({"rewards.scales.feet_air_tme": {"values": [0.5]}}, ["feet_air_tme", "closest valid keys",
                                                          "'rewards.scales.air_time'"]),
    ({"env_cfg.algorithm.gamma": {"values": [0.9]}}, ["algorithm.gamma is a train_cfg key"]),
    ({"algorithm.learning_rate": {"distribution": "uniform", "min": -1e-4, "max": 1e-3}},
     ["parameters.algorithm.learning_rate", "outside what algorithm.learning_rate accepts"]),
    ({"algorithm.learning_rate": {"values": [1e-3, 0.0]}}, ["parameters.algorithm.learning_rate", "0.0"]),
    ({"algorithm.num_learning_epochs": {"distribution": "int_uniform", "min": 1.5, "max": 4}},
     ["parameters.algorithm.num_learning_epochs", "integer key"]),
    ({"runner.empirical_normalization": {"distribution": "uniform", "min": 0, "max": 1}},
     ["parameters.runner.empirical_normalization", "bool"]),
    ({"runner.empirical_normalization": {"values": [True, "no"]}},
     ["parameters.runner.empirical_normalization", "'no' (expects true / false)"]),
    ({"rewards.scales.pose": {"values": ["big"]}}, ["parameters.rewards.scales.pose", "expects a number"]),
    ({"rewards.scales.pose": {"distribution": "normal", "mu": 1, "sigma": 1}}, ["'normal' is not supported"]),
    ({"rewards.scales.pose": {"distribution": "log_uniform_values", "min": 0.0, "max": 1.0}}, ["min > 0"]),
    ({"algorithm.num_mini_batches": {"values": [1, 7]}},  # batch 8 envs * 4 steps = 32
     ["with algorithm.num_mini_batches=7", "does not divide the batch"]),
    ({"domain_rand.friction_range": {"values": [[0.5, 1.0], [1.2, 0.3]]}},
     ["with domain_rand.friction_range=[1.2, 0.3]", "min > max"]),
])
def test_each_kind_of_parameter_mistake_names_the_key(params, expected):
    message = problems(cfg_with(params))
    for text in expected:
        assert text in message, message


def test_metric_the_runner_never_logs_lists_the_logged_names():
    message = problems(cfg_with({"rewards.scales.pose": {"values": [1.0]}}, metric={"name": "Train/reward"}))
    assert "metric.name='Train/reward' is never logged" in message and "'Train/mean_reward'" in message
    assert "'Episode/rew_air_time'" in message and "'Loss/value_loss'" in message
    # a reward term whose scale is 0 is not computed, hence not logged ...
    assert "is never logged" in problems(cfg_with({"rewards.scales.pose": {"values": [1.0]}},
                                                  metric={"name": "Episode/rew_termination"}))
    # ... unless the sweep makes it non-zero
    cfg = parse_sweep_config(cfg_with({"rewards.scales.termination": {"values": [0.0, -5.0]}},
                                      metric={"name": "Episode/rew_termination"}), args_for())
    assert cfg.metric == "Episode/rew_termination" and cfg.goal == "minimize"  # wandb's default goal


def test_every_problem_is_reported_at_once_and_prefixes_are_accepted():
    bad = {"method": "hyperopt", "metric": {"name": "Train/mean_reward", "goal": "max"}, "color": 1,
           "parameters": {"rewards.scales.pose": {"distribution": "uniform", "min": 1, "max": 0}},
           "early_terminate": {"type": "hyperband", "min_iter": 5}}  # > --max_iterations=2
    message = problems(bad)
    assert message.startswith("5 problems in test.json; no trial was started and wandb was not contacted")
    for text in ("method='hyperopt'", "metric.goal='max'", "unknown top-level key 'color'", "min < max",
                 "early_terminate.min_iter=5"):
        assert text in message, message
    grid = {"method": "grid", "metric": METRIC, "parameters": {"rewards.scales.pose": {"min": 0.5, "max": 1.0}}}
    assert "grid search needs a finite set" in problems(grid)
    cfg = parse_sweep_config(cfg_with({"env_cfg.rewards.scales.pose": {"values": [0.5, 1.0]},
                                       "train_cfg.algorithm.gamma": {"value": 0.98},
                                       "algorithm.num_learning_epochs": {"min": 1, "max": 3}}), args_for())
    assert [(p.key, p.kind) for p in cfg.params] == [("rewards.scales.pose", "categorical"),
                                                     ("algorithm.gamma", "constant"),
                                                     ("algorithm.num_learning_epochs", "int_uniform")]


def test_the_example_config_is_valid():
    cfg = parse_sweep_config(json.loads((ROOT / "user" / "sweep_config_example.json").read_text()),
                             sweep.get_args(["--task=asimov", "--sim_device=cpu"], extra=sweep.SWEEP_FLAGS))
    assert cfg.method == "bayes" and cfg.metric == "Train/mean_reward" and len(cfg.params) >= 4
    assert cfg.hyperband["min_resource"] == 100 and cfg.hyperband["max_resource"] > 100  # --max_iterations


def test_bad_config_exits_before_any_trial_or_wandb_call(tmp_path, logs, monkeypatch):
    monkeypatch.setenv("WANDB_BASE_URL", "http://127.0.0.1:1")
    path = write(tmp_path, cfg_with({"rewards.scales.pose": {"values": ["big"]}}))
    with pytest.raises(SystemExit) as e:
        sweep.main([*SMALL, "--wandb_sweep_config", path, "--wandb_mode", "online", "--wandb_project", "p"])
    assert str(e.value.code).startswith("error: 1 problem in") and "wandb server" not in str(e.value.code)
    assert not logs.exists()


def test_online_sweep_without_a_wandb_server_fails_fast(tmp_path, logs, monkeypatch):
    monkeypatch.setenv("WANDB_BASE_URL", "http://127.0.0.1:1")  # nothing listens there
    monkeypatch.setenv("WANDB_API_KEY", "x" * 40)  # a key, so only the server is missing
    path = write(tmp_path, cfg_with({"rewards.scales.pose": {"values": [0.5, 1.0]}}))
    start = time.monotonic()
    with pytest.raises(SystemExit) as e:
        sweep.main([*SMALL, "--wandb_sweep_config", path, "--wandb_mode", "online", "--wandb_project", "p"])
    assert time.monotonic() - start < 15
    message = str(e.value.code)
    assert "cannot reach the wandb server http://127.0.0.1:1" in message and "--wandb_mode offline" in message
    assert not logs.exists()


# ---------------------------------------------------------------- offline sweeps
def test_random_sweep_trains_three_trials_with_their_sampled_values(tmp_path, logs):
    config = {"name": "rand", "method": "random", "metric": {"name": "Loss/learning_rate", "goal": "maximize"},
              "parameters": {
                  "algorithm.learning_rate": {"distribution": "log_uniform_values", "min": 1e-5, "max": 1e-2},
                  "rewards.scales.air_time": {"distribution": "uniform", "min": 0.1, "max": 2.0}}}
    args = args_for("--wandb_sweep_config", write(tmp_path, config), "--wandb_mode", "offline",
                    "--wandb_project", "sweeptest", "--wandb_sweep_count", "3")
    cfg = sweep.run_sweep(args)
    study = optuna.load_study(study_name="rand", storage=open_storage(str(study_dir("rand") / "study.journal")))
    trials = study.get_trials()
    assert [t.state.name for t in trials] == ["COMPLETE"] * 3
    rates = [t.params["algorithm.learning_rate"] for t in trials]
    assert len(set(rates)) == 3 and len({t.params["rewards.scales.air_time"] for t in trials}) == 3
    from gym.utils.wandb_records import read_wandb_records

    for t in trials:
        run_dir = Path(t.user_attrs["run_dir"])
        lr, air = t.params["algorithm.learning_rate"], t.params["rewards.scales.air_time"]
        # the metric is the PPO optimizer's learning rate (fixed schedule): the swept value reached the runner
        assert t.value == pytest.approx(lr, rel=1e-9)
        assert t.user_attrs["resolved"] == pytest.approx({"algorithm.learning_rate": lr,
                                                          "rewards.scales.air_time": air})
        assert yaml.safe_load((run_dir / "env_cfg.yaml").read_text())["rewards"]["scales"]["air_time"] == air
        assert t.intermediate_values == pytest.approx({1: lr, 2: lr})
        lines = [json.loads(x) for x in (run_dir / "metrics.jsonl").read_text().splitlines()]
        logged = {k for line in lines for k in line} - {"iteration"}
        assert logged <= set(cfg.logged_metrics)  # the validated metric names are the runner's
        assert set(RUNNER_METRICS) - {"Train/mean_reward", "Train/mean_episode_length"} <= logged
        records = read_wandb_records(next((run_dir / "wandb").glob("offline-run-*")))  # an offline wandb run
        assert records.group == "rand" and records.config["sweep"]["algorithm.learning_rate"] == lr
        assert records.config["train_cfg"]["algorithm"]["learning_rate"] == lr
        assert records.summary["Loss/learning_rate"] == pytest.approx(lr)
        assert records.summary["sweep/state"] == "COMPLETE"
    with open(study_dir("rand") / "summary.csv") as f:
        rows = list(csv.DictReader(f))
    assert [float(r["Loss/learning_rate"]) for r in rows] == sorted(rates, reverse=True)  # best first


def test_grid_sweep_stops_when_exhausted(tmp_path, logs, capsys):
    config = {"name": "grid", "method": "grid", "metric": METRIC,
              "parameters": {"rewards.scales.pose": {"values": [0.5, 1.0]},
                             "algorithm.num_learning_epochs": {"min": 1, "max": 2}}}
    flags = ["--wandb_sweep_count", "10", "--sweep_trial_fn", "tests.test_sweep:echo_trial"]
    _, study = run_sweep(tmp_path, config, *flags)
    points = [(t.params["rewards.scales.pose"], t.params["algorithm.num_learning_epochs"]) for t in study.trials]
    assert sorted(points) == [(0.5, 1), (0.5, 2), (1.0, 1), (1.0, 2)]
    assert "all 4 trials have been started (grid exhausted)" in capsys.readouterr().out
    _, study = run_sweep(tmp_path, config, *flags)  # a second agent finds nothing left
    assert len(study.trials) == 4


def test_hyperband_prunes_a_lagging_trial(tmp_path, logs):
    config = {"name": "hb", "method": "random", "metric": METRIC,
              "parameters": {"rewards.scales.pose": {"values": [0.5, 1.0]}},
              "early_terminate": {"type": "hyperband", "min_iter": 1, "eta": 3}}  # one bracket up to 2 iterations
    _, study = run_sweep(tmp_path, config, "--wandb_sweep_count", "2", "--sweep_trial_fn",
                         "tests.test_sweep:lagging_trial")
    first, second = study.trials
    assert first.state.name == "COMPLETE" and first.value == 10.0
    assert second.state.name == "PRUNED" and second.intermediate_values == {1: 1.0}  # stopped at iteration 1
    assert "pruned at iteration 1" in second.user_attrs["error"]


def test_a_failing_trial_is_recorded_and_the_sweep_goes_on(tmp_path, logs):
    config = {"name": "fail", "method": "random", "metric": METRIC,
              "parameters": {"rewards.scales.pose": {"distribution": "uniform", "min": 0.5, "max": 1.0}}}
    cfg, study = run_sweep(tmp_path, config, "--wandb_sweep_count", "4", "--sweep_trial_fn",
                           "tests.test_sweep:failing_trial")
    assert [t.state.name for t in study.trials] == ["COMPLETE", "FAIL", "COMPLETE", "FAIL"]
    failed, silent = study.trials[1], study.trials[3]
    assert "RuntimeError: boom in trial 1" in failed.user_attrs["traceback"]
    assert "Traceback" in (Path(failed.user_attrs["run_dir"]) / "traceback.txt").read_text()
    assert "'Train/mean_reward' was never logged" in silent.user_attrs["error"]
    with open(study_dir("fail") / "summary.csv") as f:
        rows = list(csv.DictReader(f))
    assert [r["state"] for r in rows] == ["COMPLETE", "COMPLETE", "FAIL", "FAIL"] and "boom" in rows[2]["error"]


def test_two_agents_share_one_study_and_never_repeat_a_grid_point(tmp_path, logs):
    config = {"name": "shared", "method": "grid", "metric": METRIC,
              "parameters": {"rewards.scales.pose": {"values": [0.25, 0.5, 0.75, 1.0, 1.25, 1.5]}}}
    cmd = [sys.executable, str(SCRIPT), *SMALL, "--wandb_sweep_config", write(tmp_path, config),
           "--wandb_mode", "disabled", "--sweep_trial_fn", "tests.test_sweep:slow_echo_trial"]
    agents = [subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) for _ in range(2)]
    outputs = [a.communicate(timeout=120)[0] for a in agents]
    assert [a.returncode for a in agents] == [0, 0], outputs
    study = optuna.load_study(study_name="shared", storage=open_storage(str(study_dir("shared") / "study.journal")))
    done = [t for t in study.trials if "skipped" not in t.user_attrs]
    assert sorted(t.params["rewards.scales.pose"] for t in done) == [0.25, 0.5, 0.75, 1.0, 1.25, 1.5]
    assert all(t.state.name == "COMPLETE" for t in done)
    assert {t.user_attrs["resolved"]["agent_pid"] for t in done} == {a.pid for a in agents}
