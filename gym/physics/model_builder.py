"""Build the simulated `mujoco.MjModel` from a robot MJCF plus what the env config adds.

The robot file holds kinematics, inertials, collision shapes and sites only. This module adds, with
`mujoco.MjSpec`: solver options, a floor or a generated terrain (`gym.utils.terrain.Terrain`), one
position actuator per hinge joint (Kp, Kd, effort,
armature from `cfg.control`), and the sensors the env reads (`RobotModel.sensor`):

- ``imu_gyro`` (3): angular velocity of `asset.imu_site`, BODY frame [rad/s] (as the robot's gyro).
- ``imu_vel`` (3): linear velocity of `asset.imu_site`, BODY frame [m/s] (velocimeter).
- ``root_angmom`` (3): angular momentum of the whole robot (the subtree of `asset.base_body`) about
  its centre of mass, WORLD frame [kg m^2/s] (MuJoCo `subtreeangmom`).
- ``foot_pos_<i>`` (3), ``foot_vel_<i>`` (3): world position [m] and linear velocity [m/s] of foot site i.
- ``foot_contact_<i>`` (4): contacts between foot body i and the floor: [count, net force x, y, z]
  in the world frame [N] (MuJoCo `contact` sensor, reduce="netforce").
- ``contact_<body>`` (1): number of contacts between `<body>` and the floor, for each body in
  `asset.penalize_contacts_on` and `asset.terminate_after_contacts_on`.

"The floor" is the plane geom `floor`, or with a terrain every geom of the world body (the terrain's
plane, boxes and heightfields; robot MJCFs hold no world geoms).
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from pathlib import Path

import mujoco
import numpy as np

from gym import GYM_ROOT_DIR
from gym.utils.terrain import Terrain

_INTEGRATORS = {"euler": mujoco.mjtIntegrator.mjINT_EULER, "implicitfast": mujoco.mjtIntegrator.mjINT_IMPLICITFAST,
                "implicit": mujoco.mjtIntegrator.mjINT_IMPLICIT, "rk4": mujoco.mjtIntegrator.mjINT_RK4}
_SOLVERS = {"newton": mujoco.mjtSolver.mjSOL_NEWTON, "cg": mujoco.mjtSolver.mjSOL_CG}
_CONES = {"pyramidal": mujoco.mjtCone.mjCONE_PYRAMIDAL, "elliptic": mujoco.mjtCone.mjCONE_ELLIPTIC}
_CONTACT_FOUND, _CONTACT_FORCE = 1 << 0, 1 << 1
_REDUCE_NETFORCE = 3
FLOOR_NAME = "floor"


@dataclass
class RobotModel:
    """The compiled model and the indices the env needs."""

    mj_model: mujoco.MjModel
    joint_names: list[str]  # actuated hinge joints, MJCF order = action order
    qpos_adr: np.ndarray  # (num_dof,) qpos address of each joint
    dof_adr: np.ndarray  # (num_dof,) qvel address of each joint
    joint_range: np.ndarray  # (num_dof, 2) [rad]
    stiffness: np.ndarray  # (num_dof,) Kp [Nm/rad]
    damping: np.ndarray  # (num_dof,) Kd [Nm s/rad]
    effort_limit: np.ndarray  # (num_dof,) [Nm]
    base_body_id: int
    foot_geom_ids: list[int]  # collision geoms of the feet (friction randomization)
    sensors: dict[str, slice] = field(default_factory=dict)  # name -> slice into sensordata

    def sensor(self, name: str) -> slice:
        """Slice of `sensordata` columns for sensor `name`; KeyError lists the known names."""
        try:
            return self.sensors[name]
        except KeyError:
            raise KeyError(f"no sensor {name!r}; the model has {sorted(self.sensors)}") from None


def resolve_asset_path(file: str) -> Path:
    """Expand "{GYM_ROOT_DIR}" in `file`; raise FileNotFoundError with a fix if it does not exist."""
    path = Path(file.format(GYM_ROOT_DIR=GYM_ROOT_DIR)).expanduser()
    if not file:
        raise FileNotFoundError("asset.file is empty: set it to the robot's MJCF, e.g. "
                                "'{GYM_ROOT_DIR}/resources/robots/<robot>/<robot>.xml'")
    if not path.is_file():
        raise FileNotFoundError(f"robot MJCF not found: {path} (from asset.file={file!r}). Check the path; "
                                "'{GYM_ROOT_DIR}' expands to the repository root.")
    return path


def match_joint_param(params: dict[str, float], joint: str, what: str) -> float:
    """legged_gym rule: the first key of `params` that is a substring of `joint` gives its value."""
    for key, value in params.items():
        if key in joint:
            return float(value)
    raise KeyError(f"control.{what} has no entry for joint {joint!r} (keys match by substring); "
                   f"known keys: {sorted(params)}")


def _choice(table: dict, value: str, key: str):
    if value not in table:
        raise ValueError(f"sim.{key}={value!r} is not supported; choose one of {sorted(table)}")
    return table[value]


def _body(spec: mujoco.MjSpec, name: str, what: str) -> mujoco.MjsBody:
    body = spec.body(name)
    if body is None:
        names = [b.name for b in spec.bodies]
        close = difflib.get_close_matches(name, names, n=3)
        raise ValueError(f"{what}: no body {name!r} in the robot MJCF; closest: {close or names[:5]}")
    return body


def _site(spec: mujoco.MjSpec, name: str, what: str) -> None:
    if spec.site(name) is None:
        names = [s.name for s in spec.sites]
        close = difflib.get_close_matches(name, names, n=3)
        raise ValueError(f"{what}: no site {name!r} in the robot MJCF; closest: {close or names[:5]}")


def build_model(cfg, terrain: Terrain | None = None) -> RobotModel:
    """Compile the robot of `cfg.asset.file` with floor, actuators and sensors (see module docstring).

    `terrain`: the generated terrain when `cfg.terrain.mesh_type` is not "plane" (None: generated
    here from `cfg.terrain` with seed `cfg.terrain.seed`, 0 if that is -1). Raises FileNotFoundError
    for a missing MJCF, ValueError for unknown bodies/sites/solver names or mesh types, KeyError for a
    joint with no gain in `cfg.control`.
    """
    spec = mujoco.MjSpec.from_file(str(resolve_asset_path(cfg.asset.file)))
    opt, sim = spec.option, cfg.sim
    opt.timestep = sim.dt
    opt.gravity = list(sim.gravity)
    opt.integrator = _choice(_INTEGRATORS, sim.integrator, "integrator")
    opt.solver = _choice(_SOLVERS, sim.solver, "solver")
    opt.cone = _choice(_CONES, sim.cone, "cone")
    opt.iterations, opt.ls_iterations = sim.iterations, sim.ls_iterations
    mesh_type = cfg.terrain.mesh_type
    if mesh_type not in ("plane", "heightfield", "trimesh"):
        raise ValueError(f"terrain.mesh_type={mesh_type!r} is not supported; choose 'plane', 'heightfield' "
                         "or 'trimesh'")
    if mesh_type != "plane" and terrain is None:
        terrain = Terrain.generate(cfg.terrain, max(int(cfg.terrain.seed), 0))
    if cfg.asset.self_collisions:
        for g in spec.geoms:
            if g.conaffinity and g.name != FLOOR_NAME:
                g.contype = g.contype | 2
                g.conaffinity = g.conaffinity | 2
    floor_ref = _add_terrain(spec, cfg.terrain, terrain if mesh_type != "plane" else None)

    joint_names, kp, kd, effort = [], [], [], []
    for joint in spec.joints:
        if joint.type != mujoco.mjtJoint.mjJNT_HINGE:
            continue
        name, c = joint.name, cfg.control
        joint_names.append(name)
        kp.append(match_joint_param(c.stiffness, name, "stiffness"))
        kd.append(match_joint_param(c.damping, name, "damping"))
        effort.append(match_joint_param(c.effort_limit, name, "effort_limit"))
        joint.armature = match_joint_param(c.armature, name, "armature") if c.armature else 0.0
        act = spec.add_actuator(name=name, target=name, trntype=mujoco.mjtTrn.mjTRN_JOINT)
        act.gaintype, act.biastype = mujoco.mjtGain.mjGAIN_FIXED, mujoco.mjtBias.mjBIAS_AFFINE
        act.gainprm[0] = kp[-1]
        act.biasprm[0], act.biasprm[1], act.biasprm[2] = 0.0, -kp[-1], -kd[-1]
        act.forcelimited, act.forcerange = True, [-effort[-1], effort[-1]]
        act.ctrllimited, act.ctrlrange = True, list(joint.range)  # targets clamped to the joint range
    if len(joint_names) != cfg.env.num_actions:
        raise ValueError(f"the MJCF has {len(joint_names)} hinge joints but env.num_actions="
                         f"{cfg.env.num_actions}; set env.num_actions={len(joint_names)}")

    asset = cfg.asset
    base = _body(spec, asset.base_body, "asset.base_body")
    if not base.joints or base.joints[0].type != mujoco.mjtJoint.mjJNT_FREE:
        raise ValueError(f"asset.base_body={asset.base_body!r} must carry the free joint")
    _site(spec, asset.imu_site, "asset.imu_site")
    _add_sensor(spec, "imu_gyro", mujoco.mjtSensor.mjSENS_GYRO, mujoco.mjtObj.mjOBJ_SITE, asset.imu_site)
    _add_sensor(spec, "imu_vel", mujoco.mjtSensor.mjSENS_VELOCIMETER, mujoco.mjtObj.mjOBJ_SITE, asset.imu_site)
    _add_sensor(spec, "root_angmom", mujoco.mjtSensor.mjSENS_SUBTREEANGMOM, mujoco.mjtObj.mjOBJ_BODY, asset.base_body)
    if len(asset.foot_sites) != len(asset.foot_bodies):
        raise ValueError("asset.foot_sites and asset.foot_bodies must list one entry per foot, in the same order")
    for i, (site, body) in enumerate(zip(asset.foot_sites, asset.foot_bodies)):
        _site(spec, site, "asset.foot_sites")
        _body(spec, body, "asset.foot_bodies")
        _add_sensor(spec, f"foot_pos_{i}", mujoco.mjtSensor.mjSENS_FRAMEPOS, mujoco.mjtObj.mjOBJ_SITE, site)
        _add_sensor(spec, f"foot_vel_{i}", mujoco.mjtSensor.mjSENS_FRAMELINVEL, mujoco.mjtObj.mjOBJ_SITE, site)
        _add_contact_sensor(spec, f"foot_contact_{i}", body, _CONTACT_FOUND | _CONTACT_FORCE, floor_ref)
    for body in dict.fromkeys([*asset.penalize_contacts_on, *asset.terminate_after_contacts_on]):
        _body(spec, body, "asset.penalize_contacts_on / terminate_after_contacts_on")
        _add_contact_sensor(spec, f"contact_{body}", body, _CONTACT_FOUND, floor_ref)

    m = spec.compile()
    qpos_adr = np.array([m.jnt_qposadr[m.joint(n).id] for n in joint_names])
    dof_adr = np.array([m.jnt_dofadr[m.joint(n).id] for n in joint_names])
    foot_geoms = [g for g in range(m.ngeom) if m.body(int(m.geom_bodyid[g])).name in asset.foot_bodies
                  and m.geom_conaffinity[g] != 0]
    sensors = {m.sensor(i).name: slice(int(m.sensor_adr[i]), int(m.sensor_adr[i] + m.sensor_dim[i]))
               for i in range(m.nsensor)}
    return RobotModel(
        mj_model=m, joint_names=joint_names, qpos_adr=qpos_adr, dof_adr=dof_adr,
        joint_range=np.array([m.jnt_range[m.joint(n).id] for n in joint_names]),
        stiffness=np.array(kp), damping=np.array(kd), effort_limit=np.array(effort),
        base_body_id=m.body(asset.base_body).id, foot_geom_ids=foot_geoms, sensors=sensors)


def _add_sensor(spec: mujoco.MjSpec, name: str, type_, objtype, objname: str) -> None:
    spec.add_sensor(name=name, type=type_, objtype=objtype, objname=objname)


def _add_contact_sensor(spec: mujoco.MjSpec, name: str, body: str, data: int, ref: tuple) -> None:
    """Contacts between the geoms of `body` (not its children) and the floor (`ref`: (type, name))."""
    s = spec.add_sensor(name=name, type=mujoco.mjtSensor.mjSENS_CONTACT, objtype=mujoco.mjtObj.mjOBJ_BODY,
                        objname=body, reftype=ref[0], refname=ref[1])
    s.intprm[0], s.intprm[1], s.intprm[2] = data, _REDUCE_NETFORCE, 1


def _add_terrain(spec: mujoco.MjSpec, cfg, terrain: Terrain | None) -> tuple:
    """Add the floor plane, or the terrain's plane, boxes, heightfields and meshes (all in the world body).

    Returns the contact sensors' reference (object type, name): the plane geom, or the world body.
    With a terrain, MuJoCo C's sleep option is enabled: static geoms then skip the per-step pose
    update (4,500 boxes cost 50 us per step otherwise); the robot's actuated tree never sleeps, so
    results are unchanged (checked: identical trajectories).
    """
    kw = dict(contype=1, conaffinity=1, friction=[cfg.static_friction, 0.005, 0.0001], rgba=[0.35, 0.4, 0.45, 1])
    plane = mujoco.mjtGeom.mjGEOM_PLANE
    if terrain is None:
        spec.worldbody.add_geom(name=FLOOR_NAME, type=plane, size=[0, 0, 1], **kw)
        return mujoco.mjtObj.mjOBJ_GEOM, FLOOR_NAME
    spec.worldbody.add_geom(name=FLOOR_NAME, type=plane, size=[0, 0, 1], pos=[0, 0, terrain.floor_z], **kw)
    for box in terrain.boxes:
        spec.worldbody.add_geom(type=mujoco.mjtGeom.mjGEOM_BOX, pos=box[:3], size=box[3:], **kw)
    hs = terrain.horizontal_scale
    for k, patch in enumerate(terrain.patches):
        centre, h = terrain.patch_geometry(patch)
        top = max(float(h.max()), 1e-3)
        depth = max(float(centre[2]) - terrain.floor_z, 0.0) + 0.05  # solid down to (below) the floor
        nrow, ncol = h.shape
        spec.add_hfield(name=f"terrain_{k}", size=[(ncol - 1) * hs / 2, (nrow - 1) * hs / 2, top, depth],
                        nrow=nrow, ncol=ncol, userdata=(h / top).ravel().tolist())
        spec.worldbody.add_geom(type=mujoco.mjtGeom.mjGEOM_HFIELD, hfieldname=f"terrain_{k}", pos=centre, **kw)
    for k, verts in enumerate(terrain.meshes):  # convex pieces, world coordinates
        spec.add_mesh(name=f"terrain_mesh_{k}", uservert=verts.ravel().tolist())
        spec.worldbody.add_geom(type=mujoco.mjtGeom.mjGEOM_MESH, meshname=f"terrain_mesh_{k}", **kw)
    spec.option.enableflags |= mujoco.mjtEnableBit.mjENBL_SLEEP
    return mujoco.mjtObj.mjOBJ_BODY, "world"
