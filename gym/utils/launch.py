"""Starting the ranks of a multi-process run on this machine, and each rank's own setup.

    python gym/scripts/train.py --task=asimov --gpu_ids 0 1       # one rank per GPU (NCCL)
    python gym/scripts/train.py --task=asimov --gpu_ids all       # every GPU torch sees
    python gym/scripts/train.py --task=asimov --num_processes 2   # CPU ranks (gloo), e.g. for tests
    torchrun --nproc_per_node=2 [--nnodes=M --rdzv_endpoint=HOST:PORT] gym/scripts/train.py --task=asimov

`--gpu_ids` / `--num_processes` run torch's elastic launcher (what torchrun uses) with a local
rendezvous; it starts train.py once per rank (RANK, WORLD_SIZE, LOCAL_RANK, ... in the environment)
and, when one rank fails, stops the others and reports the failing rank's error. GPU ids are the
indices torch sees, i.e. within CUDA_VISIBLE_DEVICES when that is set.
"""

from __future__ import annotations

import os
import signal
import sys
import uuid
from pathlib import Path
from typing import Any

import torch

from gym.rl.distributed import Distributed, env_world
from gym.utils.seeding import set_seed

LAUNCHED_ENV = "LEGGED_GYM_LAUNCHED"  # set for the ranks that --gpu_ids / --num_processes started


class LaunchError(ValueError):
    """Bad --gpu_ids / --num_processes / device flags; the message names the fix."""


def launch_count(args: Any) -> int:
    """Ranks that --gpu_ids / --num_processes ask this process to start (0: none, train here).
    Raises LaunchError for flags that contradict each other or this machine."""
    gpu_ids, nproc = getattr(args, "gpu_ids", None), getattr(args, "num_processes", None)
    if gpu_ids is None and nproc is None:
        return 0
    launched = bool(os.environ.get(LAUNCHED_ENV))  # a rank the launcher started: train here
    if launched and gpu_ids is not None:
        return 0  # CUDA_VISIBLE_DEVICES holds this run's GPUs; configure_rank picks cuda:<LOCAL_RANK>
    if not launched and env_world()[1] > 1:
        raise LaunchError("--gpu_ids / --num_processes start the ranks themselves; under torchrun leave them "
                          "out (torchrun's --nproc_per_node sets the number of ranks)")
    if gpu_ids is not None and nproc is not None:
        raise LaunchError("--gpu_ids (one rank per GPU) and --num_processes (CPU ranks) exclude each other; "
                          "give one of them")
    if nproc is not None:
        if nproc < 1:
            raise LaunchError(f"--num_processes={nproc}: must be >= 1")
        for flag in ("sim_device", "rl_device"):
            device = getattr(args, flag, None)
            if device and not device.startswith("cpu"):
                raise LaunchError(f"--num_processes starts CPU ranks, but --{flag}={device}; use --gpu_ids "
                                  "for one rank per GPU, or drop the device flag")
        args.sim_device = "cpu"
        return 0 if launched or nproc == 1 else nproc
    ids = gpu_ids_list(gpu_ids)
    if args.sim_device and not args.sim_device.startswith("cuda"):
        raise LaunchError(f"--gpu_ids with --sim_device={args.sim_device}: each rank simulates on its GPU; "
                          "drop --sim_device (or use --num_processes N for CPU ranks)")
    if len(ids) == 1:  # one GPU: train in this process on it
        args.sim_device = f"cuda:{ids[0]}"
        if args.rl_device and args.rl_device.startswith("cuda"):
            args.rl_device = args.sim_device
        return 0
    return len(ids)


def gpu_ids_list(gpu_ids: list[str]) -> list[int]:
    """`--gpu_ids` values (["0", "1"] or ["all"]) -> GPU indices as torch sees them; LaunchError
    for a GPU that does not exist, a repeated one, or no CUDA at all."""
    count = torch.cuda.device_count()
    if count == 0:
        raise LaunchError("--gpu_ids: torch sees no CUDA device here (CPU build or CUDA_VISIBLE_DEVICES empty); "
                          "for CPU ranks use --num_processes N")
    if [g.lower() for g in gpu_ids] == ["all"]:
        return list(range(count))
    try:
        ids = [int(g) for g in gpu_ids]
    except ValueError:
        raise LaunchError(f"--gpu_ids {' '.join(gpu_ids)}: give GPU indices (e.g. --gpu_ids 0 1) or 'all'") from None
    bad = [i for i in ids if not 0 <= i < count]
    if bad or len(set(ids)) != len(ids):
        raise LaunchError(f"--gpu_ids {' '.join(gpu_ids)}: torch sees GPUs 0..{count - 1} "
                          f"(CUDA_VISIBLE_DEVICES={os.environ.get('CUDA_VISIBLE_DEVICES', '<unset>')}); "
                          "name each one once, or use --gpu_ids all")
    return ids


