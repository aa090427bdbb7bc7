"""Checkpoint files: atomic writes and validated reads (`CheckpointError` names the file and the problem)."""

from __future__ import annotations

import contextlib
import errno
import math
import os
import tempfile
import zipfile
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any, BinaryIO

import torch

CHECKPOINT_KEYS = (
    "model_state_dict",
    "optimizer_state_dict",
    "iter",
    "learning_rate",
    "obs_norm_state_dict",
    "critic_obs_norm_state_dict",
    "infos",
)
# Written since checkpoints resume exactly; older files without them still load.
OPTIONAL_CHECKPOINT_KEYS = ("rng_state", "episode_stats", "env_info", "env_state")


class CheckpointError(ValueError):
    """A checkpoint file is missing, unreadable, incomplete or does not fit the model / env."""


class CheckpointWriteError(CheckpointError, OSError):
    """Writing a checkpoint failed (disk full, no permission, ...); the previous file is intact.

    Both a `CheckpointError` and an `OSError`; `errno` is the underlying error's number.
    """


def _write_problem(path: Path, e: OSError) -> CheckpointWriteError:
    causes = {
        errno.ENOSPC: "the disk is full: free space or set LEGGED_GYM_LOGS_DIR to a folder on another disk",
        errno.EDQUOT: "the disk quota is exceeded: free space or set LEGGED_GYM_LOGS_DIR elsewhere",
        errno.EACCES: f"no permission to write in {path.parent}: fix its permissions or set LEGGED_GYM_LOGS_DIR",
        errno.EPERM: f"no permission to write in {path.parent}: fix its permissions or set LEGGED_GYM_LOGS_DIR",
        errno.EROFS: f"{path.parent} is on a read-only file system: set LEGGED_GYM_LOGS_DIR elsewhere",
    }
    cause = causes.get(e.errno or -1, f"{type(e).__name__}: {e}")
    state = "the previous file there is unchanged" if path.exists() else "no file was written"
    error = CheckpointWriteError(f"cannot write checkpoint {path}: {cause} ({state})")
    error.errno = e.errno
    return error


def atomic_save(obj: Any, path: str | Path) -> Path:
    """torch.save `obj` to `path` with `replace_atomically`: a crash at any point leaves either the
    old file or the new one, never a truncated file. Raises `CheckpointWriteError` (an OSError)
    naming the path and the cause (disk full, permission, ...) when the file cannot be written.
    """
    path = Path(path)
    try:
        return replace_atomically(path, lambda f: torch.save(obj, f))
    except OSError as e:
        if isinstance(e, CheckpointWriteError):
            raise
        raise _write_problem(path, e) from e


def atomic_write_text(path: str | Path, text: str) -> Path:
    """Write `text` (UTF-8) to `path` with `replace_atomically` (configs, metrics, run info, CSV)."""
    return replace_atomically(Path(path), lambda f: f.write(text.encode("utf-8")))


def replace_atomically(path: Path, write: Callable[[BinaryIO], Any]) -> Path:
    """`write(f)` into a unique temp file in `path`'s folder, flush + fsync, then os.replace onto
    `path` and fsync the folder. The temp file is removed when writing fails; the error (an
    OSError for disk full, permission, ...) propagates. Concurrent writers never share a temp file.
    """
    tmp_name: str | None = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp_name, path)
    except BaseException:
        if tmp_name is not None:
            with contextlib.suppress(OSError):
                os.unlink(tmp_name)
        raise
    _fsync_dir(path.parent)
    return path


