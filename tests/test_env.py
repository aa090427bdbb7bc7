"""LeggedRobot / Asimov env behaviour on the real Asimov model, for both physics backends."""

from __future__ import annotations

import math

import mujoco
import numpy as np
import pytest
import torch

from gym.envs import Asimov, AsimovCfg
from gym.envs.asimov.asimov_config import ACTION_SCALE, KNEES_BENT
from tests.conftest import device_for

BACKENDS = ["mujoco", "warp"]
N = 4


def make_cfg(**changes) -> AsimovCfg:
    cfg = AsimovCfg()
    cfg.env.num_envs = N
    cfg.domain_rand.push_robots = False
    cfg.domain_rand.randomize_friction = False
    cfg.domain_rand.randomize_base_mass = False
    cfg.noise.add_noise = False
    cfg.init_state.xy_range = [0.0, 0.0]
    cfg.init_state.yaw_range = [0.0, 0.0]
    for key, value in changes.items():
        group, attr = key.split("__")
        setattr(getattr(cfg, group), attr, value)
    return cfg


@pytest.fixture(scope="module", params=BACKENDS)
def env(request):
    return Asimov(make_cfg(), device_for(request.param), physics=request.param)


def set_state(env, ids, quat=(1, 0, 0, 0), ang_vel=(0, 0, 0), dof_offset=None, dof_vel=None, z=0.73):
    ids = torch.as_tensor(ids)
    k = len(ids)
    qpos = torch.zeros(k, env.physics.qpos.shape[1])
    qvel = torch.zeros(k, env.physics.qvel.shape[1])
    qpos[:, 2] = z
    qpos[:, 3:7] = torch.tensor(quat, dtype=torch.float32)
    qpos[:, env._qpos_idx] = env.default_dof_pos + (0 if dof_offset is None else dof_offset)
    qvel[:, 3:6] = torch.tensor(ang_vel, dtype=torch.float32)
    if dof_vel is not None:
        qvel[:, env._dof_idx] = dof_vel
    env.physics.set_state(ids, qpos, qvel)
    env._refresh_state()


def test_policy_observation_is_the_firmware_contract(env):
    """§16's 45 floats, then the 2-float gait clock (issue 8)."""
    env.reset()
    yaw90 = (math.cos(math.pi / 4), 0.0, 0.0, math.sin(math.pi / 4))
    roll = 0.3
    q = np.zeros(4)
    mujoco.mju_mulQuat(q, np.array(yaw90), np.array([math.cos(roll / 2), math.sin(roll / 2), 0, 0]))
    offset = torch.linspace(-0.1, 0.1, 12)
    dof_vel = torch.linspace(-2.0, 2.0, 12)
    set_state(env, [0], quat=tuple(q), ang_vel=(1.0, -0.5, 0.25), dof_offset=offset, dof_vel=dof_vel)
    env.commands[0] = torch.tensor([0.3, -0.2, 0.1, 0.0])
    env.actions[0] = torch.linspace(-1, 1, 12)
    env.gait_phase[0] = 0.125
    env.compute_observations()
    obs = env.obs_buf[0]
    assert obs.shape == (47,) and env.num_obs == 47
    # 0-2: gyro, BODY frame (a yawed robot spinning about its own x reads x), x 0.25
    torch.testing.assert_close(obs[0:3], 0.25 * torch.tensor([1.0, -0.5, 0.25]), atol=1e-5, rtol=0)
    # 3-5: gravity in the body frame, checked against MuJoCo's own quaternion rotation
    g = np.zeros(3)
    qinv = np.zeros(4)
    mujoco.mju_negQuat(qinv, q)
    mujoco.mju_rotVecQuat(g, np.array([0.0, 0.0, -1.0]), qinv)
    torch.testing.assert_close(obs[3:6], torch.tensor(g, dtype=torch.float32), atol=1e-5, rtol=0)
    assert obs[4] == pytest.approx(-math.sin(roll), abs=1e-5)
    torch.testing.assert_close(obs[6:9], torch.tensor([0.3, -0.2, 0.1]))  # command, unscaled
    torch.testing.assert_close(obs[9:21], offset, atol=1e-5, rtol=0)  # q - q_default
    torch.testing.assert_close(obs[21:33], 0.05 * dof_vel, atol=1e-5, rtol=0)  # qd x 0.05
    torch.testing.assert_close(obs[33:45], torch.linspace(-1, 1, 12))  # previous raw action
    torch.testing.assert_close(obs[45:47], torch.tensor([math.sqrt(0.5)] * 2))  # clock at 1/8 cycle, moving


