"""Train a registered task with PPO: `python gym/scripts/train.py --task=asimov`.

Writes logs/<experiment_name>/<date_time>_<run_name>/ with model_<it>.pt, the resolved configs
(env_cfg.yaml, train_cfg.yaml), git_commit.txt and metrics.jsonl.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # run from a checkout without installing

from gym import LOGS_DIR  # noqa: E402
from gym.envs import task_registry  # noqa: E402
from gym.utils.cli import get_args, update_cfgs_from_args  # noqa: E402
from gym.utils.run_dirs import dump_configs, get_load_path, new_run_dir  # noqa: E402
from gym.utils.seeding import set_seed  # noqa: E402
from gym.utils.task_registry import resolve_sim_device  # noqa: E402


def train(args) -> Path:
    """Train `args.task`; returns the run folder."""
    env_cfg, train_cfg = task_registry.get_cfgs(args.task, sim_device=resolve_sim_device(args))
    env_cfg, train_cfg = update_cfgs_from_args(env_cfg, train_cfg, args)
    train_cfg.seed = set_seed(train_cfg.seed)
    env, env_cfg = task_registry.make_env(args.task, args, env_cfg=env_cfg)
    r = train_cfg.runner
    resume_path = get_load_path(LOGS_DIR / r.experiment_name, r.load_run, r.checkpoint) if r.resume else None
    run_dir = new_run_dir(r.experiment_name, r.run_name)
    dump_configs(run_dir, env_cfg, train_cfg)
    runner, train_cfg = task_registry.make_alg_runner(env, args=args, train_cfg=train_cfg, log_dir=run_dir)
    if resume_path is not None:
        print(f"Resuming from {resume_path}")
        runner.load(resume_path)
    print(f"Training {args.task} with {env.num_envs} envs on {env.device} ({env.physics.name} physics); "
          f"logging to {run_dir}")
    runner.learn(num_learning_iterations=r.max_iterations, init_at_random_ep_len=True)
    return run_dir


if __name__ == "__main__":
    train(get_args(description=__doc__))
