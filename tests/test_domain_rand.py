"""Domain randomization (gym/envs/base/domain_rand.py): every item is drawn per env AND changes the
physics the same way on both backends (issue 9). Each physics test draws 4 envs in a wide range and
checks that the measured effect is ordered like the draws."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from gym.envs import Asimov, AsimovCfg
from gym.envs.base.domain_rand import apply_startup_randomization, model_fields, write_values
from gym.utils.validation import config_problems
from tests.conftest import device_for

BACKENDS = ["mujoco", "warp"]
N = 4
KNEE = 3  # left_knee_joint
ALL_SWITCHES = ("friction", "base_mass", "restitution", "com", "link_mass", "gains", "motor_strength",
                "joint_dynamics", "encoder_offset", "imu_mounting")


def make_env(backend: str, n: int = N, seed: int = 0, **dr) -> Asimov:
    """Asimov with only the given `domain_rand` settings (no pushes, friction or mass draws, no noise)."""
    cfg = AsimovCfg()
    cfg.env.num_envs = n
    d = cfg.domain_rand
    d.push_robots = d.randomize_friction = d.randomize_base_mass = False
    cfg.noise.add_noise = False
    cfg.init_state.xy_range = [0.0, 0.0]
    cfg.init_state.yaw_range = [0.0, 0.0]
    for key, value in dr.items():
        assert hasattr(d, key), key
        setattr(d, key, value)
    torch.manual_seed(seed)
    return Asimov(cfg, device_for(backend), physics=backend)


def hold(env: Asimov, policy_steps: int, target: torch.Tensor | None = None) -> None:
    """Step the physics with the joint targets held at `target` (N, J) (default: the default pose)."""
    target = env.default_dof_pos.expand(env.num_envs, -1) if target is None else target
    for _ in range(policy_steps):
        env.physics.ctrl.copy_(target)
        env.physics.step()


def lift(env: Asimov, dz: float) -> None:
    """Every env at the default pose, `dz` above the spawn height, at rest."""
    qpos = env._qpos_init.expand(env.num_envs, -1).clone()
    qpos[:, 2] += dz
    env.physics.set_state(torch.arange(env.num_envs), qpos, torch.zeros_like(env.physics.qvel))


def assert_ordered(values: torch.Tensor, effect: torch.Tensor, sign: int) -> None:
    """The draws differ across envs and `effect` is ordered like them (sign +1) or reversed (-1)."""
    values, effect = values.detach().cpu().double(), effect.detach().cpu().double()
    assert (values.max() - values.min()) > 0.1 * values.abs().max(), f"draws barely differ: {values}"
    order = torch.argsort(values)
    steps = torch.diff(effect[order]) * sign
    assert (steps > 0).all(), f"draws {values[order].tolist()} gave effects {effect[order].tolist()}"


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("item, settings, sign", [
    ("kp_scale", {"randomize_gains": True, "kp_scale_range": [0.3, 2.0], "kd_scale_range": [1.0, 1.0]}, +1),
    ("kd_scale", {"randomize_gains": True, "kp_scale_range": [1.0, 1.0], "kd_scale_range": [0.2, 4.0]}, -1),
    ("motor_strength", {"randomize_motor_strength": True, "motor_strength_range": [0.05, 0.2]}, +1),
    ("armature_scale", {"randomize_joint_dynamics": True, "armature_scale_range": [0.3, 4.0],
                        "joint_damping_range": [0.0, 0.0], "joint_friction_range": [0.0, 0.0]}, -1),
    ("joint_damping", {"randomize_joint_dynamics": True, "armature_scale_range": [1.0, 1.0],
                       "joint_damping_range": [0.0, 8.0], "joint_friction_range": [0.0, 0.0]}, -1),
    ("joint_friction", {"randomize_joint_dynamics": True, "armature_scale_range": [1.0, 1.0],
                        "joint_damping_range": [0.0, 0.0], "joint_friction_range": [0.0, 25.0]}, -1),
])
def test_joint_items_change_a_knee_step_response(backend, item, settings, sign):
    """In free fall (no contacts), one policy step (4 ticks) after a -0.5 rad knee step: a higher Kp
    or motor strength moves the knee farther; more Kd, armature, damping or friction loss less."""
    env = make_env(backend, **settings)
    lift(env, 2.0)
    q0 = env.dof_pos[:, KNEE].clone()
    target = env.default_dof_pos.expand(N, -1).clone()
    target[:, KNEE] -= 0.5
    hold(env, 1, target)
    moved = (q0 - env.physics.qpos[:, env._qpos_idx][:, KNEE]).cpu()
    assert (moved > 0).all()
    assert_ordered(env.domain_rand_values[item][:, KNEE], moved, sign)


@pytest.mark.parametrize("backend", BACKENDS)
def test_gains_and_strength_reach_the_model_and_the_torque_estimate(backend):
    env = make_env(backend, randomize_gains=True, randomize_motor_strength=True)
    v = env.domain_rand_values
    kp = torch.as_tensor(env.robot.stiffness) * v["kp_scale"].cpu().double()
    gain = env.physics.get_model_field("actuator_gainprm")
    bias = env.physics.get_model_field("actuator_biasprm")
    assert torch.allclose(gain[:, :, 0], kp, rtol=1e-6) and torch.allclose(bias[:, :, 1], -kp, rtol=1e-6)
    kd = torch.as_tensor(env.robot.damping) * v["kd_scale"].cpu().double()
    assert torch.allclose(bias[:, :, 2], -kd, rtol=1e-6)
    limit = torch.as_tensor(env.robot.effort_limit) * v["motor_strength"].cpu().double()
    assert torch.allclose(env.physics.get_model_field("actuator_forcerange")[:, :, 1], limit, rtol=1e-6)
    assert env.p_gains.shape == env.torque_limits.shape == (N, 12)
    assert torch.allclose(env.p_gains.cpu().double(), kp, rtol=1e-6)


@pytest.mark.parametrize("backend", BACKENDS)
def test_lower_friction_slides_farther_under_the_same_push(backend):
    env = make_env(backend, randomize_friction=True, friction_range=[0.05, 1.0])
    hold(env, 25)  # settle on the feet
    foot_x = env.robot.sensor("foot_pos_0").start
    x0 = env.physics.sensordata[:, foot_x].clone()
    qvel = env.physics.qvel.clone()
    qvel[:, 0] += 1.0  # the same 1 m/s push for every env
    env.physics.set_qvel(torch.ones(N, dtype=torch.bool, device=env.device), qvel)
    hold(env, 10)
    slid = env.physics.sensordata[:, foot_x] - x0
    assert_ordered(env.domain_rand_values["friction"][:, 0], slid, -1)


@pytest.mark.parametrize("backend", BACKENDS)
def test_higher_restitution_bounces_the_foot_back_faster(backend):
    env = make_env(backend, randomize_restitution=True, restitution_range=[0.0, 0.9])
    lift(env, 0.3)
    contact = env.robot.sensor("foot_contact_0").start
    vz = env.robot.sensor("foot_vel_0").start + 2
    touched = torch.full((N,), -1)
    rebound = torch.zeros(N)
    for tick in range(30):
        hold(env, 1)
        s = env.physics.sensordata.cpu()
        touched = torch.where((touched < 0) & (s[:, contact] > 0), tick, touched)
        fresh = (touched >= 0) & (tick - touched < 3)  # the 3 policy steps after touchdown
        rebound = torch.where(fresh, torch.maximum(rebound, s[:, vz]), rebound)
    assert (touched >= 0).all()
    assert_ordered(env.domain_rand_values["restitution"], rebound, +1)
    solref = env.physics.get_model_field("geom_solref")[:, env.robot.foot_geom_ids[0], 1]
    assert (solref < 1.0).all() and (solref > 0).all()  # damping ratios below critical


@pytest.mark.parametrize("backend", BACKENDS)
def test_mass_items_change_the_total_mass_and_the_weight_on_the_feet(backend):
    env = make_env(backend, randomize_link_mass=True, link_mass_scale_range=[0.6, 1.4],
                   randomize_base_mass=True, added_mass_range=[0.0, 3.0])
    v, m = env.domain_rand_values, env.robot.mj_model
    base = m.body("pelvis_link").id
    mass = env.physics.get_model_field("body_mass")
    want = torch.as_tensor(m.body_mass) * v["link_mass_scale"].cpu().double()
    want[:, base] += v["added_base_mass"].cpu().double()
    assert torch.allclose(mass, want, rtol=1e-6)
    ratio = mass[:, base] / float(m.body_mass[base])  # inertia scaled like the mass
    assert torch.allclose(env.physics.get_model_field("body_inertia")[:, base],
                          torch.as_tensor(m.body_inertia[base]) * ratio[:, None], rtol=1e-5)
    total = mass.sum(dim=1)
    assert torch.allclose(env.physics.get_model_field("body_subtreemass")[:, 1], total, rtol=1e-5)  # set_const
    hold(env, 40)  # standing still: the feet carry the weight
    s = env.physics.sensordata.cpu()
    fz = sum(s[:, env.robot.sensor(f"foot_contact_{i}").start + 3] for i in range(2)).double()
    assert torch.allclose(fz.abs(), total * 9.81, rtol=0.05), (fz.tolist(), (total * 9.81).tolist())
    assert_ordered(total, fz.abs(), +1)


@pytest.mark.parametrize("backend", BACKENDS)
def test_com_offset_forward_tilts_the_standing_robot_forward(backend):
    env = make_env(backend, randomize_com=True, com_offset_range=[-0.08, 0.08])
    v = env.domain_rand_values["com_offset"]
    base = env.robot.mj_model.body("pelvis_link").id
    ipos = env.physics.get_model_field("body_ipos")[:, base]
    assert torch.allclose(ipos, torch.as_tensor(env.robot.mj_model.body_ipos[base]) + v.cpu().double(), atol=1e-6)
    hold(env, 15)
    env._refresh_state()
    # pitching nose-down (forward) tips gravity toward +x in the body frame
    assert_ordered(v[:, 0], env.projected_gravity[:, 0], +1)


@pytest.mark.parametrize("backend", BACKENDS)
def test_encoder_offset_biases_the_observation_and_the_pd_equilibrium(backend):
    env = make_env(backend, randomize_encoder_offset=True, encoder_offset_range=[-0.05, 0.05])
    o = env.domain_rand_values["encoder_offset"]
    assert (o.std(dim=0) > 0.005).all() and (o.std(dim=1) > 0.005).all()  # per env and per joint
    lift(env, 2.0)
    hold(env, 25, env.compute_targets(torch.zeros(N, 12)))  # action 0: the PD loop drives q + o to default
    env._refresh_state()
    assert torch.allclose(env.dof_pos, env.default_dof_pos - o, atol=3e-3)
    env.compute_observations()
    dof_pos_obs = env.obs_buf[:, env.obs_group.slices["dof_pos"]]
    assert torch.allclose(dof_pos_obs, env.dof_pos + o - env.default_dof_pos, atol=1e-6)
    assert torch.allclose(dof_pos_obs, torch.zeros_like(o), atol=3e-3)  # the policy sees its target reached


@pytest.mark.parametrize("backend", BACKENDS)
def test_imu_mounting_error_rotates_gyro_and_gravity(backend):
    env = make_env(backend, randomize_imu_mounting=True, imu_mounting_range=[-0.1, 0.1])
    qpos = env._qpos_init.expand(N, -1).clone()
    qvel = torch.zeros_like(env.physics.qvel)
    qvel[:, 3:6] = torch.tensor([0.5, -0.3, 0.8])  # body angular velocity [rad/s]
    env.physics.set_state(torch.arange(N), qpos, qvel)
    env._refresh_state()
    env.compute_observations()
    sl = env.obs_group.slices
    gyro = env.obs_buf[:, sl["base_ang_vel"]] / 0.25
    gravity = env.obs_buf[:, sl["projected_gravity"]]
    R = env.sensor_errors.imu_rotation
    assert torch.allclose(gyro, torch.einsum("nji,nj->ni", R, env.base_ang_vel), atol=1e-5)
    assert torch.allclose(gravity, torch.einsum("nji,nj->ni", R, env.projected_gravity), atol=1e-6)
    tilt = torch.acos((-gravity[:, 2]).clamp(max=1.0))  # the level robot looks tilted by the error
    rpy = env.domain_rand_values["imu_mounting_rpy"]
    assert torch.allclose(tilt, torch.acos(torch.cos(rpy[:, 0]) * torch.cos(rpy[:, 1])), atol=1e-4)
    assert (tilt > 1e-3).all() and tilt.std() > 1e-3
    assert torch.allclose(gravity.norm(dim=1), torch.ones(N), atol=1e-6)


@pytest.mark.parametrize("backend", BACKENDS)
def test_every_item_differs_across_envs_and_reapplying_a_draw_does_not_drift(backend, tmp_path):
    env = make_env(backend, **{f"randomize_{s}": True for s in ALL_SWITCHES})
    values = env.domain_rand_values
    assert set(values) == {"friction", "added_base_mass", "restitution", "com_offset", "link_mass_scale",
                           "kp_scale", "kd_scale", "motor_strength", "armature_scale", "joint_damping",
                           "joint_friction", "encoder_offset", "imu_mounting_rpy"}
    for key, x in values.items():
        assert x.shape[0] == N and (x.std(dim=0) > 0).all(), key
    names = list(model_fields(env, values))
    before = {name: env.physics.get_model_field(name) for name in names}
    apply_startup_randomization(env, values)  # the same draw again, from the nominal model
    for name in names:
        assert torch.equal(env.physics.get_model_field(name), before[name]), name
    write_values(tmp_path, values)
    saved = torch.load(tmp_path / "domain_rand_values.pt", weights_only=True)
    assert torch.equal(saved["kp_scale"], values["kp_scale"].cpu())
    assert "kp_scale:" in (tmp_path / "domain_rand_values.yaml").read_text()


def test_buckets_share_model_parameters_but_not_sensor_errors():
    env = make_env("mujoco", n=8, num_buckets=2, randomize_gains=True, randomize_encoder_offset=True)
    kp = env.domain_rand_values["kp_scale"]
    assert len({tuple(row.tolist()) for row in kp}) <= 2
    assert len({id(m) for m in env.physics._models}) <= 2  # one MjModel copy per bucket
    assert len({tuple(row.tolist()) for row in env.domain_rand_values["encoder_offset"]}) == 8


@pytest.mark.parametrize("key, value, message", [
    ("restitution_range", [0.0, 1.5], "a coefficient of restitution lies in [0, 1]"),
    ("kp_scale_range", [-0.1, 1.0], "a scale factor must be > 0"),
    ("joint_friction_range", [-1.0, 0.5], "friction loss [Nm] must be >= 0"),
    ("motor_strength_range", [1.2, 0.8], "min > max"),
])
def test_bad_ranges_are_refused_up_front(key, value, message):
    from gym.envs.asimov.asimov import Asimov as Task
    from gym.envs.asimov.asimov_config import AsimovCfgPPO

    cfg = AsimovCfg()
    setattr(cfg.domain_rand, key, value)
    problems = [p for p in config_problems(Task, cfg, AsimovCfgPPO()) if key in p]
    assert problems and message in problems[0], problems


def test_asimov_nominal_values_are_untouched_with_everything_off():
    env = make_env("mujoco", n=2)
    assert env.domain_rand_values == {}
    assert all(m is env.robot.mj_model for m in env.physics._models)
    assert np.allclose(env.p_gains.numpy(), env.robot.stiffness)
