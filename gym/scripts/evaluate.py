"""Evaluate a trained policy: `python gym/scripts/evaluate.py --task=asimov [--load_run R --checkpoint N]`.

Loads a checkpoint as play.py does (the newest of the newest run, --load_run / --checkpoint, or any
file with --checkpoint_file) and runs --num_envs envs for --episodes episodes each with the
deterministic policy, under training's conditions: observation noise on, foot friction randomized
in the training range, pushes as in training. Every env follows a fixed, seeded command schedule
(gym/utils/evaluation.py): stand, slow, forward, backward, lateral, turn in place and walk-and-turn,
switched every --segment_s seconds. A second pass repeats the schedule with the pushes replaced by
kicks of --kick_vel m/s in a random horizontal direction every --kick_interval_s seconds.

Prints one table (per category: samples, mean |error| of v_x, v_y, w_z measured on the velocity
averaged over each segment after --settle_s, double-support fraction, touchdowns per foot per
second, horizontal foot speed) with the fall rates and the checkpoint's iteration, and writes it to
<run folder>/evaluation/eval_model_<iteration>.csv and .json.

--robustness runs the robustness grid instead (gym/utils/robustness.py): one batched env of
--envs_per_cell envs per cell, each cell one axis (foot friction, added base mass, Kp, Kd, motor
strength, action latency, sensor latency, kick size) at one level, the rest nominal, training's
randomization and pushes off, one --robustness_s episode per env under the same schedule. Prints
falls, mean episode length and tracking errors per cell, and writes
<run folder>/evaluation/robustness_model_<iteration>.csv, .json and .png (heat map of fall rates).

--speed_sweep V [V ...] runs a speed sweep instead: --envs_per_speed envs per forward command v_x = V
[m/s] (v_y = w_z = 0), the same command all episode, pushes off, noise and friction as in training. The
table (one row per speed) shows where the gait switches from standing (double support near 1) to
stepping, and a second table gives each reward term's rate per speed [reward per second, scale
included]: what pays for standing or stepping at each command. Written to
<run folder>/evaluation/speed_sweep_model_<iteration>.csv and .json (the rates as rew_<term> columns;
every evaluation's CSV and JSON carry them).
"""

from __future__ import annotations

import csv
import io
import json
import math
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # run from a checkout without installing

from gym.utils.cli import get_args  # noqa: E402
from gym.utils.evaluation import (  # noqa: E402
    CATEGORIES,
    METRICS,
    Kicks,
    RolloutResult,
    command_ranges,
    describe_command,
    eval_problems,
    format_reward_table,
    format_table,
    make_schedule,
    resolve_eval_task,
    rollout,
    speed_schedule,
    summarize,
)
from gym.utils.robustness import (  # noqa: E402
    AXES,
    AXIS_NAMES,
    Grid,
    apply_grid,
    configure_env_cfg,
    format_grid_table,
    grid_schedule,
    make_grid,
    plot_grid,
    summarize_grid,
    write_grid_csv,
)
from gym.utils.validation import SETUP_ERRORS  # noqa: E402

EVAL_NUM_ENVS = 112  # default --num_envs: 112 envs x 5 segments = 80 samples per category
EVAL_ARGS = [
    {"name": "--checkpoint_file", "metavar": "PATH", "help": "evaluate this checkpoint file (any folder)"},
    {"name": "--segment_s", "type": float, "default": 4.0,
     "help": "seconds per command of the schedule (default 4; 5 segments per 20-s episode)"},
    {"name": "--settle_s", "type": float, "default": 1.0,
     "help": "seconds after each command switch left out of the measurement (default 1)"},
    {"name": "--episodes", "type": int, "default": 1, "help": "episodes per env (default 1)"},
    {"name": "--kick_vel", "type": float, "default": 1.0,
     "help": "kick pass: base velocity change [m/s] per kick (default 1.0; 0 skips the pass)"},
    {"name": "--kick_interval_s", "type": float, "default": 2.0,
     "help": "kick pass and the robustness grid's push axis: seconds between kicks (default 2)"},
    {"name": "--robustness", "action": "store_true",
     "help": "run the robustness grid (shifted dynamics, one cell per axis level) instead of the schedule passes"},
    {"name": "--envs_per_cell", "type": int, "default": 14,
     "help": "robustness: envs per grid cell (default 14; --num_envs does not apply)"},
    {"name": "--robustness_s", "type": float, "default": None, "metavar": "SECONDS",
     "help": "robustness: episode length [s] (default: the task's env.episode_length_s)"},
    {"name": "--speed_sweep", "type": float, "nargs": "+", "default": None, "metavar": "V",
     "help": "run a speed sweep instead: forward commands V [m/s], e.g. 0 0.05 0.1 0.15 0.2 0.3 0.5"},
    {"name": "--envs_per_speed", "type": int, "default": 16,
     "help": "speed sweep: envs per speed (default 16; --num_envs does not apply)"},
    {"name": "--robustness_axes", "nargs": "+", "default": None, "metavar": "AXIS",
     "help": f"robustness: only these axes (default all: {' '.join(AXIS_NAMES)})"},
]


