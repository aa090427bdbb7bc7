"""Task registry: name -> (env class, env config, train config), legged_gym style.

    task_registry.register("asimov", Asimov, AsimovCfg(), AsimovCfgPPO())
    task = resolve_task_cfgs(args)          # configs resolved and validated, nothing built yet
    env = task.make_env()
    runner = task.make_runner(env, log_dir)
"""

from __future__ import annotations

import copy
import difflib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

PLAY_NUM_ENVS = 16  # play.py's default number of envs (before --num_envs / --set)


class UnknownTaskError(KeyError):
    """Raised for a task name that is not registered; the message lists the registered ones."""

    def __str__(self) -> str:
        return str(self.args[0])


class TaskRegistry:
    """Registered tasks: name -> env class, env config and train config (instances, copied on use)."""

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
        """The env class of task `name`; UnknownTaskError lists the registered tasks."""
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
    """"cuda:0" when torch sees a CUDA device, else "cpu"."""
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


@dataclass
class ResolvedTask:
    """A task's configs after cpu_defaults, flags, `--set` and seeding, validated; nothing built yet."""

    name: str
    task_class: type
    env_cfg: Any
    train_cfg: Any
    sim_device: str
    rl_device: str
    load_path: Path | None  # checkpoint to load (play, or --resume), already checked to exist

    def make_env(self) -> Any:
        """Build the env (model compile, physics backend, buffers): the heavy work."""
        return self.task_class(self.env_cfg, sim_device=self.sim_device, physics=self.env_cfg.sim.physics)

    def make_runner(self, env: Any, log_dir: str | Path | None, dist: Any = None) -> Any:
        """The PPO runner for `env`, on `rl_device`, logging to `log_dir` (None: no files); `dist`: this
        rank's `gym.rl.distributed.Distributed` in a multi-rank run (None: a single process)."""
        from gym.rl import OnPolicyRunner

        return OnPolicyRunner(env, self.train_cfg, log_dir, device=self.rl_device, dist=dist)


def resolve_task_cfgs(args: Any, for_play: bool = False, registry: TaskRegistry | None = None,
                      logs_dir: str | Path | None = None) -> ResolvedTask:
    """Resolve and validate the configs of `args.task` before any heavy work; the one entry point of
    train.py, play.py and sweeps.

    Order: registered configs (with `cpu_defaults` on a CPU sim device), play defaults (`for_play`:
    16 envs), flags and `--set` overrides, play's fixed command (`for_play`, `args.command`), seed,
    then validation of every value, name and file (`gym.utils.validation`), then the checkpoint to
    load (`for_play` or `runner.resume`) under `logs_dir` (default: `gym.LOGS_DIR`), or play's
    `args.checkpoint_file` (any path), checked against the robot, its joints and the network sizes.
    For play, the policy shape of the run that wrote the checkpoint is used (its train_cfg.yaml,
    else the checkpoint's own tensor shapes).

    Raises UnknownTaskError, ConfigKeyError / ValueError (a bad `--set`), ConfigError (every invalid
    value, listed together) and FileNotFoundError (no such run or checkpoint; lists those that exist).
    """
    import gym
    from gym.utils.cli import update_cfgs_from_args
    from gym.utils.run_dirs import get_load_path
    from gym.utils.seeding import set_seed
    from gym.utils.validation import ConfigError, checkpoint_problems, config_problems

    if registry is None:
        import gym.envs  # noqa: F401 - registers the built-in tasks

        registry = task_registry
    name = args.task
    task_class = registry.get_task_class(name)
    env_cfg, train_cfg = registry.get_cfgs(name, sim_device=resolve_sim_device(args))
    if for_play:
        env_cfg.env.num_envs = PLAY_NUM_ENVS
    env_cfg, train_cfg = update_cfgs_from_args(env_cfg, train_cfg, args)
    if for_play:
        configure_play(env_cfg, getattr(args, "command", None) or [0.5, 0.0, 0.0])
    train_cfg.seed = set_seed(train_cfg.seed)
    sim_device = resolve_sim_device(args, env_cfg)
    rl_device = getattr(args, "rl_device", None) or sim_device
    problems = device_problems(sim_device, rl_device, env_cfg.sim.physics)
    problems += config_problems(task_class, env_cfg, train_cfg)
    if problems:
        raise ConfigError(problems, name)
    load_path = None
    r = train_cfg.runner
    checkpoint_file = getattr(args, "checkpoint_file", None) if for_play else None
    if checkpoint_file:
        load_path = checkpoint_file_path(checkpoint_file, r)
        if not use_saved_policy_shape(train_cfg, load_path.parent / "train_cfg.yaml"):
            use_checkpoint_policy_shape(train_cfg, load_path)
    elif for_play or r.resume:
        logs = Path(logs_dir) if logs_dir is not None else gym.LOGS_DIR
        load_path = get_load_path(logs / r.experiment_name, r.load_run, r.checkpoint)
        if for_play:
            use_saved_policy_shape(train_cfg, load_path.parent / "train_cfg.yaml")
    if for_play and load_path is not None:
        use_saved_observations(env_cfg, load_path.parent / "env_cfg.yaml")
    if load_path is not None:
        problems = checkpoint_problems(load_path, env_cfg, train_cfg)
        if problems:
            raise ConfigError(problems, name)
    return ResolvedTask(name, task_class, env_cfg, train_cfg, sim_device, rl_device, load_path)


