"""Zero-order hold and action latency, tick by tick, on both physics backends (real Asimov model).

The robot floats in zero gravity 2 m above the floor, so nothing moves unless a target moves: a knee
target step shows in that joint's velocity exactly at the tick that applies it. The reference is a
plain `mujoco.mj_step` loop given the control the firmware would send at each tick.
"""

from __future__ import annotations

import copy

import mujoco
import numpy as np
import pytest
import torch

from gym.envs.asimov.asimov_config import AsimovCfg
from gym.physics import BACKENDS, make_physics
from gym.physics.model_builder import build_model
from tests.conftest import device_for

DEC = 4


@pytest.fixture(scope="module")
def floating() -> tuple[mujoco.MjModel, np.ndarray, int]:
    """(zero-gravity Asimov model, its start qpos with the base at z = 2 m, left knee joint index)."""
    robot = build_model(AsimovCfg(), None)
    m = copy.copy(robot.mj_model)
    m.opt.gravity[:] = 0.0
    qpos = m.qpos0.copy()
    qpos[2] = 2.0
    knee = robot.joint_names.index("left_knee_joint")
    return m, qpos, knee


def _physics(backend: str, m: mujoco.MjModel, qpos: np.ndarray, n: int):
    phys = make_physics(backend, m, n, device_for(backend), DEC)
    phys.ctrl[:] = torch.as_tensor(qpos[7:], dtype=torch.float32)  # hold the start pose
    full = torch.ones(n, dtype=torch.bool, device=phys.ctrl.device)
    phys.reset_envs(full, torch.as_tensor(qpos).expand(n, -1), torch.zeros(n, m.nv))
    return phys


def _reference(m: mujoco.MjModel, qpos: np.ndarray, targets: list[np.ndarray], delay: int) -> np.ndarray:
    """(steps * DEC + 1, nq) qpos per tick of a plain mj_step loop: each step's first `delay` ticks
    apply the previous step's targets (the start pose before the first), the rest the new ones."""
    d = mujoco.MjData(m)
    d.qpos[:] = qpos
    held, out = qpos[7:].copy(), [qpos.copy()]
    for target in targets:
        for tick in range(DEC):
            d.ctrl[:] = held if tick < delay else target
            mujoco.mj_step(m, d)
            out.append(d.qpos.copy())
        held = target
    return np.array(out)


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_target_step_acts_exactly_delay_ticks_into_the_policy_step(backend, floating):
    m, qpos, knee = floating
    delays = [0, 1, 3, 4]
    phys = _physics(backend, m, qpos, len(delays))
    phys.action_delay[:] = torch.tensor(delays, dtype=torch.int32)
    phys.step()  # at rest, targets = pose: nothing moves in any tick
    assert float(phys.qvel_history.abs().max()) == 0.0
    dof = 6 + knee
    phys.ctrl[:, knee] += 0.3
    phys.step()
    moving = (phys.qvel_history[1:, :, dof].abs() > 0).cpu()  # (DEC, envs): knee moved by tick k+1
    for env, delay in enumerate(delays):
        expect = torch.arange(DEC) >= delay  # ticks from `delay` on apply the new target
        assert torch.equal(moving[:, env], expect), f"delay {delay}: knee moving per tick {moving[:, env].tolist()}"
    phys.step()  # the whole-step delay acts in the next step, at its first tick
    assert float(phys.qvel_history[1, 3, dof].abs()) > 0


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("delay", [0, 2])
def test_every_tick_matches_a_plain_mujoco_loop_with_the_held_then_new_target(backend, delay, floating):
    # Three policy steps with a different knee target each: the hold (4 ticks of one target) and the
    # latency (the first `delay` ticks keep the previous one) agree tick by tick with MuJoCo C.
    m, qpos, knee = floating
    phys = _physics(backend, m, qpos, 2)
    phys.action_delay[:] = torch.tensor([0, delay], dtype=torch.int32)
    targets = []
    for value in (0.3, -0.2, 0.1):
        target = qpos[7:].copy()
        target[knee] += value
        targets.append(target)
    ticks = []
    for target in targets:
        phys.ctrl[:] = torch.as_tensor(target, dtype=torch.float32)
        phys.step()
        ticks.append(phys.qpos_history[1:, 1].double().cpu().numpy())
    got = np.concatenate(ticks)
    want = _reference(m, qpos.astype(np.float32).astype(np.float64), [t.astype(np.float32) for t in targets],
                      delay)[1:]
    tol = 1e-6 if backend == "mujoco" else 2e-5  # the history is float32; Warp also computes in it
    assert np.abs(got - want).max() < tol
    assert np.abs(want[:, 7 + knee] - qpos[7 + knee]).max() > 0.01  # the knee did move
    np.testing.assert_array_equal(phys.qpos_history[-1].cpu().numpy(), phys.qpos.cpu().numpy())


