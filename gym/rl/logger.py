"""Training metrics: episode statistics (rsl_rl rewbuffer / lenbuffer), console (tqdm bar + table),
`metrics.jsonl`, and user callbacks (`MetricsLogger.add_logger`).

Metric keys (one flat dict per iteration, all floats):
    Train/mean_reward, Train/mean_episode_length   over the last <= 100 finished episodes
                                                   (absent until an episode has finished)
    Episode/<term>                                 sum of extras["episode"][term] over this iteration's
                                                   steps / sum of extras["episode_count"] (absent when
                                                   no episode ended this iteration)
    Episode/nonfinite_resets                       envs reset this iteration because their physics,
                                                   observations or rewards went non-finite
    Curriculum/<name>                              the env's last extras["curriculum"][name] of the
                                                   iteration (e.g. terrain_level; mean over ranks)
    Perf/fps, Perf/collection_time, Perf/learning_time, Perf/total_timesteps, Perf/wall_time
    Loss/value_loss, Loss/surrogate_loss, Loss/entropy, Loss/approx_kl, Loss/clip_fraction,
    Loss/explained_variance, Loss/learning_rate
    Policy/mean_action_std
"""

from __future__ import annotations

import json
import math
import warnings
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TextIO

import torch
from tqdm import tqdm

from gym.rl.checkpoint import atomic_write_text

LoggerFn = Callable[[dict[str, float], int], None]


