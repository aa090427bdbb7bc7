"""CPU throughput of the Asimov env: raw MuJoCo C ceiling vs. the env on both backends, PPO, startup.

    python benchmarks/bench_env.py [--num_envs 64 256 1024 4096] [--seconds 5] [--skip_warp]
                                   [--ppo_iterations 3] [--json out.json]

Prints one markdown table; the columns are explained in benchmarks/README.md. Everything runs on the
CPU. (a) and (b) of one num_envs are measured interleaved in the same run, so their ratio (c) is
the number to compare; the absolutes move with whatever else the machine is doing.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import mujoco
import mujoco.rollout
import numpy as np
import torch
from _common import close_env, collection_threads, fmt, machine_info, random_stepper, startup_seconds
from _common import ppo_fps as _ppo_fps

from gym.envs import Asimov, AsimovCfg, task_registry  # after _common, which puts the repo on sys.path

_FULL = mujoco.mjtState.mjSTATE_FULLPHYSICS.value
_CTRL = mujoco.mjtState.mjSTATE_CTRL.value


def make_env(physics: str, num_envs: int) -> Asimov:
    """Default AsimovCfg (domain randomization and pushes as configured), num_envs overridden."""
    cfg = AsimovCfg()
    cfg.env.num_envs = num_envs
    return Asimov(cfg, sim_device="cpu", physics=physics)


class RawRollout:
    """(a): the env's model stepped by `mujoco.rollout` alone, `decimation` steps per call, chained.

    Starts from the env's reset state (KNEES_BENT standing pose), holds ctrl at the default joint
    targets (action 0), carries the solver warm start from call to call like the backend does.
    """

    def __init__(self, env: Asimov) -> None:
        m, n, self.dec = env.robot.mj_model, env.num_envs, env.physics.decimation
        self.dt, nv, nthread = m.opt.timestep, m.nv, os.cpu_count() or 1
        self.models, self.datas = [m] * n, [mujoco.MjData(m) for _ in range(nthread)]
        self.pool = mujoco.rollout.Rollout(nthread=nthread)
        self.state = np.empty((n, mujoco.mj_stateSize(m, _FULL)))
        d, qpos, qvel = mujoco.MjData(m), env.physics.qpos.double().numpy(), env.physics.qvel.double().numpy()
        for i in range(n):
            d.qpos[:], d.qvel[:] = qpos[i], qvel[i]
            mujoco.mj_getState(m, d, self.state[i], _FULL)
        targets = env.compute_targets(torch.zeros(n, env.num_actions)).double().numpy()
        self.control = np.ascontiguousarray(np.repeat(targets[:, None, :], self.dec, axis=1))
        self.out = np.empty((n, self.dec, self.state.shape[1]))
        self.warm = np.zeros((n, nv))
        self.vel = slice(1 + m.nq, 1 + m.nq + nv)  # FULLPHYSICS = [time, qpos, qvel, ...]

    def step(self) -> None:
        self.pool.rollout(self.models, self.datas, self.state, self.control, control_spec=_CTRL,
                          skip_checks=True, nstep=self.dec, initial_warmstart=self.warm, state=self.out)
        prev = self.out[:, -2] if self.dec > 1 else self.state
        np.subtract(self.out[:, -1, self.vel], prev[:, self.vel], out=self.warm)
        self.warm *= 1.0 / self.dt
        np.copyto(self.state, self.out[:, -1])

    def close(self) -> None:
        self.pool.close()


def interleaved(fns: dict, seconds: float, rounds: int = 4, warmup: int = 2) -> dict[str, float]:
    """Calls/s of each fn, timed in `rounds` alternating slices of seconds/rounds (>= `seconds` each)."""
    for fn in fns.values():
        for _ in range(warmup):
            fn()
    calls, spent = dict.fromkeys(fns, 0), dict.fromkeys(fns, 0.0)
    for _ in range(rounds):
        for key, fn in fns.items():
            t0 = time.perf_counter()
            while (elapsed := time.perf_counter() - t0) < seconds / rounds:
                fn()
                calls[key] += 1
            spent[key] += elapsed
    return {k: calls[k] / spent[k] for k in fns}


def ppo_fps(env: Asimov, iterations: int) -> float:
    """(e): mean `Perf/fps` of `iterations` PPO iterations, the first excluded (when there are >= 2).

    Uses the training config `train.py` uses on this device (its `cpu_defaults` applied).
    """
    _, train_cfg = task_registry.get_cfgs("asimov", sim_device="cpu")
    return _ppo_fps(env, train_cfg, iterations, device="cpu")


def table(rows: dict[int, dict], decimation: int) -> str:
    head = ["num_envs", "(a) raw MuJoCo C physics steps/s", "(b) env mujoco: env steps/s (policy steps/s)",
            f"(c) b×{decimation}/a", "(d) env warp-cpu env steps/s (×b)", "(e) PPO FPS (×b)",
            "(f) startup mujoco [s]", "(f) startup warp warm / cold [s]"]
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join("---:" for _ in head) + "|"]
    for n, r in sorted(rows.items()):
        a, b = r.get("raw_phys_steps_per_s"), r.get("mujoco_env_steps_per_s")
        bcell = f"{fmt(b)} ({b / n:.3g})" if b else "-"
        warp = "-" if "warp_startup_warm_s" not in r else f"{r['warp_startup_warm_s']:.1f} / " + (
            f"{r['warp_startup_cold_s']:.1f}" if r.get("warp_startup_cold_s") else "-")
        cells = [str(n), fmt(a), bcell, f"{b * decimation / a:.2f}" if a and b else "-",
                 fmt(r.get("warp_env_steps_per_s"), b, "b"), fmt(r.get("ppo_fps"), b, "b"),
                 fmt(r.get("mujoco_startup_s")), warp]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--num_envs", type=int, nargs="+", default=[64, 256, 1024, 4096])
    p.add_argument("--seconds", type=float, default=5.0, help="timed seconds per measurement (after warm-up)")
    p.add_argument("--skip_warp", action="store_true", help="no Warp measurements (d) and (f) warp")
    p.add_argument("--warp_max_envs", type=int, default=2048, help="(d) only up to this many envs (slow)")
    p.add_argument("--skip_cold", action="store_true", help="no cold-cache Warp startup (compiles ~1 min)")
    p.add_argument("--warmup_steps", type=int, default=60, help="untimed random-action steps before (b), (d)")
    p.add_argument("--ppo_iterations", type=int, default=3, help="0 skips (e)")
    p.add_argument("--ppo_envs", type=int, default=1024)
    p.add_argument("--startup_envs", type=int, nargs=2, default=[1024, 64], metavar=("MUJOCO", "WARP"))
    p.add_argument("--json", type=Path, help="also write the results here")
    args = p.parse_args()
    if not args.skip_warp:
        import warp

        warp.config.log_level = warp.LOG_WARNING
    info = machine_info()
    rows: dict[int, dict] = defaultdict(dict)
    decimation = AsimovCfg().control.decimation
    for n in args.num_envs:
        print(f"[bench] {n} envs ...", file=sys.stderr, flush=True)
        env = make_env("mujoco", n)
        raw = RawRollout(env)
        with collection_threads():
            rate = interleaved({"a": raw.step, "b": random_stepper(env, args.warmup_steps)}, args.seconds)
        raw.close()
        rows[n]["raw_phys_steps_per_s"] = rate["a"] * n * decimation
        rows[n]["mujoco_policy_steps_per_s"] = rate["b"]
        rows[n]["mujoco_env_steps_per_s"] = rate["b"] * n
        close_env(env)
        if not args.skip_warp and n <= args.warp_max_envs:
            env = make_env("warp", n)
            env.step(torch.zeros(n, env.num_actions))  # graph capture / kernel load: not timed (nor warm-up)
            with collection_threads():
                rate = interleaved({"d": random_stepper(env, args.warmup_steps)}, args.seconds)
            rows[n]["warp_env_steps_per_s"] = rate["d"] * n
    if args.ppo_iterations > 0:
        print(f"[bench] PPO {args.ppo_envs} envs ...", file=sys.stderr, flush=True)
        env = make_env("mujoco", args.ppo_envs)
        rows[args.ppo_envs]["ppo_fps"] = ppo_fps(env, args.ppo_iterations)
        close_env(env)
    print("[bench] startup ...", file=sys.stderr, flush=True)
    n_mj, n_wp = args.startup_envs
    rows[n_mj]["mujoco_startup_s"] = min(startup_seconds("mujoco", n_mj) for _ in range(2))
    if not args.skip_warp:
        rows[n_wp]["warp_startup_warm_s"] = min(startup_seconds("warp", n_wp) for _ in range(2))
        if not args.skip_cold:
            with tempfile.TemporaryDirectory(prefix="warp_cold_cache_") as cache:
                rows[n_wp]["warp_startup_cold_s"] = startup_seconds("warp", n_wp, cache_dir=cache)

    print(f"# Asimov env throughput ({time.strftime('%Y-%m-%d %H:%M')})\n")
    print(", ".join(f"{k}: {v}" for k, v in info.items()))
    print(f"decimation {decimation}, timed {args.seconds:g} s per cell after {args.warmup_steps} warm-up steps; "
          "(a)/(b) interleaved. "
          "Shared machine: compare ratios within this run, not absolutes across runs.\n")
    print(table(rows, decimation))
    if args.json:
        args.json.write_text(json.dumps({"machine": info, "args": {k: str(v) for k, v in vars(args).items()},
                                         "decimation": decimation, "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