def test_noise_vector_is_derived_from_the_term_list(env):
    noise = env.obs_group.noise_vec
    expected = [0.2] * 3 + [0.05] * 3 + [0.0] * 3 + [0.01] * 12 + [1.5] * 12 + [0.0] * 12 + [0.0] * 2
    torch.testing.assert_close(noise, torch.tensor(expected))
    cfg = make_cfg()
    cfg.noise.add_noise = True
    noisy = Asimov(cfg, "cpu", physics="mujoco")
    noisy.compute_observations()
    clean = noisy.obs_group.compute.__self__
    clean.add_noise = False
    reference = clean.compute()
    clean.add_noise = True
    diff = (noisy.obs_group.compute() - reference).abs()
    bound = noisy.obs_group.noise_vec * noisy.obs_group.scale_vec + 1e-6
    assert torch.all(diff <= bound)
    assert torch.all(diff[:, 6:9] == 0) and torch.all(diff[:, 33:] == 0)
    assert diff[:, 21:33].max() > 0.01  # 1.5 rad/s x 0.05 noise on joint velocities


def test_critic_gets_privileged_terms(env):
    critic = env.critic_group
    assert env.num_privileged_obs == 47 + 3 + 2 + 2 + 2 + 6 + 1
    assert list(critic.slices)[:7] == env.cfg.env.observations
    env.reset()
    p = env.privileged_obs_buf  # contacts are acceleration-stage sensors: 0 right after a reset
    torch.testing.assert_close(p[:, critic.slices["foot_contact"]], torch.zeros(N, 2))
    env.step(torch.zeros(N, 12))
    p = env.privileged_obs_buf
    torch.testing.assert_close(p[:, critic.slices["foot_contact"]], torch.ones(N, 2))
    assert torch.all(p[:, critic.slices["friction"]] == env.cfg.terrain.static_friction)


def test_action_to_target_mapping_uses_per_joint_scales(env):
    env.reset()
    actions = torch.rand(N, 12) * 2 - 1
    env.step(actions)
    scale = torch.tensor([ACTION_SCALE[j.split("_", 1)[1].rsplit("_", 1)[0]] for j in env.joint_names])
    default = torch.tensor([KNEES_BENT[j] for j in env.joint_names])
    torch.testing.assert_close(env.physics.ctrl, default + scale * actions)
    assert env.action_scale[0] == pytest.approx(1.026650, abs=1e-6)


@pytest.mark.parametrize("backend", BACKENDS)
def test_one_policy_step_is_decimation_physics_steps_with_targets_held(backend):
    # A converged solver (50 iterations) so both backends must match MuJoCo C's mj_step to float32
    # precision; at the training default (10) Newton stops early and backends differ by ~0.1 rad/s.
    cfg = make_cfg(sim__iterations=50, sim__ls_iterations=50)
    env = Asimov(cfg, device_for(backend), physics=backend)
    actions = torch.full((N, 12), 0.3)
    m = env.robot.mj_model
    d = mujoco.MjData(m)
    d.qpos[:] = env.physics.qpos[0].double().numpy()
    d.qvel[:] = env.physics.qvel[0].double().numpy()
    env.step(actions)
    d.ctrl[:] = env.physics.ctrl[0].double().numpy()
    for _ in range(env.cfg.control.decimation):
        mujoco.mj_step(m, d)
    np.testing.assert_allclose(env.physics.qpos[0].numpy(), d.qpos, atol=1e-4)
    np.testing.assert_allclose(env.physics.qvel[0].numpy(), d.qvel, atol=2e-3)
    assert np.abs(env.physics.qvel[0].numpy() - d.qvel).max() < 0.01 * np.abs(d.qvel).max()