@pytest.mark.parametrize("backend", BACKENDS)
def test_reset_fills_the_history_and_holds_the_reset_targets(backend, floating):
    m, qpos, knee = floating
    phys = _physics(backend, m, qpos, 2)
    phys.ctrl[:, knee] += 0.3
    phys.step()
    assert float(phys.qpos_history[:, :, 7 + knee].std(dim=0).max()) > 0  # the knee moved through the step
    phys.ctrl[:] = torch.as_tensor(qpos[7:], dtype=torch.float32)  # the reset pose's targets
    mask = torch.tensor([False, True], device=phys.ctrl.device)
    phys.reset_envs(mask, torch.as_tensor(qpos).expand(2, -1), torch.zeros(2, m.nv))
    start = torch.as_tensor(qpos, dtype=torch.float32)
    assert torch.equal(phys.qpos_history[:, 1].cpu(), start.expand(DEC + 1, -1))
    assert float(phys.qvel_history[:, 1].abs().max()) == 0.0
    assert not torch.equal(phys.qpos_history[:, 0].cpu(), start.expand(DEC + 1, -1))  # env 0 untouched
    phys.action_delay[:] = DEC  # a held target for the whole next step: the reset pose, not +0.3
    phys.ctrl[:, knee] += 0.3
    phys.step()
    assert float(phys.qvel_history[:, 1].abs().max()) == 0.0


# -- the env: latency draws, delayed observations, ages equal on both backends ----------------------------


def _env(backend: str, n: int = 4, **changes):
    from gym.envs import Asimov
    from tests.test_env import make_cfg

    cfg = make_cfg(**changes)
    cfg.env.num_envs = n
    return Asimov(cfg, device_for(backend), physics=backend)


def test_imu_readings_from_the_state_equal_mujocos_gyro_and_velocimeter():
    # The IMU terms are computed from qpos / qvel (age 0). Checked against MuJoCo's own sensors at the
    # same states, with the IMU site moved and rotated off the base origin so the lever arm counts.
    env = _env("mujoco", n=1)
    m = copy.copy(env.robot.mj_model)
    site = m.site("imu").id
    m.site_pos[site] = [0.05, -0.02, 0.1]
    m.site_quat[site] = np.array([0.9, 0.2, -0.3, 0.1]) / np.linalg.norm([0.9, 0.2, -0.3, 0.1])
    env.robot.mj_model = m
    env._imu_frame()
    d, rng, sensor = mujoco.MjData(m), np.random.default_rng(0), env.robot.sensor
    for _ in range(3):
        d.qpos[:] = m.qpos0
        d.qpos[3:7] = rng.normal(size=4)
        d.qpos[3:7] /= np.linalg.norm(d.qpos[3:7])
        d.qvel[:] = rng.normal(size=m.nv)
        mujoco.mj_forward(m, d)
        as32 = lambda x: torch.as_tensor(x, dtype=torch.float32)[None]  # noqa: E731
        lin, ang, gravity = env._imu_readings(as32(d.qpos), as32(d.qvel))
        np.testing.assert_allclose(ang[0].numpy(), d.sensordata[sensor("imu_gyro")], atol=1e-6)
        np.testing.assert_allclose(lin[0].numpy(), d.sensordata[sensor("imu_vel")], atol=1e-6)
        np.testing.assert_allclose(gravity[0].numpy(), d.xmat[1].reshape(3, 3).T @ [0, 0, -1], atol=1e-6)


@pytest.mark.parametrize("backend", BACKENDS)
def test_policy_sees_imu_and_joint_terms_as_old_as_their_latency(backend):
    env = _env(backend, n=3)
    env.latency.set(imu=torch.tensor([0, 2, 4]), joint=torch.tensor([0, 1, 3]), action=torch.tensor([0, 1, 2]))
    assert env.physics.action_delay.tolist() == [0, 1, 2]
    rng = torch.Generator().manual_seed(0)
    for _ in range(3):
        env.step(0.5 * torch.randn(3, 12, generator=rng))
    sl, p = env.obs_group.slices, env.physics
    obs = env.obs_buf.cpu()
    for i, (imu, joint) in enumerate(((0, 0), (2, 1), (4, 3))):
        qpos, qvel = p.qpos_history[DEC - joint, i], p.qvel_history[DEC - joint, i]
        want_pos = (qpos[env._qpos_idx] - env.default_dof_pos).cpu()
        torch.testing.assert_close(obs[i, sl["dof_pos"]], want_pos, atol=1e-6, rtol=0)
        torch.testing.assert_close(obs[i, sl["dof_vel"]], 0.05 * qvel[env._dof_idx].cpu(), atol=1e-6, rtol=0)
        _, gyro, gravity = env._imu_readings(p.qpos_history[DEC - imu, i:i + 1], p.qvel_history[DEC - imu, i:i + 1])
        torch.testing.assert_close(obs[i, sl["base_ang_vel"]], 0.25 * gyro[0].cpu(), atol=1e-6, rtol=0)
        torch.testing.assert_close(obs[i, sl["projected_gravity"]], gravity[0].cpu(), atol=1e-6, rtol=0)
    stale = (obs[1:, sl["dof_vel"]] - 0.05 * env.dof_vel[1:].cpu()).abs().amax(dim=1)
    assert bool((stale > 1e-3).all())  # the delayed envs really see an older state than the rewards
    with pytest.raises(ValueError, match="integer ticks in 0..4"):
        env.latency.set(action=5)


