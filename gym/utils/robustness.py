"""Robustness grid: the deterministic policy across shifted dynamics (`evaluate.py --robustness`).

    grid = make_grid(env_cfg)                      # reads the training ranges: call before the next line
    configure_env_cfg(env_cfg, grid, envs_per_cell=14, seconds=20.0)  # training DR off, env sized to the grid
    env = task.make_env(); kick_vel = apply_grid(env, grid, 14)       # per-env dynamics and latency
    result = rollout(env, policy, grid_schedule(...), settle_s, Kicks(kick_vel, 2.0))
    rows = summarize_grid(grid, result)            # one dict per cell

One batched env runs the whole grid: env i belongs to cell i // envs_per_cell. A cell shifts ONE
axis to one level; every other axis stays nominal (the model's foot friction, no added mass, gains
and motor strength x1, no latency, no kicks), so each axis' nominal cell is the nominal robot. The
env's own training-time randomization and pushes are off. Every cell gets the same seeded command
schedule (gym/utils/evaluation.py), so cells differ only in their dynamics.

Levels are numbers or symbols resolved per task: "nominal", "train_lo" / "train_hi" (the ends of
the training range in the task's `domain_rand`; the nominal value when training leaves the item
fixed) and "max" (`control.decimation`, latency only). Equal levels are kept once; levels a robot
cannot take (a latency above decimation, a non-positive body mass) are left out. A level is
`beyond_training` outside the training range.
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from gym.utils.evaluation import RolloutResult, Schedule, make_schedule

NOMINAL, TRAIN_LO, TRAIN_HI, MAX = "nominal", "train_lo", "train_hi", "max"


@dataclass(frozen=True)
class Axis:
    """One row of the grid: `levels` of one dynamics item, in `unit`.

    `switch` / `range_keys`: the `domain_rand` switch and [lo, hi] range(s) training used (several:
    their intersection; a scalar key v, the pushes' `max_push_vel_xy`: kicks of 0..sqrt(2) v m/s,
    the per-axis U(-v, v) draw's largest). `nominal`: the unshifted value (None: the model's foot
    friction)."""

    name: str
    unit: str
    levels: tuple[float | str, ...]
    switch: str
    range_keys: tuple[str, ...]
    nominal: float | None
    doc: str


AXES: tuple[Axis, ...] = (
    Axis("friction", "", (0.1, 0.2, TRAIN_LO, NOMINAL, TRAIN_HI, 2.0), "randomize_friction", ("friction_range",),
         None, "sliding friction of the foot geoms (replaces the model's)"),
    Axis("added_mass", "kg", (-2.0, -1.0, TRAIN_LO, NOMINAL, TRAIN_HI, 3.0, 5.0), "randomize_base_mass",
         ("added_mass_range",), 0.0, "added to domain_rand.added_mass_body (Asimov: 3.3-kg pelvis, 15.7 kg in all)"),
    Axis("kp_scale", "x", (0.6, 0.8, TRAIN_LO, NOMINAL, TRAIN_HI, 1.2, 1.4), "randomize_gains", ("kp_scale_range",),
         1.0, "x every actuator's Kp"),
    Axis("kd_scale", "x", (0.5, 0.75, TRAIN_LO, NOMINAL, TRAIN_HI, 1.25, 1.5), "randomize_gains",
         ("kd_scale_range",), 1.0, "x every actuator's Kd"),
    Axis("motor_strength", "x", (0.5, 0.7, 0.85, TRAIN_LO, NOMINAL, TRAIN_HI, 1.2), "randomize_motor_strength",
         ("motor_strength_range",), 1.0, "x every actuator's effort limit"),
    Axis("action_latency", "ticks", (0, 1, 2, 3, TRAIN_LO, TRAIN_HI, MAX), "randomize_latency",
         ("action_latency_range",), 0.0, "physics ticks before new targets act (env.latency.set(action=))"),
    Axis("sensor_latency", "ticks", (0, 1, 2, 3, TRAIN_LO, TRAIN_HI, MAX), "randomize_latency",
         ("imu_latency_range", "joint_latency_range"), 0.0, "age of the IMU and joint observations, both"),
    Axis("push", "m/s", (0.0, 0.5, 1.0, 1.5, 2.0, 2.5), "push_robots", ("max_push_vel_xy",), 0.0,
         "kicks of this size, random horizontal direction, every --kick_interval_s"),
)
AXIS_NAMES = tuple(a.name for a in AXES)
CSV_COLUMNS = ("iteration", "axis", "level", "unit", "nominal", "beyond_training", "train_lo", "train_hi", "envs",
               "falls", "fall_rate", "episode_length_s", "samples", "vx_error", "vy_error", "wz_error")


@dataclass(frozen=True)
class Cell:
    """One (axis, level) of the grid; `train_range` [lo, hi] in the level's unit."""

    axis: str
    level: float
    unit: str
    nominal: bool
    beyond_training: bool
    train_range: tuple[float, float]


