"""Train a registered task with PPO: `python gym/scripts/train.py --task=asimov`.

Writes logs/<experiment_name>/<date_time>_<run_name>/ with model_<it>.pt, the resolved configs
(env_cfg.yaml, train_cfg.yaml), git_commit.txt and metrics.jsonl. `--resume` continues in the run
folder of the checkpoint it loads, unless `--run_name` asks for a new folder.

Order: resolve and validate the configs, the checkpoint to resume and the wandb settings (a bad
value, name, file, run or checkpoint is refused here, before anything is built) -> build the env ->
run folder -> runner -> load -> wandb run (when asked: `--wandb_*` flags or user/wandb_config.json)
-> learn -> finish the wandb run, also on errors and interrupts.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # run from a checkout without installing

from gym.utils.gl_backend import RenderBackendError, check_video_args, select_gl_backend, wants_rendering  # noqa: E402

if __name__ == "__main__" and wants_rendering(sys.argv[1:]):  # --video_interval: before mujoco is imported
    try:
        select_gl_backend()
    except RenderBackendError as e:
        sys.exit(f"error: {e}")

from gym.physics.model_builder import resolve_asset_path  # noqa: E402
from gym.rl.distributed import Distributed, DistributedError  # noqa: E402
from gym.utils.cli import get_args  # noqa: E402
from gym.utils.launch import configure_rank, launch, launch_count, seed_rank  # noqa: E402
from gym.utils.run_dirs import dump_configs, new_run_dir  # noqa: E402
from gym.utils.task_registry import ResolvedTask, resolve_task_cfgs  # noqa: E402
from gym.utils.validation import SETUP_ERRORS  # noqa: E402
from gym.utils.wandb_logging import (  # noqa: E402
    WandbRun,
    WandbSettings,
    resolve_wandb_settings,
    settings_from_run_info,
    start_wandb,
)


def train(args, task: ResolvedTask | None = None, wandb_settings: WandbSettings | None = None,
          wandb_extra_config: dict | None = None, dist: Distributed | None = None) -> Path | None:
    """Train `args.task` (configs from `task` if already resolved); returns the run folder.

    `dist`: this rank of a multi-rank run (gym/rl/distributed.py); only rank 0 writes the run folder,
    checkpoints and logs, and talks to wandb (the other ranks return None).

    wandb logging follows `wandb_settings`, or when None the `--wandb_*` flags of `args` and
    user/wandb_config.json, or when resuming in a run folder with a wandb_run.json, that run's
    settings (pass `WandbSettings(..., mode="disabled")` to force it off);
    `wandb_extra_config` is added to the wandb run config (e.g. a sweep trial's parameters).
    """
    task = task or resolve_task_cfgs(args)
    dist = dist if dist is not None else Distributed()
    seed_rank(task.train_cfg, dist)  # several ranks: rank 0's base seed; rank r seeds its streams with seed + r
    if wandb_settings is None and dist.is_main:
        wandb_settings = resolve_wandb_settings(args, default_project=task.train_cfg.runner.experiment_name)
    env = task.make_env()
    r = task.train_cfg.runner
    if not dist.is_main:
        run_dir, wandb_settings = None, None  # rank 0 writes the run folder, checkpoints, logs and wandb
    elif task.load_path is not None and not r.run_name:
        run_dir = task.load_path.parent  # resume in place: checkpoints and metrics.jsonl continue there
    else:
        run_dir = new_run_dir(r.experiment_name, r.run_name)
    if run_dir is not None:
        dump_configs(run_dir, task.env_cfg, task.train_cfg)
        if getattr(env, "domain_rand_values", None):  # this run's per-env draws (gym/envs/base/domain_rand.py)
            from gym.envs.base.domain_rand import write_values

            write_values(run_dir, env.domain_rand_values)
    if wandb_settings is None and task.load_path is not None and run_dir == task.load_path.parent:
        wandb_settings = settings_from_run_info(run_dir)  # resuming a wandb run: keep logging to it
    runner = task.make_runner(env, run_dir, dist)
    runner.task_name = args.task  # named in the runner's "how to resume" line
    if task.load_path is not None:
        runner.load(task.load_path)
    if run_dir is not None and getattr(r, "export_policy", False):  # ONNX + TorchScript beside each checkpoint
        from gym.utils.export import checkpoint_export_callback

        runner.add_checkpoint_callback(checkpoint_export_callback(env, task.train_cfg, args.task))
    videos = None
    if getattr(args, "video_interval", None):  # a clip every N iterations (gym/utils/video.py)
        from gym.utils.video import add_training_videos

        videos = add_training_videos(runner, task, run_dir, args.video_interval, args.video_length,
                                     tuple(args.video_size or (320, 240)))
    wandb_run = None
    if wandb_settings is not None:
        wandb_run = start_wandb(wandb_settings, run_dir, task.env_cfg, task.train_cfg,
                                extra_config={"task": args.task, "run_dir": str(run_dir), **(wandb_extra_config or {})})
        runner.add_logger(wandb_run.log_metrics)
        if wandb_settings.upload_models:
            runner.add_checkpoint_callback(wandb_run.log_file)
        if videos is not None:
            videos.on_video = wandb_run.log_video
    if dist.is_main:
        print(setup_summary(task, env, runner, run_dir, wandb_run))
    exit_code = 1
    try:
        runner.learn(num_learning_iterations=r.max_iterations, init_at_random_ep_len=True)
        dist.barrier()  # several ranks: all leave together, after rank 0 wrote the final checkpoint
        exit_code = 0
        if dist.is_main:
            print(finish_summary(args.task, run_dir))
    except SystemExit as e:  # TrainingInterrupted (SIGINT / SIGTERM): 130 / 143
        exit_code = e.code if isinstance(e.code, int) else 1
        raise
    finally:
        if wandb_run is not None:
            wandb_run.finish(exit_code)
    return run_dir


def finish_summary(task_name: str, run_dir: Path) -> str:
    """Where the finished run is and the commands that play and evaluate its last checkpoint."""
    from gym.utils.run_dirs import model_iterations

    iterations = model_iterations(run_dir)
    last = run_dir / f"model_{max(iterations)}.pt" if iterations else None
    lines = [f"Training finished. Run folder: {run_dir}"]
    if last is not None:
        lines += [f"  last checkpoint: {last}",
                  f"  play it:     python gym/scripts/play.py --task={task_name} --load_run={run_dir.name}",
                  f"  evaluate it: python gym/scripts/evaluate.py --task={task_name} --load_run={run_dir.name}"]
    return "\n".join(lines)


def setup_summary(task: ResolvedTask, env, runner, run_dir: Path, wandb_run: WandbRun | None = None) -> str:
    """The training setup, one item per line: task, envs, devices, sizes, batch, iterations, folders, wandb."""
    alg, r, pol = task.train_cfg.algorithm, task.train_cfg.runner, task.train_cfg.policy
    batch = env.num_envs * r.num_steps_per_env
    start = runner.current_learning_iteration
    ranks = runner.dist.world_size
    per_rank = f" per rank x {ranks} ranks = {env.num_envs * ranks} ({runner.dist.backend})" if ranks > 1 else ""
    global_batch = f" per rank, {batch * ranks} in all" if ranks > 1 else ""
    rows = [
        ("task", f"{task.name} ({task.task_class.__name__}), robot {resolve_asset_path(task.env_cfg.asset.file)}"),
        ("envs", f"{env.num_envs}{per_rank} on {env.device}, {env.physics.name} physics, "
                 f"dt {task.env_cfg.sim.dt} s x decimation {task.env_cfg.control.decimation}"),
        ("observations", f"policy {env.num_obs}, critic {env.num_privileged_obs}; actions {env.num_actions}"),
        ("networks", f"actor {pol.actor_hidden_dims}, critic {pol.critic_hidden_dims} on {task.rl_device}"),
        ("batch", f"{env.num_envs} envs x {r.num_steps_per_env} steps = {batch}{global_batch}, "
                  f"{alg.num_mini_batches} mini-batches of {batch // alg.num_mini_batches}, "
                  f"{alg.num_learning_epochs} epochs"),
        ("iterations", f"{start} -> {start + r.max_iterations}, checkpoint every {r.save_interval}"
                       + (f"; stops after {r.max_wall_time_min:g} min of training if not done by then"
                          if getattr(r, "max_wall_time_min", None) else "")),
        ("seed", str(task.train_cfg.seed)),
        ("resumed from", str(task.load_path)) if task.load_path is not None else None,
        ("run folder", str(run_dir)),
        ("wandb", f"{wandb_run.mode} run {wandb_run.id}: {wandb_run.url or wandb_run.dir}")
        if wandb_run is not None and wandb_run.id is not None else None,
    ]
    rows = [row for row in rows if row is not None]
    width = max(len(k) for k, _ in rows)
    return "\n".join(["Training setup", *(f"  {k:<{width}}  {v}" for k, v in rows)])


def main(argv: list[str] | None = None) -> None:
    """Command line entry: bad input exits with its message (no traceback) before anything is built."""
    args = get_args(argv, description=__doc__)
    try:
        check_video_args(args)
        nproc = launch_count(args)  # --gpu_ids / --num_processes: this process starts the ranks (below)
        configure_rank(args)  # a rank of torchrun / the launcher: its device; only rank 0 resumes
        task = resolve_task_cfgs(args)
        wandb_settings = resolve_wandb_settings(args, default_project=task.train_cfg.runner.experiment_name)
    except SETUP_ERRORS as e:
        sys.exit(f"error: {e}")
    timeout_s = task.train_cfg.runner.dist_timeout_s
    if nproc:  # the configs are valid: start the ranks, each runs this script
        sys.exit(launch(Path(__file__).resolve(), sys.argv[1:] if argv is None else argv, args, nproc, timeout_s))
    try:
        dist = Distributed.from_env(task.rl_device, timeout_s)
    except DistributedError as e:
        sys.exit(f"error: {e}")
    try:
        run = train
        if dist.active:  # the launcher reports this rank's exception as the root cause
            from torch.distributed.elastic.multiprocessing.errors import record

            run = record(train)
        run(args, task, wandb_settings, dist=dist)
    except RenderBackendError as e:
        sys.exit(f"error: {e}")
    finally:
        dist.close()


if __name__ == "__main__":
    main()