def test_standing_with_zero_actions_stays_up(env):
    env.reset()
    for _ in range(50):  # 1 s
        _, _, _, dones, _ = env.step(torch.zeros(N, 12))
        assert not dones.any()
    assert torch.all(env.base_pos[:, 2] > 0.65)
    assert torch.all(env.foot_contact)
    weight = float(env.robot.mj_model.body_subtreemass[1]) * 9.81
    vertical = env.foot_forces[..., 2].abs().sum(dim=1)
    torch.testing.assert_close(vertical, torch.full((N,), weight), rtol=0.15, atol=0)


def test_reset_touches_only_chosen_envs(env):
    env.reset()
    for _ in range(5):
        env.step(torch.rand(N, 12) - 0.5)
    qpos, qvel = env.physics.qpos.clone(), env.physics.qvel.clone()
    actions, lengths = env.actions.clone(), env.episode_length_buf.clone()
    env.reset_envs(torch.tensor([False, True, False, False]))
    others = torch.tensor([0, 2, 3])
    assert torch.equal(env.physics.qpos[others], qpos[others])
    assert torch.equal(env.physics.qvel[others], qvel[others])
    assert torch.equal(env.actions[others], actions[others])
    assert torch.equal(env.episode_length_buf[others], lengths[others])
    torch.testing.assert_close(env.dof_pos[1], env.default_dof_pos)
    assert env.episode_length_buf[1] == 0 and torch.all(env.physics.qvel[1] == 0)


def test_timeout_is_truncation_and_fall_is_termination(env):
    env.reset()
    env.episode_length_buf[0] = env.max_episode_length - 1
    tilted = (math.cos(0.7), math.sin(0.7), 0.0, 0.0)  # 80 deg roll > 70 deg limit
    set_state(env, [1], quat=tilted)
    _, _, _, dones, extras = env.step(torch.zeros(N, 12))
    assert dones[0] and extras["time_outs"][0]
    assert dones[1] and not extras["time_outs"][1]
    assert not dones[2] and not dones[3]
    assert "rew_track_linear_velocity" in extras["episode"]
    assert env.episode_length_buf[0] == 0 and env.episode_length_buf[1] == 0


def test_rewards_shapes_and_signs(env):
    env.reset()
    env.step(torch.zeros(N, 12))
    for name in env.reward_scales:
        value = getattr(env, f"_reward_{name}")()
        assert value.shape == (N,), name
        assert torch.isfinite(value).all(), name
    env.commands[:] = 0.0
    env.commands[:, 0] = env.base_lin_vel[:, 0]
    env.commands[:, 1] = env.base_lin_vel[:, 1]
    assert torch.allclose(env._reward_tracking_lin_vel(), torch.ones(N))
    env.commands[:, 0] += 1.0
    assert torch.all(env._reward_tracking_lin_vel() < 0.05)
    assert torch.all(env._reward_upright() > 0.99)
    set_state(env, [0, 1, 2, 3], dof_offset=torch.zeros(12))
    assert torch.allclose(env._reward_pose(), torch.ones(N))
    env.actions[:] = 1.0
    env.last_actions[:] = 0.0
    torch.testing.assert_close(env._reward_action_rate(), torch.full((N,), 12.0))
    assert torch.all(env._reward_dof_pos_limits() == 0)
    over = torch.zeros(12)
    over[3] = -2.0 - env.default_dof_pos[3]  # left knee at its hard limit, beyond the soft one
    set_state(env, [0], dof_offset=over)
    assert env._reward_dof_pos_limits()[0] > 0.09 and env._reward_pose()[0] < 0.9
    assert torch.all(env._reward_collision() == 0)
    assert env.reward_scales["body_ang_vel"] < 0 and env.reward_scales["track_linear_velocity"] > 0


def test_wrong_reward_shape_raises_naming_the_term(env, monkeypatch):
    env.reset()
    monkeypatch.setattr(env, "_reward_pose", lambda: torch.zeros(N, 1))
    with pytest.raises(ValueError, match="_reward_pose returned shape"):
        env.compute_reward()


