"""Checkpoint files: atomic writes and validated reads (`CheckpointError` names the file and the problem)."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

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


class CheckpointError(ValueError):
    """A checkpoint file is missing, unreadable, incomplete or does not fit the model / env."""


def atomic_save(obj: Any, path: str | Path) -> Path:
    """torch.save to a temp file in the target folder, flush + fsync, then os.replace onto `path`.

    A crash at any point leaves either the old file or the new one, never a truncated file, and
    the temp file is removed when saving fails.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(obj, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp_name, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
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