def check_eval_args(args: Any, env_cfg: Any) -> None:
    """Raise ValueError listing every bad evaluation flag (before the env is built)."""
    dt = env_cfg.control.decimation * env_cfg.sim.dt
    problems = eval_problems(args.segment_s, args.settle_s, env_cfg.env.episode_length_s, dt, args.episodes,
                             args.kick_vel, args.kick_interval_s)
    if problems:
        raise ValueError("bad evaluation flags; nothing was built:\n  - " + "\n  - ".join(problems))


def load_policy(task: Any) -> tuple[Any, Any, int]:
    """Build the task's env and load `task.load_path`: (env, deterministic policy, checkpoint iteration)."""
    env = task.make_env()
    runner = task.make_runner(env, log_dir=None)
    runner.load(task.load_path, load_optimizer=False)
    return env, runner.get_inference_policy(device=env.device), runner.current_learning_iteration


def prepare_robustness(args: Any, task: Any, num_envs_given: bool = False) -> Grid:
    """Check the robustness flags, resolve the grid against the task's training ranges, then switch
    training's randomization off and size the env to the grid (in `task.env_cfg`). Raises ValueError
    listing every bad flag, or ConfigError, before anything is built."""
    from gym.utils.validation import ConfigError, config_problems

    cfg = task.env_cfg
    seconds = cfg.env.episode_length_s if args.robustness_s is None else args.robustness_s
    dt = cfg.control.decimation * cfg.sim.dt
    problems = eval_problems(args.segment_s, args.settle_s, math.inf, dt, 1, 0.0, args.kick_interval_s)
    if num_envs_given:
        problems.append(f"--num_envs={args.num_envs}: the grid has cells x --envs_per_cell envs; "
                        "use --envs_per_cell")
    if args.envs_per_cell < 1:
        problems.append(f"--envs_per_cell={args.envs_per_cell}: must be >= 1")
    if not seconds > 0:
        problems.append(f"--robustness_s={seconds}: must be > 0")
    elif args.segment_s > seconds:
        problems.append(f"--segment_s={args.segment_s}: longer than the episode (--robustness_s={seconds}); "
                        "give --segment_s <= --robustness_s")
    if seconds > 0 and "push" in (args.robustness_axes or AXIS_NAMES) and 2 * args.kick_interval_s > seconds:
        problems.append(f"--kick_interval_s={args.kick_interval_s}: the push axis' first kick comes "
                        f"{args.kick_interval_s:g}-{2 * args.kick_interval_s:g} s into the episode, not surely within "
                        f"--robustness_s={seconds}; give --kick_interval_s <= {seconds / 2:g}")
    unknown = [a for a in args.robustness_axes or () if a not in AXIS_NAMES]
    if unknown:
        problems.append(f"--robustness_axes: unknown {unknown}; choose from {' '.join(AXIS_NAMES)}")
    if problems:
        raise ValueError("bad robustness flags; nothing was built:\n  - " + "\n  - ".join(problems))
    grid = make_grid(cfg, args.robustness_axes)
    configure_env_cfg(cfg, grid, args.envs_per_cell, seconds)
    problems = config_problems(task.task_class, cfg, task.train_cfg)
    if problems:
        raise ConfigError(problems, task.name)
    return grid