def launch(script: Path, argv: list[str], args: Any, nproc: int, shutdown_timeout_s: float) -> int:
    """Run `script argv` as `nproc` ranks on this machine (elastic launcher, local c10d rendezvous,
    no restarts) and return the exit code: 0, 128 + signal when interrupted, else the failing
    rank's code after printing which rank failed and why. Ranks get `shutdown_timeout_s` to stop
    after a signal (rank 0 saves first) before they are killed."""
    from torch.distributed.elastic.multiprocessing import SignalException
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.launcher.api import LaunchConfig, elastic_launch

    os.environ[LAUNCHED_ENV] = "1"
    if getattr(args, "gpu_ids", None) is not None:
        ids = gpu_ids_list(args.gpu_ids)
        visible = os.environ.get("CUDA_VISIBLE_DEVICES")
        names = visible.split(",") if visible else [str(i) for i in range(torch.cuda.device_count())]
        os.environ["CUDA_VISIBLE_DEVICES"] = ",".join(names[i] for i in ids)  # rank r -> cuda:r
    else:
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
        os.environ.setdefault("OMP_NUM_THREADS", str(max(1, cores // nproc)))
    config = LaunchConfig(min_nodes=1, max_nodes=1, nproc_per_node=nproc, run_id=f"legged-gym-{uuid.uuid4().hex[:8]}",
                          rdzv_backend="c10d", rdzv_endpoint="localhost:0", max_restarts=0, monitor_interval=0.5,
                          shutdown_timeout=int(max(30.0, shutdown_timeout_s)))
    try:
        elastic_launch(config, sys.executable)(str(script), *argv)
        return 0
    except SignalException as e:
        print(f"{signal.Signals(e.sigval).name}: all {nproc} ranks were asked to stop; rank 0 saved the last "
              "completed iteration if it reached one (see its resume line above)", file=sys.stderr, flush=True)
        return 128 + int(e.sigval)
    except ChildFailedError as e:
        codes = {f.exitcode for f in e.failures.values()}
        if codes <= {128 + signal.SIGINT, 128 + signal.SIGTERM}:  # every rank stopped on an agreed signal
            return codes.pop()
        print(failure_message(e), file=sys.stderr, flush=True)
        _, first = root_failure(e)
        return first.exitcode if first.exitcode > 0 else 1


def root_failure(error: Any) -> tuple[int, Any]:
    """(rank, ProcessFailure) that caused a `ChildFailedError`. Ranked by what the failure says, then
    by time: a recorded error that is not a `DistributedError` (the cause, even when the rank then
    aborted with a signal during teardown); then a death with no recorded error other than the
    launcher's SIGTERM (SIGKILL by the OOM killer, a segfault, a non-zero exit); then a peer's
    `DistributedError`; last a rank the launcher stopped with SIGTERM. The error files' timestamps
    are whole seconds, so they alone cannot tell."""
    def tier(item: tuple[int, Any]) -> tuple[int, int, int]:
        rank, failure = item
        text = _failure_text(failure)
        recorded = text != _NO_MESSAGE and not text.startswith("Signal ")
        if recorded and not text.startswith("DistributedError"):
            level = 0
        elif not recorded and failure.exitcode != -signal.SIGTERM:
            level = 1
        elif recorded:
            level = 2
        else:
            level = 3
        return (level, failure.timestamp, rank)

    return min(error.failures.items(), key=tier)


def failure_message(error: Any) -> str:
    """One paragraph for a `ChildFailedError`: the rank whose failure stopped the run and its error,
    then the others."""
    rank, first = root_failure(error)
    lines = [f"error: rank {rank} (local rank {first.local_rank}, pid {first.pid}) failed with exit code "
             f"{first.exitcode}: {_failure_text(first)}",
             "  the launcher stopped the other ranks; fix that rank's error (printed above) and run again"]
    for other, failure in sorted(error.failures.items()):
        if other != rank:
            lines.append(f"  rank {other}: exit code {failure.exitcode} ({_failure_text(failure)})")
    return "\n".join(lines)


_NO_MESSAGE = "see its traceback above"


def _failure_text(failure: Any) -> str:
    """The exception ("Type: message") a rank recorded, or its signal, else a pointer to its output."""
    message = failure.message
    if isinstance(message, dict):  # written by the rank's @record: {"message": "Type: text", "extraInfo": ...}
        message = message.get("message", "")
    message = str(message or "").strip()
    if not message or "To enable traceback" in message:
        return _NO_MESSAGE
    return message


def configure_rank(args: Any) -> None:
    """In a multi-rank run (torchrun / the launcher): this rank's devices (a CUDA device becomes
    cuda:<LOCAL_RANK>) and its CPU threads; only rank 0 resolves a checkpoint to resume (it loads
    it and `learn` hands the state to the others) and records videos. No-op for a single process."""
    from gym.utils.task_registry import resolve_sim_device

    rank, world, local_rank, local_world = env_world()
    if world <= 1:
        return
    if torch.device(resolve_sim_device(args)).type == "cuda":
        if local_rank >= torch.cuda.device_count():
            raise LaunchError(f"rank {rank} needs cuda:{local_rank} but torch sees {torch.cuda.device_count()} "
                              "GPU(s) here: start at most one rank per GPU (--nproc_per_node) or set "
                              "CUDA_VISIBLE_DEVICES")
        args.sim_device = f"cuda:{local_rank}"
        if not args.rl_device or args.rl_device.startswith("cuda"):
            args.rl_device = args.sim_device
    else:
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
        torch.set_num_threads(max(1, cores // max(local_world, 1)))
    if rank != 0:  # rank 0 alone loads the checkpoint to resume and records training videos
        args.resume = False
        if getattr(args, "video_interval", None):
            args.video_interval = None


def seed_rank(train_cfg: Any, dist: Distributed) -> None:
    """Every rank takes rank 0's base seed (a random seed, -1, is drawn once) and seeds its own RNG
    streams with base seed + rank, before the env is built."""
    if dist.active:
        train_cfg.seed = int(dist.broadcast_object(train_cfg.seed))
        set_seed(train_cfg.seed + dist.rank)
