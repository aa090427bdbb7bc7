"""Startup domain randomization: per-env robot parameters drawn once, from the nominal model.

`apply_startup_randomization(env)` (called by `LeggedRobot._apply_startup_randomization`) draws the
items switched on in `cfg.domain_rand`, writes the model-side ones through
`Physics.set_model_fields` (both backends alike; on MuJoCo C each distinct parameter set is one
`MjModel` copy) and returns the drawn values by item, as `env.domain_rand_values`. Every value is
computed from the NOMINAL model (`env.robot.mj_model`, never modified), so applying the same draw
twice gives the same model: nothing drifts. Uniform draws U(lo, hi) of the item's range:

| item (values key) | switch | range key | drawn per | acts on |
|---|---|---|---|---|
| friction (N, 1) | randomize_friction | friction_range | env | foot geoms' sliding friction (replaces) |
| restitution (N,) | randomize_restitution | restitution_range | env | foot geoms' solref damping ratio (below) |
| added_base_mass (N,) [kg] | randomize_base_mass | added_mass_range | env | mass of `added_mass_body` (+) |
| com_offset (N, 3) [m] | randomize_com | com_offset_range | env, axis | CoM of `added_mass_body`, its frame (+) |
| link_mass_scale (N, nbody) | randomize_link_mass | link_mass_scale_range | env, body | every body's mass (x) |
| kp_scale, kd_scale (N, J) | randomize_gains | kp_scale_range, kd_scale_range | env, joint | actuator Kp, Kd (x) |
| motor_strength (N, J) | randomize_motor_strength | motor_strength_range | env, joint | effort limit (x) |
| armature_scale (N, J) | randomize_joint_dynamics | armature_scale_range | env, joint | joint armature (x) |
| joint_damping (N, J) [Nm s/rad] | randomize_joint_dynamics | joint_damping_range | env, joint | dof damping (+) |
| joint_friction (N, J) [Nm] | randomize_joint_dynamics | joint_friction_range | env, joint | dof friction loss (+) |
| encoder_offset (N, J) [rad] | randomize_encoder_offset | encoder_offset_range | env, joint | sensor (below) |
| imu_mounting_rpy (N, 3) [rad] | randomize_imu_mounting | imu_mounting_range | env, axis | sensor (below) |

- Mass changes scale the body's inertia by the same ratio (same shape, denser material); body masses,
  inertias and CoM positions then go through `mj_setConst` / `set_const`, so subtree masses and
  inverse weights stay consistent. Added mass applies after the link scaling.
- Restitution e in [0, 1] sets the damping ratio of the foot contacts' mass-spring-damper (the foot
  geoms have priority over the floor, so their solref applies): zeta = -ln e / sqrt(pi^2 + ln^2 e),
  the ratio whose half-oscillation keeps a fraction e of the speed; e = 0 gives zeta = 1.
- Encoder offset o: the joint encoder reads q + o. The policy sees `dof_pos + o` (`SensorErrors.dof_pos`),
  and the motor's PD loop, reading the same encoder, drives q + o to the target: the env's
  `compute_targets` gives the physics (and the torque estimate) target - o (`joint_target`). Not
  a model field, so buckets still share models.
- IMU mounting error: the IMU frame is rotated by R = Rz(yaw) Ry(pitch) Rx(roll) in the base frame;
  the gyro and projected gravity the policy sees are R^T v (`SensorErrors.imu`).
- `domain_rand.num_buckets` B > 0: B sets of the model-side items are drawn and each env takes one at
  random (MuJoCo C keeps one model copy per set); sensor-side items are always per env.
- The env's own per-joint gain tensors (`p_gains`, `d_gains`, `torque_limits`) become (N, J).
"""

from __future__ import annotations

import math
from typing import Any

import torch

from gym.physics.model_builder import match_joint_param

MODEL_ITEMS = ("friction", "restitution", "added_base_mass", "com_offset", "link_mass_scale", "kp_scale",
               "kd_scale", "motor_strength", "armature_scale", "joint_damping", "joint_friction")


class SensorErrors:
    """What the robot's sensors add to the true state: encoder offsets and the IMU mounting rotation.

    `encoder_offset` (N, J) [rad] or None; `imu_rotation` (N, 3, 3) R (IMU axes in the base frame)
    or None. None costs nothing per step."""

    def __init__(self, encoder_offset: torch.Tensor | None = None, imu_rotation: torch.Tensor | None = None):
        self.encoder_offset = encoder_offset
        self.imu_rotation = imu_rotation

    def dof_pos(self, q: torch.Tensor) -> torch.Tensor:
        """Encoder reading (N, J) [rad] of the joint positions `q` (N, J)."""
        return q if self.encoder_offset is None else q + self.encoder_offset

    def joint_target(self, target: torch.Tensor) -> torch.Tensor:
        """The true joint angle (N, J) [rad] the motor's PD loop settles at for an encoder `target`."""
        return target if self.encoder_offset is None else target - self.encoder_offset

    def imu(self, v: torch.Tensor) -> torch.Tensor:
        """A base-frame vector `v` (N, 3) as the rotated IMU measures it: R^T v."""
        if self.imu_rotation is None:
            return v
        return torch.einsum("nji,nj->ni", self.imu_rotation, v)


