"""Check exported policy metadata against a robot's declared firmware contract (data sheet §16).

A robot declares its contract as `class contract` in its env config (Asimov: `AsimovCfg.contract`):

- `observation_names`, `observation_dims`, `observation_scales`: the observation terms, in order.
- `joint_names`: the action / observation joint order.
- `action_scale`: per joint type (substring of the joint name, as `control.action_scale`) and
  `action_scale_tolerance`; one scale for every joint where the contract has several is named as such.
- `default_joint_pos`: joint name -> angle [rad] (the action offset), compared exactly.
- `policy_rate_hz`, `motor_rate_hz`: 1 / dt and 1 / sim_dt; the hold is `motor / policy` ticks.
- `required_metadata`: keys the firmware reads from the metadata (each must be present).
- `gait_clock` (optional): {"period_s", "command_threshold"} of the `gait_phase` clock the firmware runs,
  compared with the export's `gait_clock` to 1e-9.
- `notes`: lines printed under the table (e.g. the IMU mounting, which the policy cannot show).

`contract_rows(metadata, contract)` compares item by item; `format_table` prints them; a row with
`ok=False` is a deviation (check_firmware_contract.py exits 1).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from gym.envs.base.base_config import public_attrs
from gym.physics.model_builder import match_joint_param


@dataclass
class Row:
    """One line of the contract table: `item`, what the contract wants, what the export has."""

    item: str
    contract: Any
    exported: Any
    ok: bool
    problem: str = ""  # the deviation in words (empty when ok)


def _close(a: Any, b: Any, tol: float) -> bool:
    try:
        return math.isfinite(float(a)) and abs(float(a) - float(b)) <= tol
    except (TypeError, ValueError):
        return False


def contract_rows(meta: dict[str, Any], contract: Any) -> list[Row]:
    """Compare export metadata `meta` (gym/utils/export.py) with `contract` (a config object with the
    fields of the module docstring). Every item yields a row; missing metadata is a deviation."""
    c = public_attrs(contract)
    rows: list[Row] = []
    missing = [k for k in c.get("required_metadata", []) if k not in meta]
    rows.append(Row("required metadata keys", c.get("required_metadata", []), "missing: " + str(missing)
                    if missing else "all present", not missing, f"metadata lacks {missing}" if missing else ""))

    names, want_names = list(meta.get("observation_names", [])), list(c["observation_names"])
    if names == want_names:
        rows.append(Row("observation order", want_names, names, True))
    else:
        moved = [f"term {i} {w!r} (exported: {names[i] if i < len(names) else None!r})"
                 for i, w in enumerate(want_names) if i >= len(names) or names[i] != w]
        what = "swapped / reordered terms" if sorted(names) == sorted(want_names) else "other terms"
        rows.append(Row("observation order", want_names, names, False,
                        f"observation order differs ({what}): contract wants " + "; ".join(moved)))
    dims = dict(zip(names, meta.get("observation_dims", [])))
    scales = dict(zip(names, meta.get("observation_scales", [])))
    start = 0
    for name, dim, scale in zip(want_names, c["observation_dims"], c["observation_scales"]):
        got_dim, got_scale = dims.get(name), scales.get(name)
        slice_ = f"{start}-{start + dim - 1}"
        start += dim
        rows.append(Row(f"obs {name} dim (slice {slice_})", dim, got_dim, got_dim == dim,
                        "" if got_dim == dim else f"observation {name!r} has dim {got_dim}, contract {dim}"))
        ok = all(_close(s, scale, 1e-12 * max(1.0, abs(scale))) for s in (
            got_scale if isinstance(got_scale, list) else [got_scale]))
        rows.append(Row(f"obs {name} scale", scale, got_scale, ok,
                        "" if ok else f"observation {name!r} scale {got_scale!r}, contract {scale!r}"))
    total = sum(c["observation_dims"])
    rows.append(Row("observation size", total, meta.get("num_obs"), meta.get("num_obs") == total,
                    "" if meta.get("num_obs") == total else f"policy input has {meta.get('num_obs')} floats, "
                    f"contract {total}"))

    for key, want in (c.get("gait_clock") or {}).items():
        have = (meta.get("gait_clock") or {}).get(key)
        ok = _close(have, want, 1e-9)
        rows.append(Row(f"gait clock {key}", want, have, ok,
                        "" if ok else f"gait clock {key} is {have!r}, contract {want!r}"))

    joints, want_joints = list(meta.get("joint_names", [])), list(c["joint_names"])
    ok = joints == want_joints
    problem = "" if ok else ("joint order differs" if sorted(joints) == sorted(want_joints) else "other joints")
    rows.append(Row("joint order", want_joints, joints, ok, f"{problem}: exported {joints}" if problem else ""))
    rows.append(Row("action size", len(want_joints), meta.get("num_actions"),
                    meta.get("num_actions") == len(want_joints),
                    "" if meta.get("num_actions") == len(want_joints) else "wrong number of actions"))

    exported_scales = dict(zip(joints, meta.get("action_scale", [])))
    want_scales = [match_joint_param(c["action_scale"], j, "contract.action_scale") for j in want_joints]
    got = [exported_scales.get(j) for j in want_joints]
    if len(set(want_scales)) > 1 and len({g for g in got if g is not None}) == 1 and None not in got:
        rows.append(Row("action scale per joint", "per joint type", f"one global scale {got[0]!r}", False,
                        f"one global action scale {got[0]!r} for every joint; the contract requires per-joint "
                        "scales (target_q = default_q + scale_j * action_j)"))
    tol = float(c.get("action_scale_tolerance", 1e-6))
    for joint, want, have in zip(want_joints, want_scales, got):
        ok = _close(have, want, tol)
        rows.append(Row(f"action scale {joint}", want, have, ok,
                        "" if ok else f"action scale of {joint} is {have!r}, contract {want!r} (± {tol:g})"))
    pose = dict(zip(joints, meta.get("default_joint_pos", [])))
    for joint in want_joints:
        want, have = float(c["default_joint_pos"].get(joint, 0.0)), pose.get(joint)
        ok = _close(have, want, 0.0)
        rows.append(Row(f"default pose {joint}", want, have, ok,
                        "" if ok else f"default position of {joint} is {have!r}, contract {want!r} (exact)"))

    dt, sim_dt, dec = meta.get("dt"), meta.get("sim_dt"), meta.get("decimation")
    for item, want, have in (("policy rate [Hz]", c["policy_rate_hz"], 1.0 / dt if dt else None),
                             ("motor rate [Hz]", c["motor_rate_hz"], 1.0 / sim_dt if sim_dt else None),
                             ("hold [motor ticks]", round(c["motor_rate_hz"] / c["policy_rate_hz"]), dec)):
        ok = _close(have, want, 1e-9 * float(want))
        rows.append(Row(item, want, have, ok, "" if ok else f"{item} is {have!r}, contract {want!r}"))
    for key in ("kp", "kd"):
        values = meta.get(key) or []
        ok = len(values) == len(want_joints) and all(_close(v, v, 0.0) and v > 0 for v in values)
        rows.append(Row(f"{key} per joint", f"{len(want_joints)} values > 0", values, ok,
                        "" if ok else f"metadata {key} must hold one positive value per joint"))
    return rows


def deviations(rows: list[Row]) -> list[str]:
    """The problems of the rows that deviate, in words."""
    return [r.problem or f"{r.item}: exported {r.exported!r}, contract {r.contract!r}" for r in rows if not r.ok]


def format_table(rows: list[Row], notes: list[str] | None = None, width: int = 48) -> str:
    """The rows as a fixed-width text table (values at full precision, long lists cut at `width`)."""
    def cut(value: Any) -> str:
        text = repr(value) if isinstance(value, float) else str(value)
        return text if len(text) <= width else text[: width - 3] + "..."

    item_w = max(len(r.item) for r in rows)
    lines = [f"{'item':<{item_w}}  {'contract':<{width}}  {'exported':<{width}}  status",
             "-" * (item_w + 2 * width + 14)]
    lines += [f"{r.item:<{item_w}}  {cut(r.contract):<{width}}  {cut(r.exported):<{width}}  "
              f"{'ok' if r.ok else 'DEVIATION'}" for r in rows]
    lines += [f"note: {n}" for n in notes or []]
    return "\n".join(lines)
