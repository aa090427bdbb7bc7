"""The Asimov reward terms against the data sheet's §9 formulas, on constructed states, by hand.

Each test writes the state buffers the term reads (command, velocimeter / gyro columns of
`sensordata`, foot sensors, timers) and compares with the §9 formula evaluated on plain numbers.
"""

from __future__ import annotations

import math

import mujoco
import numpy as np
import pytest
import torch

from gym.envs import Asimov, AsimovCfg
from tests.conftest import device_for
from tests.test_env import BACKENDS, N, make_cfg, set_state


@pytest.fixture(scope="module", params=BACKENDS)
def env(request):
    env = Asimov(make_cfg(), device_for(request.param), physics=request.param)
    env.reset()
    env.step(torch.zeros(N, 12))  # contact sensors read from the first step after a reset
    return env


def command(env, vx=0.0, vy=0.0, wz=0.0) -> None:
    env.commands[:] = 0.0
    env.commands[:, :3] = torch.tensor([vx, vy, wz])


def test_reward_set_and_weights_are_section_9():
    s = AsimovCfg.rewards.scales
    expected = {"track_linear_velocity": 2.0, "track_angular_velocity": 2.0, "upright": 1.0, "pose": 1.0,
                "body_ang_vel": -0.08, "angular_momentum": -0.03, "dof_pos_limits": -1.0, "action_rate": -0.01,
                "air_time": 0.5, "foot_clearance": -0.5, "foot_swing_height": -0.1, "foot_slip": -0.1,
                "soft_landing": -1e-5}
    for name, weight in expected.items():
        assert getattr(s, name) == weight, name
    r = AsimovCfg.rewards
    assert (r.track_linear_velocity_sigma, r.track_angular_velocity_sigma, r.upright_sigma) == (0.25, 0.5, 0.2)
    assert r.air_time_range == [0.05, 0.5] and r.foot_clearance_target == 0.1


def test_track_linear_velocity_includes_vertical_velocity(env):
    command(env, vx=0.5, vy=-0.2)
    env.base_lin_vel[:] = torch.tensor([0.3, 0.1, 0.2])  # writes the velocimeter columns
    expected = math.exp(-((0.5 - 0.3) ** 2 + (-0.2 - 0.1) ** 2 + 0.2**2) / 0.25)
    torch.testing.assert_close(env._reward_track_linear_velocity(), torch.full((N,), expected))
    # the legged_gym term ignores v_z and reads its own sigma key (tracking_sigma)
    legged_gym = math.exp(-((0.5 - 0.3) ** 2 + (-0.2 - 0.1) ** 2) / env.cfg.rewards.tracking_sigma)
    torch.testing.assert_close(env._reward_tracking_lin_vel(), torch.full((N,), legged_gym))


def test_track_angular_velocity_includes_roll_and_pitch_rates(env):
    command(env, wz=0.4)
    env.base_ang_vel[:] = torch.tensor([0.3, -0.5, 0.1])
    expected = math.exp(-((0.4 - 0.1) ** 2 + 0.3**2 + 0.5**2) / 0.5)
    torch.testing.assert_close(env._reward_track_angular_velocity(), torch.full((N,), expected))


def test_body_ang_vel_is_world_frame(env):
    roll90 = (math.cos(math.pi / 4), math.sin(math.pi / 4), 0.0, 0.0)  # body z -> world -y
    set_state(env, range(N), quat=roll90)
    env.base_ang_vel[:] = torch.tensor([0.0, 0.0, 2.0])  # pure body-z rate: 0 in the body-frame term
    torch.testing.assert_close(env._reward_body_ang_vel(), torch.full((N,), 4.0))
    assert torch.all(env._reward_ang_vel_xy() == 0)


