"""MuJoCo Warp throughput of the Asimov env on a GPU (or Warp's CPU device): raw ceiling, backend, env, PPO.

    python benchmarks/bench_gpu.py [--num_envs 1024 4096 8192 16384] [--device cuda:0] [--steps 100]
                                   [--iterations 5] [--skip_ppo] [--skip_startup] [--skip_cold]
                                   [--json out.json]

Prints one markdown table; the columns are explained in benchmarks/README.md. Every clock stops
after `wp.synchronize_device` (and `torch.cuda.synchronize` on CUDA), so queued GPU work is counted.
A size that fails (e.g. out of memory) gets a row with the error; the others still run.
"""

from __future__ import annotations

import argparse
import functools
import gc
import json
import math
import sys
import tempfile
import time
import traceback
import types
from collections.abc import Callable
from pathlib import Path
from typing import Any

import mujoco
import mujoco_warp as mjw
import torch
import warp as wp
from _common import collection_threads, fmt, machine_info, ppo_fps, random_stepper, startup_seconds

# After _common, which puts the repository root on sys.path.
from gym.envs import task_registry
from gym.physics.model_builder import build_model
from gym.physics.warp_backend import WarpPhysics

TASK = "asimov"
GiB = float(1 << 30)


def log(msg: str) -> None:
    """Progress line on stderr (stdout holds only the header and the table)."""
    print(f"[bench_gpu] {msg}", file=sys.stderr, flush=True)


def sync(device: str) -> None:
    """Wait for all queued Warp and torch work on `device`."""
    wp.synchronize_device(device)
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize(device)


def timed_rate(fn: Callable[[], Any], calls: int, device: str, warmup: int = 2) -> float:
    """Calls/s of `fn` over `calls` calls after `warmup` untimed ones, device work included."""
    for _ in range(warmup):
        fn()
    sync(device)
    t0 = time.perf_counter()
    for _ in range(calls):
        fn()
    sync(device)
    return calls / (time.perf_counter() - t0)


def env_cfg_for(num_envs: int, device: str) -> Any:
    """The registered Asimov env config (as train.py resolves it for `device`), num_envs overridden."""
    env_cfg, _ = task_registry.get_cfgs(TASK, sim_device=device)
    env_cfg.env.num_envs = num_envs
    return env_cfg


def data_sheet_train_cfg(device: str) -> Any:
    """The registered PPO config with the data sheet's settings set explicitly (on a CPU device the
    `cpu_defaults` would shrink the networks): 512-256-128 actor and critic, 24 steps per env per
    iteration, 5 epochs x 4 mini-batches."""
    _, train_cfg = task_registry.get_cfgs(TASK, sim_device=device)
    train_cfg.policy.actor_hidden_dims = [512, 256, 128]
    train_cfg.policy.critic_hidden_dims = [512, 256, 128]
    train_cfg.runner.num_steps_per_env = 24
    train_cfg.algorithm.num_learning_epochs = 5
    train_cfg.algorithm.num_mini_batches = 4
    return train_cfg


class RawWarp:
    """(a): `mujoco_warp.step` alone on the env's compiled model, `decimation` steps per call.

    `put_model` / `put_data` with the env's nconmax / njmax; every world starts from the env's reset
    state with ctrl held at the default joint targets. The decimation loop is captured once as a
    Warp graph and replayed. As in the backend, the solver loops use conditional graph nodes only on
    CUDA with support for them (else `opt.graph_conditional = False`: fixed iteration count). `mode`
    says what ran: "graph (conditional nodes: ...)" or "eager (capture failed: ...)".
    """

    def __init__(self, mj_model: mujoco.MjModel, num_envs: int, device: str, decimation: int, nconmax: int,
                 njmax: int, qpos: torch.Tensor, qvel: torch.Tensor, ctrl: torch.Tensor) -> None:
        self.device, self.decimation = wp.get_device(device), decimation
        mj_data = mujoco.MjData(mj_model)
        mujoco.mj_forward(mj_model, mj_data)
        conditional = self.device.is_cuda and wp.is_conditional_graph_supported()
        with wp.ScopedDevice(self.device):
            self.model = mjw.put_model(mj_model)
            self.model.opt.graph_conditional = conditional
            self.data = mjw.put_data(mj_model, mj_data, nworld=num_envs, nconmax=nconmax, njmax=njmax)
        for arr, value in ((self.data.qpos, qpos), (self.data.qvel, qvel), (self.data.ctrl, ctrl)):
            wp.to_torch(arr).copy_(value)
        sync(device)
        self.graph = None
        try:
            self._eager()  # loads (compiles) every kernel before capture
            with wp.ScopedCapture(device=self.device) as capture:
                self._eager()
            self.graph = capture.graph
            self.mode = f"graph (conditional nodes: {conditional})"
        except Exception as exc:  # noqa: BLE001 - shown in the header; the timing then is eager
            self.mode = f"eager (capture failed: {' '.join(str(exc).split())[:120]})"

    def _eager(self) -> None:
        with wp.ScopedDevice(self.device):
            for _ in range(self.decimation):
                mjw.step(self.model, self.data)

    def step(self) -> None:
        if self.graph is not None:
            wp.capture_launch(self.graph)
        else:
            self._eager()


