"""Training metrics: episode statistics (rsl_rl rewbuffer / lenbuffer), console (tqdm bar + table),
`metrics.jsonl`, and user callbacks (`MetricsLogger.add_logger`).

Metric keys (one flat dict per iteration, all floats):
    Train/mean_reward, Train/mean_episode_length   over the last <= 100 finished episodes
                                                   (absent until an episode has finished)
    Episode/<term>                                 mean of the env's extras["episode"] this iteration
    Perf/fps, Perf/collection_time, Perf/learning_time, Perf/total_timesteps
    Loss/value_loss, Loss/surrogate_loss, Loss/entropy, Loss/approx_kl, Loss/clip_fraction,
    Loss/explained_variance, Loss/learning_rate
    Policy/mean_action_std
"""

from __future__ import annotations

import json
import math
from collections import deque
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TextIO

import torch
from tqdm import tqdm

LoggerFn = Callable[[dict[str, float], int], None]


def _to_float(value: Any) -> float:
    if isinstance(value, torch.Tensor):
        return float(value.detach().float().mean()) if value.numel() else float("nan")
    return float(value)


class EpisodeStats:
    """Per-env running reward sums / lengths; finished episodes go into 100-long buffers."""

    def __init__(self, num_envs: int, device: torch.device, buffer_len: int = 100) -> None:
        self.reward_buffer: deque[float] = deque(maxlen=buffer_len)
        self.length_buffer: deque[float] = deque(maxlen=buffer_len)
        self.current_reward_sum = torch.zeros(num_envs, device=device)
        self.current_length = torch.zeros(num_envs, device=device)
        self.episode_infos: list[Mapping[str, Any]] = []

    def step(self, rewards: torch.Tensor, dones: torch.Tensor, extras: Mapping[str, Any]) -> None:
        """rewards (N,), dones (N,) of one env step (before any time-out bootstrap)."""
        if "episode" in extras:
            self.episode_infos.append(extras["episode"])
        self.current_reward_sum += rewards.reshape(-1).to(self.current_reward_sum)
        self.current_length += 1
        done_ids = dones.reshape(-1).to(self.current_length.device).nonzero(as_tuple=True)[0]
        if done_ids.numel():
            self.reward_buffer.extend(self.current_reward_sum[done_ids].tolist())
            self.length_buffer.extend(self.current_length[done_ids].tolist())
            self.current_reward_sum[done_ids] = 0.0
            self.current_length[done_ids] = 0.0

    def pop_metrics(self) -> dict[str, float]:
        """Train/* over the buffers and Episode/* averaged over this iteration; clears the latter."""
        metrics: dict[str, float] = {}
        if self.reward_buffer:
            metrics["Train/mean_reward"] = sum(self.reward_buffer) / len(self.reward_buffer)
            metrics["Train/mean_episode_length"] = sum(self.length_buffer) / len(self.length_buffer)
        values: dict[str, list[float]] = {}
        for info in self.episode_infos:
            for name, value in info.items():
                values.setdefault(name, []).append(_to_float(value))
        for name, vals in values.items():
            metrics[f"Episode/{name}"] = sum(vals) / len(vals)
        self.episode_infos.clear()
        return metrics


def format_table(metrics: Mapping[str, float], title: str) -> str:
    """A compact two-column (name, value) table."""
    width = max([len(k) for k in metrics] + [len(title)])
    lines = [f"{title:^{width + 14}}", "-" * (width + 14)]
    lines += [f"{name:<{width}}  {value:>12.4g}" for name, value in metrics.items()]
    return "\n".join(lines)


class MetricsLogger:
    """Console + metrics.jsonl (when log_dir is set) + callbacks, once per iteration."""

    def __init__(self, log_dir: Path | None, print_table: bool = True) -> None:
        self.log_dir = log_dir
        self.print_table = print_table
        self.callbacks: list[LoggerFn] = []
        self._bar: tqdm | None = None
        self._file: TextIO | None = None

    def add_logger(self, fn: LoggerFn) -> None:
        """Call `fn(metrics, iteration)` every iteration (e.g. a wandb writer)."""
        self.callbacks.append(fn)

    def start(self, start_iteration: int, end_iteration: int) -> None:
        """Open the progress bar over [start, end) and the metrics file (append mode)."""
        self.close()
        self._bar = tqdm(
            total=end_iteration - start_iteration, desc="learning", unit="it", dynamic_ncols=True
        )
        self._end = end_iteration
        if self.log_dir is not None:
            self.log_dir.mkdir(parents=True, exist_ok=True)
            self._file = open(self.log_dir / "metrics.jsonl", "a", encoding="utf-8")  # noqa: SIM115

    def log(self, metrics: dict[str, float], iteration: int) -> None:
        """Record the metrics of `iteration` (the number of completed learning iterations)."""
        if self.print_table:
            tqdm.write(format_table(metrics, f"iteration {iteration}/{self._end}"))
        if self._file is not None:
            record = {"iteration": iteration}
            record.update({k: (v if math.isfinite(v) else None) for k, v in metrics.items()})
            self._file.write(json.dumps(record) + "\n")
            self._file.flush()
        for fn in self.callbacks:
            fn(metrics, iteration)
        if self._bar is not None:
            reward = metrics.get("Train/mean_reward")
            self._bar.set_postfix(mean_reward="n/a" if reward is None else f"{reward:.3f}", refresh=False)
            self._bar.update(1)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None
        if self._file is not None:
            self._file.close()
            self._file = None
