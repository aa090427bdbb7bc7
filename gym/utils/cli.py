"""Command-line flags (legged_gym's set) and dotted config overrides (`--set a.b.c=value`)."""

from __future__ import annotations

import argparse
import ast
import difflib
from typing import Any

from gym.envs.base.base_config import public_attrs


class ConfigKeyError(KeyError):
    """An override names a key that no config has; the message lists the closest valid keys."""

    def __str__(self) -> str:
        return str(self.args[0])


def get_args(argv: list[str] | None = None, description: str = "", extra: list[dict] | None = None):
    """Parse legged_gym's flags (plus `--physics`, `--set` and `extra` argparse specs)."""
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--task", default="asimov", help="registered task name")
    p.add_argument("--resume", action="store_true", help="resume training from a checkpoint")
    p.add_argument("--experiment_name", help="logs/<experiment_name>/ (default: the task's train config)")
    p.add_argument("--run_name", help="suffix of the run folder name")
    p.add_argument("--load_run", help="run folder to load from (-1 = newest)")
    p.add_argument("--checkpoint", type=int, help="model_<checkpoint>.pt to load (-1 = newest)")
    p.add_argument("--num_envs", type=int, help="number of parallel envs")
    p.add_argument("--seed", type=int, help="random seed")
    p.add_argument("--max_iterations", type=int, help="PPO iterations to run")
    p.add_argument("--max_wall_time_min", type=float, metavar="MINUTES",
                   help="train.py: stop and save after this many minutes of training, even before "
                        "--max_iterations (asimov on a CPU: 60)")
    p.add_argument("--headless", action="store_true", help="no viewer")
    p.add_argument("--sim_device", help="physics device: cpu, cuda, cuda:0 (default: cuda:0 if present)")
    p.add_argument("--rl_device", help="policy / PPO device (default: the sim device)")
    p.add_argument("--physics", choices=["warp", "mujoco", "auto"],
                   help="physics backend: warp (MuJoCo Warp) or mujoco (MuJoCo C, CPU threads)")
    p.add_argument("--set", nargs="+", default=[], metavar="KEY=VALUE",
                   help="config overrides, e.g. rewards.scales.feet_air_time=0.5 algorithm.learning_rate=3e-4")
    # several ranks on this machine (gym/utils/launch.py); several machines: torchrun
    p.add_argument("--gpu_ids", nargs="+", metavar="ID",
                   help="train.py: one rank per GPU, e.g. --gpu_ids 0 1, or 'all' (--num_envs is per rank)")
    p.add_argument("--num_processes", type=int, metavar="N",
                   help="train.py: N CPU ranks (gloo) on this machine (--num_envs is per rank)")
    # wandb (gym/utils/wandb_logging.py): off unless one of these is given or user/wandb_config.json exists
    p.add_argument("--wandb_project", help="wandb project (turns wandb logging on; default: the experiment name)")
    p.add_argument("--wandb_entity", help="wandb entity: user or team (turns wandb logging on)")
    p.add_argument("--wandb_mode", choices=["online", "offline", "disabled"],
                   help="wandb mode (default: WANDB_MODE, else online; without network a run goes offline)")
    p.add_argument("--wandb_group", help="wandb run group")
    p.add_argument("--wandb_tags", nargs="+", metavar="TAG", help="wandb run tags")
    p.add_argument("--wandb_upload_models", action=argparse.BooleanOptionalAction, default=None,
                   help="log each checkpoint as a wandb artifact (default: off)")
    # videos (gym/utils/video.py): play.py --video, train.py --video_interval
    p.add_argument("--video_interval", type=int, metavar="N",
                   help="train.py: record a clip every N iterations into <run>/videos/ (and wandb when on)")
    p.add_argument("--video_length", type=float, default=5.0, metavar="SECONDS",
                   help="length of a video [s of simulated time] (default 5)")
    p.add_argument("--video_size", type=int, nargs=2, default=None, metavar=("W", "H"),
                   help="video size [px], even numbers (default: play 640 480, training clips 320 240)")
    for spec in extra or []:
        spec = dict(spec)
        p.add_argument(spec.pop("name"), **spec)
    return p.parse_args(argv)