def backend_capture(physics: Any) -> str:
    """How `WarpPhysics.step` ran after its first call: captured graph or eager launches.

    Public: `graph_capture` (False = eager on purpose) and `conditional_graphs`. Whether the "step"
    capture failed (Warp's CPU device falls back to eager; CUDA raises) is only in `_graphs`.
    """
    if not getattr(physics, "graph_capture", True):
        return "eager (graph_capture=False)"
    graphs = getattr(physics, "_graphs", None)
    if not isinstance(graphs, dict) or "step" not in graphs:
        return "unknown"
    if graphs["step"] is None:
        return "eager (capture failed, see the warning)"
    return f"graph (conditional nodes: {getattr(physics, 'conditional_graphs', 'unknown')})"


class MemoryProbe:
    """(e): peak device memory of one num_envs, on CUDA only.

    torch: `max_memory_allocated` (reset per size). Warp: its mempool's high-water mark, which Warp
    cannot reset, so it is process-wide (sizes run in ascending order). Driver: used memory sampled
    after each phase, minus the used memory before the size started (all processes on the GPU).
    """

    def __init__(self, device: str) -> None:
        self.cuda = torch.device(device).type == "cuda"
        self.device = device
        if not self.cuda:
            return
        free_memory()
        torch.cuda.reset_peak_memory_stats(device)
        self.base = self._used()
        self.high = self.base

    def _used(self) -> int:
        free, total = torch.cuda.mem_get_info(self.device)
        return total - free

    def sample(self) -> None:
        if self.cuda:
            sync(self.device)
            self.high = max(self.high, self._used())

    def result(self) -> dict[str, float]:
        if not self.cuda:
            return {}
        out = {"torch_peak_gib": torch.cuda.max_memory_allocated(self.device) / GiB,
               "driver_used_delta_gib": (self.high - self.base) / GiB}
        if wp.is_mempool_enabled(self.device):
            out["warp_mempool_high_gib"] = wp.get_mempool_used_mem_high(self.device) / GiB
        return out


def free_memory() -> None:
    """Drop unreferenced objects and torch's cached blocks."""
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def bench_size(n: int, args: argparse.Namespace, capture: dict[str, set[str]]) -> dict[str, Any]:
    """Measure (a)-(e) for `n` envs; on an exception the row keeps what was measured plus "error".

    `capture` collects how each of (a), (b), (c) ran its physics (graph or eager), for the header.
    """
    row: dict[str, Any] = {"num_envs": n}
    device, probe = args.device, MemoryProbe(args.device)
    try:
        # (c) env.step, (d) PPO: the env exactly as train.py builds it, warp physics on the device.
        env_cfg = env_cfg_for(n, device)
        dec = env_cfg.control.decimation
        physics_args = types.SimpleNamespace(physics="warp", sim_device=device)
        env, _ = task_registry.make_env(TASK, physics_args, env_cfg=env_cfg)
        qpos, qvel = env.physics.qpos.clone(), env.physics.qvel.clone()  # reset state for (a), (b)
        targets = env.compute_targets(torch.zeros(n, env.num_actions, device=env.device))  # action 0
        env.step(torch.zeros(n, env.num_actions, device=env.device))  # graph capture: not timed
        capture.setdefault("(c) env.step", set()).add(backend_capture(env.physics))
        log(f"{n} envs: (c) env.step")
        with collection_threads():
            step = random_stepper(env, args.warmup_steps)
            row["env_steps_per_s"] = timed_rate(step, args.steps, device) * n
        probe.sample()
        if not args.skip_ppo:
            log(f"{n} envs: (d) PPO, {args.iterations} iterations")
            row["ppo_fps"] = ppo_fps(env, data_sheet_train_cfg(device), args.iterations, device=str(env.device))
            probe.sample()
        del env, step
        free_memory()

        # (a) raw mujoco_warp.step on the env's model.
        log(f"{n} envs: (a) raw mujoco_warp.step")
        mj_model = build_model(env_cfg).mj_model
        raw = RawWarp(mj_model, n, device, dec, env_cfg.sim.nconmax, env_cfg.sim.njmax, qpos, qvel, targets)
        capture.setdefault("(a) raw mujoco_warp.step", set()).add(raw.mode)
        row["raw_phys_steps_per_s"] = timed_rate(raw.step, args.steps, device) * n * dec
        probe.sample()
        del raw
        free_memory()

        # (b) WarpPhysics.step alone, same start state and ctrl.
        log(f"{n} envs: (b) WarpPhysics.step")
        physics = WarpPhysics(mj_model=mj_model, num_envs=n, device=device, decimation=dec,
                              nconmax=env_cfg.sim.nconmax, njmax=env_cfg.sim.njmax,
                              graph_capture=getattr(env_cfg.sim, "graph_capture", True))
        physics.qpos.copy_(qpos)
        physics.qvel.copy_(qvel)
        physics.ctrl.copy_(targets)
        physics.step()  # graph capture: not timed
        capture.setdefault("(b) WarpPhysics.step", set()).add(backend_capture(physics))
        step_calls_per_s = timed_rate(physics.step, args.steps, device)
        row["physics_steps_per_s"] = step_calls_per_s * n * dec
        # (g) what a policy step's resets cost: reset_envs on 1 world in 64 (position / velocity
        # stages only) and, for comparison, a full forward pass over all worlds, as step fractions.
        mask = torch.zeros(n, dtype=torch.bool, device=physics.qpos.device)
        mask[::64] = True
        physics.reset_envs(mask, qpos, qvel)  # graph capture: not timed
        physics.forward()
        row["reset_over_step"] = step_calls_per_s / timed_rate(functools.partial(physics.reset_envs, mask, qpos, qvel),
                                                               args.steps, device)
        row["forward_over_step"] = step_calls_per_s / timed_rate(physics.forward, args.steps, device)
        probe.sample()
        del physics
    except Exception as exc:  # noqa: BLE001 - one failing size (e.g. out of memory) must not end the table
        traceback.print_exc(file=sys.stderr)
        row["error"] = " ".join(f"{type(exc).__name__}: {exc}".split())[:200]
    row.update(probe.result())
    return row


