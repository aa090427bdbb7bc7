"""Sweep agents: offline on Optuna (a study in shared storage that agents on several machines join),
online on wandb's sweep server; and the summary table / CSV of a study.

Offline, the sweep config maps to Optuna: method random / grid / bayes -> RandomSampler / GridSampler
/ TPESampler, early_terminate hyperband -> HyperbandPruner, metric goal -> the study's direction. The
study lives in `logs/<experiment_name>/sweeps/<name>/study.journal` (Optuna's journal file) or in
`--sweep_storage` (an RDB URL such as postgresql://..., or another journal file path).
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import socket
import time
from pathlib import Path
from typing import Any

import optuna

import gym
from gym.rl.checkpoint import atomic_write_text
from gym.utils.sweep_trial import TRIAL_FN, TrialSpec, launch
from gym.utils.sweeps import SweepConfig, SweepConfigError, with_values

WANDB_REACH_TIMEOUT_S = 3.0


class SweepError(RuntimeError):
    """A sweep that cannot run as asked (e.g. the wandb server is out of reach); the message says why
    and what to do instead."""


def sweep_dir(experiment_name: str, name: str) -> Path:
    """logs/<experiment_name>/sweeps/<name>/ (under LEGGED_GYM_LOGS_DIR when set)."""
    return gym.LOGS_DIR / experiment_name / "sweeps" / name


def open_storage(storage: str) -> Any:
    """An RDB URL (`sqlite:///...`, `postgresql://...`) as it is, or a journal file path as Optuna's
    JournalStorage over a JournalFileBackend (its folder is created)."""
    if "://" in storage:
        return storage
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    Path(storage).parent.mkdir(parents=True, exist_ok=True)
    return JournalStorage(JournalFileBackend(str(storage)))


def make_sampler(cfg: SweepConfig) -> Any:
    """method -> Optuna sampler; the grid's order is seeded so that every agent maps trial numbers to
    the same grid points (trial numbers are unique in a study, so no point runs twice)."""
    if cfg.method == "grid":
        return AskTellGridSampler({p.key: p.distribution(grid=True).choices for p in cfg.params}, seed=0)
    return optuna.samplers.TPESampler() if cfg.method == "bayes" else optuna.samplers.RandomSampler()


class AskTellGridSampler(optuna.samplers.GridSampler):
    """GridSampler whose `after_trial` does not call `study.stop()` (that raises outside `study.optimize`);
    the agent stops by itself once every grid point has been started."""

    def after_trial(self, study: Any, trial: Any, state: Any, values: Any) -> None:
        return None


def make_pruner(hyperband: dict[str, int] | None) -> Any:
    """early_terminate hyperband -> HyperbandPruner(min_resource, max_resource, reduction_factor)."""
    return optuna.pruners.HyperbandPruner(**hyperband) if hyperband else optuna.pruners.NopPruner()


def open_study(cfg: SweepConfig, storage: str) -> Any:
    """Create the study `cfg.name` in `storage`, or join it when it exists (another agent made it);
    joining with a different sweep config is refused."""

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(study_name=cfg.name, storage=open_storage(storage), sampler=make_sampler(cfg),
                                pruner=make_pruner(cfg.hyperband), direction=cfg.goal, load_if_exists=True)
    stamp = json.dumps({k: v for k, v in cfg.to_wandb().items() if k != "name"}, sort_keys=True)
    existing = study.user_attrs.get("sweep_config")
    if existing is None:
        study.set_user_attr("sweep_config", stamp)
    elif existing != stamp:
        raise SweepConfigError([f"the study {cfg.name!r} in {storage} was created from a different sweep config "
                                f"({existing}); give this config another name, or use the other agents' file"],
                               cfg.source)
    return study


def run_offline_agent(cfg: SweepConfig, args: Any, folder: Path, storage: str, count: int | None = None,
                      wandb_mode: str | None = None, trial_fn: str = TRIAL_FN) -> Any:
    """Run trials of the study until `count` trials of this agent, the grid or `run_cap` is exhausted
    (study-wide: agents sharing the storage share the budget). Each trial is a fresh process training in
    `folder`/trial_<number>; a failed one is recorded with its traceback and the agent goes on.
    Returns the Optuna study."""
    from optuna.trial import TrialState

    study = open_study(cfg, storage)
    caps = [c for c in (cfg.grid_size, cfg.run_cap) if c]
    cap = min(caps) if caps else None
    grid = cfg.method == "grid"
    dists = {p.key: p.distribution(grid=grid) for p in cfg.params}
    if count is None and cap is None:
        print(f"sweep {cfg.name!r}: no --wandb_sweep_count or run_cap; trials run until you stop the agent (Ctrl-C)")
    done = 0
    while count is None or done < count:
        if cap is not None and len(study.get_trials(deepcopy=False)) >= cap:
            print(f"sweep {cfg.name!r}: all {cap} trials have been started "
                  f"({'grid exhausted' if cap == cfg.grid_size else 'run_cap reached'}); this agent stops")
            break
        trial = study.ask(dists)
        if cap is not None and trial.number >= cap:  # another agent took the last one in the meantime
            trial.set_user_attr("skipped", "the sweep was exhausted when this trial was created")
            study.tell(trial, state=TrialState.FAIL)
            break
        values = cfg.decode(trial.params)
        run_dir = folder / f"trial_{trial.number:03d}"
        for key, value in (("values", values), ("run_dir", str(run_dir)), ("host", socket.gethostname())):
            trial.set_user_attr(key, value)
        trial_args = with_values(args, values)
        trial_args.wandb_mode = wandb_mode
        spec = TrialSpec(args=vars(trial_args), params=values, metric=cfg.metric, run_dir=str(run_dir),
                         sweep_name=cfg.name, number=trial.number, wandb_mode=wandb_mode, trial_fn=trial_fn,
                         storage=storage, study_name=cfg.name, trial_id=trial._trial_id, hyperband=cfg.hyperband)
        print(f"sweep {cfg.name!r}: trial {trial.number} starts: {_show(values)}")
        try:
            result = launch(spec)
        except KeyboardInterrupt:
            trial.set_user_attr("error", "interrupted (Ctrl-C)")
            study.tell(trial, state=TrialState.FAIL)
            raise
        _tell(study, trial, result)
        done += 1
        value = "n/a" if result["value"] is None else f"{result['value']:.6g}"
        print(f"sweep {cfg.name!r}: trial {trial.number} {result['state']}: {cfg.metric}={value} "
              f"after {result['iteration']} iterations ({result['duration_s']} s)")
        if result["state"] == "FAIL":
            print(result["traceback"] or result["error"])
            if result.get("interrupted"):
                raise KeyboardInterrupt
    return study


def _tell(study: Any, trial: Any, result: dict[str, Any]) -> None:
    from optuna.trial import TrialState

    trial.set_user_attr("iterations", result["iteration"])
    trial.set_user_attr("resolved", result["resolved"])
    if result["error"]:
        trial.set_user_attr("error", result["error"][:2000])
    if result["traceback"]:
        trial.set_user_attr("traceback", result["traceback"][-8000:])
    if result["state"] == "COMPLETE":
        study.tell(trial, result["value"])
    else:
        study.tell(trial, state=TrialState.PRUNED if result["state"] == "PRUNED" else TrialState.FAIL)


def _show(values: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v:.6g}" if isinstance(v, float) else f"{k}={v}" for k, v in values.items())


def summary_rows(study: Any, cfg: SweepConfig) -> list[dict[str, Any]]:
    """One row per trial (trial, state, each parameter, the metric, iterations, seconds), best first:
    complete trials by metric, then pruned ones by their last value, then running and failed ones."""
    rows = []
    for t in study.get_trials(deepcopy=False):
        if "skipped" in t.user_attrs:
            continue
        values = t.user_attrs.get("values") or (cfg.decode(t.params) if t.params else {})
        value = t.value if t.value is not None else (t.intermediate_values[max(t.intermediate_values)]
                                                     if t.intermediate_values else None)
        seconds = (t.datetime_complete - t.datetime_start).total_seconds() if t.datetime_complete else None
        rows.append({"trial": t.number, "state": t.state.name, **{p.key: values.get(p.key) for p in cfg.params},
                     cfg.metric: value, "iterations": t.user_attrs.get("iterations"),
                     "seconds": None if seconds is None else round(seconds, 1), "error": t.user_attrs.get("error")})
    sign = -1.0 if cfg.goal == "maximize" else 1.0
    rank = {"COMPLETE": 0, "PRUNED": 1, "RUNNING": 2, "WAITING": 2, "FAIL": 3}

    def key(row: dict[str, Any]) -> tuple:
        v = row[cfg.metric]
        return rank.get(row["state"], 4), sign * v if v is not None and math.isfinite(v) else math.inf, row["trial"]

    return sorted(rows, key=key)


def format_summary(rows: list[dict[str, Any]], cfg: SweepConfig) -> str:
    """The summary rows as an aligned text table (the error column is left to the CSV)."""
    cols = [c for c in (rows[0] if rows else {"trial": 0, "state": 0}) if c != "error"]

    def cell(v: Any) -> str:
        return "" if v is None else f"{v:.4g}" if isinstance(v, float) else str(v)

    table = [cols] + [[cell(r[c]) for c in cols] for r in rows]
    widths = [max(len(line[i]) for line in table) for i in range(len(cols))]
    lines = ["  ".join(s.rjust(w) for s, w in zip(line, widths)) for line in table]
    head = f"sweep {cfg.name!r}: {len(rows)} trials, {cfg.method}, {cfg.metric} ({cfg.goal}), best first"
    return "\n".join([head, lines[0], "-" * len(lines[0]), *lines[1:]])


def write_summary_csv(rows: list[dict[str, Any]], path: Path) -> Path:
    """Write the summary rows as CSV at `path` (atomically: agents may write it concurrently)."""
    text = io.StringIO(newline="")
    writer = csv.DictWriter(text, fieldnames=list(rows[0]) if rows else ["trial", "state"])
    writer.writeheader()
    for row in rows:
        writer.writerow({k: json.dumps(v) if isinstance(v, (list, dict)) else v for k, v in row.items()})
    return atomic_write_text(path, text.getvalue())


def check_wandb_reachable(timeout: float = WANDB_REACH_TIMEOUT_S) -> None:
    """Raise SweepError at once when an online sweep cannot work here: no wandb API key, or the
    wandb server (wandb's base URL) gives no HTTP answer within `timeout` s; wandb itself would
    retry for minutes. The same check as online training's (`wandb_logging.offline_reason`)."""
    from gym.utils.wandb_logging import offline_reason

    start = time.monotonic()
    reason = offline_reason(timeout)
    if reason is not None:
        raise SweepError(
            f"{reason}, after {time.monotonic() - start:.1f} s: an online sweep needs the wandb server to create "
            "or join the sweep and to hand out trials. Run the same config offline instead (Optuna, no server): "
            "add --wandb_mode offline; each trial's offline wandb run can be uploaded later with `wandb sync`")


def run_online_agent(cfg: SweepConfig, args: Any, experiment: str, settings: Any, sweep_id: str | None = None,
                     count: int | None = None, trial_fn: str = TRIAL_FN) -> str:
    """Create the wandb sweep (or join `sweep_id`) and run `count` of its trials here, each a fresh
    process whose wandb run is the sweep's run, training in logs/<experiment>/sweeps/<sweep id>/<run id>.
    Returns the sweep id."""
    check_wandb_reachable()
    import wandb
    import yaml

    if sweep_id is None:
        sweep_id = wandb.sweep(cfg.to_wandb(), project=settings.project, entity=settings.entity)
        print(f"sweep {cfg.name!r} created: {sweep_id}. Join it from another machine with\n"
              f"  python gym/scripts/sweep.py --task={args.task} --wandb_mode online "
              f"--wandb_project {settings.project} --wandb_sweep_id {sweep_id}")
    folder = sweep_dir(experiment, sweep_id.rsplit("/", 1)[-1])
    by_key = {p.key: p for p in cfg.params}

    def run_one() -> None:
        """wandb.agent's function: read this run's parameters and train them in a fresh process."""
        run_id = os.environ["WANDB_RUN_ID"]
        sampled = yaml.safe_load(Path(os.environ["WANDB_SWEEP_PARAM_PATH"]).read_text()) or {}
        sampled = {k: v["value"] for k, v in sampled.items() if isinstance(v, dict) and "value" in v}
        unknown = sorted(set(sampled) - set(by_key))
        if unknown:
            raise SweepConfigError([f"the sweep's parameters {unknown} are not in this agent's config; run every "
                                    "agent of a sweep with the same sweep config file"], cfg.source)
        values = {k: by_key[k].decode(v) for k, v in sampled.items()}
        trial_args = with_values(args, values)
        trial_args.wandb_mode = "online"
        spec = TrialSpec(args=vars(trial_args), params=values, metric=cfg.metric, run_dir=str(folder / run_id),
                         sweep_name=cfg.name, wandb_mode="online", trial_fn=trial_fn)
        result = launch(spec)
        if result["state"] != "COMPLETE":
            raise RuntimeError(f"trial {run_id} {result['state']}: {result['error']}\n{result['traceback'] or ''}")

    wandb.agent(sweep_id, function=run_one, entity=settings.entity, project=settings.project, count=count)
    return sweep_id
