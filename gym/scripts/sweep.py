"""Hyperparameter sweeps: `python gym/scripts/sweep.py --task=asimov [--wandb_mode online|offline]`.

The sweep config (wandb's format; parameters are `--set` keys) comes from --wandb_sweep_config, else
user/sweep_config.json, else the tracked user/sweep_config_example.json (with a notice). It is
validated in full before any trial starts or wandb is contacted. Every train.py flag (--num_envs,
--max_iterations, --headless, --sim_device, --set, ...) applies to each trial; each trial trains in a
fresh process.

- online (`--wandb_mode online`, or wandb logging configured online): wandb's sweep server hands out
  the trials; `--wandb_sweep_id` joins a sweep made elsewhere. Fails fast when the server is out of reach.
- offline (`--wandb_mode offline|disabled`, or wandb logging off): the same config on Optuna, the study
  in logs/<experiment_name>/sweeps/<name>/study.journal or --sweep_storage; agents sharing the storage
  share the study. Each trial is an offline wandb run when wandb logging is configured (`wandb sync`).
  At the end a summary table (best first) is printed and written to summary.csv beside the study.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # run from a checkout without installing

from gym import GYM_ROOT_DIR  # noqa: E402
from gym.utils.cli import get_args  # noqa: E402
from gym.utils.sweep_agents import (  # noqa: E402
    SweepError,
    format_summary,
    run_offline_agent,
    run_online_agent,
    summary_rows,
    sweep_dir,
    write_summary_csv,
)
from gym.utils.sweep_trial import TRIAL_FN  # noqa: E402
from gym.utils.sweeps import SweepConfig, SweepConfigError, load_sweep_config, parse_sweep_config  # noqa: E402
from gym.utils.validation import SETUP_ERRORS  # noqa: E402

USER_CONFIG = GYM_ROOT_DIR / "user" / "sweep_config.json"
EXAMPLE_CONFIG = GYM_ROOT_DIR / "user" / "sweep_config_example.json"

SWEEP_FLAGS = [
    {"name": "--wandb_sweep_config", "metavar": "FILE",
     "help": "sweep config, JSON or YAML (default: user/sweep_config.json, else user/sweep_config_example.json)"},
    {"name": "--wandb_sweep_id", "metavar": "ID",
     "help": "join this sweep: online the wandb sweep id, offline the study name (default: the config's name)"},
    {"name": "--wandb_sweep_count", "type": int, "metavar": "N",
     "help": "trials this agent runs (default: until the grid or run_cap is exhausted, or Ctrl-C)"},
    {"name": "--sweep_storage", "metavar": "URL",
     "help": "offline study storage: an RDB URL (postgresql://..., sqlite:///...) or a journal file path "
             "(default: logs/<experiment_name>/sweeps/<name>/study.journal)"},
    {"name": "--sweep_trial_fn", "default": TRIAL_FN, "help": argparse.SUPPRESS},  # tests: a cheap trial
]


def config_path(args: argparse.Namespace) -> Path:
    """--wandb_sweep_config, else user/sweep_config.json, else the example (with a notice)."""
    if args.wandb_sweep_config:
        return Path(args.wandb_sweep_config)
    if USER_CONFIG.is_file():
        return USER_CONFIG
    print(f"notice: {USER_CONFIG} does not exist; using {EXAMPLE_CONFIG}. Copy it to {USER_CONFIG.name} "
          "to make your own (git-ignored), or pass --wandb_sweep_config FILE")
    return EXAMPLE_CONFIG


def wandb_settings(args: argparse.Namespace) -> Any:
    """`resolve_wandb_settings(args)`: the wandb logging settings, None when logging is off."""
    from gym.utils.wandb_logging import resolve_wandb_settings

    return resolve_wandb_settings(args)


def run_sweep(args: argparse.Namespace) -> SweepConfig:
    """Validate the sweep config, then run this agent online or offline and print the summary."""
    if args.resume:
        raise SweepError("--resume does not apply to a sweep: every trial trains from scratch; drop it")
    if args.wandb_sweep_count is not None and args.wandb_sweep_count < 1:
        raise SweepError(f"--wandb_sweep_count={args.wandb_sweep_count}: must be >= 1")
    path = config_path(args)
    cfg = parse_sweep_config(load_sweep_config(path), args, str(path))  # before anything else
    experiment = args.experiment_name or _experiment(args)
    settings = wandb_settings(args)
    mode = getattr(args, "wandb_mode", None) or (settings.mode if settings is not None else "offline")
    if mode == "online":
        if settings is None:
            raise SweepError("an online sweep needs a wandb project: pass --wandb_project NAME (or set it in "
                             "user/wandb_config.json), or run offline with --wandb_mode offline")
        run_online_agent(cfg, args, experiment, settings, args.wandb_sweep_id, args.wandb_sweep_count,
                         args.sweep_trial_fn)
        return cfg
    if args.wandb_sweep_id:
        if not re.fullmatch(r"[A-Za-z0-9._-]+", args.wandb_sweep_id):
            raise SweepError(f"--wandb_sweep_id={args.wandb_sweep_id!r}: offline it names the study (and its "
                             "folder); use letters, digits, '-', '_' or '.'")
        cfg.name = args.wandb_sweep_id
    folder = sweep_dir(experiment, cfg.name)
    storage = args.sweep_storage or str(folder / "study.journal")
    trial_wandb = "offline" if settings is not None and mode != "disabled" else None
    print(f"sweep {cfg.name!r} offline on Optuna ({cfg.method}, {cfg.metric} {cfg.goal}), storage {storage}; "
          f"trials in {folder}{'' if trial_wandb else '; wandb logging off'}")
    study = None
    try:
        study = run_offline_agent(cfg, args, folder, storage, args.wandb_sweep_count, trial_wandb,
                                  args.sweep_trial_fn)
    finally:
        if study is None:  # interrupted or failed: still show what the study holds
            from gym.utils.sweep_agents import open_study

            try:
                study = open_study(cfg, storage)
            except Exception:  # noqa: BLE001 - the original error is the one to report
                study = None
        if study is not None:
            rows = summary_rows(study, cfg)
            print(format_summary(rows, cfg))
            print(f"summary written to {write_summary_csv(rows, folder / 'summary.csv')}")
            if trial_wandb:
                print(f"upload the trials' offline wandb runs with: wandb sync {folder}/trial_*/wandb/offline-run-*")
    return cfg


def _experiment(args: argparse.Namespace) -> str:
    from gym.utils.task_registry import resolve_task_cfgs

    return resolve_task_cfgs(args).train_cfg.runner.experiment_name


def main(argv: list[str] | None = None) -> None:
    """Command line entry: bad input exits with its message (no traceback) before any trial starts."""
    args = get_args(argv, description=__doc__, extra=SWEEP_FLAGS)
    try:
        run_sweep(args)
    except KeyboardInterrupt:
        sys.exit(130)
    except (SweepConfigError, SweepError, *SETUP_ERRORS) as e:
        sys.exit(f"error: {e}")


if __name__ == "__main__":
    main()