def device_problems(sim_device: str, rl_device: str, physics: str) -> list[str]:
    """Problems of the device flags: unparsable, CUDA without CUDA, MuJoCo C on a GPU."""
    import torch

    problems = []
    for flag, device in (("--sim_device", sim_device), ("--rl_device", rl_device)):
        try:
            kind = torch.device(device).type
        except (RuntimeError, TypeError):
            problems.append(f"{flag}={device!r}: not a device; use cpu, cuda or cuda:<index>")
            continue
        if kind == "cuda" and not torch.cuda.is_available():
            problems.append(f"{flag}={device!r}: torch sees no CUDA device here; use {flag}=cpu")
        elif flag == "--sim_device" and kind not in ("cpu", "cuda"):
            problems.append(f"{flag}={device!r}: physics runs on cpu or cuda only; use {flag}=cpu")
        elif flag == "--sim_device" and physics == "mujoco" and kind != "cpu":
            problems.append(f"sim.physics='mujoco' with {flag}={device!r}: the MuJoCo C backend runs on "
                            "the CPU only; use --physics=warp for CUDA or --sim_device=cpu")
    return problems


def command_fraction_keys(commands: Any) -> list[str]:
    """Names of the special-command fractions on a `commands` config (`rel_*_envs`: standing, turn in
    place, slow, heading, ...), so a new fraction is validated and switched off in play without a list."""
    return [key for key in dir(commands) if key.startswith("rel_") and key.endswith("_envs")]


def configure_play(env_cfg: Any, command: list[float]) -> None:
    """A fixed command, no pushes, noise or friction randomization; every env tracks the same command."""
    c = env_cfg.commands
    c.ranges.lin_vel_x, c.ranges.lin_vel_y, c.ranges.ang_vel_yaw = ([v, v] for v in command)
    c.heading_command = False
    for key in command_fraction_keys(c):  # no standing, turn-in-place, slow or heading draws in play
        setattr(c, key, 0.0)
    c.resampling_time_range, c.curriculum = [1e9, 1e9], False
    env_cfg.domain_rand.push_robots = False
    env_cfg.domain_rand.randomize_friction = False
    env_cfg.noise.add_noise = False


def checkpoint_file_path(path: str | Path, runner_cfg: Any) -> Path:
    """play.py `--checkpoint_file`: the file itself (anywhere, not only under logs/). Raises
    FileNotFoundError (no such file) or ValueError (combined with --load_run / --checkpoint)."""
    if runner_cfg.load_run not in (None, -1, "-1") or runner_cfg.checkpoint not in (None, -1):
        raise ValueError("--checkpoint_file names the checkpoint itself; drop --load_run / --checkpoint "
                         "(they pick one under logs/<experiment_name>/)")
    file = Path(path).expanduser().resolve()
    if not file.is_file():
        where = "no such file" if not file.exists() else "not a file"
        raise FileNotFoundError(f"--checkpoint_file {path}: {where}; pass the path of a model_<iteration>.pt "
                                "(e.g. logs/<experiment>/<run>/model_1500.pt)")
    return file


def use_checkpoint_policy_shape(train_cfg: Any, checkpoint: Path) -> None:
    """Hidden sizes and observation normalization read from the checkpoint's own tensors (for a
    file without its run's train_cfg.yaml); the activation stays the task's."""
    from gym.rl.checkpoint import hidden_dims, peek_checkpoint

    ckpt = peek_checkpoint(checkpoint)
    model = ckpt.get("model_state_dict") if ckpt is not None else None
    if not isinstance(model, dict):
        return
    for net in ("actor", "critic"):
        dims = hidden_dims(model, net)
        if dims is not None:
            setattr(train_cfg.policy, f"{net}_hidden_dims", dims)
    if isinstance(ckpt.get("obs_norm_state_dict"), dict):
        train_cfg.runner.empirical_normalization = bool(ckpt["obs_norm_state_dict"])


def use_saved_policy_shape(train_cfg: Any, saved_cfg: Path) -> bool:
    """Build the policy as the run that wrote the checkpoint did (e.g. trained on GPU, played on CPU);
    False when there is no `saved_cfg` file."""
    if not saved_cfg.is_file():
        return False
    saved = yaml.safe_load(saved_cfg.read_text()) or {}
    for key, value in saved.get("policy", {}).items():
        if hasattr(train_cfg.policy, key):
            setattr(train_cfg.policy, key, value)
    if "empirical_normalization" in saved.get("runner", {}):
        train_cfg.runner.empirical_normalization = saved["runner"]["empirical_normalization"]
    return True


def use_saved_observations(env_cfg: Any, saved_cfg: Path) -> bool:
    """Play a checkpoint with the observations its run trained with (e.g. `--set env.observations=...`):
    `env.observations`, `env.critic_observations`, `normalization` (scales, clips) and, where the
    config has one, the `gait` clock, from the run's `saved_cfg` (env_cfg.yaml). False when there is
    no such file (the registered task's observations stay)."""
    from gym.utils.export import apply_saved_cfg

    if not saved_cfg.is_file():
        return False
    saved = yaml.safe_load(saved_cfg.read_text()) or {}
    for key in ("observations", "critic_observations"):
        if key in saved.get("env", {}):
            setattr(env_cfg.env, key, list(saved["env"][key]))
    for group in ("normalization", "gait"):
        if isinstance(saved.get(group), dict) and hasattr(env_cfg, group):
            apply_saved_cfg(getattr(env_cfg, group), saved[group])
    return True