class EpisodeStats:
    """Per-env running episode reward sums / lengths and the last `buffer_len` finished episodes,
    all kept on `device` so that `step` never synchronises with the host; `pop_metrics` reads
    everything once per iteration.

    The finished-episode windows are ring buffers of `buffer_len + 1` slots: the last slot is a
    dummy that envs which did not finish write into, so `step` needs no boolean-mask indexing.
    """

    def __init__(self, num_envs: int, device: torch.device | str, buffer_len: int = 100) -> None:
        if buffer_len < 1:
            raise ValueError(f"buffer_len must be >= 1, got {buffer_len}")
        self.device = torch.device(device)
        self.buffer_len = buffer_len
        self.current_reward_sum = torch.zeros(num_envs, device=self.device)
        self.current_length = torch.zeros(num_envs, device=self.device)
        self.reward_ring = torch.zeros(buffer_len + 1, device=self.device)
        self.length_ring = torch.zeros(buffer_len + 1, device=self.device)
        self.write_ptr = torch.zeros((), dtype=torch.long, device=self.device)  # next slot to write
        self.num_finished = torch.zeros((), dtype=torch.long, device=self.device)  # ever, capped below
        self.nonfinite_resets = torch.zeros((), dtype=torch.long, device=self.device)  # this iteration
        self.term_sums: dict[str, torch.Tensor] = {}  # this iteration, 0-dim
        self.term_counts: dict[str, torch.Tensor] = {}  # this iteration, 0-dim
        self.curriculum: dict[str, torch.Tensor] = {}  # latest extras["curriculum"] values, 0-dim

    def step(self, rewards: torch.Tensor, dones: torch.Tensor, extras: Mapping[str, Any]) -> None:
        """Fold in one env step: rewards (N,) float, dones (N,) bool (before any time-out
        bootstrap) and the env's extras ("episode", "episode_count", "nonfinite_resets"; each
        optional). Device tensor arithmetic only: no host read."""
        done = dones.reshape(-1).to(self.device, torch.bool)
        self.current_reward_sum += rewards.reshape(-1).to(self.current_reward_sum)
        self.current_length += 1.0
        # slot of each finished env: write_ptr, write_ptr + 1, ... in env order; only the newest
        # buffer_len of them are kept (more could collide), the others go to the dummy slot
        order = torch.cumsum(done.long(), 0)
        total = order[-1]
        keep = done & (order > total - self.buffer_len)
        slots = torch.where(keep, (self.write_ptr + order - 1) % self.buffer_len, self.buffer_len)
        self.reward_ring.scatter_(0, slots, self.current_reward_sum)
        self.length_ring.scatter_(0, slots, self.current_length)
        self.write_ptr.copy_((self.write_ptr + total) % self.buffer_len)
        self.num_finished.copy_(torch.clamp(self.num_finished + total, max=self.buffer_len))
        self.current_reward_sum.masked_fill_(done, 0.0)
        self.current_length.masked_fill_(done, 0.0)

        episode = extras.get("episode")
        if episode:
            count = extras.get("episode_count")
            # without "episode_count" the values are per-step means (old contract): weight 1 each
            count = torch.as_tensor(1.0 if count is None else count, device=self.device)
            for name, value in episode.items():
                if name not in self.term_sums:
                    self.term_sums[name] = torch.zeros((), device=self.device)
                    self.term_counts[name] = torch.zeros((), device=self.device)
                self.term_sums[name] += torch.as_tensor(value, device=self.device).float().sum()
                self.term_counts[name] += count.float().sum()
        nonfinite = extras.get("nonfinite_resets")
        if nonfinite is not None:
            self.nonfinite_resets += torch.as_tensor(nonfinite, device=self.device).long().sum()
        self.curriculum.update(extras.get("curriculum") or {})

    def pop_metrics(self) -> dict[str, float]:
        """Train/* over the finished-episode windows, Episode/* of this iteration (one host read);
        clears this iteration's Episode/* accumulators."""
        return self.metrics_from_totals(self.pop_totals())

    def pop_totals(self) -> dict[str, float]:
        """This iteration's raw totals (one host read), which add up over ranks: "reward_sum" and
        "length_sum" of the finished-episode window, "episodes" in it, "nonfinite_resets", and per
        reward term "sum/<term>" and "count/<term>". Clears the Episode/* accumulators."""
        names, levels = list(self.term_sums), list(self.curriculum)
        packed = torch.cat([
            self.reward_ring[:-1], self.length_ring[:-1], self.num_finished.float().reshape(1),
            self.nonfinite_resets.float().reshape(1),
            torch.stack([self.term_sums[n] for n in names]) if names else torch.zeros(0, device=self.device),
            torch.stack([self.term_counts[n] for n in names]) if names else torch.zeros(0, device=self.device),
            torch.stack([torch.as_tensor(self.curriculum[n], device=self.device).float() for n in levels])
            if levels else torch.zeros(0, device=self.device),
        ]).tolist()
        L = self.buffer_len
        rewards, lengths, n, nonfinite = packed[:L], packed[L:2 * L], int(packed[2 * L]), packed[2 * L + 1]
        start = 2 * L + 2
        sums, counts = packed[start:start + len(names)], packed[start + len(names):start + 2 * len(names)]
        totals = {"reward_sum": sum(rewards[:n]), "length_sum": sum(lengths[:n]), "episodes": float(n),
                  "nonfinite_resets": nonfinite}
        for name, total, count in zip(names, sums, counts):
            totals[f"sum/{name}"], totals[f"count/{name}"] = total, count
        for name, value in zip(levels, packed[start + 2 * len(names):]):  # summed over ranks: a mean
            totals[f"curriculum/{name}"], totals[f"count/curriculum/{name}"] = value, 1.0
        self.term_sums.clear()
        self.term_counts.clear()
        self.nonfinite_resets.zero_()
        return totals

    @staticmethod
    def metrics_from_totals(totals: Mapping[str, float]) -> dict[str, float]:
        """`pop_totals()` (of one rank, or summed over ranks) -> Train/* and Episode/* metrics."""
        metrics: dict[str, float] = {}
        n = totals["episodes"]
        if n > 0:
            metrics["Train/mean_reward"] = totals["reward_sum"] / n
            metrics["Train/mean_episode_length"] = totals["length_sum"] / n
        for key, total in totals.items():
            if key.startswith("sum/") and totals[f"count/{key[4:]}"] > 0:
                metrics[f"Episode/{key[4:]}"] = total / totals[f"count/{key[4:]}"]
        metrics["Episode/nonfinite_resets"] = totals["nonfinite_resets"]
        for key, total in totals.items():
            if key.startswith("curriculum/"):
                metrics[f"Curriculum/{key[11:]}"] = total / totals[f"count/{key}"]
        return metrics

    def reset_running(self) -> None:
        """Forget the unfinished episodes (the envs restarted from fresh resets, e.g. after a resume)."""
        self.current_reward_sum.zero_()
        self.current_length.zero_()

    def state_dict(self) -> dict[str, torch.Tensor]:
        """The finished-episode windows (copies): what a resumed run needs to continue Train/*."""
        return {"reward_ring": self.reward_ring.clone(), "length_ring": self.length_ring.clone(),
                "write_ptr": self.write_ptr.clone(), "num_finished": self.num_finished.clone()}

    def load_state_dict(self, state: Mapping[str, torch.Tensor]) -> None:
        """Restore `state_dict()`; raises ValueError when the window length differs."""
        for key in ("reward_ring", "length_ring", "write_ptr", "num_finished"):
            if key not in state:
                raise ValueError(f"episode statistics lack {key!r}")
        if state["reward_ring"].shape != self.reward_ring.shape:
            raise ValueError(f"episode statistics window holds {state['reward_ring'].numel() - 1} "
                             f"episodes in the checkpoint but {self.buffer_len} here")
        self.reward_ring.copy_(state["reward_ring"])
        self.length_ring.copy_(state["length_ring"])
        self.write_ptr.copy_(state["write_ptr"])
        self.num_finished.copy_(state["num_finished"])
        self.reset_running()


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
        self._start = self._end = 0
        self._wall_budget_s: float | None = None

    def add_logger(self, fn: LoggerFn) -> None:
        """Call `fn(metrics, iteration)` every iteration (e.g. a wandb writer)."""
        self.callbacks.append(fn)

    def start(self, start_iteration: int, end_iteration: int, wall_budget_s: float | None = None) -> None:
        """Open the progress bar over [start, end) and the metrics file (append mode), first
        dropping records of iterations > start_iteration (a resume from an earlier checkpoint in
        the same run folder) so that no iteration is ever recorded twice.

        With `wall_budget_s` (runner.max_wall_time_min in seconds) the bar's total and ETA follow
        the budget: after each iteration the total becomes the iterations done plus those that fit
        in the time left at the mean pace so far (`Perf/wall_time`), at most end - start."""
        self.close()
        self._bar = tqdm(
            total=end_iteration - start_iteration, desc="learning", unit="it", dynamic_ncols=True
        )
        self._start, self._end = start_iteration, end_iteration
        self._wall_budget_s = wall_budget_s
        if self.log_dir is not None:
            self.log_dir.mkdir(parents=True, exist_ok=True)
            path = self.log_dir / "metrics.jsonl"
            drop_records_after(path, start_iteration)
            self._file = open(path, "a", encoding="utf-8")  # noqa: SIM115

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
            wall = metrics.get("Perf/wall_time")
            if self._wall_budget_s is not None and wall is not None and wall > 0:
                done = self._bar.n + 1
                left = math.ceil(max(self._wall_budget_s - wall, 0.0) * done / wall)  # iterations that fit
                self._bar.total = min(self._end - self._start, done + left)
            self._bar.update(1)

    def write(self, text: str) -> None:
        """Print a line above the progress bar."""
        tqdm.write(text)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None
        if self._file is not None:
            self._file.close()
            self._file = None


def drop_records_after(path: Path, iteration: int) -> int:
    """Rewrite the metrics file `path` atomically without the records of iterations > `iteration`
    and without unreadable lines (e.g. one cut short by a crash). Returns the number dropped;
    a missing file is left missing."""
    if not path.is_file():
        return 0
    keep, dropped = [], 0
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            record_iteration = int(json.loads(line)["iteration"])
        except (ValueError, KeyError, TypeError):
            dropped += 1
            continue
        if record_iteration <= iteration:
            keep.append(line)
        else:
            dropped += 1
    if dropped:
        atomic_write_text(path, "".join(line + "\n" for line in keep))
        warnings.warn(f"{path}: dropped {dropped} record(s) after iteration {iteration} (training resumes "
                      f"from iteration {iteration}; each iteration is recorded once)", stacklevel=2)
    return dropped