def restitution_to_damping_ratio(e: torch.Tensor) -> torch.Tensor:
    """Damping ratio zeta of a linear contact that keeps a fraction `e` of the normal speed."""
    log_e = torch.log(e.clamp(min=1e-12))
    return (-log_e / torch.sqrt(math.pi**2 + log_e**2)).where(e > 0, torch.ones_like(e))


def rotation_from_rpy(rpy: torch.Tensor) -> torch.Tensor:
    """(N, 3, 3) R = Rz(yaw) Ry(pitch) Rx(roll) of `rpy` (N, 3) [rad]."""
    r, p, y = rpy.unbind(-1)
    cr, sr, cp, sp, cy, sy = r.cos(), r.sin(), p.cos(), p.sin(), y.cos(), y.sin()
    return torch.stack([
        torch.stack([cy * cp, cy * sp * sr - sy * cr, cy * sp * cr + sy * sr], -1),
        torch.stack([sy * cp, sy * sp * sr + cy * cr, sy * sp * cr - cy * sr], -1),
        torch.stack([-sp, cp * sr, cp * cr], -1),
    ], dim=-2)


def sample_values(env: Any) -> dict[str, torch.Tensor]:
    """Draw every item switched on in `env.cfg.domain_rand`; (N, ...) float32 tensors on env.device."""
    dr, n, dev = env.cfg.domain_rand, env.num_envs, env.device
    buckets = int(getattr(dr, "num_buckets", 0) or 0)
    k = buckets if buckets > 0 else n
    pick = torch.randint(0, k, (n,), device=dev) if buckets > 0 else torch.arange(n, device=dev)
    dof, nbody = env.num_dof, env.robot.mj_model.nbody

    def draw(rng: list[float], *shape: int, per_env: bool = False) -> torch.Tensor:
        lo, hi = float(rng[0]), float(rng[1])
        x = lo + (hi - lo) * torch.rand((n if per_env else k, *shape), device=dev)
        return x if per_env else x[pick]

    items = [  # (switch, values key, range key, shape, per env even with buckets)
        ("randomize_friction", "friction", "friction_range", (1,), False),
        ("randomize_restitution", "restitution", "restitution_range", (), False),
        ("randomize_base_mass", "added_base_mass", "added_mass_range", (), False),
        ("randomize_com", "com_offset", "com_offset_range", (3,), False),
        ("randomize_link_mass", "link_mass_scale", "link_mass_scale_range", (nbody,), False),
        ("randomize_gains", "kp_scale", "kp_scale_range", (dof,), False),
        ("randomize_gains", "kd_scale", "kd_scale_range", (dof,), False),
        ("randomize_motor_strength", "motor_strength", "motor_strength_range", (dof,), False),
        ("randomize_joint_dynamics", "armature_scale", "armature_scale_range", (dof,), False),
        ("randomize_joint_dynamics", "joint_damping", "joint_damping_range", (dof,), False),
        ("randomize_joint_dynamics", "joint_friction", "joint_friction_range", (dof,), False),
        ("randomize_encoder_offset", "encoder_offset", "encoder_offset_range", (dof,), True),
        ("randomize_imu_mounting", "imu_mounting_rpy", "imu_mounting_range", (3,), True),
    ]
    return {key: draw(getattr(dr, rng), *shape, per_env=per_env)
            for switch, key, rng, shape, per_env in items if getattr(dr, switch, False)}