def startup(args: argparse.Namespace, n: int) -> dict[str, float]:
    """(f): cold start (empty temporary WARP_CACHE_PATH) and warm start (best of `--startup_repeats`,
    the cache filled by the cold run; with --skip_cold the inherited WARP_CACHE_PATH)."""
    out: dict[str, float] = {}
    if args.skip_cold:
        log(f"startup warm, {n} envs")
        out["startup_warm_s"] = min(startup_seconds("warp", n, args.device) for _ in range(args.startup_repeats))
        return out
    with tempfile.TemporaryDirectory(prefix="warp_cold_cache_") as cache:
        log(f"startup cold, {n} envs (every kernel compiles; this can take minutes)")
        out["startup_cold_s"] = startup_seconds("warp", n, args.device, cache_dir=cache)
        log(f"startup warm, {n} envs")
        out["startup_warm_s"] = min(startup_seconds("warp", n, args.device, cache_dir=cache)
                                    for _ in range(args.startup_repeats))
    return out


def table(rows: list[dict[str, Any]], decimation: int) -> str:
    """The markdown table of `rows`, one per num_envs (see benchmarks/README.md)."""
    head = ["num_envs", "(a) raw mjw.step physics steps/s", "(b) WarpPhysics.step physics steps/s",
            "(c) env.step env steps/s", "(d) PPO FPS", "(e) peak GPU mem [GiB]: torch / warp pool / driver Δ",
            "(f) startup warm / cold [s]", "(g) reset / full forward, x step", f"c/(a/{decimation})", "d/c",
            "error"]
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join("---:" for _ in head[:-1]) + "|:---|"]
    for r in rows:
        a, c, d = r.get("raw_phys_steps_per_s"), r.get("env_steps_per_s"), r.get("ppo_fps")
        mem = "-"
        if "torch_peak_gib" in r:
            pool = r.get("warp_mempool_high_gib")
            mem = (f"{r['torch_peak_gib']:.2f} / {'n/a' if pool is None else f'{pool:.2f}'} / "
                   f"{r['driver_used_delta_gib']:.2f}")
        start = "-"
        if "startup_warm_s" in r:
            cold = r.get("startup_cold_s")
            start = f"{r['startup_warm_s']:.1f} / {'-' if cold is None else f'{cold:.1f}'}"
        g = "-"
        if "reset_over_step" in r:
            g = f"{r['reset_over_step']:.3f} / {r['forward_over_step']:.3f}"
        cells = [str(r["num_envs"]), fmt(a), fmt(r.get("physics_steps_per_s")), fmt(c), fmt(d), mem, start, g,
                 f"{c / (a / decimation):.2f}" if a and c else "-", f"{d / c:.2f}" if c and d else "-",
                 r.get("error", "").replace("|", "/")]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options (see the module docstring)."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--num_envs", type=int, nargs="+", default=[1024, 4096, 8192, 16384])
    p.add_argument("--device", default="cuda:0" if torch.cuda.is_available() else "cpu",
                   help="torch / Warp device; 'cpu' is Warp's CPU device (default: cuda:0 when present)")
    p.add_argument("--steps", type=int, default=100, help="timed calls per measurement (a), (b), (c)")
    p.add_argument("--warmup_steps", type=int, default=60,
                   help="untimed random-action env steps before (c), so resets reach their steady rate")
    p.add_argument("--iterations", type=int, default=5, help="PPO iterations for (d); the first is not counted")
    p.add_argument("--skip_ppo", action="store_true", help="no (d)")
    p.add_argument("--skip_startup", action="store_true", help="no (f)")
    p.add_argument("--skip_cold", action="store_true", help="no cold start (f), which compiles for minutes")
    p.add_argument("--startup_envs", type=int, help="num_envs of the startup probes (default: smallest --num_envs)")
    p.add_argument("--startup_repeats", type=int, default=2, help="warm startup: best of this many")
    p.add_argument("--json", type=Path, help="also write the rows here")
    args = p.parse_args(argv)
    if args.steps < 1 or args.iterations < 1 or args.startup_repeats < 1:
        p.error("--steps, --iterations and --startup_repeats must be >= 1")
    args.num_envs = sorted(set(args.num_envs))  # ascending: Warp's mempool high-water mark never resets
    return args


