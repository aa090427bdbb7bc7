"""Run folders, resolved configs and checkpoints on disk.

Layout: logs/<experiment_name>/<YYYY-mm-dd_HH-MM-SS>[_<run_name>]/model_<iteration>.pt,
env_cfg.yaml, train_cfg.yaml, git_commit.txt, metrics.jsonl.
"""

from __future__ import annotations

import re
import subprocess
import warnings
from datetime import datetime
from pathlib import Path
from typing import Any

import yaml

from gym import GYM_ROOT_DIR, LOGS_DIR
from gym.envs.base.base_config import class_to_dict
from gym.rl.checkpoint import atomic_write_text

_MODEL_RE = re.compile(r"^model_(\d+)\.pt$")


def new_run_dir(experiment_name: str, run_name: str = "", root: Path = LOGS_DIR) -> Path:
    """Create and return logs/<experiment_name>/<date_time>[_<run_name>]."""
    stamp = datetime.now().strftime("%Y-%m-%d_%H-%M-%S")
    path = Path(root) / experiment_name / (f"{stamp}_{run_name}" if run_name else stamp)
    path.mkdir(parents=True, exist_ok=True)
    return path


def dump_configs(run_dir: Path, env_cfg: Any, train_cfg: Any) -> None:
    """Write the resolved configs as YAML and the git commit (with a dirty flag) into `run_dir`."""
    for name, cfg in (("env_cfg.yaml", env_cfg), ("train_cfg.yaml", train_cfg)):
        atomic_write_text(Path(run_dir) / name, yaml.safe_dump(class_to_dict(cfg), sort_keys=False))
    atomic_write_text(Path(run_dir) / "git_commit.txt", git_describe() + "\n")


def git_describe() -> str:
    """'<commit>' or '<commit>-dirty' of the repository, or 'unknown' outside a git checkout."""
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=GYM_ROOT_DIR, capture_output=True, text=True,
                                check=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=GYM_ROOT_DIR,
                               capture_output=True, text=True, timeout=10).stdout.strip()
        return commit + ("-dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def get_load_path(experiment_dir: Path, load_run: str | int = -1, checkpoint: int = -1) -> Path:
    """Checkpoint to load: run folder `load_run` (-1 = newest) and model_<checkpoint>.pt (-1 = newest).

    With checkpoint=-1, unreadable (truncated / corrupt) checkpoints are skipped with a warning and
    the newest readable one is returned; with load_run=-1 too, runs holding no readable checkpoint
    are skipped likewise. An explicitly named checkpoint is returned as it is (loading it reports
    any problem). Raises FileNotFoundError naming what is missing and what exists.
    """
    experiment_dir = Path(experiment_dir)
    runs = sorted(p for p in experiment_dir.iterdir() if p.is_dir()) if experiment_dir.is_dir() else []
    if str(load_run) in ("-1", ""):
        runs_with_models = [r for r in runs if model_iterations(r)]
        if not runs_with_models:
            raise FileNotFoundError(f"no run with a model_<it>.pt under {experiment_dir}; train first "
                                    "(python gym/scripts/train.py --task=...) or pass --load_run")
        if checkpoint == -1:
            for run in reversed(runs_with_models):
                path = _newest_readable(run)
                if path is not None:
                    return path
            raise FileNotFoundError(f"no readable model_<it>.pt in any run under {experiment_dir} "
                                    "(all are truncated or corrupt; see the warnings above)")
        run = runs_with_models[-1]
    else:
        run = Path(str(load_run))
        if not run.is_absolute():
            run = experiment_dir / run
        if not run.is_dir():
            raise FileNotFoundError(f"run folder {run} does not exist; runs in {experiment_dir}: "
                                    f"{[r.name for r in runs][-10:]}")
    models = model_iterations(run)
    if not models:
        raise FileNotFoundError(f"no model_<it>.pt in {run}")
    if checkpoint == -1:
        path = _newest_readable(run)
        if path is None:
            raise FileNotFoundError(f"no readable model_<it>.pt in {run}: {sorted(models)} are all truncated "
                                    "or corrupt; pass another --load_run")
        return path
    if checkpoint not in models:
        raise FileNotFoundError(f"{run / f'model_{checkpoint}.pt'} does not exist; available: {sorted(models)}")
    return run / f"model_{checkpoint}.pt"


def _newest_readable(run: Path) -> Path | None:
    """Newest model_<it>.pt of `run` that passes `checkpoint_problem`; warns about each one skipped."""
    from gym.rl.checkpoint import checkpoint_problem

    for it in sorted(model_iterations(run), reverse=True):
        path = run / f"model_{it}.pt"
        problem = checkpoint_problem(path)
        if problem is None:
            return path
        warnings.warn(f"skipping unreadable checkpoint {path}: {problem}", stacklevel=3)
    return None


def model_iterations(run: Path) -> list[int]:
    """Iterations of the model_<it>.pt files in run folder `run` (unsorted)."""
    return [int(m.group(1)) for p in run.iterdir() if (m := _MODEL_RE.match(p.name))]


