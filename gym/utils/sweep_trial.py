"""One sweep trial, trained in a fresh process so that physics and CUDA state never leak between trials.

The agent (`gym/utils/sweep_agents.py`) writes a `TrialSpec` as JSON into the trial's folder and runs

    python -m gym.utils.sweep_trial <trial_dir>/trial_spec.json <trial_dir>/trial_result.json

The child resolves the configs with the trial's values (`resolve_task_cfgs`), builds the env and the
runner, and feeds every iteration's metrics (`runner.add_logger`) to its `TrialContext`: offline, the
sweep metric is reported to the Optuna trial in the shared storage and the study's pruner
(Hyperband) may stop it there (`optuna.TrialPruned`). With wandb logging on, the trial is also a
wandb run (offline, or the online sweep's run). The result file holds the state (COMPLETE, PRUNED,
FAIL), the metric's final value, the config values read back from the built env and runner, and
for a failure the traceback.
"""

from __future__ import annotations

import argparse
import importlib
import json
import math
import os
import subprocess
import sys
import time
import traceback
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from gym.rl.checkpoint import atomic_write_text

TRIAL_FN = "gym.utils.sweep_trial:train_trial"


@dataclass
class TrialSpec:
    """Everything the trial process needs, as plain JSON data."""

    args: dict[str, Any]  # the agent's train flags (vars of its Namespace), --set with the trial's values
    params: dict[str, Any]  # dotted key -> value of this trial
    metric: str
    run_dir: str
    sweep_name: str
    number: int = -1  # Optuna trial number (offline)
    wandb_mode: str | None = None  # the trial is a wandb run in this mode; None: no wandb
    trial_fn: str = TRIAL_FN  # "module:function" taking a TrialContext
    storage: str | None = None  # offline: Optuna storage to report intermediate values to
    study_name: str | None = None
    trial_id: int | None = None
    hyperband: dict[str, int] | None = None  # HyperbandPruner arguments (the study's pruner)


class TrialContext:
    """What a trial function gets: `args` (a Namespace for `resolve_task_cfgs`), `params`, `run_dir`,
    and `log(metrics, iteration)` to hand to `runner.add_logger`; `resolved` is recorded as the trial's
    user attribute `resolved` (the swept values read back from the built env and runner)."""

    def __init__(self, spec: TrialSpec) -> None:
        self.spec = spec
        self.args = argparse.Namespace(**spec.args)
        self.params = dict(spec.params)
        self.run_dir = Path(spec.run_dir)
        self.final: float | None = None  # last finite value of the sweep metric
        self.final_iteration = 0
        self.resolved: dict[str, Any] = {}
        self._trial = None
        if spec.storage is not None and spec.trial_id is not None:
            import optuna

            from gym.utils.sweep_agents import make_pruner, open_storage

            optuna.logging.set_verbosity(optuna.logging.WARNING)
            study = optuna.load_study(study_name=spec.study_name, storage=open_storage(spec.storage),
                                      pruner=make_pruner(spec.hyperband))
            self._trial = optuna.trial.Trial(study, spec.trial_id)

    def log(self, metrics: dict[str, float], iteration: int) -> None:
        """Per-iteration hook: remember the sweep metric, report it offline; raises optuna.TrialPruned
        when the study's pruner stops the trial."""
        value = metrics.get(self.spec.metric)
        if value is None or not math.isfinite(value):
            return
        self.final, self.final_iteration = float(value), iteration
        if self._trial is not None:
            import optuna

            self._trial.report(self.final, iteration)
            if self._trial.should_prune():
                raise optuna.TrialPruned(f"pruned at iteration {iteration}: {self.spec.metric}={value:.6g} "
                                         "lags the other trials that reached this iteration")


def train_trial(ctx: TrialContext) -> None:
    """The default trial function: train.py's steps with the trial's configs, logging to the context
    (and to a wandb run when `ctx.spec.wandb_mode` is set and wandb logging is configured)."""
    from gym.utils.cli import flat_keys
    from gym.utils.run_dirs import dump_configs
    from gym.utils.sweep_params import _get
    from gym.utils.task_registry import resolve_task_cfgs

    task = resolve_task_cfgs(ctx.args)
    env = task.make_env()
    ctx.run_dir.mkdir(parents=True, exist_ok=True)
    dump_configs(ctx.run_dir, task.env_cfg, task.train_cfg)
    runner = task.make_runner(env, ctx.run_dir)
    runner.task_name = task.name
    env_keys = set(flat_keys(env.cfg))
    ctx.resolved = {k: _get(env.cfg if k in env_keys else runner.cfg, k) for k in ctx.params}
    run = _start_wandb(ctx, task)
    if run is not None:
        runner.add_logger(run.log_metrics)
    runner.add_logger(ctx.log)
    try:
        runner.learn(num_learning_iterations=task.train_cfg.runner.max_iterations, init_at_random_ep_len=True)
    except BaseException as e:
        if run is not None:
            import optuna

            run.summary("sweep/state", "PRUNED" if isinstance(e, optuna.TrialPruned) else "FAIL")
            run.finish(exit_code=0 if isinstance(e, optuna.TrialPruned) else 1)
        raise
    if run is not None:
        run.summary(ctx.spec.metric, ctx.final)
        run.summary("sweep/state", "COMPLETE")
        run.finish(exit_code=0)