def test_angular_momentum_matches_the_rigid_body_sum(env):
    """Whole robot spinning rigidly about the base: L = sum_i m_i (c_i - c) x v_i + R_i I_i R_i^T w."""
    set_state(env, range(N), ang_vel=(0.3, -0.2, 1.5))
    m = env.robot.mj_model
    d = mujoco.MjData(m)
    d.qpos[:] = env.physics.qpos[0].cpu().numpy()
    d.qvel[:] = env.physics.qvel[0].cpu().numpy()
    mujoco.mj_forward(m, d)
    base = d.xpos[env.robot.base_body_id]
    w = d.xmat[env.robot.base_body_id].reshape(3, 3) @ d.qvel[3:6]  # free-joint rate is body frame
    bodies = range(1, m.nbody)
    mass = np.array([m.body_mass[b] for b in bodies])
    com = (mass[:, None] * d.xipos[1:]).sum(0) / mass.sum()
    angmom = np.zeros(3)
    for b in bodies:
        v = np.cross(w, d.xipos[b] - base)
        rot = d.ximat[b].reshape(3, 3)
        angmom += m.body_mass[b] * np.cross(d.xipos[b] - com, v) + rot @ np.diag(m.body_inertia[b]) @ rot.T @ w
    expected = float(angmom @ angmom)
    assert expected > 0.01
    torch.testing.assert_close(env._reward_angular_momentum(), torch.full((N,), expected), rtol=1e-3, atol=1e-6)


def test_air_time_pays_each_step_inside_the_window(env):
    command(env, vx=0.6)
    env.feet_air_time[:] = torch.tensor([[0.2, 0.0], [0.04, 0.3], [0.5, 0.49], [0.06, 0.06]])
    torch.testing.assert_close(env._reward_air_time(), torch.tensor([1.0, 1.0, 1.0, 2.0]))
    old = env.cfg.rewards.air_time_min_command
    try:
        env.cfg.rewards.air_time_min_command = 0.5  # the data sheet's condition s > 0.5
        command(env, vx=0.3, wz=0.1)  # s = 0.4
        assert torch.all(env._reward_air_time() == 0)
        command(env, vx=0.3, vy=0.4, wz=-0.1)  # s = 0.5 + 0.1
        torch.testing.assert_close(env._reward_air_time(), torch.tensor([1.0, 1.0, 1.0, 2.0]))
    finally:
        env.cfg.rewards.air_time_min_command = old
    command(env)  # standing: nothing
    assert torch.all(env._reward_air_time() == 0)


def test_foot_swing_height_uses_the_swing_peak_at_landing(env):
    command(env, vx=0.3)
    env.swing_peak[:] = 0.0
    env.feet_air_time[:] = 0.0
    heights = [(0.05, False), (0.12, False), (0.09, False), (0.03, True)]  # left foot swings, lands
    for z, contact in heights:
        env.foot_pos[:, 0, 2] = z
        env.foot_pos[:, 1, 2] = 0.03
        env.foot_contact = torch.tensor([[contact, True]] * N)
        env._update_feet_air_time()
        if not contact:
            assert torch.all(env._reward_foot_swing_height() == 0)  # paid at the landing only
    assert torch.all(env.first_contact[:, 0]) and not env.first_contact[:, 1].any()
    torch.testing.assert_close(env.last_swing_peak[:, 0], torch.full((N,), 0.12))
    torch.testing.assert_close(env._reward_foot_swing_height(), torch.full((N,), (0.12 / 0.1 - 1) ** 2))
    command(env)
    assert torch.all(env._reward_foot_swing_height() == 0)


def test_soft_landing_is_the_landing_force(env):
    command(env, vx=0.3)
    env.first_contact = torch.tensor([[True, False]] * N)
    env.foot_forces[:] = torch.tensor([[3.0, 4.0, 12.0], [100.0, 0.0, 0.0]])
    torch.testing.assert_close(env._reward_soft_landing(), torch.full((N,), 13.0))
    command(env, vx=0.03)  # s < 0.05
    assert torch.all(env._reward_soft_landing() == 0)


def test_foot_clearance_and_slip(env):
    command(env, vx=0.3)
    env.foot_pos[:, :, 2] = torch.tensor([0.04, 0.1])
    env.foot_vel[:] = torch.tensor([[0.3, 0.4, 1.0], [2.0, 0.0, 0.0]])
    torch.testing.assert_close(env._reward_foot_clearance(), torch.full((N,), abs(0.04 - 0.1) * 0.5))
    env.foot_contact = torch.tensor([[True, False]] * N)
    torch.testing.assert_close(env._reward_foot_slip(), torch.full((N,), 0.3**2 + 0.4**2))
    command(env)
    assert torch.all(env._reward_foot_clearance() == 0) and torch.all(env._reward_foot_slip() == 0)