def evaluate_robustness(args: Any, task: Any, grid: Grid) -> dict[str, Any]:
    """Run the grid (after `prepare_robustness`), print its table, write CSV, JSON and PNG; returns
    the report (the JSON's content: settings, "cells" (the CSV's rows), "csv" / "json" / "png" paths)."""
    path, epc = task.load_path, args.envs_per_cell
    env, policy, iteration = load_policy(task)
    seed = task.train_cfg.seed
    kick_vel = apply_grid(env, grid, epc)
    segment_steps = round(args.segment_s / env.dt)
    num_segments = env.max_episode_length // segment_steps
    schedule = grid_schedule(grid, epc, num_segments, segment_steps, seed, command_ranges(env.cfg), env.device)
    conditions = (f"noise {'on' if env.cfg.noise.add_noise else 'off'}, training randomization and pushes off, "
                  f"kicks every {args.kick_interval_s:g} s on the push axis")
    print(f"Robustness grid of {path} (iteration {iteration}): {len(grid.cells)} cells x {epc} envs, one "
          f"{env.max_episode_length_s:g}-s episode each ({num_segments} segments of {args.segment_s:g} s, first "
          f"{args.settle_s:g} s settling), seed {seed}; {conditions}")
    start = time.perf_counter()
    result = rollout(env, policy, schedule, args.settle_s, Kicks(kick_vel, args.kick_interval_s), seed=seed)
    rows = summarize_grid(grid, result)
    out, stem = path.parent / "evaluation", f"robustness_model_{iteration}"
    report = {
        "task": task.name, "checkpoint": str(path), "iteration": iteration, "seed": seed, "envs_per_cell": epc,
        "num_cells": len(grid.cells), "episode_length_s": env.max_episode_length_s, "segment_s": args.segment_s,
        "settle_s": args.settle_s, "kick_interval_s": args.kick_interval_s, "conditions": conditions,
        "axes": {a.name: f"{a.doc} [{a.unit or '-'}]" for a in AXES
                 if any(c.axis == a.name for c in grid.cells)},
        "nominal": grid.nominal, "seconds_taken": round(time.perf_counter() - start, 3), "cells": rows,
        **{kind: str(out / f"{stem}.{kind}") for kind in ("csv", "json", "png")},
    }
    write_grid_csv(out / f"{stem}.csv", rows, iteration)
    plot_grid(out / f"{stem}.png", rows, f"{task.name} model_{iteration}: {epc} envs per cell, "
              f"{env.max_episode_length_s:g}-s episodes")
    write_json(out / f"{stem}.json", report)
    print()
    print(format_grid_table(rows))
    print("\n(* beyond the training range, = nominal)")
    print(f"iteration              {iteration}")
    print(f"grid                   {len(grid.cells)} cells x {epc} envs in {report['seconds_taken']:.1f} s")
    for kind in ("csv", "json", "png"):
        print(f"{kind:<23}{report[kind]}")
    return report


def describe_conditions(env: Any) -> str:
    """The evaluation's conditions as text: observation noise, foot friction, pushes (of `env.cfg`)."""
    dr = env.cfg.domain_rand
    return (f"noise {'on' if env.cfg.noise.add_noise else 'off'}, friction "
            f"{'U({:g}, {:g})'.format(*dr.friction_range) if dr.randomize_friction else 'fixed'}, "
            f"pushes {'as in training' if dr.push_robots else 'off'}")


