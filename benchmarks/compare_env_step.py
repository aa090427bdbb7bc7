"""`env.step` throughput of several checkouts (e.g. this one and an older commit), one table.

    git worktree add ../before <commit>
    python benchmarks/compare_env_step.py --repos ../before . --num_envs 256 --episode_length_s 1 20

Each (repo, episode length) cell runs in a fresh interpreter that imports `gym` from that repo,
builds Asimov on MuJoCo Warp (`--device`, default Warp's CPU device) with the same buffer sizes,
spreads the envs' episode clocks at random (so time-out resets happen every step, as at thousands
of envs), and reports the best of `--repeats` runs of `--steps` random-action steps. Short episodes
stand for the many-resets regime of large GPU batches; 20 s is Asimov's real episode length.
Cells alternate between repos so machine load hits them alike; compare ratios within one table.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

_CHILD = r"""
import json, sys, time, torch
sys.path.insert(0, {repo!r})
from gym.envs import Asimov, AsimovCfg
n, length = {num_envs}, {length}
cfg = AsimovCfg(); cfg.env.num_envs = n; cfg.env.episode_length_s = length
cfg.sim.nconmax, cfg.sim.njmax = {nconmax}, {njmax}
env = Asimov(cfg, {device!r}, physics="warp")
env.episode_length_buf = torch.randint_like(env.episode_length_buf, high=env.max_episode_length)
torch.set_num_threads(1)
g = torch.Generator().manual_seed(0)
acts = [(torch.rand(n, 12, generator=g) * 2 - 1).to(env.device) for _ in range({steps} + 10)]
for a in acts[:10]:
    env.step(a)
best = 0.0
for _ in range({repeats}):
    if env.device.type == "cuda":
        torch.cuda.synchronize()
    t = time.perf_counter()
    for a in acts[10:]:
        env.step(a)
    if env.device.type == "cuda":
        torch.cuda.synchronize()
    best = max(best, {steps} * n / (time.perf_counter() - t))
print(json.dumps({{"env_steps_per_s": best}}))
"""


def measure(repo: Path, length: float, args: argparse.Namespace) -> float:
    code = _CHILD.format(repo=str(repo.resolve()), num_envs=args.num_envs, length=length, device=args.device,
                         nconmax=args.nconmax, njmax=args.njmax, steps=args.steps, repeats=args.repeats)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    if out.returncode != 0:
        raise RuntimeError(f"{repo} failed:\n{out.stderr[-2000:]}")
    return float(json.loads(out.stdout.strip().splitlines()[-1])["env_steps_per_s"])


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--repos", nargs="+", type=Path, required=True, help="checkouts to compare; first = baseline")
    p.add_argument("--num_envs", type=int, default=256)
    p.add_argument("--episode_length_s", type=float, nargs="+", default=[1.0, 20.0])
    p.add_argument("--device", default="cpu", help="sim device (Warp's CPU device by default)")
    p.add_argument("--nconmax", type=int, default=24)
    p.add_argument("--njmax", type=int, default=128)
    p.add_argument("--steps", type=int, default=30)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--rounds", type=int, default=2, help="alternating rounds; the best is kept")
    args = p.parse_args(argv)
    best: dict[tuple[int, float], float] = {}
    for _ in range(args.rounds):
        for length in args.episode_length_s:
            for i, repo in enumerate(args.repos):
                rate = measure(repo, length, args)
                best[i, length] = max(best.get((i, length), 0.0), rate)
    print(f"env.step, {args.num_envs} envs, MuJoCo Warp on {args.device}, nconmax {args.nconmax}, "
          f"njmax {args.njmax}, best of {args.rounds} x {args.repeats} runs of {args.steps} steps")
    head = ["repo"] + [f"episodes {length:g} s: env steps/s (x baseline)" for length in args.episode_length_s]
    print("| " + " | ".join(head) + " |")
    print("|---|" + "---:|" * len(args.episode_length_s))
    for i, repo in enumerate(args.repos):
        cells = [f"{best[i, length]:,.0f} ({best[i, length] / best[0, length]:.2f})"
                 for length in args.episode_length_s]
        print(f"| {repo} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