def test_pose_sigma_follows_command_speed_and_upright(env):
    offset = torch.zeros(12)
    offset[0] = 0.1  # left hip pitch
    set_state(env, range(N), dof_offset=offset)
    command(env)  # standing: sigma 0.05 for every joint
    torch.testing.assert_close(env._reward_pose(), torch.full((N,), math.exp(-(0.1**2 / 0.05**2) / 12)))
    command(env, vx=0.5)  # walking: hip_pitch sigma 0.5
    torch.testing.assert_close(env._reward_pose(), torch.full((N,), math.exp(-(0.1**2 / 0.5**2) / 12)))
    command(env, vx=1.0, wz=0.6)  # s = 1.6: running, hip_pitch 0.8
    torch.testing.assert_close(env._reward_pose(), torch.full((N,), math.exp(-(0.1**2 / 0.8**2) / 12)))
    roll = 0.3
    set_state(env, range(N), quat=(math.cos(roll / 2), math.sin(roll / 2), 0.0, 0.0))
    torch.testing.assert_close(env._reward_upright(), torch.full((N,), math.exp(-math.sin(roll) ** 2 / 0.2)))


def test_turn_in_place_and_standing_commands(env):
    c = env.cfg.commands
    old = (c.rel_turn_envs, c.rel_standing_envs)
    try:
        c.rel_turn_envs, c.rel_standing_envs = 1.0, 0.0
        lo, hi = c.ranges.turn_ang_vel
        rates = []
        for _ in range(20):
            env._resample_commands(torch.ones(N, dtype=torch.bool, device=env.device))
            assert torch.all(env.commands[:, :2] == 0) and not env.heading_env.any()
            rates.append(env.commands[:, 2].clone())
        rates = torch.cat(rates)
        assert rates.abs().min() >= lo and rates.abs().max() <= hi  # |w_z| in ranges.turn_ang_vel
        assert (rates > 0).any() and (rates < 0).any()  # both directions
        c.rel_turn_envs, c.rel_standing_envs = 0.0, 1.0
        env._resample_commands(torch.ones(N, dtype=torch.bool, device=env.device))
        assert torch.all(env.commands[:, :3] == 0) and not env.heading_env.any()
        c.rel_standing_envs, c.rel_slow_envs = 0.0, 1.0  # slow walking: the draw times slow_scale
        r = c.ranges
        bound = torch.tensor([max(map(abs, r.lin_vel_x)), max(map(abs, r.lin_vel_y)), max(map(abs, r.ang_vel_yaw))])
        cmds = []
        for _ in range(20):
            env._resample_commands(torch.ones(N, dtype=torch.bool, device=env.device))
            assert not env.heading_env.any()
            cmds.append(env.commands[:, :3].cpu().clone())
        cmds = torch.cat(cmds).abs()
        assert torch.all(cmds <= c.slow_scale * bound + 1e-6)
        assert torch.all(cmds.max(dim=0).values > 0.5 * c.slow_scale * bound)  # the scaled range is used
        c.slow_yaw_scale = 0.0  # slow walking straight: w_z = 0, v_xy still scaled by slow_scale
        env._resample_commands(torch.ones(N, dtype=torch.bool, device=env.device))
        assert torch.all(env.commands[:, 2] == 0)
        v = env.commands[:, :2].abs().cpu()
        assert torch.all(v <= c.slow_scale * bound[:2] + 1e-6) and (v > 0).any()
        c.min_norm = 0.06  # zeroes |v_xy| < 0.06 after the slow scaling: a gap between standing and walking
        norms = []
        for _ in range(20):
            env._resample_commands(torch.ones(N, dtype=torch.bool, device=env.device))
            norms.append(env.commands[:, :2].norm(dim=1).cpu())
        norms = torch.cat(norms)
        assert torch.all((norms == 0) | (norms >= 0.06)) and (norms == 0).any() and (norms > 0).any()
    finally:
        c.slow_yaw_scale, c.min_norm = type(c).slow_yaw_scale, type(c).min_norm
        c.rel_turn_envs, c.rel_standing_envs = old
        c.rel_slow_envs = 0.0