@dataclass(frozen=True)
class Grid:
    """The resolved cells (grouped by axis, levels ascending) and each axis' nominal value."""

    cells: tuple[Cell, ...]
    nominal: dict[str, float]

    def settings(self) -> dict[str, torch.Tensor]:
        """Per axis name, (num_cells,) float64: its value in each cell (nominal but on its own row)."""
        out = {name: torch.full((len(self.cells),), value, dtype=torch.float64) for name, value in self.nominal.items()}
        for i, cell in enumerate(self.cells):
            out[cell.axis][i] = cell.level
        return out


def nominal_robot(env_cfg: Any) -> tuple[float, float]:
    """(mean sliding friction of the foot geoms, mass [kg] of the body the added-mass axis loads:
    `domain_rand.added_mass_body`, else the base) of the compiled model (on a plane: terrain does
    not matter)."""
    import copy

    from gym.physics.model_builder import build_model

    cfg = copy.deepcopy(env_cfg)
    cfg.terrain.mesh_type = "plane"
    robot = build_model(cfg)
    m, body = robot.mj_model, env_cfg.domain_rand.added_mass_body or env_cfg.asset.base_body
    return float(m.geom_friction[list(robot.foot_geom_ids), 0].mean()), float(m.body(body).mass[0])


def training_range(axis: Axis, domain_rand: Any, nominal: float) -> tuple[float, float]:
    """[lo, hi] the training config covers for `axis` ([nominal, nominal] when its switch is off)."""
    if not getattr(domain_rand, axis.switch, False):
        return nominal, nominal
    ranges = []
    for key in axis.range_keys:
        value = getattr(domain_rand, key)
        ranges.append((0.0, math.sqrt(2) * float(value)) if isinstance(value, int | float) else
                      (float(value[0]), float(value[1])))
    return max(r[0] for r in ranges), min(r[1] for r in ranges)


def make_grid(env_cfg: Any, axes: list[str] | None = None) -> Grid:
    """Resolve `AXES` (or the named `axes`, in table order) against a task config, BEFORE its
    randomization is switched off (the training ranges come from `env_cfg.domain_rand`). Raises
    ValueError for an unknown axis name."""
    unknown = sorted(set(axes or ()) - set(AXIS_NAMES))
    if unknown:
        raise ValueError(f"unknown robustness axes {unknown}; choose from {list(AXIS_NAMES)}")
    dr, decimation = env_cfg.domain_rand, int(env_cfg.control.decimation)
    friction, mass = nominal_robot(env_cfg)
    nominal = {a.name: (friction if a.nominal is None else a.nominal) for a in AXES}
    cells = []
    for axis in (a for a in AXES if axes is None or a.name in axes):
        lo, hi = training_range(axis, dr, nominal[axis.name])
        named = {NOMINAL: nominal[axis.name], TRAIN_LO: lo, TRAIN_HI: hi, MAX: float(decimation)}
        levels = sorted({round(float(named.get(x, x)), 9) for x in axis.levels})
        if axis.name.endswith("latency"):
            levels = [x for x in levels if x <= decimation]
        if axis.name == "added_mass":
            levels = [x for x in levels if x + mass > 0]
        cells += [Cell(axis.name, x, axis.unit, x == nominal[axis.name], not lo - 1e-9 <= x <= hi + 1e-9, (lo, hi))
                  for x in levels]
    return Grid(tuple(cells), nominal)


