"""`Distributed`: the torch.distributed side of multi-GPU / multi-node training (one process per rank).

A rank is one process with its own envs, seed and device. The runner, PPO, the rollout storage and
the observation normalizers call this helper at a few marked points:

    per env step      `merge_moments`        normalizer batch statistics of all ranks (one all-gather)
    per rollout       `merge_moments`        advantage mean / std over the global batch
    per mini-batch    `all_reduce_gradients` ONE flat buffer: every gradient + the KL (+ a NaN flag)
    per iteration     `reduce_max`, `combine` stop / failure decisions, episode statistics, FPS
    at learn() start  `broadcast_object`     rank 0's model, optimizer, normalizers, iteration, lr

With world_size 1 (`Distributed()`, the default everywhere) `active` is False and callers skip all of
it: a single-process run does no collective at all. Every collective is bounded by
`runner.dist_timeout_s` (the process group's timeout); a failed or timed-out one raises
`DistributedError` naming this rank, the operation and the likely cause.
"""

from __future__ import annotations

import datetime
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import torch
import torch.distributed as tdist

DEFAULT_TIMEOUT_S = 300.0  # default of runner.dist_timeout_s
T = TypeVar("T")


class DistributedError(RuntimeError):
    """A collective failed or timed out: another rank stopped (its own error names it) or hangs."""


def env_world() -> tuple[int, int, int, int]:
    """(rank, world_size, local_rank, local_world_size) from torchrun's environment variables;
    (0, 1, 0, 1) outside a launcher."""
    def get(name: str, default: int) -> int:
        value = os.environ.get(name, "")
        try:
            return int(value) if value else default
        except ValueError:
            raise DistributedError(f"environment variable {name}={value!r} is not an integer; it is set by "
                                   "torchrun / train.py --gpu_ids: do not set it by hand") from None

    world = get("WORLD_SIZE", 1)
    local_world = get("LOCAL_WORLD_SIZE", world)
    return get("RANK", 0), world, get("LOCAL_RANK", 0), local_world


def combine_moments(n_a: Any, mean_a: torch.Tensor, var_a: torch.Tensor, n_b: Any, mean_b: torch.Tensor,
                    var_b: torch.Tensor) -> tuple[Any, torch.Tensor, torch.Tensor]:
    """(count, mean, population variance) of two sample sets together (Chan et al.):

    n = n_a + n_b,  delta = mean_b - mean_a,  mean = mean_a + delta * n_b / n,
    var = (n_a * var_a + n_b * var_b + delta^2 * n_a * n_b / n) / n.
    """
    n = n_a + n_b
    delta = mean_b - mean_a
    mean = mean_a + delta * (n_b / n)
    var = (n_a * var_a + n_b * var_b + delta.square() * (n_a * n_b / n)) / n
    return n, mean, var