def test_feet_air_time_counts_each_landing_once(env):
    env.reset()
    env.step(torch.zeros(N, 12))  # contacts are sensed from the first step after a reset
    env.commands[:, :2] = torch.tensor([0.5, 0.0])
    env.feet_air_time[:] = torch.tensor([0.40, 0.0])  # left foot was airborne 0.4 s
    env._update_feet_air_time()  # both feet on the ground: the left one just landed
    assert torch.all(env.first_contact[:, 0]) and not env.first_contact[:, 1].any()
    torch.testing.assert_close(env._reward_feet_air_time(), torch.full((N,), 0.42 - 0.3))
    env._refresh_state()  # a reset or push elsewhere re-derives the state: timers must not move
    torch.testing.assert_close(env.last_air_time[:, 0], torch.full((N,), 0.42))
    assert torch.all(env.feet_air_time == 0)
    env._update_feet_air_time()  # next step, still in contact: no second landing
    assert torch.all(env._reward_feet_air_time() == 0)


@pytest.mark.parametrize("backend", BACKENDS)
def test_air_time_advances_once_per_step_with_resets_and_pushes(backend):
    cfg = make_cfg(domain_rand__push_robots=True, domain_rand__push_interval_s=[0.02, 0.02])
    env = Asimov(cfg, device_for(backend), physics=backend)
    env.reset()
    env.physics.qpos[:, 2] += 0.3  # lift every robot: all feet airborne during the next step
    env.physics.set_state(torch.arange(N), env.physics.qpos.clone(), env.physics.qvel.clone())
    env.feet_air_time[:] = 0.0
    env.step(torch.zeros(N, 12))  # pushes hit every env this step (reset_envs + state refresh)
    torch.testing.assert_close(env.feet_air_time, torch.full((N, 2), env.dt))


def test_nan_physics_resets_only_that_env_and_counts_it(env):
    env.reset()
    for _ in range(3):
        env.step(torch.zeros(N, 12))
    qvel = torch.zeros(1, env.physics.qvel.shape[1])
    qvel[0, 7] = float("nan")
    env.physics.set_state(torch.tensor([2]), env.physics.qpos[2:3].clone(), qvel)
    lengths = env.episode_length_buf.clone()
    obs, critic, rew, dones, extras = env.step(torch.zeros(N, 12))
    assert dones.tolist() == [False, False, True, False]
    assert not extras["time_outs"].any()  # a fault is a termination, not a truncation
    # counted as a fault, and its (possibly NaN) episode sums are left out of the statistics
    assert int(extras["nonfinite_resets"]) == 1 and int(extras["episode_count"]) == 0
    assert rew[2] == 0.0 and torch.isfinite(rew).all()
    assert torch.isfinite(obs).all() and torch.isfinite(critic).all()
    assert env.episode_length_buf[2] == 0 and torch.equal(env.episode_length_buf[[0, 1, 3]], lengths[[0, 1, 3]] + 1)
    assert all(torch.isfinite(v) for v in extras["episode"].values())
    env.step(torch.zeros(N, 12))  # training goes on; the env is healthy again
    assert torch.isfinite(env.physics.qpos).all() and torch.isfinite(env.physics.qvel).all()


def test_nonfinite_action_or_observation_resets_the_env_next_step(env):
    env.reset()
    actions = torch.zeros(N, 12)
    actions[1, 3] = float("nan")
    _, _, _, dones, extras = env.step(actions)  # the env is held at zero targets, then reset
    assert torch.isfinite(env.physics.ctrl).all() and torch.all(env.actions[1] == 0)
    assert dones.tolist() == [False, True, False, False] and int(extras["nonfinite_resets"]) == 1
    env.commands[3, 0] = float("nan")  # a non-finite observation term (inf would be clipped)
    env.compute_observations()
    assert torch.isfinite(env.obs_buf).all() and env.obs_buf[3, 6] == 0.0
    _, _, _, dones, extras = env.step(torch.zeros(N, 12))
    assert dones[3] and int(extras["nonfinite_resets"]) == 1


