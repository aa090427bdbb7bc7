"""Soak test: CPU training with NaN faults injected into random envs, SIGTERM + `--resume` halfway.

    python benchmarks/soak.py --minutes 20 --fault_every_s 5 --faults 4 -- --num_envs=512
    python benchmarks/soak.py --minutes 20 --fault_every_s 0 -- --num_envs=512   # unfaulted baseline

The parent starts `train.py` (as a child running this file with --child), sends SIGTERM after half
the time, checks that a checkpoint was written, restarts with `--resume` (same run folder), and
sends SIGTERM again at the end. The child wraps `LeggedRobot.step`: every `--fault_every_s`
seconds of wall time it writes NaN velocities into `--faults` random envs through the physics
interface (`Physics.set_state`), so the env must reset exactly those envs and training must go on.
Prints a table per 10 % of the run from the run's metrics.jsonl: iteration, mean reward, episode
length, non-finite resets, and the injected-fault count (from the child's log lines).
Arguments after `--` go to train.py.
"""

from __future__ import annotations

import argparse
import json
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
_INJECT_RE = re.compile(r"soak: injected (\d+) faults")
_RUN_RE = re.compile(r"run folder\s+(\S+)")


def child(fault_every_s: float, faults: int, train_argv: list[str]) -> None:
    """Run train.py's main in this process with fault injection wrapped around env.step."""
    sys.path.insert(0, str(ROOT))
    import torch

    from gym.envs.base.legged_robot import LeggedRobot
    from gym.scripts import train

    original_step = LeggedRobot.step
    state = {"next": time.monotonic() + fault_every_s, "count": 0}

    def step(self, actions):
        if fault_every_s > 0 and time.monotonic() >= state["next"]:
            state["next"] += fault_every_s
            ids = torch.randperm(self.num_envs, device=self.device)[:faults]
            qvel = self.physics.qvel[ids].clone()
            qvel[:, 6:] = float("nan")  # joint velocities: the next physics step diverges
            self.physics.set_state(ids, self.physics.qpos[ids].clone(), qvel)
            state["count"] += len(ids)
            print(f"soak: injected {state['count']} faults", flush=True)
        return original_step(self, actions)

    LeggedRobot.step = step
    train.main(train_argv)


def run_child(args: argparse.Namespace, train_argv: list[str], seconds: float, log_path: Path) -> tuple[int, str]:
    """Start a child (output appended to `log_path`), SIGTERM it after `seconds`, wait for it to
    exit; returns (exit code, its output)."""
    cmd = [sys.executable, "-u", __file__, "--child", "--fault_every_s", str(args.fault_every_s),
           "--faults", str(args.faults), "--", *train_argv]
    start = log_path.stat().st_size if log_path.exists() else 0
    with open(log_path, "a") as log:
        proc = subprocess.Popen(cmd, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
        try:
            proc.wait(timeout=seconds)
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGTERM)
            proc.wait()
    with open(log_path) as log:
        log.seek(start)
        return proc.returncode, log.read()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--minutes", type=float, default=20.0, help="total training wall time")
    p.add_argument("--fault_every_s", type=float, default=5.0, help="seconds between injections (0: none)")
    p.add_argument("--faults", type=int, default=4, help="envs faulted per injection")
    p.add_argument("--run_name", default="soak", help="run folder suffix")
    p.add_argument("--log", default=None, help="file for the children's output (default: logs/soak_<run_name>.log)")
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args, rest = p.parse_known_args()
    train_argv = [a for a in rest if a != "--"]
    if args.child:
        child(args.fault_every_s, args.faults, train_argv)
        return
    half = args.minutes * 60 / 2
    log_path = Path(args.log or ROOT / "logs" / f"soak_{args.run_name}.log")
    log_path.parent.mkdir(parents=True, exist_ok=True)
    base = ["--task=asimov", "--headless", "--max_iterations=100000", f"--run_name={args.run_name}", *train_argv]
    log_path.write_text("")
    code1, out1 = run_child(args, base, half, log_path)
    run = _RUN_RE.search(out1)
    if run is None:
        sys.exit(f"first half printed no run folder (exit {code1}); see {log_path}")
    run_dir = Path(run.group(1))
    checkpoints = sorted(run_dir.glob("model_*.pt"), key=lambda c: int(c.stem.split("_")[1]))
    print(f"first half: exit code {code1}, newest checkpoint {checkpoints[-1].name if checkpoints else None}")
    resume = [a for a in base if not a.startswith("--run_name")] + ["--resume", f"--load_run={run_dir.name}"]
    code2, out2 = run_child(args, resume, half, log_path)
    print(f"second half (resumed): exit code {code2}; log {log_path}")
    injected = sum(last_count(out) for out in (out1, out2))  # each child counts from 0
    print_table(run_dir / "metrics.jsonl", injected)


def last_count(output: str) -> int:
    """The last cumulative "soak: injected N faults" count of one child's output (0 if none)."""
    counts = [int(m.group(1)) for m in _INJECT_RE.finditer(output)]
    return counts[-1] if counts else 0


def print_table(metrics_path: Path, injected: int) -> None:
    records = [json.loads(line) for line in metrics_path.read_text().splitlines() if line.strip()]
    iterations = [r["iteration"] for r in records]
    duplicated = len(iterations) - len(set(iterations))
    resets = sum(r.get("Episode/nonfinite_resets") or 0 for r in records)
    print(f"\n{metrics_path}: {len(records)} iterations, {duplicated} duplicated, "
          f"injected faults {injected}, non-finite resets logged {resets:.0f}")
    print("| training time [min] | iteration | mean reward | episode length [s] | non-finite resets so far |")
    print("|---:|---:|---:|---:|---:|")
    total, elapsed, step = 0.0, 0.0, max(1, len(records) // 10)
    for i, r in enumerate(records):
        total += r.get("Episode/nonfinite_resets") or 0
        elapsed += (r.get("Perf/collection_time") or 0) + (r.get("Perf/learning_time") or 0)
        if i % step == step - 1 or i == len(records) - 1:
            wall = elapsed / 60
            print(f"| {wall:.1f} | {r['iteration']} | {r.get('Train/mean_reward') or float('nan'):.2f} | "
                  f"{(r.get('Train/mean_episode_length') or 0) * 0.02:.2f} | {total:.0f} |")


if __name__ == "__main__":
    main()