def prepare_speed_sweep(args: Any, task: Any, num_envs_given: bool = False) -> None:
    """Check the speed-sweep flags, then size the env (`task.env_cfg`) to envs_per_speed x speeds with
    pushes off. Raises ValueError listing every bad flag before anything is built."""
    cfg = task.env_cfg
    dt = cfg.control.decimation * cfg.sim.dt
    problems = eval_problems(args.segment_s, args.settle_s, cfg.env.episode_length_s, dt, 1, 0.0, 1.0)
    if num_envs_given:
        problems.append(f"--num_envs={args.num_envs}: a speed sweep has --envs_per_speed envs per speed; "
                        "use --envs_per_speed")
    if args.envs_per_speed < 1:
        problems.append(f"--envs_per_speed={args.envs_per_speed}: must be >= 1")
    if len(set(args.speed_sweep)) != len(args.speed_sweep):
        problems.append(f"--speed_sweep {' '.join(f'{v:g}' for v in args.speed_sweep)}: repeated speeds")
    lo, hi = cfg.commands.ranges.lin_vel_x
    outside = [v for v in args.speed_sweep if not lo <= v <= hi]
    if outside:
        problems.append(f"--speed_sweep: {outside} outside the trained commands.ranges.lin_vel_x [{lo:g}, {hi:g}]")
    if problems:
        raise ValueError("bad speed-sweep flags; nothing was built:\n  - " + "\n  - ".join(problems))
    cfg.env.num_envs = args.envs_per_speed * len(args.speed_sweep)
    cfg.domain_rand.push_robots = False


def evaluate_speed_sweep(args: Any, task: Any) -> dict[str, Any]:
    """Run the speed sweep (after `prepare_speed_sweep`), print its table, write CSV and JSON; returns
    the report (the JSON's content)."""
    path = task.load_path
    env, policy, iteration = load_policy(task)
    segment_steps = round(args.segment_s / env.dt)
    num_segments = env.max_episode_length // segment_steps
    schedule = speed_schedule(args.speed_sweep, args.envs_per_speed, num_segments, segment_steps, env.device)
    conditions = describe_conditions(env)
    print(f"Speed sweep of {path} (iteration {iteration}): {args.envs_per_speed} envs per speed, one "
          f"{env.max_episode_length_s:g}-s episode each ({num_segments} segments of {args.segment_s:g} s, first "
          f"{args.settle_s:g} s settling); {conditions}")
    result = rollout(env, policy, schedule, args.settle_s)
    rows = summarize(result)[:-1]
    report = {
        "task": task.name, "checkpoint": str(path), "iteration": iteration, "envs_per_speed": args.envs_per_speed,
        "speeds": list(args.speed_sweep), "episode_length_s": env.max_episode_length_s,
        "segment_s": args.segment_s, "settle_s": args.settle_s, "conditions": conditions,
        "fall_rate": result.fall_rate, "kick_fall_rate": None, "categories": rows,
    }
    out, stem = path.parent / "evaluation", f"speed_sweep_model_{iteration}"
    csv_path, json_path = write_csv(out / f"{stem}.csv", report), write_json(out / f"{stem}.json", report)
    print()
    print(format_table(rows))
    print()
    print(format_reward_table(rows))
    print()
    print(f"iteration              {iteration}")
    print(f"falls                  {int(result.fell.sum())} / {env.num_envs} env-episodes, {conditions}")
    print(f"csv                    {csv_path}")
    print(f"json                   {json_path}")
    return report