def test_commands_resample_within_ranges_and_heading_steers(env):
    env.reset()
    env._resample_commands(torch.ones(N, dtype=torch.bool))
    r = env.cfg.commands.ranges
    assert torch.all(env.commands[:, 0].abs() <= r.lin_vel_x[1]) and torch.all(env.commands[:, 1].abs() <= 0.6)
    env.heading_env[:] = True
    env.commands[:, 3] = 0.5  # heading target; robot faces yaw 0
    env._update_commands()
    torch.testing.assert_close(env.commands[:, 2], torch.full((N,), 0.25), atol=1e-4, rtol=0)


@pytest.mark.parametrize("backend", BACKENDS)
def test_pushes_change_base_velocity(backend):
    cfg = make_cfg(domain_rand__push_robots=True, domain_rand__push_interval_s=[0.02, 0.02])
    env = Asimov(cfg, device_for(backend), physics=backend)
    env.step(torch.zeros(N, 12))
    assert env.physics.qvel[:, 0:2].abs().max() > 0.05


@pytest.mark.parametrize("backend", BACKENDS)
def test_startup_randomization_sets_per_env_friction_and_mass(backend):
    cfg = make_cfg(domain_rand__randomize_friction=True, domain_rand__randomize_base_mass=True)
    env = Asimov(cfg, device_for(backend), physics=backend)
    f = env.friction_coeffs.flatten()
    assert torch.all((f >= 0.3) & (f <= 1.2)) and f.unique().numel() == N
    # the physics sees the same numbers: the standing robots' weight follows the added pelvis mass
    body = env.robot.mj_model.body("pelvis_link").id
    base_mass = float(env.robot.mj_model.body_mass[body])
    for _ in range(45):  # settle: landing transients last ~0.6 s
        env.step(torch.zeros(N, 12))
    forces = []
    for _ in range(30):
        env.step(torch.zeros(N, 12))
        forces.append(env.foot_forces[..., 2].abs().sum(dim=1))
    weight = torch.stack(forces).median(dim=0).values  # standing still: support force = weight
    total = float(env.robot.mj_model.body_subtreemass[1]) - base_mass
    added = weight / 9.81 - total  # pelvis mass carried by the feet [kg]
    assert torch.all((added > base_mass - 0.5 - 0.2) & (added < base_mass + 1.0 + 0.2))
    assert added.max() - added.min() > 0.1  # envs differ


def test_bad_config_errors_are_actionable(tmp_path):
    cfg = make_cfg()
    cfg.rewards.scales.not_a_reward = 1.0
    with pytest.raises(AttributeError, match="_reward_not_a_reward.*known terms"):
        Asimov(cfg, "cpu", physics="mujoco")
    cfg = make_cfg()
    cfg.env.observations = ["base_ang_vel", "base_height_map"]
    with pytest.raises(AttributeError, match="_obs_base_height_map"):
        Asimov(cfg, "cpu", physics="mujoco")
    cfg = make_cfg()
    cfg.asset.file = str(tmp_path / "missing.xml")
    with pytest.raises(FileNotFoundError, match="missing.xml"):
        Asimov(cfg, "cpu", physics="mujoco")
    cfg = make_cfg()
    cfg.asset.imu_site = "imu_site"
    with pytest.raises(ValueError, match="asset.imu_site.*'imu'"):
        Asimov(cfg, "cpu", physics="mujoco")
    with pytest.raises(ValueError, match="unknown physics backend"):
        Asimov(make_cfg(), "cpu", physics="bullet")


def test_flailing_robots_do_not_blow_up():
    # Random actions (std 1, as a fresh policy) for 2 s on 2048 envs: no joint or base speed beyond
    # physical values. With the reference's near-rigid foot contact this exact run launched 4 robots.
    torch.manual_seed(0)
    cfg = AsimovCfg()
    cfg.env.num_envs = 2048
    env = Asimov(cfg, "cpu", physics="mujoco")
    for _ in range(100):
        env.step(torch.randn(2048, 12))
        assert env.dof_vel.abs().max() < 100.0
        assert env.base_ang_vel.norm(dim=1).max() < 50.0
