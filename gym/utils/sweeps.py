"""Sweep configs for `gym/scripts/sweep.py`: wandb's sweep format, with parameters named by the same
dotted keys as `--set` (gpuGym's `env_cfg.` / `train_cfg.` prefixes accepted).

    {"name": "asimov_rewards", "method": "bayes",
     "metric": {"name": "Train/mean_reward", "goal": "maximize"},
     "parameters": {"rewards.scales.feet_air_time": {"distribution": "uniform", "min": 0.2, "max": 1.5},
                    "algorithm.learning_rate": {"distribution": "log_uniform_values", "min": 1e-4, "max": 3e-3}},
     "early_terminate": {"type": "hyperband", "min_iter": 50, "eta": 3}, "run_cap": 20}

`parse_sweep_config` checks everything before any trial starts or wandb is contacted, and reports every
problem at once (`SweepConfigError`): unknown keys (with the closest valid ones), values of the wrong
type or outside what the key accepts, a metric the runner never logs, and the full config validation
(`resolve_task_cfgs`) at the extremes of the parameter space. `sweep_params.Param` maps a parameter
to Optuna.
"""

from __future__ import annotations

import argparse
import copy
import difflib
import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from gym.utils.sweep_params import Param, _is_int, parse_params

METHODS = ("random", "grid", "bayes")
GOALS = ("maximize", "minimize")
TOP_LEVEL_KEYS = ("name", "method", "metric", "parameters", "early_terminate", "run_cap", "description",
                  "program", "command", "project", "entity")
HYPERBAND_KEYS = ("type", "min_iter", "max_iter", "eta", "s", "strict")
# Metrics the runner logs every iteration besides the reward terms (gym/rl/logger.py, on_policy_runner.py);
# Train/* appear once an episode has finished. tests/test_sweep.py checks this against a real run.
RUNNER_METRICS = ("Train/mean_reward", "Train/mean_episode_length", "Episode/nonfinite_resets",
                  "Perf/fps", "Perf/collection_time", "Perf/learning_time", "Perf/total_timesteps",
                  "Perf/wall_time", "Loss/value_loss", "Loss/surrogate_loss", "Loss/entropy", "Loss/approx_kl",
                  "Loss/clip_fraction", "Loss/explained_variance", "Loss/learning_rate", "Policy/mean_action_std")


class SweepConfigError(ValueError):
    """Every problem of a sweep config; raised before any trial runs or wandb is contacted."""

    def __init__(self, problems: list[str], source: str | Path = "sweep config") -> None:
        self.problems = list(problems)
        n = len(self.problems)
        header = (f"{n} problem{'s' if n != 1 else ''} in {source}; no trial was started and wandb was not "
                  "contacted. Fix each in the sweep config:")
        super().__init__("\n".join([header, *(f"  - {p}" for p in self.problems)]))


@dataclass
class SweepConfig:
    """A validated sweep config (see the module docstring)."""

    name: str
    method: str
    metric: str
    goal: str
    params: list[Param]
    raw: dict[str, Any]
    source: str
    run_cap: int | None = None
    hyperband: dict[str, int] | None = None  # min_resource, max_resource, reduction_factor
    logged_metrics: list[str] = field(default_factory=list)

    @property
    def grid_size(self) -> int | None:
        """Number of grid points (method grid), else None."""
        return math.prod(len(p.choices()) for p in self.params) if self.method == "grid" else None

    def decode(self, sampled: dict[str, Any]) -> dict[str, Any]:
        """Optuna params (by key) -> config values (by key)."""
        return {p.key: p.decode(sampled[p.key]) for p in self.params}

    def to_wandb(self) -> dict[str, Any]:
        """The config for `wandb.sweep`, parameters under their dotted keys without prefixes."""
        out = copy.deepcopy(self.raw)
        out["parameters"] = {p.key: self.raw["parameters"][p.name] for p in self.params}
        out.setdefault("name", self.name)
        return out


