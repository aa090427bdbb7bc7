"""Helper of tests/test_distributed.py: train.py on 2 CPU ranks whose rank 1 raises in its second PPO
update. Run like train.py (`python tests/distributed_failing_rank.py --num_processes 2 ...`): this
process launches the ranks (running this file); each rank patches PPO.update, then runs train.py's main."""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from gym.rl.ppo import PPO  # noqa: E402
from gym.utils.cli import get_args  # noqa: E402
from gym.utils.launch import LAUNCHED_ENV, launch, launch_count  # noqa: E402


def fail_on_rank_1() -> None:
    """Make rank 1's second PPO.update raise (a stand-in for an OOM or a bug on one rank)."""
    original = PPO.update
    calls = {"n": 0}

    def update(self: PPO) -> dict[str, float]:
        calls["n"] += 1
        if self.dist.rank == 1 and calls["n"] == 2:
            raise RuntimeError("injected failure of rank 1")
        return original(self)

    PPO.update = update


if __name__ == "__main__":
    argv = sys.argv[1:]
    if not os.environ.get(LAUNCHED_ENV):
        sys.exit(launch(Path(__file__).resolve(), argv, get_args(argv), launch_count(get_args(argv)), 20))
    fail_on_rank_1()
    spec = importlib.util.spec_from_file_location("train_script", ROOT / "gym" / "scripts" / "train.py")
    train = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(train)
    train.main(argv)
