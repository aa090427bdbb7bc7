"""Rough vs flat Asimov on the CPU: env steps/s of `asimov_rough` against `asimov`, and the cost of
each terrain geometry on both physics backends.

    python benchmarks/bench_terrain.py [--num_envs 1024 4096] [--seconds 5] [--geometry] [--json out.json]

Table 1 (MuJoCo C, `env.step` after `--warmup_steps`): the flat task, the rough task ("trimesh":
boxes + heightfield patches) and the rough task with terrain.mesh_type="heightfield", timed
interleaved in the same run, with the ratio to flat; with uniform [-1, 1] random actions (most
robots fall: bench_env.py's convention) and with zero actions (robots hold the default pose, the
contacts of a policy that walks).
Table 2 (`--geometry`): physics only (`Physics.step`), robots standing at the tile origins with small
random targets: plane vs trimesh vs heightfield, on MuJoCo C (`--geometry_envs`) and on Warp's CPU
device (16 worlds). Only ratios within one run are comparable on a shared machine.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import mujoco
import torch
from _common import close_env, collection_threads, fmt, machine_info, random_stepper
from bench_env import interleaved

from gym.envs import Asimov, AsimovCfg, AsimovRoughCfg  # after _common, which puts the repo on sys.path
from gym.physics import make_physics


def make_env(kind: str, num_envs: int, physics: str = "mujoco") -> Asimov:
    """"flat" (AsimovCfg), "trimesh" (AsimovRoughCfg) or "heightfield" (AsimovRoughCfg with one heightfield)."""
    cfg = AsimovCfg() if kind == "flat" else AsimovRoughCfg()
    if kind == "heightfield":
        cfg.terrain.mesh_type = "heightfield"
    cfg.env.num_envs = num_envs
    cfg.terrain.seed = 1
    return Asimov(cfg, sim_device="cpu", physics=physics)


def zero_stepper(env: Asimov, warmup_steps: int):
    """env.step with zero actions (the default pose held), after `warmup_steps` untimed steps."""
    actions = torch.zeros(env.num_envs, env.num_actions, device=env.device)
    for _ in range(warmup_steps):
        env.step(actions)
    return lambda: env.step(actions)


def env_table(sizes: list[int], seconds: float, warmup: int) -> tuple[str, dict]:
    rows, lines = {}, ["| num_envs | actions | flat env steps/s | rough trimesh env steps/s (×flat) | rough "
                       "heightfield env steps/s (×flat) |", "|---:|---|---:|---:|---:|"]
    for n in sizes:
        for actions, stepper in (("random", random_stepper), ("zero", zero_stepper)):
            print(f"[bench] env steps, {n} envs, {actions} actions ...", file=sys.stderr, flush=True)
            envs = {k: make_env(k, n) for k in ("flat", "trimesh", "heightfield")}
            with collection_threads():
                rate = interleaved({k: stepper(e, warmup) for k, e in envs.items()}, seconds)
            r = rows[f"{n}_{actions}"] = {k: v * n for k, v in rate.items()}
            r["trimesh_model_mb"] = mujoco.mj_sizeModel(envs["trimesh"].robot.mj_model) / 2**20
            r["trimesh_geoms"] = envs["trimesh"].robot.mj_model.ngeom
            for e in envs.values():
                close_env(e)
            lines.append(f"| {n} | {actions} | {fmt(r['flat'])} | {fmt(r['trimesh'], r['flat'])} | "
                         f"{fmt(r['heightfield'], r['flat'])} |")
    return "\n".join(lines), rows


def physics_rate(kind: str, backend: str, n: int, seconds: float) -> float:
    """Physics steps/s of `n` robots at tile origins (level by env index) holding the default pose +-0.1 rad."""
    env = make_env(kind, n, physics="mujoco")  # the model, terrain and start states
    sim = AsimovRoughCfg.sim
    phys = make_physics(backend, env.robot.mj_model, n, "cpu", env.cfg.control.decimation, nconmax=sim.nconmax,
                        njmax=sim.njmax)
    phys.set_state(torch.arange(n), env.physics.qpos.clone(), torch.zeros_like(env.physics.qvel))
    default = env.compute_targets(torch.zeros(n, env.num_actions))
    close_env(env)

    def step() -> None:
        phys.ctrl.copy_(default + 0.1 * (2 * torch.rand_like(default) - 1))
        phys.step()

    for _ in range(20):
        step()
    rate = interleaved({"s": step}, seconds, rounds=1, warmup=0)["s"] * n * phys.decimation
    getattr(phys, "close", lambda: None)()
    return rate


def geometry_table(n_mujoco: int, seconds: float) -> tuple[str, dict]:
    rows, lines = {}, ["| geometry | MuJoCo C physics steps/s (×plane) | Warp CPU physics steps/s (×plane) |",
                       "|---|---:|---:|"]
    for kind, label in (("flat", "plane"), ("trimesh", "trimesh (boxes + patches)"), ("heightfield", "heightfield")):
        print(f"[bench] geometry {label} ...", file=sys.stderr, flush=True)
        rows[label] = {"mujoco": physics_rate(kind, "mujoco", n_mujoco, seconds),
                       "warp": physics_rate(kind, "warp", 16, seconds)}
    base = rows["plane"]
    for label, r in rows.items():
        lines.append(f"| {label} | {fmt(r['mujoco'], base['mujoco'])} | {fmt(r['warp'], base['warp'])} |")
    return "\n".join(lines), rows


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--num_envs", type=int, nargs="+", default=[1024, 4096])
    p.add_argument("--seconds", type=float, default=5.0, help="timed seconds per cell (after warm-up)")
    p.add_argument("--warmup_steps", type=int, default=60, help="untimed random-action policy steps first")
    p.add_argument("--geometry", action="store_true", help="also table 2: physics cost per geometry")
    p.add_argument("--geometry_envs", type=int, default=256, help="MuJoCo C worlds in table 2")
    p.add_argument("--json", type=Path, help="also write the results here")
    args = p.parse_args()
    import warp

    warp.config.log_level = warp.LOG_WARNING
    info = machine_info()
    table, rows = env_table(args.num_envs, args.seconds, args.warmup_steps)
    geometry, geo_rows = geometry_table(args.geometry_envs, args.seconds) if args.geometry else ("", {})
    print(f"# Asimov rough vs flat ({time.strftime('%Y-%m-%d %H:%M')})\n")
    print(", ".join(f"{k}: {v}" for k, v in info.items()))
    print(f"MuJoCo C, timed {args.seconds:g} s per cell (interleaved) after {args.warmup_steps} random-action "
          "warm-up steps. Shared machine: compare ratios within this run.\n")
    print(table)
    if geometry:
        print(f"\nPhysics only, robots standing at tile origins ({args.geometry_envs} MuJoCo C worlds, 16 Warp "
              "worlds):\n")
        print(geometry)
    if args.json:
        args.json.write_text(json.dumps({"machine": info, "env": rows, "geometry": geo_rows}, indent=2))


if __name__ == "__main__":
    main()