def configure_env_cfg(env_cfg: Any, grid: Grid, envs_per_cell: int, seconds: float) -> None:
    """Switch off every `domain_rand.randomize_*` and the pushes, size the env to the grid
    (`len(grid.cells) * envs_per_cell` envs) and the episode to `seconds`."""
    dr = env_cfg.domain_rand
    for key in [k for k in dir(dr) if k.startswith("randomize_")]:
        setattr(dr, key, False)
    dr.push_robots, dr.num_buckets = False, 0
    env_cfg.env.num_envs = len(grid.cells) * envs_per_cell
    env_cfg.env.episode_length_s = float(seconds)


def apply_grid(env: Any, grid: Grid, envs_per_cell: int) -> torch.Tensor:
    """Give every env its cell's dynamics (`apply_startup_randomization` with explicit values, from
    the nominal model) and latency (`env.latency.set`: action; IMU and joint observations alike).
    Returns the (num_envs,) kick velocities [m/s] of the push axis for `Kicks`."""
    from gym.envs.base.domain_rand import apply_startup_randomization

    n, dof = env.num_envs, env.num_dof
    if n != len(grid.cells) * envs_per_cell:
        raise ValueError(f"the env has {n} envs; the grid needs {len(grid.cells)} cells x {envs_per_cell}")
    per_env = {k: v.repeat_interleave(envs_per_cell).to(env.device) for k, v in grid.settings().items()}
    joints = lambda x: x[:, None].expand(n, dof)  # noqa: E731
    # float64, as the model: a nominal cell is the nominal robot exactly
    values = {"friction": per_env["friction"][:, None], "added_base_mass": per_env["added_mass"],
              "kp_scale": joints(per_env["kp_scale"]), "kd_scale": joints(per_env["kd_scale"]),
              "motor_strength": joints(per_env["motor_strength"])}
    env.domain_rand_values = apply_startup_randomization(env, values)
    if any(c.axis.endswith("latency") for c in grid.cells):
        if getattr(env, "latency", None) is None:
            raise ValueError(f"{type(env).__name__} has no latency model (env.latency); leave the latency axes out")
        sensor = per_env["sensor_latency"].long()
        env.latency.set(action=per_env["action_latency"].long(), imu=sensor, joint=sensor)
    return per_env["push"].float()


def grid_schedule(grid: Grid, envs_per_cell: int, num_segments: int, segment_steps: int, seed: int,
                  ranges: Any = None, device: str | torch.device = "cpu") -> Schedule:
    """One seeded command schedule of `envs_per_cell` envs, the same for every cell (stacked)."""
    one = make_schedule(envs_per_cell, num_segments, segment_steps, seed, ranges, device)
    c = len(grid.cells)
    return Schedule(one.categories.repeat(c, 1), one.commands.repeat(c, 1, 1), one.segment_steps, one.names)


def summarize_grid(grid: Grid, result: RolloutResult) -> list[dict[str, Any]]:
    """One row per cell: envs, falls and fall rate (non-timeout terminations per env episode), mean
    episode length [s], valid (env, segment) samples and the mean |v_x|, |v_y| [m/s], |w_z| [rad/s]
    errors over them (evaluation.py's measurement; NaN without samples)."""
    c = len(grid.cells)
    fell, length = result.fell.cpu().view(c, -1), result.episode_steps.cpu().view(c, -1).double() * result.dt
    valid = result.valid.cpu().reshape(c, -1)
    err = result.errors().cpu().nan_to_num(0.0).reshape(c, -1, 3) * valid.unsqueeze(-1)
    rows = []
    for i, cell in enumerate(grid.cells):
        n = int(valid[i].sum())
        e = (err[i].sum(dim=0) / n).tolist() if n else [math.nan] * 3
        rows.append({"axis": cell.axis, "level": cell.level, "unit": cell.unit, "nominal": cell.nominal,
                     "beyond_training": cell.beyond_training, "train_lo": cell.train_range[0],
                     "train_hi": cell.train_range[1], "envs": fell.shape[1], "falls": int(fell[i].sum()),
                     "fall_rate": round(float(fell[i].float().mean()), 6),
                     "episode_length_s": round(float(length[i].mean()), 6), "samples": n,
                     **{k: round(v, 6) for k, v in zip(("vx_error", "vy_error", "wz_error"), e)}})
    return rows