def _fsync_dir(folder: Path) -> None:
    """Persist the rename itself (POSIX); a no-op where directories cannot be opened."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def read_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load a checkpoint dict and check that every key in `CHECKPOINT_KEYS` is present."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path}: file does not exist")
    try:
        ckpt = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:  # garbage, truncated, pickled objects that are not plain data, ...
        raise CheckpointError(
            f"checkpoint {path}: not a readable torch checkpoint ({type(e).__name__}: {e})"
        ) from e
    if not isinstance(ckpt, dict):
        raise CheckpointError(f"checkpoint {path}: expected a dict, got {type(ckpt).__name__}")
    missing = [k for k in CHECKPOINT_KEYS if k not in ckpt]
    if missing:
        raise CheckpointError(f"checkpoint {path}: missing keys {missing}")
    return ckpt


def checkpoint_problem(path: str | Path) -> str | None:
    """Cheap readability test without unpickling: None if `path` is a complete torch zip archive
    (every member's CRC checks out), else the problem in words (missing, truncated, corrupt)."""
    path = Path(path)
    try:
        with zipfile.ZipFile(path) as archive:
            bad = archive.testzip()
    except FileNotFoundError:
        return "file does not exist"
    except (zipfile.BadZipFile, OSError, EOFError, ValueError) as e:
        return f"not a readable torch checkpoint (truncated or corrupt: {e})"
    if bad is not None:
        return f"corrupt member {bad!r} (CRC mismatch)"
    return None


def nonfinite_entries(name: str, state: Any) -> list[str]:
    """Keys of the floating-point tensors in a (nested) state dict that hold NaN or Inf,
    e.g. ["model_state_dict.actor.0.weight"]. Reads every tensor (a host sync; not per step)."""
    found: list[str] = []
    if isinstance(state, torch.Tensor):
        if state.is_floating_point() and not bool(torch.isfinite(state).all()):
            found.append(name)
    elif isinstance(state, Mapping):
        for key, value in state.items():
            found += nonfinite_entries(f"{name}.{key}", value)
    elif isinstance(state, list | tuple):
        for i, value in enumerate(state):
            found += nonfinite_entries(f"{name}[{i}]", value)
    elif isinstance(state, float) and not math.isfinite(state):
        found.append(name)
    return found


def save_finite_checkpoint(checkpoint: Mapping[str, Any], path: str | Path, keys: Iterable[str]) -> Path:
    """`atomic_save` after checking that nothing under `keys` is NaN / Inf; raises
    `gym.rl.errors.NonFiniteError` (nothing written) naming the bad entries otherwise."""
    from gym.rl.errors import NonFiniteError

    bad = [entry for key in keys for entry in nonfinite_entries(key, checkpoint[key])]
    if bad:
        raise NonFiniteError(f"refusing to save {path}: non-finite values in {_short(bad)}; "
                             "nothing non-finite is ever written as a checkpoint")
    return atomic_save(dict(checkpoint), path)


def env_info(env: Any) -> dict[str, Any]:
    """{"num_obs", "num_privileged_obs", "num_actions"} of a VecEnv, plus "joint_names" and
    "robot" (cfg.asset.name) where the env has them: what a checkpoint is trained for."""
    info: dict[str, Any] = {"num_obs": int(env.num_obs),
                            "num_privileged_obs": int(env.num_privileged_obs or env.num_obs),
                            "num_actions": int(env.num_actions)}
    joint_names = getattr(env, "joint_names", None)
    if joint_names is not None:
        info["joint_names"] = [str(j) for j in joint_names]
    robot = getattr(getattr(getattr(env, "cfg", None), "asset", None), "name", None)
    if robot:
        info["robot"] = str(robot)
    return info


def env_info_problems(saved: Any, here: Mapping[str, Any]) -> list[str]:
    """Differences in robot and joint names between a checkpoint's env_info and this env's, in
    words (sizes are reported from the network shapes). Checkpoints without env_info pass."""
    if not isinstance(saved, Mapping):
        return []
    problems = []
    if "robot" in saved and "robot" in here and saved["robot"] != here["robot"]:
        problems.append(f"it was trained for robot {saved['robot']!r}; this env is robot {here['robot']!r}")
    old, new = saved.get("joint_names"), here.get("joint_names")
    if old is not None and new is not None and list(old) != list(new):
        if sorted(old) == sorted(new):
            problems.append(f"the joint order differs: checkpoint {list(old)}, env {list(new)}")
        else:
            only_old = [j for j in old if j not in new]
            only_new = [j for j in new if j not in old]
            problems.append(f"it was trained with joints {list(old)}; this env has joints {list(new)} "
                            f"(only in the checkpoint: {only_old}; only in the env: {only_new})")
    return problems


def state_dict_problems(name: str, expected: Mapping[str, Any], found: Mapping[str, Any]) -> list[str]:
    """Human-readable differences (missing / unexpected keys, shape mismatches) between two state dicts."""
    if not isinstance(found, Mapping):
        return [f"{name} is a {type(found).__name__}, not a state dict"]
    problems = []
    missing = sorted(set(expected) - set(found))
    unexpected = sorted(set(found) - set(expected))
    if missing:
        problems.append(f"{name} lacks {_short(missing)}")
    if unexpected:
        problems.append(f"{name} has unexpected {_short(unexpected)}")
    for key in sorted(set(expected) & set(found)):
        want, got = expected[key], found[key]
        if isinstance(want, torch.Tensor) and not isinstance(got, torch.Tensor):
            problems.append(f"{name}[{key!r}] is a {type(got).__name__}, not a tensor")
        elif isinstance(want, torch.Tensor) and want.shape != got.shape:
            problems.append(
                f"{name}[{key!r}] has shape {tuple(got.shape)} in the checkpoint but {tuple(want.shape)} here"
            )
    return problems


def _short(keys: Iterable[str], n: int = 5) -> str:
    keys = list(keys)
    more = f" (+{len(keys) - n} more)" if len(keys) > n else ""
    return f"{keys[:n]}{more}"


def policy_dims_problems(actor_critic: Any, model_state: Any) -> list[str]:
    """Plain-words mismatches of num_obs / num_privileged_obs / num_actions between `actor_critic`
    (an `ActorCritic`) and a checkpoint's "model_state_dict"."""
    if not isinstance(model_state, dict):
        return []
    ac = actor_critic
    checks = [
        ("actor.0.weight", 1, ac.num_actor_obs, "the policy input (num_obs)"),
        ("critic.0.weight", 1, ac.num_critic_obs, "the critic input (num_privileged_obs)"),
        ("log_std", 0, ac.num_actions, "the action size (num_actions)"),
    ]
    problems = []
    for key, dim, here, what in checks:
        tensor = model_state.get(key)
        if isinstance(tensor, torch.Tensor) and tensor.dim() > dim and tensor.shape[dim] != here:
            problems.append(f"{what} is {tensor.shape[dim]} in the checkpoint but {here} in the env")
    return problems


def peek_checkpoint(path: str | Path) -> dict[str, Any] | None:
    """The checkpoint dict at `path` (memory-mapped, CPU), or None when it is not a readable one;
    for checks made before anything is built (`read_checkpoint` / the runner's load report why)."""
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except Exception:  # noqa: BLE001 - unreadable: the runner's load names the file and the reason
        return None
    return ckpt if isinstance(ckpt, dict) else None


def hidden_dims(model_state: Mapping[str, Any], net: str) -> list[int] | None:
    """Hidden layer sizes of `net` ("actor" / "critic") in an `ActorCritic` state dict (its
    Linear layers are `<net>.<index>.weight`), or None when it has no such layers."""
    keys = sorted((k for k in model_state if k.startswith(f"{net}.") and k.endswith(".weight")),
                  key=lambda k: int(k.split(".")[1]))
    return [int(model_state[k].shape[0]) for k in keys[:-1]] if keys else None