def merge_moments(counts: torch.Tensor, means: torch.Tensor, variances: torch.Tensor
                  ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Fold R sets of (count (R,), mean (R, *S), population variance (R, *S)) in order with
    `combine_moments`; returns the (count, mean, variance) of all samples together.
    Deterministic: every rank folding the same gathered tensor gets bitwise the same result."""
    n, mean, var = counts[0], means[0], variances[0]
    for n_b, mean_b, var_b in zip(counts[1:], means[1:], variances[1:]):
        n, mean, var = combine_moments(n, mean, var, n_b, mean_b, var_b)
    return n, mean, var


@dataclass
class Distributed:
    """This process's place in the job; `Distributed()` is the single-process default (no collectives).

    `device`: where this rank's tensors for collectives live (its CUDA device for NCCL, the CPU for
    gloo). `timeout_s`: the bound on every collective (and on `barrier`).
    """

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    local_world_size: int = 1
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    timeout_s: float = DEFAULT_TIMEOUT_S

    @property
    def active(self) -> bool:
        """More than one rank: the collectives run."""
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        """Rank 0: the one that logs, writes the run folder and checkpoints, and talks to wandb."""
        return self.rank == 0

    @property
    def backend(self) -> str:
        return "nccl" if self.device.type == "cuda" else "gloo"

    @classmethod
    def from_env(cls, device: str | torch.device, timeout_s: float = DEFAULT_TIMEOUT_S) -> Distributed:
        """This rank's helper from torchrun's RANK / WORLD_SIZE / LOCAL_RANK / LOCAL_WORLD_SIZE; with
        WORLD_SIZE > 1 joins the process group (NCCL on a CUDA `device`, else gloo) with `timeout_s`.

        Raises DistributedError naming the problem (no rendezvous address, bad timeout, init failure)."""
        rank, world, local_rank, local_world = env_world()
        device = torch.device(device)
        if world > 1 and device.type == "cuda" and device.index is None:
            device = torch.device("cuda", local_rank)
        helper = cls(rank, world, local_rank, local_world, device, float(timeout_s))
        if world > 1:
            helper.init_process_group()
        return helper

    def init_process_group(self) -> None:
        """Join the job's process group (MASTER_ADDR / MASTER_PORT rendezvous set by the launcher)."""
        if not self.timeout_s > 0:
            raise DistributedError(f"runner.dist_timeout_s={self.timeout_s}: must be > 0 seconds (default "
                                   f"{DEFAULT_TIMEOUT_S:g}); set it with --set runner.dist_timeout_s=300")
        if tdist.is_initialized():
            return
        if "MASTER_ADDR" not in os.environ or "MASTER_PORT" not in os.environ:
            raise DistributedError(
                f"WORLD_SIZE={self.world_size} but MASTER_ADDR / MASTER_PORT are not set: start the ranks with "
                "`python gym/scripts/train.py --gpu_ids ...` or `torchrun --nproc_per_node=N gym/scripts/train.py`")
        if self.device.type == "cuda":
            torch.cuda.set_device(self.device)
        kwargs: dict[str, Any] = {"device_id": self.device} if self.device.type == "cuda" else {}
        try:
            tdist.init_process_group(self.backend, rank=self.rank, world_size=self.world_size,
                                     timeout=datetime.timedelta(seconds=self.timeout_s), **kwargs)
        except (RuntimeError, ValueError) as e:
            raise DistributedError(f"rank {self.rank}: could not join the {self.backend} process group of "
                                   f"{self.world_size} ranks ({type(e).__name__}: {e})") from e

    def close(self) -> None:
        """Leave the process group (no-op for a single process)."""
        if self.active and tdist.is_initialized():
            tdist.destroy_process_group()

    # ------------------------------------------------------------------ collectives
    def _run(self, what: str, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run collective `fn`, turning a failure or timeout into a DistributedError that says why."""
        try:
            return fn(*args, **kwargs)
        except (RuntimeError, ValueError) as e:  # gloo / NCCL errors, timeouts ("DistBackendError")
            raise DistributedError(
                f"rank {self.rank} of {self.world_size}: {what} failed ({type(e).__name__}: {e}). Another rank "
                "most likely stopped (its error, printed by the launcher, names the cause) or did not answer "
                f"within runner.dist_timeout_s = {self.timeout_s:g} s") from e

    def broadcast_object(self, obj: T) -> T:
        """Rank 0's `obj` (picklable; tensors should be on the CPU) on every rank."""
        if not self.active:
            return obj
        holder = [obj if self.is_main else None]
        self._run("broadcast of rank 0's state", tdist.broadcast_object_list, holder, src=0)
        return holder[0]

    def all_reduce_gradients(self, params: Iterable[torch.nn.Parameter], extras: torch.Tensor) -> torch.Tensor:
        """Average the gradients of `params` and the values `extras` (K,) over all ranks in ONE
        all-reduce of a flat buffer; gradients are written back in place (a missing one counts as
        zero). Returns the averaged extras (K,)."""
        params = list(params)
        grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in params]
        flat = torch.cat([g.reshape(-1) for g in grads] + [extras.reshape(-1).to(grads[0].dtype)])
        self._run("all-reduce of the gradients", tdist.all_reduce, flat, op=tdist.ReduceOp.SUM)
        flat /= self.world_size
        offset = 0
        for p, g in zip(params, grads):
            n = g.numel()
            g.copy_(flat[offset:offset + n].view_as(g))
            if p.grad is None:
                p.grad = g
            offset += n
        return flat[offset:]

    def merge_moments(self, count: int, mean: torch.Tensor, var: torch.Tensor
                      ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(count, mean, population variance) of this rank's samples -> the same over all ranks'
        samples, identical on every rank (one all-gather, then `merge_moments` in rank order)."""
        shape = mean.shape
        local = torch.cat([torch.full((1,), float(count), dtype=mean.dtype, device=mean.device),
                           mean.reshape(-1), var.reshape(-1)])
        gathered = torch.empty(self.world_size * local.numel(), dtype=local.dtype, device=local.device)
        self._run("all-gather of normalizer / advantage statistics", tdist.all_gather_single, gathered, local)
        rows = gathered.view(self.world_size, -1)
        d = mean.numel()
        n, m, v = merge_moments(rows[:, 0], rows[:, 1:1 + d], rows[:, 1 + d:])
        return n, m.reshape(shape), v.reshape(shape)

    def reduce_max(self, values: list[float]) -> list[float]:
        """Element-wise maximum of `values` over all ranks (e.g. stop / failure decisions)."""
        if not self.active:
            return values
        t = torch.tensor(values, dtype=torch.float64, device=self.device)
        self._run("all-reduce of the stop / failure flags", tdist.all_reduce, t, op=tdist.ReduceOp.MAX)
        return t.tolist()

    def combine(self, sums: dict[str, float], maxes: dict[str, float]) -> tuple[dict[str, float], dict[str, float]]:
        """Per-iteration metrics of all ranks: `sums` added key by key (a key a rank lacks counts as
        0, e.g. a reward term no episode of that rank reported), `maxes` maximised. One all-gather."""
        if not self.active:
            return sums, maxes
        gathered: list[Any] = [None] * self.world_size
        self._run("all-gather of the iteration's metrics", tdist.all_gather_object, gathered, (sums, maxes))
        total: dict[str, float] = {}
        highest: dict[str, float] = {}
        for rank_sums, rank_maxes in gathered:
            for k, v in rank_sums.items():
                total[k] = total.get(k, 0.0) + v
            for k, v in rank_maxes.items():
                highest[k] = max(highest.get(k, v), v)
        return total, highest

    def barrier(self) -> None:
        """Wait for every rank, at most `timeout_s` (gloo names the ranks that did not arrive)."""
        if not self.active:
            return
        if self.backend == "gloo":
            self._run("barrier", tdist.monitored_barrier, timeout=datetime.timedelta(seconds=self.timeout_s),
                      wait_all_ranks=True)
        else:  # an all-reduce is bounded by the process group's timeout (NCCL watchdog)
            self._run("barrier", tdist.all_reduce, torch.zeros(1, device=self.device))


def to_cpu(obj: Any) -> Any:
    """A copy of nested dicts / lists / tuples with every tensor moved to the CPU (for broadcasts)."""
    if isinstance(obj, torch.Tensor):
        return obj.detach().cpu()
    if isinstance(obj, dict):
        return {k: to_cpu(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(to_cpu(v) for v in obj)
    return obj