def format_grid_table(rows: list[dict[str, Any]]) -> str:
    """The rows of `summarize_grid` as a text table, one block per axis; '*' marks a level beyond
    the training range, '=' the nominal one."""
    head = (f"{'axis':<16}{'level':>9} {'unit':<6}{'train':>14}{'falls':>9}{'fall %':>8}{'ep len s':>10}"
            f"{'|e_vx| m/s':>12}{'|e_vy| m/s':>12}{'|e_wz| rad/s':>14}")
    lines, last = [head, "-" * len(head)], None
    for r in rows:
        if last is not None and r["axis"] != last:
            lines.append("")
        last = r["axis"]
        mark = "*" if r["beyond_training"] else "=" if r["nominal"] else " "
        train = f"[{r['train_lo']:g}, {r['train_hi']:g}]"
        lines.append(f"{r['axis']:<16}{r['level']:>8g}{mark} {r['unit']:<6}{train:>14}{r['falls']:>5}/{r['envs']:<3}"
                     f"{100 * r['fall_rate']:>8.1f}{r['episode_length_s']:>10.2f}{r['vx_error']:>12.3f}"
                     f"{r['vy_error']:>12.3f}{r['wz_error']:>14.3f}")
    return "\n".join(lines)


def write_grid_csv(path: Path, rows: list[dict[str, Any]], iteration: int) -> Path:
    """`CSV_COLUMNS`, one line per cell (atomic write)."""
    import csv

    from gym.rl.checkpoint import atomic_write_text

    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=CSV_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for r in rows:
        writer.writerow({"iteration": iteration, **r})
    return atomic_write_text(path, buf.getvalue())


def plot_grid(path: Path, rows: list[dict[str, Any]], title: str) -> Path:
    """PNG heat map: axes as rows, their levels as columns, colour = fall rate (0 green .. 1 red);
    each cell shows level, fall % and mean episode length; beyond-training cells are hatched and
    marked '*', the nominal one '='."""
    import matplotlib

    matplotlib.use("Agg", force=False)  # files only; never needs a display
    import matplotlib.pyplot as plt
    from matplotlib.patches import Rectangle

    from gym.rl.checkpoint import replace_atomically

    axes = list(dict.fromkeys(r["axis"] for r in rows))
    by_axis = {a: [r for r in rows if r["axis"] == a] for a in axes}
    width = max(len(v) for v in by_axis.values())
    rate = torch.full((len(axes), width), math.nan)
    for i, a in enumerate(axes):
        for j, r in enumerate(by_axis[a]):
            rate[i, j] = r["fall_rate"]
    fig, ax = plt.subplots(figsize=(1.45 * width + 2.8, 0.75 * len(axes) + 1.6))
    image = ax.imshow(rate.numpy(), cmap="RdYlGn_r", vmin=0.0, vmax=1.0, aspect="auto", alpha=0.7)
    for i, a in enumerate(axes):
        for j, r in enumerate(by_axis[a]):
            mark = "*" if r["beyond_training"] else "=" if r["nominal"] else ""
            text = f"{r['level']:g}{mark}\n{100 * r['fall_rate']:.0f}% | {r['episode_length_s']:.1f}s"
            if r["beyond_training"]:
                ax.add_patch(Rectangle((j - 0.5, i - 0.5), 1, 1, fill=False, hatch="//", edgecolor="0.5", lw=0))
            ax.text(j, i, text, ha="center", va="center", fontsize=8,
                    bbox={"facecolor": "white", "alpha": 0.75, "linewidth": 0, "pad": 1.5})
    ax.set_yticks(range(len(axes)), [f"{a} [{by_axis[a][0]['unit'] or '-'}]" for a in axes])
    ax.set_xticks([])
    ax.set_title(f"{title}\nlevel (* beyond training, = nominal), fall % | mean episode length", fontsize=9)
    fig.colorbar(image, ax=ax, label="fall rate", fraction=0.04)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    plt.close(fig)
    return replace_atomically(Path(path), lambda f: f.write(buf.getvalue()))