def _start_wandb(ctx: TrialContext, task: Any) -> Any:
    """The trial's wandb run (mode `spec.wandb_mode`, grouped by sweep), or None when logging is off."""
    spec = ctx.spec
    if spec.wandb_mode is None:
        return None
    from dataclasses import replace

    from gym.utils.wandb_logging import resolve_wandb_settings, start_wandb

    settings = resolve_wandb_settings(ctx.args)
    if settings is None:
        return None
    settings = replace(settings, mode=spec.wandb_mode, group=settings.group or spec.sweep_name)
    name = f"{spec.sweep_name}-{spec.number}" if spec.number >= 0 else None
    extra = {"sweep": {"name": spec.sweep_name, "trial": spec.number, "metric": spec.metric, **spec.params}}
    return start_wandb(settings, ctx.run_dir, task.env_cfg, task.train_cfg, run_name=name, extra_config=extra)


def run_trial(spec: TrialSpec) -> dict[str, Any]:
    """Run `spec.trial_fn` and return the result record (never raises for a failing trial)."""
    import optuna

    start = time.monotonic()
    ctx = TrialContext(spec)
    result: dict[str, Any] = {"state": "COMPLETE", "error": None, "traceback": None}
    try:
        module, _, name = spec.trial_fn.partition(":")
        getattr(importlib.import_module(module), name)(ctx)
        if ctx.final is None:
            result.update(state="FAIL", error=f"the sweep metric {spec.metric!r} was never logged with a finite "
                          "value (Train/* appear once an episode has finished: raise --max_iterations)")
    except optuna.TrialPruned as e:
        result.update(state="PRUNED", error=str(e))
    except BaseException as e:  # noqa: BLE001 - a failed trial is recorded; the agent goes on
        result.update(state="FAIL", error=f"{type(e).__name__}: {e}".strip(), traceback=traceback.format_exc())
        result["interrupted"] = isinstance(e, (KeyboardInterrupt, SystemExit))
    result.update(value=ctx.final, iteration=ctx.final_iteration, resolved=ctx.resolved,
                  duration_s=round(time.monotonic() - start, 2))
    return result


def launch(spec: TrialSpec) -> dict[str, Any]:
    """Run `spec` in a fresh Python process and return its result record; a process that dies without
    writing one (killed, out of memory, a crash in native code) is a FAIL naming its exit code."""
    run_dir = Path(spec.run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    spec_path, result_path = run_dir / "trial_spec.json", run_dir / "trial_result.json"
    spec_path.write_text(json.dumps(asdict(spec), indent=1, default=str), encoding="utf-8")
    result_path.unlink(missing_ok=True)
    from gym import GYM_ROOT_DIR

    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(GYM_ROOT_DIR), *filter(None, [env.get("PYTHONPATH")])])
    proc = subprocess.Popen([sys.executable, "-m", "gym.utils.sweep_trial", str(spec_path), str(result_path)],
                            env=env)
    try:
        code = proc.wait()
    except KeyboardInterrupt:  # the child got the SIGINT too: it saves and stops at a safe point
        code = proc.wait()
        raise
    finally:
        if proc.poll() is None:
            proc.kill()
    if result_path.is_file():
        return json.loads(result_path.read_text(encoding="utf-8"))
    return {"state": "FAIL", "error": f"the trial process exited with code {code} without a result "
            "(killed, out of memory, or a crash in native code); see its output above", "traceback": None,
            "value": None, "iteration": 0, "resolved": {}, "duration_s": None}


def main(argv: list[str] | None = None) -> None:
    """Child entry: run the spec file, write the result file atomically; exit 130 if interrupted."""
    spec_path, result_path = (argv or sys.argv[1:])[:2]
    spec = TrialSpec(**json.loads(Path(spec_path).read_text(encoding="utf-8")))
    result = run_trial(spec)
    if result["traceback"]:
        (Path(spec.run_dir) / "traceback.txt").write_text(result["traceback"], encoding="utf-8")
    atomic_write_text(result_path, json.dumps(result, indent=1, default=str))
    sys.exit(130 if result.get("interrupted") else 0)


if __name__ == "__main__":
    main()