def load_sweep_config(path: str | Path) -> dict[str, Any]:
    """Read a sweep config file (JSON, or YAML for .yaml / .yml); errors name the file and the fix."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"sweep config {path} does not exist; copy user/sweep_config_example.json to "
                                f"{path} or pass --wandb_sweep_config FILE")
    text = path.read_text(encoding="utf-8")
    try:
        raw = yaml.safe_load(text) if path.suffix in (".yaml", ".yml") else json.loads(text)
    except (json.JSONDecodeError, yaml.YAMLError) as e:
        raise SweepConfigError([f"not valid {'YAML' if path.suffix in ('.yaml', '.yml') else 'JSON'}: {e}"],
                               path) from None
    if not isinstance(raw, dict):
        raise SweepConfigError([f"must be a mapping with method, metric and parameters, got {type(raw).__name__}"],
                               path)
    return raw


def with_values(args: argparse.Namespace, values: dict[str, Any]) -> argparse.Namespace:
    """A copy of `args` whose `--set` list ends with `key=value` for each of `values` (typed values)."""
    out = copy.copy(args)
    out.set = list(getattr(args, "set", None) or []) + [f"{k}={_text(v)}" for k, v in values.items()]
    return out


def _text(v: Any) -> str:
    """A typed value as `--set` text that `cli.parse_value` reads back to the same value."""
    if isinstance(v, bool):
        return str(v).lower()
    return repr(v) if isinstance(v, float) else str(v)


def logged_metric_names(env_cfg: Any, params: list[Param] = ()) -> list[str]:
    """Metric names the runner logs for `env_cfg`: RUNNER_METRICS and Episode/rew_<term> for each reward
    scale that is non-zero in the config or that a parameter may make non-zero."""
    from gym.utils.validation import flat_scales

    scales = {n for n, s in flat_scales(env_cfg.rewards.scales).items() if s != 0}
    for p in params:
        if p.key.startswith("rewards.scales.") and any(v != 0 for v in p.extremes()):
            scales.add(p.key.rsplit(".", 1)[1])
    return sorted(RUNNER_METRICS) + [f"Episode/rew_{n}" for n in sorted(scales)]


def parse_sweep_config(raw: dict[str, Any], args: argparse.Namespace, source: str = "sweep config") -> SweepConfig:
    """Validate `raw` against the task of `args` (flags and `--set` applied, as each trial will be) and
    return the SweepConfig; raises SweepConfigError listing every problem."""
    from gym.utils.task_registry import resolve_task_cfgs
    from gym.utils.validation import SETUP_ERRORS

    try:
        task = resolve_task_cfgs(args)
    except SETUP_ERRORS as e:
        raise SweepConfigError([f"the trials' own flags are refused: {e}"], source) from None
    problems: list[str] = []
    for key in raw:
        if key not in TOP_LEVEL_KEYS:
            problems.append(f"unknown top-level key {key!r}; valid keys: {list(TOP_LEVEL_KEYS)}")
    method = raw.get("method")
    if method not in METHODS:
        problems.append(f"method={method!r}: choose one of {list(METHODS)} (bayes = Optuna's TPE offline)")
    params = parse_params(raw.get("parameters"), task, problems)
    metric, goal = _parse_metric(raw.get("metric"), problems)
    logged = logged_metric_names(task.env_cfg, params)
    if metric is not None and metric not in logged:
        close = difflib.get_close_matches(metric, logged, n=3, cutoff=0.5)
        problems.append(f"metric.name={metric!r} is never logged by the runner for task {task.name!r}"
                        f"{f'; did you mean {close}' if close else ''}; logged names: {logged}")
    run_cap = raw.get("run_cap")
    if run_cap is not None and (not _is_int(run_cap) or run_cap < 1):
        problems.append(f"run_cap={run_cap!r}: must be an integer >= 1 (trials in the whole sweep)")
    hyperband = _parse_early_terminate(raw.get("early_terminate"), task.train_cfg.runner.max_iterations, problems)
    name = raw.get("name") or re.sub(r"[^A-Za-z0-9._-]+", "_", Path(str(source)).stem)  # default: the file's
    if not isinstance(name, str) or not name.replace("-", "").replace("_", "").replace(".", "").isalnum():
        problems.append(f"name={name!r}: must be letters, digits, '-', '_' or '.' (it names the study folder)")
    if method == "grid" and params:
        for p in params:
            try:
                p.choices()
            except ValueError as e:
                problems.append(str(e))
    problems += _extreme_problems(args, params)  # the parameters that parsed, even if others did not
    if problems:
        raise SweepConfigError(problems, source)
    return SweepConfig(name, method, metric, goal, params, raw, str(source), run_cap, hyperband, logged)


def _parse_metric(metric: Any, problems: list[str]) -> tuple[str | None, str]:
    if not isinstance(metric, dict) or not isinstance(metric.get("name"), str):
        problems.append(f"metric={metric!r}: give {{\"name\": <a logged metric>, \"goal\": \"maximize\" | "
                        "\"minimize\"}, e.g. {\"name\": \"Train/mean_reward\", \"goal\": \"maximize\"}")
        return None, "minimize"
    goal = metric.get("goal", "minimize")  # wandb's default
    if goal not in GOALS:
        problems.append(f"metric.goal={goal!r}: choose one of {list(GOALS)}")
    for key in metric:
        if key not in ("name", "goal", "target"):
            problems.append(f"metric.{key}: unknown; metric takes name, goal and target")
    return metric["name"], goal


def _parse_early_terminate(et: Any, max_iterations: int, problems: list[str]) -> dict[str, int] | None:
    """early_terminate -> HyperbandPruner arguments (min_resource, max_resource, reduction_factor)."""
    if et is None:
        return None
    n_before = len(problems)
    if not isinstance(et, dict) or et.get("type") != "hyperband":
        problems.append(f"early_terminate={et!r}: only {{\"type\": \"hyperband\", \"min_iter\": N, \"eta\": 3}} "
                        "is supported")
        return None
    for key in et:
        if key not in HYPERBAND_KEYS:
            problems.append(f"early_terminate.{key}: unknown; hyperband takes {list(HYPERBAND_KEYS)}")
    eta, max_iter = et.get("eta", 3), et.get("max_iter", max_iterations)
    if not _is_int(eta) or eta < 2:
        problems.append(f"early_terminate.eta={eta!r}: must be an integer >= 2 (Optuna's reduction factor)")
    if not _is_int(max_iter) or max_iter < 1:
        problems.append(f"early_terminate.max_iter={max_iter!r}: must be an integer >= 1 (iterations)")
    if "min_iter" not in et and "s" not in et:
        problems.append("early_terminate: give min_iter (iterations before the first pruning decision), or "
                        "max_iter and s")
    if len(problems) > n_before:
        return None
    min_iter = et["min_iter"] if "min_iter" in et else max(1, round(max_iter / eta ** et["s"]))
    if not _is_int(min_iter) or not 1 <= min_iter <= max_iter:
        problems.append(f"early_terminate.min_iter={min_iter!r}: must be an integer in [1, {max_iter}] "
                        f"(max_iter, default --max_iterations = {max_iterations})")
        return None
    return {"min_resource": min_iter, "max_resource": max_iter, "reduction_factor": eta}


def _extreme_problems(args: argparse.Namespace, params: list[Param]) -> list[str]:
    """Run the full config validation with each parameter at each of its extremes, and with all at their
    lower / upper ends together, so that no sampled trial is refused after the sweep has started."""
    from gym.utils.task_registry import resolve_task_cfgs
    from gym.utils.validation import SETUP_ERRORS

    cases = [{p.key: v} for p in params for v in p.extremes()]
    cases += [{p.key: p.extremes()[0] for p in params}, {p.key: p.extremes()[-1] for p in params}]
    problems: list[str] = []
    seen: set[str] = set()
    for values in cases:
        try:
            resolve_task_cfgs(with_values(args, values))
        except SETUP_ERRORS as e:
            shown = ", ".join(f"{k}={v!r}" for k, v in values.items())
            for line in getattr(e, "problems", None) or [str(e)]:
                if line not in seen:  # each problem once, with the first case that shows it
                    seen.add(line)
                    problems.append(f"with {shown}: {line}")
    return problems
