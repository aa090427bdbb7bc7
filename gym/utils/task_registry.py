"""Task registry: name -> (env class, env config, train config), legged_gym style.

    task_registry.register("asimov", Asimov, AsimovCfg(), AsimovCfgPPO())
    env, env_cfg = task_registry.make_env("asimov", args)
    runner, train_cfg = task_registry.make_alg_runner(env, "asimov", args)
"""

from __future__ import annotations

import copy
import difflib
from typing import Any


class UnknownTaskError(KeyError):
    """Raised for a task name that is not registered; the message lists the registered ones."""

    def __str__(self) -> str:
        return str(self.args[0])


class TaskRegistry:
    def __init__(self) -> None:
        self.task_classes: dict[str, type] = {}
        self.env_cfgs: dict[str, Any] = {}
        self.train_cfgs: dict[str, Any] = {}

    def register(self, name: str, task_class: type, env_cfg: Any, train_cfg: Any) -> None:
        """Register `name`; the configs are instances (`AsimovCfg()`), copied on every use."""
        self.task_classes[name] = task_class
        self.env_cfgs[name] = env_cfg
        self.train_cfgs[name] = train_cfg

    def _check(self, name: str) -> None:
        if name not in self.task_classes:
            close = difflib.get_close_matches(name, list(self.task_classes), n=3)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            raise UnknownTaskError(f"unknown task {name!r}.{hint} Registered tasks: {sorted(self.task_classes)}")

    def get_task_class(self, name: str) -> type:
        self._check(name)
        return self.task_classes[name]

    def get_cfgs(self, name: str, sim_device: str | None = None) -> tuple[Any, Any]:
        """Fresh deep copies of (env_cfg, train_cfg) for `name`; the registered ones never change.

        With a CPU `sim_device`, each config's `cpu_defaults` (dotted key -> value) are applied.
        """
        from gym.utils.cli import apply_values

        self._check(name)
        env_cfg, train_cfg = copy.deepcopy(self.env_cfgs[name]), copy.deepcopy(self.train_cfgs[name])
        if sim_device is not None and sim_device.startswith("cpu"):
            for cfg in (env_cfg, train_cfg):
                apply_values(env_cfg, train_cfg, getattr(cfg, "cpu_defaults", {}))
        return env_cfg, train_cfg

    def make_env(self, name: str, args=None, env_cfg=None):
        """Build the env of task `name`; returns (env, env_cfg).

        Without `env_cfg`, the registered config is copied and the flags / `--set` overrides of
        `args` are applied; a given `env_cfg` is used as it is (already resolved).
        """
        from gym.utils.cli import update_cfgs_from_args

        task_class = self.get_task_class(name)
        if env_cfg is None:
            env_cfg, train_cfg = self.get_cfgs(name)
            if args is not None:
                env_cfg, _ = update_cfgs_from_args(env_cfg, train_cfg, args)
        physics = getattr(args, "physics", None)
        env = task_class(env_cfg, sim_device=resolve_sim_device(args, env_cfg), physics=physics)
        return env, env_cfg

    def make_alg_runner(self, env, name: str | None = None, args=None, train_cfg=None, log_dir=None):
        """Build the PPO runner for `env`; returns (runner, train_cfg).

        Without `train_cfg`, the registered one of `name` is copied and `args` applied to it.
        """
        from gym.rl import OnPolicyRunner
        from gym.utils.cli import update_cfgs_from_args

        if train_cfg is None:
            if name is None:
                raise ValueError("make_alg_runner needs a task name or a train_cfg")
            env_cfg, train_cfg = self.get_cfgs(name)
            if args is not None:
                _, train_cfg = update_cfgs_from_args(env_cfg, train_cfg, args)
        rl_device = getattr(args, "rl_device", None) or str(env.device)
        return OnPolicyRunner(env, train_cfg, log_dir, device=rl_device), train_cfg


def default_device() -> str:
    import torch

    return "cuda:0" if torch.cuda.is_available() else "cpu"


def resolve_sim_device(args=None, env_cfg=None) -> str:
    """--sim_device if given; "cpu" when the MuJoCo C backend is forced; else cuda:0 when present."""
    explicit = getattr(args, "sim_device", None)
    if explicit:
        return explicit
    physics = getattr(args, "physics", None) or getattr(getattr(env_cfg, "sim", None), "physics", None)
    return "cpu" if physics == "mujoco" else default_device()


task_registry = TaskRegistry()
