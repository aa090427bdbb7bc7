"""Deployable policy files: ONNX and TorchScript with full-precision metadata (issue 9, data sheet §16).

`export_checkpoint(checkpoint, metadata, out_dir)` writes, for a `model_<it>.pt`:

- `model_<it>.onnx`: torch's exporter (`torch.onnx.export(dynamo=True)`, opset `OPSET`), input
  `obs` (batch, num_obs) float32, output `actions` (batch, num_actions); the batch is dynamic.
  The observation normalizer is folded in: actions = actor((obs - mean) / (std + eps)), so the
  firmware feeds the raw observation the env builds (scaled terms, §16 order). The metadata is in
  `metadata_props`, one entry per key, each value JSON-encoded (floats at full precision: Python's
  repr, never rounded).
- `model_<it>.torchscript.pt`: the same module as TorchScript; the metadata JSON is its extra file
  `metadata.json` (`torch.jit.load(path, _extra_files={"metadata.json": ""})`).
- `model_<it>.json`: the metadata as a JSON sidecar.

The metadata (`policy_metadata(env)` plus the checkpoint's iteration and the run's git commit) holds
the joints in action order with Kp, Kd, effort limits, armature, default positions and per-joint
action scales; the observation terms with dims, scales and slices in order; dt, sim_dt, decimation;
the command ranges; clip values; what the policy computes; for a policy that observes `gait_phase`, the
clock the firmware must run (`gait_clock`). `read_metadata` reads it back from any of
the three files or an `exported/` / run folder; an unreadable file raises `ExportError` naming it.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import warnings
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from gym.envs.base.base_config import public_attrs
from gym.rl.actor_critic import get_activation
from gym.rl.checkpoint import atomic_write_text, read_checkpoint, replace_atomically

OPSET = 18  # >= 17; 18 is the torch exporter's own opset (no version conversion)
EXPORT_DIR = "exported"
METADATA_VERSION = 1
_NORMALIZER_EPS = 1e-2  # EmpiricalNormalization's default eps (y = (x - mean) / (std + eps))


class ExportError(RuntimeError):
    """An exported file is missing, unreadable (truncated, corrupt) or lacks its metadata."""


class ExportedPolicy(nn.Module):
    """obs (B, num_obs) float32 -> deterministic actions (B, num_actions): normalizer + actor MLP."""

    def __init__(self, actor: nn.Sequential, mean: torch.Tensor, std: torch.Tensor, eps: float,
                 tanh_mean: bool) -> None:
        super().__init__()
        self.actor = actor
        self.register_buffer("obs_mean", mean.reshape(1, -1).float().clone())
        self.register_buffer("obs_denominator", (std.reshape(1, -1).float() + eps).clone())
        self.tanh_mean = tanh_mean

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        actions = self.actor((obs - self.obs_mean) / self.obs_denominator)
        if self.tanh_mean:
            actions = torch.tanh(actions)
        return actions


def policy_from_checkpoint(ckpt: Mapping[str, Any], activation: str, tanh_mean: bool = False) -> ExportedPolicy:
    """The `ExportedPolicy` of a checkpoint dict (`read_checkpoint`): the actor's Linear layers
    `actor.<i>.weight/bias` with `activation` between them, the observation normalizer's mean / std
    (identity when the checkpoint has none, i.e. empirical_normalization off). Eval mode, CPU."""
    model = ckpt["model_state_dict"]
    keys = sorted((k for k in model if k.startswith("actor.") and k.endswith(".weight")),
                  key=lambda k: int(k.split(".")[1]))
    if not keys:
        raise ExportError("the checkpoint's model_state_dict has no actor.<i>.weight layers")
    layers: list[nn.Module] = []
    for i, key in enumerate(keys):
        weight, bias = model[key].float().cpu(), model[key[:-len("weight")] + "bias"].float().cpu()
        linear = nn.Linear(weight.shape[1], weight.shape[0])
        with torch.no_grad():
            linear.weight.copy_(weight)
            linear.bias.copy_(bias)
        layers.append(linear)
        if i < len(keys) - 1:
            layers.append(get_activation(activation))
    num_obs = layers[0].in_features
    norm = ckpt.get("obs_norm_state_dict") or {}
    mean = norm.get("_mean", torch.zeros(num_obs)).cpu()
    std = norm.get("_std", torch.ones(num_obs)).cpu()
    eps = _NORMALIZER_EPS if "_std" in norm else 0.0
    return ExportedPolicy(nn.Sequential(*layers), mean, std, eps, tanh_mean).eval()


def resolve_task(robot: str | None, task: str | None = None) -> str:
    """`task` (checked), else the registered task of `robot` (`asset.name`): the only one, or the one
    named like the robot. ValueError naming the choices otherwise."""
    from gym.envs import task_registry

    if task:
        task_registry.get_task_class(task)  # UnknownTaskError lists the registered ones
        return task
    names = [n for n, cfg in task_registry.env_cfgs.items() if cfg.asset.name == robot]
    if len(names) == 1 or robot in names:
        return names[0] if len(names) == 1 else str(robot)
    raise ValueError(f"cannot tell the task of robot {robot!r} (registered tasks of it: {names or 'none'}); "
                     f"pass --task, one of {sorted(task_registry.env_cfgs)}")


def policy_metadata(env: Any, task: str | None = None) -> dict[str, Any]:
    """Everything about the policy interface that does not change between checkpoints, read from a
    built `LeggedRobot` `env` (any num_envs) of registered task `task`: joints, gains, pose, action
    scales, observation terms, timing, command ranges. Python floats, not rounded."""
    cfg, robot = env.cfg, env.robot
    group = env.obs_group
    floats = lambda xs: [float(x) for x in xs]  # noqa: E731
    from gym.physics.model_builder import match_joint_param

    armature, scale = cfg.control.armature, cfg.control.action_scale
    scales = cfg.normalization.obs_scales
    return {
        "metadata_version": METADATA_VERSION,
        "task": task,
        "robot": str(cfg.asset.name),
        "joint_names": [str(j) for j in env.joint_names],
        "kp": floats(robot.stiffness),
        "kd": floats(robot.damping),
        "effort_limit": floats(robot.effort_limit),
        "armature": [match_joint_param(armature, j, "armature") if armature else 0.0 for j in env.joint_names],
        "default_joint_pos": [float(cfg.init_state.default_joint_angles.get(j, 0.0)) for j in env.joint_names],
        "action_scale": [match_joint_param(scale, j, "action_scale") if isinstance(scale, dict) else float(scale)
                         for j in env.joint_names],
        "action": "target_q = default_joint_pos + action_scale * actions (per joint), held for decimation "
                  "physics ticks; targets clamped to the joint range",
        "observation_names": list(group.terms),
        "observation_dims": [group.slices[t].stop - group.slices[t].start for t in group.terms],
        "observation_slices": [[group.slices[t].start, group.slices[t].stop] for t in group.terms],
        "observation_scales": [_plain(getattr(scales, t, 1.0)) for t in group.terms],
        "num_obs": int(group.dim),
        "num_actions": int(env.num_actions),
        "dt": float(cfg.control.decimation * cfg.sim.dt),
        "sim_dt": float(cfg.sim.dt),
        "decimation": int(cfg.control.decimation),
        "command_ranges": {k: _plain(v) for k, v in public_attrs(cfg.commands.ranges).items()},
        "clip_observations": float(cfg.normalization.clip_observations),
        "clip_actions": float(cfg.normalization.clip_actions),
        "observation_normalizer": "folded into the policy: feed the scaled observation as the env builds it",
        "input_name": "obs",
        "output_name": "actions",
        **({"gait_clock": gait_clock_metadata(cfg)} if "gait_phase" in group.terms else {}),
    }


def gait_clock_metadata(cfg: Any) -> dict[str, Any]:
    """What firmware needs to build the `gait_phase` observation (Asimov's `cfg.gait`): its period [s],
    the command-speed gate [m/s + rad/s] and the rule in words."""
    return {
        "period_s": float(cfg.gait.period),
        "command_threshold": float(cfg.rewards.command_threshold),
        "rule": "phase starts anywhere in [0, 1) and advances by dt / period_s every policy step, modulo 1; "
                "gait_phase = [sin(2 pi phase), cos(2 pi phase)] while |cmd_vx, cmd_vy| + |cmd_wz| > "
                "command_threshold, else [0, 0]",
    }


def _plain(value: Any) -> Any:
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, bool) or isinstance(value, str):
        return value
    if isinstance(value, int):
        return value
    return float(value)


def export_checkpoint(checkpoint: str | Path, metadata: Mapping[str, Any], out_dir: str | Path | None = None,
                      activation: str = "elu", tanh_mean: bool = False,
                      git_commit: str | None = None) -> dict[str, Path]:
    """Export checkpoint file `checkpoint` (a `model_<it>.pt`) into `out_dir` (default: the
    `exported/` folder beside it). `metadata`: `policy_metadata(env)`; the checkpoint's iteration,
    file name and `git_commit` (default: the run folder's git_commit.txt, else the repository's) are
    added. Returns {"onnx", "torchscript", "json"} -> path. Files are written atomically."""
    checkpoint = Path(checkpoint)
    ckpt = read_checkpoint(checkpoint)
    policy = policy_from_checkpoint(ckpt, activation, tanh_mean)
    if policy.actor[0].in_features != metadata["num_obs"]:
        raise ExportError(f"{checkpoint}: the policy takes {policy.actor[0].in_features} observations, the "
                          f"metadata describes {metadata['num_obs']}; export with the config it was trained with")
    out_dir = Path(out_dir) if out_dir is not None else checkpoint.parent / EXPORT_DIR
    meta = dict(metadata, checkpoint_iteration=int(ckpt["iter"]), checkpoint_file=checkpoint.name,
                git_commit=git_commit or _run_git_commit(checkpoint.parent))
    meta_json = json.dumps(meta, indent=1)
    stem = checkpoint.stem
    paths = {"onnx": out_dir / f"{stem}.onnx", "torchscript": out_dir / f"{stem}.torchscript.pt",
             "json": out_dir / f"{stem}.json"}
    onnx_bytes = onnx_model_bytes(policy, meta)
    replace_atomically(paths["onnx"], lambda f: f.write(onnx_bytes))
    buffer = io.BytesIO()
    with warnings.catch_warnings():  # TorchScript is deprecated in torch 2.13 but still what C++ runtimes load
        warnings.filterwarnings("ignore", message=".*torch.jit.*deprecated")
        torch.jit.save(torch.jit.script(policy), buffer, _extra_files={"metadata.json": meta_json})
    replace_atomically(paths["torchscript"], lambda f: f.write(buffer.getvalue()))
    atomic_write_text(paths["json"], meta_json + "\n")
    return paths


def onnx_model_bytes(policy: nn.Module, metadata: Mapping[str, Any]) -> bytes:
    """Serialized ONNX model of `policy` (dynamic batch, opset `OPSET`) with `metadata` in its
    metadata_props (JSON values). Runs torch's exporter quietly (no progress lines or warnings)."""
    import onnx

    num_obs = policy.actor[0].in_features
    example = torch.zeros(2, num_obs)
    registration = logging.getLogger("torch.onnx._internal.exporter._registration")
    level = registration.level
    registration.setLevel(logging.ERROR)  # "torchvision is not installed" lines
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            program = torch.onnx.export(policy, (example,), None, input_names=["obs"], output_names=["actions"],
                                        opset_version=OPSET, dynamo=True, verbose=False,
                                        dynamic_shapes=({0: torch.export.Dim("batch")},))
    finally:
        registration.setLevel(level)
    model = program.model_proto
    del model.metadata_props[:]
    for key, value in metadata.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, json.dumps(value)
    onnx.checker.check_model(model)
    return model.SerializeToString()


def load_onnx(path: str | Path):
    """The `onnx.ModelProto` at `path`, checked; `ExportError` naming the file when it is missing,
    truncated or corrupt."""
    import onnx

    path = Path(path)
    if not path.is_file():
        raise ExportError(f"{path}: file does not exist")
    try:
        model = onnx.load(str(path))
        onnx.checker.check_model(model)
    except Exception as e:  # noqa: BLE001 - protobuf DecodeError, onnx ValidationError, ...
        raise ExportError(f"{path}: not a readable ONNX model (truncated or corrupt; re-export it with "
                          f"gym/scripts/export_policy.py): {type(e).__name__}: {str(e).strip()[:300]}") from e
    if not model.graph.node:
        raise ExportError(f"{path}: the ONNX model has an empty graph (truncated or corrupt); re-export it")
    return model


def read_metadata(path: str | Path) -> dict[str, Any]:
    """The export metadata from an `.onnx` (metadata_props), a `.json` sidecar, a TorchScript
    `.torchscript.pt`, or a folder (its newest export: an `exported/` folder or a run folder)."""
    path = Path(path)
    if path.is_dir():
        path = newest_export(path)
    if path.suffix == ".onnx":
        props = {p.key: p.value for p in load_onnx(path).metadata_props}
        if not props:
            raise ExportError(f"{path}: the ONNX model has no metadata_props; export it with "
                              "gym/scripts/export_policy.py")
        try:
            return {k: json.loads(v) for k, v in props.items()}
        except json.JSONDecodeError as e:
            raise ExportError(f"{path}: metadata_props are not this exporter's JSON values ({e})") from e
    if not path.is_file():
        raise ExportError(f"{path}: file does not exist")
    try:
        if path.name.endswith(".torchscript.pt"):
            extra = {"metadata.json": ""}
            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", message=".*torch.jit.*deprecated")
                torch.jit.load(str(path), map_location="cpu", _extra_files=extra)
            return json.loads(extra["metadata.json"])
        return json.loads(path.read_text())
    except Exception as e:  # noqa: BLE001
        raise ExportError(f"{path}: cannot read the export metadata ({type(e).__name__}: {e})") from e


def newest_export(folder: Path) -> Path:
    """The `.onnx` of the highest iteration under `folder` or `folder/exported`."""
    folder = folder / EXPORT_DIR if (folder / EXPORT_DIR).is_dir() else folder
    found = sorted(folder.glob("model_*.onnx"), key=lambda p: int(p.stem.split("_")[1]) if
                   p.stem.split("_")[1].isdigit() else -1)
    if not found:
        raise ExportError(f"no model_<iteration>.onnx in {folder}; export one with gym/scripts/export_policy.py")
    return found[-1]


def apply_saved_cfg(cfg: Any, saved: Mapping[str, Any]) -> None:
    """Set the values of a saved config dict (a run's env_cfg.yaml) onto config object `cfg`, where
    `cfg` has the key; config groups recurse, other values (lists, dicts of gains) are set whole."""
    for key, value in saved.items():
        current = getattr(cfg, key, None)
        if current is None and not hasattr(cfg, key):
            continue  # a key this version's config no longer has
        if isinstance(value, Mapping) and hasattr(current, "__dict__") and not isinstance(current, dict):
            apply_saved_cfg(current, value)
        else:
            setattr(cfg, key, value)


def apply_saved_env_cfg(cfg: Any, run_dir: Path) -> bool:
    """Apply the run folder's `env_cfg.yaml` (what that run trained with, `--set` overrides included)
    onto env config `cfg` with `apply_saved_cfg`; False (cfg untouched) when the run has no such file."""
    import yaml

    saved = Path(run_dir) / "env_cfg.yaml"
    if not saved.is_file():
        return False
    apply_saved_cfg(cfg, yaml.safe_load(saved.read_text()) or {})
    return True


def _run_git_commit(run_dir: Path) -> str:
    saved = run_dir / "git_commit.txt"
    if saved.is_file():
        return saved.read_text().strip()
    from gym.utils.run_dirs import git_describe

    return git_describe()


def checkpoint_export_callback(env: Any, train_cfg: Any, task: str | None = None
                               ) -> Callable[[Path], dict[str, Path] | None]:
    """A runner checkpoint callback (`OnPolicyRunner.add_checkpoint_callback`) exporting each saved
    checkpoint into `exported/` beside it. The metadata is taken from `env` (of `task`) once. An
    export that fails only warns (the checkpoint is written; `export_policy.py` can redo it)."""
    metadata = policy_metadata(env, task)
    activation, tanh_mean = train_cfg.policy.activation, bool(train_cfg.policy.tanh_mean)

    def export(path: Path) -> dict[str, Path] | None:
        try:
            return export_checkpoint(path, metadata, activation=activation, tanh_mean=tanh_mean)
        except Exception as e:  # noqa: BLE001 - training goes on; the message names the cause
            message = f"WARNING: policy export of {path} failed, training continues: {type(e).__name__}: {e}"
            print(message, flush=True)
            warnings.warn(message, RuntimeWarning, stacklevel=2)
            return None

    return export


def max_abs_diff(a: Any, b: Any) -> float:
    """max |a - b| of two array-likes (for checks and tests)."""
    diff = (torch.as_tensor(a, dtype=torch.float64) - torch.as_tensor(b, dtype=torch.float64)).abs()
    return float(diff.max()) if diff.numel() else 0.0