def evaluate(args: Any, task: Any = None) -> dict[str, Any]:
    """Run both passes, print the table, write CSV and JSON; returns the report (the JSON's content).

    `task`: resolved with `resolve_eval_task(args)` and checked with `check_eval_args`; resolved here if None.
    """
    if task is None:
        task = resolve_eval_task(args)
        check_eval_args(args, task.env_cfg)
    path = task.load_path
    env, policy, iteration = load_policy(task)
    seed, n, episodes = task.train_cfg.seed, env.num_envs, args.episodes
    segment_steps = round(args.segment_s / env.dt)
    num_segments = env.max_episode_length // segment_steps
    schedule = make_schedule(n * episodes, num_segments, segment_steps, seed, command_ranges(env.cfg), env.device)
    conditions = describe_conditions(env)
    print(f"Evaluating {path} (iteration {iteration}) on {n} envs x {episodes} episode(s) of "
          f"{env.max_episode_length_s:g} s: {num_segments} segments of {args.segment_s:g} s (first "
          f"{args.settle_s:g} s settling), seed {seed}; {conditions}")

    def run(kicks: Kicks | None) -> RolloutResult:
        return RolloutResult.cat([rollout(env, policy, schedule.rows(e * n, (e + 1) * n), args.settle_s, kicks,
                                          seed=seed + e) for e in range(episodes)])

    main = run(None)
    kicked = run(Kicks(args.kick_vel, args.kick_interval_s)) if args.kick_vel > 0 else None
    rows = summarize(main)
    falls, kick_falls = int(main.fell.sum()), int(kicked.fell.sum()) if kicked is not None else None
    report = {
        "task": task.name, "checkpoint": str(path), "iteration": iteration, "seed": seed, "num_envs": n,
        "episodes": episodes, "episode_length_s": env.max_episode_length_s, "segment_s": args.segment_s,
        "settle_s": args.settle_s, "segments_per_episode": num_segments, "conditions": conditions,
        "commands": {name: describe_command(name) for name in CATEGORIES},
        "env_episodes": n * episodes, "falls": falls, "fall_rate": main.fall_rate,
        "kick_vel": args.kick_vel, "kick_interval_s": args.kick_interval_s, "kick_falls": kick_falls,
        "kick_fall_rate": kicked.fall_rate if kicked is not None else None,
        "categories": rows,
    }
    out = path.parent / "evaluation"
    stem = f"eval_model_{iteration}"
    csv_path = write_csv(out / f"{stem}.csv", report)
    json_path = write_json(out / f"{stem}.json", report)
    total = n * episodes
    print()
    print(format_table(rows))
    print()
    print(f"iteration              {iteration}")
    print(f"falls                  {falls} / {total} env-episodes ({100 * main.fall_rate:.1f}%), {conditions}")
    if kicked is not None:
        print(f"falls under kicks      {kick_falls} / {total} ({100 * kicked.fall_rate:.1f}%), {args.kick_vel:g} m/s "
              f"every {args.kick_interval_s:g} s, pushes off")
    print(f"csv                    {csv_path}")
    print(f"json                   {json_path}")
    return report


def write_csv(path: Path, report: dict[str, Any]) -> Path:
    """One line per category row: iteration, category, n, the metrics, fall_rate, kick_fall_rate, then
    `rew_<term>`: each reward term's rate [reward per second] (a row's `reward_rates`)."""
    from gym.rl.checkpoint import atomic_write_text

    rows = report["categories"]
    terms = list(rows[0]["reward_rates"]) if rows else []
    columns = ["iteration", "category", "n", *METRICS, "fall_rate", "kick_fall_rate", *(f"rew_{t}" for t in terms)]
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        rates = {f"rew_{t}": v for t, v in row["reward_rates"].items()}
        metrics = {k: v for k, v in row.items() if k != "reward_rates"}
        writer.writerow({"iteration": report["iteration"], "fall_rate": report["fall_rate"],
                         "kick_fall_rate": report["kick_fall_rate"], **metrics, **rates})
    return atomic_write_text(path, buf.getvalue())


def write_json(path: Path, report: dict[str, Any]) -> Path:
    """The report as JSON; NaN (a category without samples) is written as null."""
    from gym.rl.checkpoint import atomic_write_text

    def clean(x: Any) -> Any:
        if isinstance(x, float) and not math.isfinite(x):
            return None
        if isinstance(x, dict):
            return {k: clean(v) for k, v in x.items()}
        if isinstance(x, (list, tuple)):
            return [clean(v) for v in x]
        return x

    return atomic_write_text(path, json.dumps(clean(report), indent=2) + "\n")


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Command line entry: bad input exits with its message (no traceback) before anything is built."""
    args = get_args(argv, description=__doc__, extra=EVAL_ARGS)
    num_envs_given = args.num_envs is not None
    if not num_envs_given:
        args.num_envs = EVAL_NUM_ENVS
    try:
        task = resolve_eval_task(args)
        if args.robustness and args.speed_sweep:
            raise ValueError("--robustness and --speed_sweep are separate evaluations; give one")
        if args.robustness:
            grid = prepare_robustness(args, task, num_envs_given)
        elif args.speed_sweep:
            prepare_speed_sweep(args, task, num_envs_given)
        else:
            check_eval_args(args, task.env_cfg)
    except SETUP_ERRORS as e:
        sys.exit(f"error: {e}")
    if args.robustness:
        return evaluate_robustness(args, task, grid)
    return evaluate_speed_sweep(args, task) if args.speed_sweep else evaluate(args, task)


if __name__ == "__main__":
    main()
