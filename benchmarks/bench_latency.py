"""Cost of the latency model: env steps per second with latency off vs the full set on.

    python benchmarks/bench_latency.py [--num_envs 256 1024] [--physics mujoco warp] [--seconds 5]
                                       [--device cpu|cuda]

"off": default Asimov config (`domain_rand.randomize_latency = False`: actions act at the first tick,
observations are the current state). "on": `randomize_latency = True` with action latency U{0..4}
and IMU / joint observation latency U{0..4} ticks per env (every delayed read is a gather from the
tick history). Both envs are built once and timed interleaved in rounds, so their ratio is the
number to compare; absolutes move with the machine's load. Prints one markdown table.
"""

from __future__ import annotations

import argparse
import time

import torch
from _common import close_env, collection_threads, fmt, machine_info, random_stepper

from gym.envs import Asimov, AsimovCfg


def make_env(physics: str, num_envs: int, device: str, latency: bool) -> Asimov:
    cfg = AsimovCfg()
    cfg.env.num_envs = num_envs
    dr = cfg.domain_rand
    dr.randomize_latency = latency
    dr.action_latency_range = dr.imu_latency_range = dr.joint_latency_range = [0, cfg.control.decimation]
    return Asimov(cfg, sim_device=device, physics=physics)


def steps_per_second(step, seconds: float, device: str) -> float:
    n, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        step()
        n += 1
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    return n / (time.perf_counter() - start)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--num_envs", type=int, nargs="+", default=[256, 1024])
    p.add_argument("--physics", nargs="+", default=["mujoco"], choices=["mujoco", "warp"])
    p.add_argument("--seconds", type=float, default=5.0, help="timed seconds per env per round")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--device", default="cpu")
    args = p.parse_args()
    info = machine_info(args.device)
    print(f"# latency cost: {info['device_name']}, {info['cpu_cores']} cores, load {info['load_avg_1m']}, "
          f"torch {info['torch']}, mujoco {info['mujoco']}\n")
    print("| physics | num_envs | latency off [env steps/s] | latency on [env steps/s] (ratio to off) |")
    print("|---|---|---|---|")
    with collection_threads():
        for physics in args.physics:
            for n in args.num_envs:
                device = args.device if physics == "warp" else "cpu"
                envs = {on: make_env(physics, n, device, on) for on in (False, True)}
                steppers = {on: random_stepper(env, 60) for on, env in envs.items()}
                rate = {False: 0.0, True: 0.0}
                for _ in range(args.rounds):
                    for on in (False, True):
                        rate[on] += n * steps_per_second(steppers[on], args.seconds, device) / args.rounds
                print(f"| {physics} | {n} | {fmt(rate[False])} | {fmt(rate[True], rate[False])} |", flush=True)
                for env in envs.values():
                    close_env(env)


if __name__ == "__main__":
    main()
