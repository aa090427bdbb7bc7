"""Check an exported policy against its robot's firmware contract: `check_firmware_contract.py PATH`.

PATH is an exported `.onnx` (its metadata_props), a `.json` sidecar, a `.torchscript.pt`, or an
`exported/` / run folder (its newest export). The contract is the `contract` class of the robot's
env config (Asimov: data sheet §16, `AsimovCfg.contract`); the task is `--task`, else the
metadata's `task`, else the registered task of its robot. Prints the contract table (item,
contract, exported value at full precision, ok / DEVIATION) and the contract's notes; for an ONNX
file also the graph's input and output sizes. Exit code: 0 when everything matches, 1 on any
deviation (each named below the table), 2 when the file cannot be read or the robot declares no
contract.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # run from a checkout without installing

from gym.utils.export import (  # noqa: E402
    EXPORT_DIR,
    ExportError,
    load_onnx,
    newest_export,
    read_metadata,
    resolve_task,
)
from gym.utils.firmware_contract import Row, contract_rows, deviations, format_table  # noqa: E402


def contract_for(meta: dict[str, Any], task: str | None) -> tuple[str, Any]:
    """(task name, its env config's `contract`); ValueError when none fits."""
    from gym.envs import task_registry

    task = resolve_task(meta.get("robot"), task or meta.get("task"))
    env_cfg, _ = task_registry.get_cfgs(task)
    contract = getattr(env_cfg, "contract", None)
    if contract is None:
        raise ValueError(f"task {task!r} declares no firmware contract (a `contract` class in its env config)")
    return task, contract


def onnx_rows(path: Path, meta: dict[str, Any]) -> list[Row]:
    """The ONNX graph's input / output widths against the metadata's num_obs / num_actions."""
    model = load_onnx(path)
    rows = []
    for item, value_info, want in (("onnx input width", model.graph.input[0], meta.get("num_obs")),
                                   ("onnx output width", model.graph.output[0], meta.get("num_actions"))):
        dims = [d.dim_value or d.dim_param for d in value_info.type.tensor_type.shape.dim]
        ok = len(dims) == 2 and dims[1] == want and not isinstance(dims[0], int)
        rows.append(Row(f"{item} ({value_info.name})", f"[batch, {want}]", dims, ok,
                        "" if ok else f"{item} is {dims}, expected [batch (dynamic), {want}]"))
    return rows


def check(path: str | Path, task: str | None = None) -> tuple[int, str]:
    """(exit code, report text) for the export at `path`."""
    path = Path(path)
    try:
        if path.is_dir():
            path = newest_export(path if path.name == EXPORT_DIR or not (path / EXPORT_DIR).is_dir()
                                 else path / EXPORT_DIR)
        meta = read_metadata(path)
        task, contract = contract_for(meta, task)
        rows = contract_rows(meta, contract)
        if path.suffix == ".onnx":
            rows += onnx_rows(path, meta)
    except (ExportError, ValueError, KeyError) as e:
        return 2, f"error: {e}"
    header = (f"Firmware contract of task {task!r} vs {path}\n"
              f"robot {meta.get('robot')!r}, checkpoint iteration {meta.get('checkpoint_iteration')}, "
              f"git commit {meta.get('git_commit')}")
    report = [header, format_table(rows, list(getattr(contract, "notes", [])))]
    bad = deviations(rows)
    if bad:
        report.append(f"{len(bad)} deviation{'s' if len(bad) != 1 else ''} from the contract:")
        report += [f"  - {b}" for b in bad]
    else:
        report.append("The export matches the contract.")
    return (1 if bad else 0), "\n".join(report)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("path", help="exported .onnx / .json / .torchscript.pt, or an exported/ or run folder")
    p.add_argument("--task", help="registered task whose contract applies (default: the metadata's robot)")
    args = p.parse_args(argv)
    code, report = check(args.path, args.task)
    print(report, file=sys.stderr if code == 2 else sys.stdout)
    return code


if __name__ == "__main__":
    sys.exit(main())
