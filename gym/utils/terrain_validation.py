"""Config checks of the rough-terrain settings (`terrain.*`, the command curriculum), part of
`gym.utils.validation.config_problems`: 'key=value: what is wrong; the fix' lines."""

from __future__ import annotations

import difflib
import numbers
from typing import Any

from gym.utils.terrain import MESH_TYPES, TERRAIN_TYPES


def _is_number(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _is_int(value: Any) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def terrain_problems(cfg: Any) -> list[str]:
    """terrain.*: mesh type, tile grid, proportions, generator values, height scan points."""
    t, problems = cfg.terrain, []
    if t.mesh_type not in MESH_TYPES:
        close = difflib.get_close_matches(str(t.mesh_type), MESH_TYPES, n=1)
        problems.append(f"terrain.mesh_type={t.mesh_type!r}: unknown; {f'did you mean {close[0]!r}? ' if close else ''}"
                        f"choose one of {list(MESH_TYPES)} (legged_gym's names)")
    uses_scan = "height_scan" in [*cfg.env.observations, *cfg.env.critic_observations]
    if uses_scan and not t.measure_heights:
        problems.append("terrain.measure_heights=False: the observation term 'height_scan' needs it; "
                        "--set terrain.measure_heights=True, or remove 'height_scan' from env.observations / "
                        "env.critic_observations")
    for key in ("measured_points_x", "measured_points_y"):
        points = getattr(t, key)
        if not isinstance(points, (list, tuple)) or not points or not all(_is_number(v) for v in points):
            problems.append(f"terrain.{key}={points!r}: must be a non-empty list of offsets [m]")
    if t.mesh_type == "plane":
        return problems
    for key in ("num_rows", "num_cols"):
        if not _is_int(getattr(t, key)) or getattr(t, key) < 1:
            problems.append(f"terrain.{key}={getattr(t, key)!r}: must be an integer >= 1; e.g. --set terrain.{key}=10")
    for key in ("terrain_length", "terrain_width", "horizontal_scale", "vertical_scale", "step_width",
                "slope_treshold"):
        if not _is_number(getattr(t, key)) or getattr(t, key) <= 0:
            problems.append(f"terrain.{key}={getattr(t, key)!r}: must be a number > 0")
    for key in ("border_size", "roughness", "platform_size"):
        if not _is_number(getattr(t, key)) or getattr(t, key) < 0:
            problems.append(f"terrain.{key}={getattr(t, key)!r}: must be a number >= 0")
    if not _is_int(t.max_init_terrain_level) or t.max_init_terrain_level < 0:
        problems.append(f"terrain.max_init_terrain_level={t.max_init_terrain_level!r}: must be an integer >= 0 "
                        "(a row index; rows above num_rows - 1 mean the top row)")
    for key in ("slope_range", "step_height_range", "obstacle_height_range"):
        value = getattr(t, key)
        if isinstance(value, (list, tuple)) and all(_is_number(v) for v in value) and min(value, default=0) < 0:
            problems.append(f"terrain.{key}={list(value)!r}: must be >= 0 (the generator makes both signs itself)")
    hs = t.horizontal_scale
    if _is_number(hs) and hs > 0:
        for key in ("terrain_length", "terrain_width", "border_size"):
            cells = getattr(t, key) / hs if _is_number(getattr(t, key)) else 0.5
            if abs(cells - round(cells)) > 1e-6:
                problems.append(f"terrain.{key}={getattr(t, key)!r}: must be a multiple of terrain.horizontal_scale="
                                f"{hs} (the height-grid spacing); e.g. --set terrain.{key}={round(cells) * hs:g}")
        if all(_is_number(getattr(t, k)) for k in ("terrain_length", "terrain_width", "platform_size")) \
                and t.platform_size >= min(t.terrain_length, t.terrain_width):
            problems.append(f"terrain.platform_size={t.platform_size!r}: must be smaller than the tile "
                            f"({t.terrain_length} x {t.terrain_width} m)")
    props = t.terrain_proportions
    order = ", ".join(TERRAIN_TYPES)
    if not isinstance(props, (list, tuple)) or len(props) != len(TERRAIN_TYPES) \
            or not all(_is_number(v) for v in props):
        problems.append(f"terrain.terrain_proportions={props!r}: must list {len(TERRAIN_TYPES)} shares, one per "
                        f"type in this order: {order}")
    elif min(props) < 0:
        problems.append(f"terrain.terrain_proportions={list(props)!r}: shares must be >= 0 (order: {order})")
    elif abs(sum(props) - 1.0) > 2e-3:  # the generator normalizes what is left
        problems.append(f"terrain.terrain_proportions={list(props)!r}: the shares sum to {sum(props):g}, not 1 "
                        f"(order: {order}); e.g. --set terrain.terrain_proportions="
                        f"[{','.join(f'{v / sum(props):.3g}' for v in props) if sum(props) > 0 else '0,0,0,0,0,1'}]")
    return problems


def curriculum_problems(cfg: Any) -> list[str]:
    """commands.curriculum settings."""
    c, problems = cfg.commands, []
    if not c.curriculum:
        return problems
    for key in ("max_curriculum", "curriculum_step"):
        if not _is_number(getattr(c, key)) or getattr(c, key) <= 0:
            problems.append(f"commands.{key}={getattr(c, key)!r}: must be a number > 0 [m/s]")
    scales = {k: getattr(cfg.rewards.scales, k) for k in dir(cfg.rewards.scales)
              if not k.startswith("_") and not callable(getattr(cfg.rewards.scales, k))}
    if not scales.get(c.curriculum_reward):
        known = sorted(k for k, v in scales.items() if v)
        problems.append(f"commands.curriculum_reward={c.curriculum_reward!r}: the command curriculum needs a "
                        f"reward term with a non-zero scale (its 80 % rule); choose one of {known} or "
                        "--set commands.curriculum=False")
    return problems
