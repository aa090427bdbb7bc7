"""Export a checkpoint as ONNX + TorchScript with full-precision metadata: `export_policy.py PATH`.

PATH is a checkpoint file (`model_<it>.pt`) or a run folder (its newest readable checkpoint). The
files go to `exported/` beside the checkpoint (or `--out DIR`): `model_<it>.onnx`,
`model_<it>.torchscript.pt` and the `model_<it>.json` sidecar (gym/utils/export.py). The metadata
comes from the task's config with the run folder's `env_cfg.yaml` / `train_cfg.yaml` applied (the
settings the policy was trained with), and a 1-env MuJoCo C env built from it (observation dims).
The task is `--task`, else that of the run's earlier exports, else the registered task of the
checkpoint's robot (the one named like the robot when several share it).
After writing, onnxruntime and torch are run on the same random observations and the largest
difference is printed. Check the result with `gym/scripts/check_firmware_contract.py`.
"""

from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # run from a checkout without installing

import torch  # noqa: E402

from gym.rl.checkpoint import CheckpointError, peek_checkpoint  # noqa: E402
from gym.utils.export import (  # noqa: E402
    EXPORT_DIR,
    ExportError,
    apply_saved_env_cfg,
    export_checkpoint,
    max_abs_diff,
    policy_metadata,
    read_metadata,
    resolve_task,
)


def find_checkpoint(path: Path) -> Path:
    """`path` itself when a file, else the newest readable model_<it>.pt in the run folder `path`."""
    from gym.utils.run_dirs import get_load_path

    if path.is_file():
        return path
    if path.is_dir():
        return get_load_path(path.parent, path.name, -1)
    raise FileNotFoundError(f"{path}: no such checkpoint file or run folder")


def task_for(checkpoint: Path, task: str | None) -> str:
    """`task`, else the task of the run's earlier exports, else the registered task of the checkpoint's robot."""
    if not task:
        for sidecar in sorted((checkpoint.parent / EXPORT_DIR).glob("model_*.json")):
            task = read_metadata(sidecar).get("task") or task
    robot = ((peek_checkpoint(checkpoint) or {}).get("env_info") or {}).get("robot")
    try:
        return resolve_task(robot, task)
    except ValueError as e:
        raise ValueError(f"{checkpoint}: {e}") from None


def build_metadata_env(task: str, run_dir: Path) -> tuple[Any, Any]:
    """(1-env MuJoCo C env of `task` with the run's saved configs, train_cfg)."""
    from gym.envs import task_registry
    from gym.utils.task_registry import use_saved_policy_shape

    env_cfg, train_cfg = task_registry.get_cfgs(task, "cpu")
    apply_saved_env_cfg(env_cfg, run_dir)
    use_saved_policy_shape(train_cfg, run_dir / "train_cfg.yaml")
    env_cfg.env.num_envs = 1
    env = task_registry.get_task_class(task)(env_cfg, sim_device="cpu", physics="mujoco")
    return env, train_cfg


def export_path(path: str | Path, task: str | None = None, out_dir: str | Path | None = None) -> dict[str, Path]:
    """Export the checkpoint at `path` (file or run folder); returns the written paths."""
    checkpoint = find_checkpoint(Path(path))
    task = task_for(checkpoint, task)
    env, train_cfg = build_metadata_env(task, checkpoint.parent)
    try:
        metadata = policy_metadata(env, task)
    finally:
        getattr(env.physics, "close", lambda: None)()
    return export_checkpoint(checkpoint, metadata, out_dir, activation=train_cfg.policy.activation,
                             tanh_mean=bool(train_cfg.policy.tanh_mean))


def onnx_torch_difference(paths: dict[str, Path], batch: int = 7) -> float:
    """max |onnxruntime - TorchScript| over `batch` random observations."""
    import onnxruntime

    session = onnxruntime.InferenceSession(str(paths["onnx"]), providers=["CPUExecutionProvider"])
    num_obs = session.get_inputs()[0].shape[1]
    obs = torch.randn(batch, num_obs)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*torch.jit.*deprecated")
        scripted = torch.jit.load(str(paths["torchscript"]))
    with torch.no_grad():
        return max_abs_diff(session.run(None, {"obs": obs.numpy()})[0], scripted(obs))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("path", help="checkpoint file (model_<it>.pt) or run folder (newest checkpoint)")
    p.add_argument("--task", help="registered task (default: the checkpoint's robot)")
    p.add_argument("--out", help="output folder (default: exported/ beside the checkpoint)")
    args = p.parse_args(argv)
    try:
        paths = export_path(args.path, args.task, args.out)
    except (FileNotFoundError, ValueError, KeyError, CheckpointError, ExportError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    for kind, path in paths.items():
        print(f"{kind:<12} {path}")
    print(f"onnxruntime vs TorchScript, 7 random observations: max |difference| {onnx_torch_difference(paths):.3g}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