def update_cfgs_from_args(env_cfg: Any, train_cfg: Any, args: argparse.Namespace) -> tuple[Any, Any]:
    """Apply the flags that map onto config fields, then every `--set` override. Either cfg may be None."""
    if env_cfg is not None:
        if getattr(args, "num_envs", None) is not None:
            env_cfg.env.num_envs = args.num_envs
        if getattr(args, "physics", None) is not None:
            env_cfg.sim.physics = args.physics
    if train_cfg is not None:
        if getattr(args, "seed", None) is not None:
            train_cfg.seed = args.seed
        for flag in ("max_iterations", "max_wall_time_min", "experiment_name", "run_name", "load_run", "checkpoint"):
            if getattr(args, flag, None) is not None:
                setattr(train_cfg.runner, flag, getattr(args, flag))
        if getattr(args, "resume", False):
            train_cfg.runner.resume = True
    overrides = getattr(args, "set", None) or []
    if overrides:
        apply_overrides(env_cfg, train_cfg, overrides)
    return env_cfg, train_cfg


def flat_keys(cfg: Any, prefix: str = "") -> list[str]:
    """Every dotted leaf key of a config object, e.g. 'rewards.scales.pose'."""
    keys = []
    for name, value in public_attrs(cfg).items():
        if _is_group(value):
            keys += flat_keys(value, f"{prefix}{name}.")
        else:
            keys.append(prefix + name)
    return keys


def apply_overrides(env_cfg: Any, train_cfg: Any, overrides: list[str]) -> None:
    """Set each "dotted.key=value" on whichever config has the key, parsed to the existing type
    ("None" unsets a key its config class annotates as optional, e.g. `float | None`).

    Raises ConfigKeyError for an unknown key (listing the closest valid keys) and ValueError for a
    value that does not parse as the attribute's type.
    """
    cfgs = [c for c in (env_cfg, train_cfg) if c is not None]
    for item in overrides:
        key, sep, text = item.partition("=")
        if not sep or not key:
            raise ValueError(f"override {item!r} must look like key=value, e.g. rewards.scales.pose=0.5")
        node, leaf = _leaf(cfgs, key)
        unset = text.strip() == "None" and _optional(node, leaf)  # e.g. runner.max_wall_time_min=None
        setattr(node, leaf, None if unset else parse_value(text, getattr(node, leaf), key))


def _optional(node: Any, leaf: str) -> bool:
    """Whether a config class in `node`'s MRO annotates `leaf` as optional (`... | None`)."""
    for cls in type(node).__mro__:
        annotation = getattr(cls, "__annotations__", {}).get(leaf)
        if annotation is not None:
            return "None" in str(annotation)
    return False


def apply_values(env_cfg: Any, train_cfg: Any, values: dict[str, Any]) -> None:
    """Set already-typed values by dotted key (e.g. a config's `cpu_defaults`); unknown keys raise."""
    cfgs = [c for c in (env_cfg, train_cfg) if c is not None]
    for key, value in values.items():
        node, leaf = _leaf(cfgs, key)
        setattr(node, leaf, value)


def _leaf(cfgs: list[Any], key: str) -> tuple[Any, str]:
    """(object holding the attribute, attribute name) for dotted `key` in whichever config has it.

    Raises ConfigKeyError listing the closest valid keys.
    """
    owner = next((c for c in cfgs if key in flat_keys(c)), None)
    if owner is None:
        valid = [k for c in cfgs for k in flat_keys(c)]
        close = difflib.get_close_matches(key, valid, n=5, cutoff=0.5)
        raise ConfigKeyError(f"unknown config key {key!r}; closest valid keys: {close or valid[:10]}")
    *path, leaf = key.split(".")
    for part in path:
        owner = getattr(owner, part)
    return owner, leaf


def parse_value(text: str, current: Any, key: str = "value") -> Any:
    """Parse `text` to the type of `current` (bool, int, float, str, list, dict, None)."""
    try:
        if isinstance(current, bool):
            lowered = text.strip().lower()
            if lowered in ("true", "1", "yes", "on"):
                return True
            if lowered in ("false", "0", "no", "off"):
                return False
            raise ValueError("expected true/false")
        if isinstance(current, int):
            number = float(text)
            if not number.is_integer():
                raise ValueError("expected an integer")
            return int(number)
        if isinstance(current, float):
            return float(text)
        if isinstance(current, str):
            return text
        value = ast.literal_eval(text)
        if isinstance(current, (list, tuple)) and not isinstance(value, (list, tuple)):
            raise ValueError("expected a list like [0.1, 0.2]")
        if isinstance(current, dict) and not isinstance(value, dict):
            raise ValueError("expected a dict like {'knee': 60.0}")
        return value
    except (ValueError, SyntaxError) as exc:
        raise ValueError(f"bad value {text!r} for {key} (currently {current!r}, "
                         f"type {type(current).__name__}): {exc}") from None


def _is_group(value: Any) -> bool:
    return hasattr(value, "__dict__") and not isinstance(value, type) and type(value).__module__ != "builtins"