def main(argv: list[str] | None = None) -> None:
    """Run every measurement, print the header and the table, optionally write JSON."""
    args = parse_args(argv)
    wp.config.log_level = wp.LOG_WARNING
    wp.init()
    try:
        wp_device = wp.get_device(args.device)
    except Exception as exc:  # noqa: BLE001 - e.g. torch sees CUDA but this Warp build / driver does not
        sys.exit(f"Warp cannot use device {args.device!r} ({type(exc).__name__}: {exc}). Warp sees "
                 f"{[d.alias for d in wp.get_devices()]}; a CUDA device needs an NVIDIA driver that supports "
                 f"the CUDA version of the warp-lang wheel {wp.__version__}, or run with --device cpu.")
    cuda = torch.device(args.device).type == "cuda"
    info = machine_info(args.device, torch.cuda.get_device_name(args.device) if cuda else None)
    info["warp_device"] = f"{wp_device.alias} ({wp_device.name})"
    info["warp_cache"] = wp.config.kernel_cache_dir
    info["warp_mempool"] = bool(wp_device.is_cuda and wp.is_mempool_enabled(wp_device))
    decimation = env_cfg_for(1, args.device).control.decimation
    capture: dict[str, set[str]] = {}
    rows = []
    for n in args.num_envs:
        log(f"{n} envs ...")
        rows.append(bench_size(n, args, capture))
        free_memory()  # what the size left (its locals are gone now, also after an error)
    if not args.skip_startup:
        n = args.startup_envs or args.num_envs[0]
        row = next((r for r in rows if r["num_envs"] == n), None)
        if row is None:
            rows.append(row := {"num_envs": n})
            rows.sort(key=lambda r: r["num_envs"])
        try:
            row.update(startup(args, n))
        except Exception as exc:  # noqa: BLE001 - reported in the row
            traceback.print_exc(file=sys.stderr)
            row["error"] = (row.get("error", "") + f" startup: {' '.join(str(exc).split())[:150]}").strip()

    print(f"# Asimov on MuJoCo Warp ({time.strftime('%Y-%m-%d %H:%M')})\n")
    print(", ".join(f"{k}: {v}" for k, v in info.items()))
    print("graph capture: " + ("; ".join(f"{k}: {' / '.join(sorted(v))}" for k, v in capture.items())
                              or "none measured"))
    print(f"decimation {decimation}, {args.steps} timed calls per cell after warm-up, (c) after "
          f"{args.warmup_steps} random-action steps; PPO: mean Perf/fps of {args.iterations} iterations, the "
          "first excluded when >= 2 (512-256-128, 24 steps, 5 epochs x 4 mini-batches).\n")
    print(table(rows, decimation))
    if args.json:
        finite = [{k: (v if not isinstance(v, float) or math.isfinite(v) else None) for k, v in r.items()}
                  for r in rows]
        args.json.write_text(json.dumps({"machine": info, "args": {k: str(v) for k, v in vars(args).items()},
                                         "decimation": decimation,
                                         "graph_capture": {k: sorted(v) for k, v in capture.items()},
                                         "rows": finite},
                                        indent=2))


if __name__ == "__main__":
    main()