@pytest.mark.parametrize("backend", BACKENDS)
def test_latency_is_drawn_per_env_at_reset_and_readable_by_item(backend):
    env = _env(backend, n=64, domain_rand__randomize_latency=True, domain_rand__action_latency_range=[1, 3],
               domain_rand__imu_latency_range=[0, 2], domain_rand__joint_latency_range=[2, 2])
    values = env.domain_rand_values
    assert set(values) >= {"action_latency", "imu_latency", "joint_latency"}
    assert sorted(values["action_latency"].unique().tolist()) == [1, 2, 3]
    assert sorted(values["imu_latency"].unique().tolist()) == [0, 1, 2]
    assert values["joint_latency"].unique().tolist() == [2]
    assert torch.equal(env.physics.action_delay.long(), values["action_latency"])
    before = values["action_latency"].clone()
    mask = torch.zeros(64, dtype=torch.bool, device=env.device)
    mask[:32] = True
    env.reset_envs(mask)
    assert torch.equal(values["action_latency"][32:], before[32:])  # the others keep theirs
    assert not torch.equal(values["action_latency"][:32], before[:32])  # redrawn (p of equal: 3^-32)
    assert torch.equal(env.physics.action_delay.long(), values["action_latency"])


def test_bad_latency_range_is_a_config_error_naming_the_fix():
    from gym.envs import AsimovCfg
    from gym.envs.base.latency import latency_problems

    dr = AsimovCfg.domain_rand()
    dr.action_latency_range = [0, 6]
    dr.imu_latency_range = [0.5, 1]
    problems = latency_problems(dr, 4)
    assert len(problems) == 2
    assert "domain_rand.action_latency_range=[0, 6]" in problems[0] and "control.decimation (4)" in problems[0]
    with pytest.raises(ValueError, match="imu_latency_range"):
        _env("mujoco", n=1, domain_rand__imu_latency_range=[0, 9])


def test_observations_after_pushes_and_resets_agree_between_backends():
    # Latency on, a push and a time-out reset inside the window: every observation term (policy and
    # critic) has the same age on both backends, so the observations agree step by step. Measured:
    # policy terms <= 3e-6 apart, while one tick of age moves the scaled dof_vel / gyro terms by ~0.1.
    envs = {}
    for backend in BACKENDS:
        env = _env(backend, n=3, sim__iterations=50, sim__ls_iterations=50, domain_rand__push_robots=True)
        env.latency.set(action=torch.tensor([0, 2, 1]), imu=torch.tensor([1, 0, 2]), joint=torch.tensor([2, 1, 0]))
        env.push_time_left[:] = torch.tensor([0.05, 100.0, 0.09])  # env 0 pushed at step 2, env 2 at step 4
        env.episode_length_buf[1] = env.max_episode_length - 3  # env 1 times out (reset) at step 3
        envs[backend] = env
    c, w = envs["mujoco"], envs["warp"]
    physical = [i for i in range(45) if not 6 <= i < 9]  # commands, gait clock (45-46): per instance
    for k in range(8):
        for env in (c, w):
            torch.manual_seed(k)  # the same push draws on both
            env.step(0.3 * torch.sin(torch.arange(36.0).reshape(3, 12) + k))
        assert torch.equal(c.reset_buf.cpu(), w.reset_buf.cpu())
        torch.testing.assert_close(c.obs_buf[:, physical], w.obs_buf[:, physical].cpu(), atol=1e-4, rtol=0)
        critic = c.critic_group.slices
        keep = [i for name, s in critic.items() if name not in ("commands", "gait_phase")
                for i in range(s.start, s.stop)]
        torch.testing.assert_close(c.privileged_obs_buf[:, keep], w.privileged_obs_buf[:, keep].cpu(),
                                   atol=2e-3, rtol=0)  # log contact forces: float32 solver, ~2e-4
    assert int(c.episode_length_buf[1]) == int(w.episode_length_buf[1]) == 5  # reset at step 3
    assert bool((c.push_time_left[[0, 2]] > 1.0).all())  # both pushes happened (timers redrawn)
