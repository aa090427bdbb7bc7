"""Helpers shared by the benchmark scripts (`bench_env.py`, `bench_gpu.py`).

Importing this module puts the repository root on `sys.path`, so the scripts run from a checkout
without installing the package.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import os
import platform
import subprocess
import sys
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import mujoco  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

from gym.envs import AsimovCfgPPO  # noqa: E402
from gym.rl import OnPolicyRunner  # noqa: E402
from gym.rl.on_policy_runner import torch_threads  # noqa: E402

WARP_QUIET = "import warp; warp.config.log_level = warp.LOG_WARNING\n"  # no "Module ... load" lines
# Child process of the startup probes: wall clock from before interpreter start (parent) to the end of
# the first env.step (device work finished).
_STARTUP = """import time, sys, types
sys.path.insert(0, {root!r})
{quiet}import torch
from gym.envs import task_registry
cfg, _ = task_registry.get_cfgs("asimov", sim_device={device!r})
cfg.env.num_envs = {n}
args = types.SimpleNamespace(physics={physics!r}, sim_device={device!r})
env, _ = task_registry.make_env("asimov", args, env_cfg=cfg)
env.step(torch.zeros(env.num_envs, env.num_actions, device=env.device))
{sync}print("FIRST_STEP_AT", time.time())
"""


def version(dist: str) -> str:
    """Installed version of distribution `dist`, or "n/a"."""
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return "n/a"


def machine_info(device: str = "cpu", device_name: str | None = None) -> dict[str, Any]:
    """Cores, load, versions and the benchmarked device, for the header and the JSON output."""
    return {"cpu_cores": os.cpu_count(), "torch_threads": torch.get_num_threads(), "device": device,
            "device_name": device_name or platform.processor() or platform.machine(),
            "load_avg_1m": round(os.getloadavg()[0], 2), "python": platform.python_version(),
            "torch": torch.__version__, "mujoco": mujoco.__version__, "mujoco_warp": version("mujoco-warp"),
            "warp": version("warp-lang"), "numpy": np.__version__}


def fmt(x: float | None, ref: float | None = None, ref_name: str = "") -> str:
    """Thousands-separated number (3 significant digits below 100), "-" for None, optional ratio."""
    if x is None:
        return "-"
    s = f"{x:,.0f}" if x >= 100 else f"{x:.3g}"
    return f"{s} ({x / ref:.2f}×{ref_name})" if ref else s


def collection_threads() -> AbstractContextManager[None]:
    """The torch thread count the PPO runner steps a CPU env with (runner.collection_threads)."""
    return torch_threads(AsimovCfgPPO().runner.collection_threads)


def close_env(env: Any) -> None:
    """Release the physics backend's worker threads, if it has any."""
    getattr(env.physics, "close", lambda: None)()


def random_stepper(env: Any, warmup_steps: int) -> Callable[[], Any]:
    """env.step with fresh uniform [-1, 1] actions on the env's device; first `warmup_steps` untimed
    steps so that falls and resets reach their steady rate (about 60 policy steps from the
    all-standing reset)."""
    actions = torch.empty(env.num_envs, env.num_actions, device=env.device)
    for _ in range(warmup_steps):
        env.step(actions.uniform_(-1.0, 1.0))
    return lambda: env.step(actions.uniform_(-1.0, 1.0))


def ppo_fps(env: Any, train_cfg: Any, iterations: int, device: str = "cpu") -> float:
    """Mean `Perf/fps` of `OnPolicyRunner(env, train_cfg, log_dir=None).learn(iterations)`, the first
    (warm-up) iteration excluded when there are >= 2."""
    runner = OnPolicyRunner(env, train_cfg, log_dir=None, device=device)
    runner.logger.print_table = False
    fps: list[float] = []
    runner.add_logger(lambda metrics, it: fps.append(metrics["Perf/fps"]))
    with open(os.devnull, "w") as null, contextlib.redirect_stderr(null):  # the tqdm bar
        runner.learn(iterations)
    kept = fps[1:] or fps
    return sum(kept) / len(kept)


def startup_seconds(physics: str, num_envs: int, device: str = "cpu", cache_dir: str | None = None) -> float:
    """Wall time [s] from spawning a fresh interpreter to the end of its first env.step.

    The child builds Asimov through `task_registry` with `physics` on `device`; `cache_dir` sets its
    `WARP_CACHE_PATH` (an empty folder gives a cold start: every kernel compiles), otherwise the
    parent's environment (and so its `WARP_CACHE_PATH`, if set) is inherited.
    """
    sync = ""
    if physics == "warp":
        sync += f"import warp; warp.synchronize_device({device!r})\n"
    if torch.device(device).type == "cuda":
        sync += "torch.cuda.synchronize()\n"
    code = _STARTUP.format(root=str(ROOT), n=num_envs, physics=physics, device=device, sync=sync,
                           quiet=WARP_QUIET if physics == "warp" else "")
    env = dict(os.environ, **({"WARP_CACHE_PATH": cache_dir} if cache_dir else {}))
    t0 = time.time()
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=False)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("FIRST_STEP_AT")]
    if proc.returncode != 0 or not lines:
        raise RuntimeError(f"startup probe ({physics}, {num_envs} envs, {device}) failed:\n{proc.stderr[-2000:]}")
    return float(lines[-1].split()[1]) - t0