def test_reward_terms_keep_each_scaled_term_of_the_step(env):
    env.foot_contact = torch.tensor([[True, True], [False, True], [False, False], [True, False]])
    command(env, vx=0.1)
    env.compute_reward()
    names = list(env.reward_scales)
    assert env.reward_terms.shape == (N, len(names)) and "double_support" in names
    for i, name in enumerate(names):  # scale * dt * r_i, dt the policy step
        expected = getattr(env, f"_reward_{name}")() * getattr(AsimovCfg.rewards.scales, name) * env.dt
        torch.testing.assert_close(env.reward_terms[:, i], expected, msg=name)
    torch.testing.assert_close(env.reward_terms[:, names.index("double_support")], torch.tensor([-0.02, 0, 0, 0]))
    torch.testing.assert_close(env.reward_terms.sum(dim=1), env.rew_buf)


def test_stand_still_feet_counts_lifted_feet_at_a_zero_command(env):
    env.foot_contact = torch.tensor([[True, True], [False, True], [False, False], [True, False]])
    command(env)
    torch.testing.assert_close(env._reward_stand_still_feet(), torch.tensor([0.0, 1.0, 2.0, 1.0]))
    command(env, wz=0.5)  # turning in place is moving (s = 0.5): stepping allowed
    assert torch.all(env._reward_stand_still_feet() == 0)


def test_double_support_is_both_feet_down_while_moving(env):
    env.foot_contact = torch.tensor([[True, True], [False, True], [False, False], [True, False]])
    for speed in ({"vx": 0.1}, {"wz": 0.5}):  # slow walking and turning in place are moving
        command(env, **speed)
        torch.testing.assert_close(env._reward_double_support(), torch.tensor([1.0, 0.0, 0.0, 0.0]))
    command(env)  # a zero command: both feet down is what stand_still_feet asks for
    assert torch.all(env._reward_double_support() == 0)


def test_feet_slide_is_the_horizontal_speed_of_feet_in_contact_at_any_command(env):
    env.foot_contact = torch.tensor([[True, True], [False, True], [False, False], [True, False]])
    v = torch.zeros(N, 2, 3)
    v[:, 0] = torch.tensor([0.3, -0.4, 2.0])  # left foot: |v_xy| 0.5 m/s; z is not sliding
    v[:, 1] = torch.tensor([0.0, 0.1, -1.0])  # right foot: 0.1 m/s
    env.foot_vel = v
    for speed in ({}, {"vx": 0.5}):  # standing and walking alike
        command(env, **speed)
        torch.testing.assert_close(env._reward_feet_slide(), torch.tensor([0.6, 0.1, 0.0, 0.5]))


def test_feet_air_time_positive_biped_pays_single_stance_only(env):
    """min(stance foot's contact time, swing foot's air time), clipped at 0.4 s, in single stance."""
    env.feet_contact_time[:] = 0.0
    env.feet_air_time[:] = 0.0
    # three steps: left swings while right stands; then both down
    for contact in ([False, True], [False, True], [False, True]):
        env.foot_contact = torch.tensor([contact] * N)
        env._update_feet_air_time()
    torch.testing.assert_close(env.feet_contact_time[:, 1], torch.full((N,), 3 * env.dt))
    torch.testing.assert_close(env.feet_air_time[:, 0], torch.full((N,), 3 * env.dt))
    command(env, vx=0.1)
    torch.testing.assert_close(env._reward_feet_air_time_positive_biped(), torch.full((N,), 3 * env.dt))
    env.foot_contact = torch.tensor([[True, False], [False, True], [True, True], [False, False]])
    env.feet_contact_time[:] = torch.tensor([[0.3, 0.0], [0.0, 0.7], [0.2, 0.5], [0.0, 0.0]])
    env.feet_air_time[:] = torch.tensor([[0.0, 0.1], [0.6, 0.0], [0.0, 0.0], [0.2, 0.3]])
    expected = torch.tensor([0.1, 0.4, 0.0, 0.0])  # min(0.3, 0.1); min(0.7, 0.6) clipped; double; flight
    torch.testing.assert_close(env._reward_feet_air_time_positive_biped(), expected)
    command(env, wz=0.3)  # turning in place counts as moving
    torch.testing.assert_close(env._reward_feet_air_time_positive_biped(), expected)
    command(env)  # a zero command: nothing
    assert torch.all(env._reward_feet_air_time_positive_biped() == 0)
    env.feet_contact_time[:] = 0.5
    env.reset_envs(torch.tensor([True, False, True, False]))
    assert env.feet_contact_time[[0, 2]].eq(0).all() and env.feet_contact_time[[1, 3]].eq(0.5).all()