def model_fields(env: Any, values: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The per-env model fields (N, *field shape) float64 (CPU) for `values`, from the nominal model;
    only the fields some drawn item touches."""
    m, r, cfg = env.robot.mj_model, env.robot, env.cfg
    n, dof = env.num_envs, env.num_dof
    v = {key: x.detach().double().cpu() for key, x in values.items()}
    nominal = lambda name: torch.as_tensor(getattr(m, name)).double().expand(n, *getattr(m, name).shape).clone()  # noqa: E731
    fields: dict[str, torch.Tensor] = {}
    feet = list(r.foot_geom_ids)
    if "friction" in v:
        fields["geom_friction"] = nominal("geom_friction")
        fields["geom_friction"][:, feet, 0] = v["friction"]
    if "restitution" in v:
        fields["geom_solref"] = nominal("geom_solref")
        fields["geom_solref"][:, feet, 1] = restitution_to_damping_ratio(v["restitution"])[:, None]
    base = m.body(cfg.domain_rand.added_mass_body or cfg.asset.base_body).id
    if {"added_base_mass", "link_mass_scale"} & set(v):
        mass0 = torch.as_tensor(m.body_mass).double()
        mass = nominal("body_mass") * v.get("link_mass_scale", torch.ones(n, m.nbody, dtype=torch.float64))
        if "added_base_mass" in v:
            mass[:, base] += v["added_base_mass"]
        ratio = torch.where(mass0 > 0, mass / mass0.clamp(min=1e-12), torch.ones_like(mass))
        fields["body_mass"], fields["body_inertia"] = mass, nominal("body_inertia") * ratio[:, :, None]
    if "com_offset" in v:
        fields["body_ipos"] = nominal("body_ipos")
        fields["body_ipos"][:, base] += v["com_offset"]
    dof_adr = torch.as_tensor(r.dof_adr, dtype=torch.long)
    for key, name, op in (("armature_scale", "dof_armature", "mul"), ("joint_damping", "dof_damping", "add"),
                          ("joint_friction", "dof_frictionloss", "add")):
        if key in v:
            fields[name] = nominal(name)
            column = fields[name][:, dof_adr]
            fields[name][:, dof_adr] = column * v[key] if op == "mul" else column + v[key]
    if {"kp_scale", "kd_scale"} & set(v):  # actuator i drives joint i (build_model)
        kp = torch.as_tensor(r.stiffness).double() * v.get("kp_scale", torch.ones(n, dof, dtype=torch.float64))
        kd = torch.as_tensor(r.damping).double() * v.get("kd_scale", torch.ones(n, dof, dtype=torch.float64))
        fields["actuator_gainprm"] = nominal("actuator_gainprm")
        fields["actuator_biasprm"] = nominal("actuator_biasprm")
        fields["actuator_gainprm"][:, :, 0] = kp
        fields["actuator_biasprm"][:, :, 1], fields["actuator_biasprm"][:, :, 2] = -kp, -kd
    if "motor_strength" in v:
        fields["actuator_forcerange"] = nominal("actuator_forcerange") * v["motor_strength"][:, :, None]
    return fields


def apply_startup_randomization(env: Any, values: dict[str, torch.Tensor] | None = None) -> dict[str, torch.Tensor]:
    """Draw (or take `values`, e.g. to re-apply a draw) and apply the items of `env.cfg.domain_rand`;
    returns the values by item. Sets `env.friction_coeffs`, `env.sensor_errors`, and per-env
    `env.p_gains` / `d_gains` / `torque_limits` where those are randomized."""
    values = sample_values(env) if values is None else values
    fields = model_fields(env, values)
    if fields:
        env.physics.set_model_fields(torch.arange(env.num_envs, device=env.device), fields)
    f32 = lambda x: x.to(device=env.device, dtype=torch.float32)  # noqa: E731
    if "friction" in values:
        env.friction_coeffs = f32(values["friction"])
    if "actuator_gainprm" in fields:
        env.p_gains = f32(fields["actuator_gainprm"][:, :, 0])
        env.d_gains = f32(-fields["actuator_biasprm"][:, :, 2])
    if "motor_strength" in values:  # from the nominal limits: re-applying a draw does not compound
        env.torque_limits = f32(torch.as_tensor(env.robot.effort_limit)) * f32(values["motor_strength"])
    rpy = values.get("imu_mounting_rpy")
    env.sensor_errors = SensorErrors(values.get("encoder_offset"),
                                     rotation_from_rpy(rpy) if rpy is not None else None)
    return values


def nominal_joint_param(env: Any, table: dict[str, float], what: str) -> torch.Tensor:
    """(J,) per-joint value of a `control` table, in the env's joint order (for tests and tools)."""
    return torch.tensor([match_joint_param(table, j, what) for j in env.joint_names], dtype=torch.float64)


def summarize(values: dict[str, torch.Tensor]) -> dict[str, dict[str, Any]]:
    """Per item: shape, min, mean, max (plain floats), for the run folder's domain_rand_values.yaml."""
    return {key: {"shape": list(x.shape), "min": float(x.min()), "mean": float(x.float().mean()),
                  "max": float(x.max())} for key, x in values.items()}


def write_values(run_dir: Any, values: dict[str, torch.Tensor]) -> None:
    """`<run_dir>/domain_rand_values.pt` (the tensors, CPU) and `.yaml` (their summary)."""
    from pathlib import Path

    import yaml

    from gym.rl.checkpoint import atomic_save, atomic_write_text

    run_dir = Path(run_dir)
    atomic_save({k: x.detach().cpu() for k, x in values.items()}, run_dir / "domain_rand_values.pt")
    atomic_write_text(run_dir / "domain_rand_values.yaml", yaml.safe_dump(summarize(values), sort_keys=False))
