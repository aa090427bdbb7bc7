"""MuJoCo Warp backend: sync-free env step, batched derived fields, cheap resets, checked capture,
overflow reports and the compile notice. Runs on Warp's CPU device (or `GYM_TEST_DEVICE`)."""

from __future__ import annotations

import mujoco
import numpy as np
import pytest
import torch
import warp as wp

from gym.envs import Asimov, AsimovCfg
from gym.physics import PhysicsError, make_physics, warp_backend
from gym.physics.model_builder import build_model
from gym.physics.mujoco_backend import MujocoPhysics
from tests.conftest import TEST_DEVICE
from tests.sync_guard import HostSyncError, no_host_sync


def small_cfg(n: int = 4) -> AsimovCfg:
    cfg = AsimovCfg()
    cfg.env.num_envs = n
    cfg.domain_rand.randomize_base_mass = False
    cfg.domain_rand.push_interval_s = [0.04, 0.1]  # pushes on most steps
    cfg.commands.resampling_time_range = [0.02, 0.06]  # resampling on most steps
    cfg.env.episode_length_s = 0.1  # time-out resets every few steps
    return cfg


def test_env_step_has_no_host_synchronisation():
    env = Asimov(small_cfg(), TEST_DEVICE, physics="warp")
    env.step(torch.zeros(env.num_envs, 12, device=env.device))  # captures the graphs (syncs allowed)
    env.reset_envs(torch.ones(env.num_envs, dtype=torch.bool, device=env.device))
    nan = torch.full((env.num_envs, 12), float("nan"), device=env.device)
    with no_host_sync():
        for i in range(12):  # time-outs, command resampling, pushes and a fault happen in here
            env.step(nan if i == 5 else torch.rand(env.num_envs, 12, device=env.device) - 0.5)
            extras = env.extras
    assert int(extras["episode_count"]) >= 0
    with pytest.raises(HostSyncError):  # the guard itself works
        with no_host_sync():
            env.reset_buf.nonzero()


def test_randomized_masses_give_each_world_its_own_derived_constants():
    robot = build_model(AsimovCfg())
    m = robot.mj_model
    phys = make_physics("warp", m, 2, TEST_DEVICE, 4)
    body = m.body("pelvis_link").id  # the pelvis mass (the free-joint body itself is massless)
    base = float(m.body_mass[body])
    phys.set_body_mass(torch.tensor([1]), body, torch.tensor([base + 1.0]))
    heavy = MujocoPhysics(m, 1, decimation=4)
    heavy.set_body_mass(torch.tensor([0]), body, torch.tensor([base + 1.0]))
    expected = {0: m, 1: heavy._models[0]}
    for field in ("body_subtreemass", "body_invweight0", "dof_invweight0"):
        values = wp.to_torch(getattr(phys.model, field)).double().cpu().numpy()
        assert values.shape[0] == 2, f"{field} is not batched per world"
        assert not np.allclose(values[0], values[1]), f"{field} equal in both worlds"
        for world, ref in expected.items():  # each world as MuJoCo C's mj_setConst computes it
            np.testing.assert_allclose(values[world].reshape(-1), getattr(ref, field).reshape(-1), rtol=2e-4,
                                       atol=1e-6, err_msg=f"{field}, world {world}")


def test_reset_recomputes_sensors_of_reset_worlds_only_and_matches_mujoco_c():
    cfg = small_cfg(3)
    robot = build_model(cfg)
    warp = make_physics("warp", robot.mj_model, 3, TEST_DEVICE, 4)
    cpu = MujocoPhysics(robot.mj_model, 3, decimation=4)
    for p in (warp, cpu):
        p.ctrl[:] = torch.as_tensor(robot.mj_model.qpos0[7:], dtype=torch.float32)
        p.step()
    before = warp.sensordata.clone()
    qpos = warp.qpos.clone()
    qvel = torch.zeros_like(warp.qvel)
    qpos[:, 2] += 0.2
    qvel[:, 0], qvel[:, 5] = 0.3, 0.7  # moving and spinning: velocity sensors must see it
    mask = torch.tensor([False, True, False])
    warp.reset_envs(mask, qpos, qvel)
    cpu.reset_envs(mask, qpos, qvel)
    assert torch.equal(warp.sensordata[[0, 2]], before[[0, 2]])
    torch.testing.assert_close(warp.sensordata[1], cpu.sensordata[1], atol=2e-5, rtol=1e-4)
    assert warp.sensordata[1].abs().max() > 0.1
    torch.testing.assert_close(warp.qvel[1], qvel[1])
    assert float(warp.time[1]) == 0.0 and float(warp.time[0]) > 0.0


def test_push_is_a_velocity_write_that_acts_at_the_next_tick():
    robot = build_model(small_cfg(2))
    phys = make_physics("warp", robot.mj_model, 2, TEST_DEVICE, 4)
    phys.step()
    sensors, qvel = phys.sensordata.clone(), phys.qvel.clone()
    kicked = qvel.clone()
    kicked[:, 0] += 1.0
    phys.set_qvel(torch.tensor([True, False]), kicked)
    assert torch.equal(phys.sensordata, sensors)  # no forward pass
    assert phys.qvel[0, 0] == pytest.approx(float(qvel[0, 0]) + 1.0) and torch.equal(phys.qvel[1], qvel[1])
    phys.step()
    assert phys.qvel[0, 0] > phys.qvel[1, 0] + 0.5


def test_eager_and_captured_steps_agree():
    robot = build_model(small_cfg(2))
    results = []
    for capture in (True, False):
        phys = make_physics("warp", robot.mj_model, 2, TEST_DEVICE, 4, graph_capture=capture)
        phys.ctrl[:] = 0.1
        for _ in range(3):
            phys.step()
        results.append(phys.qpos.clone())
    torch.testing.assert_close(results[0], results[1], atol=1e-6, rtol=0)


def test_constraint_buffer_overflow_is_reported_with_the_size_to_set():
    robot = build_model(small_cfg(2))
    m = robot.mj_model
    data = mujoco.MjData(m)
    mujoco.mj_forward(m, data)
    phys = make_physics("warp", m, 2, TEST_DEVICE, 4, njmax=data.nefc)  # just what the start pose needs
    qpos = phys.qpos.clone()
    qpos[:, 2] -= 0.4  # sink the robots into the floor: shins, knees and pelvis touch it too
    phys.set_state(torch.arange(2), qpos, phys.qvel.clone())
    phys.step()
    with pytest.raises(PhysicsError, match=rf"sim\.njmax={data.nefc}.*--set sim\.njmax=\d+"):
        phys.check_buffers()
    roomy = make_physics("warp", m, 2, TEST_DEVICE, 4)
    roomy.ctrl[:] = torch.as_tensor(m.qpos0[7:], dtype=torch.float32)
    for _ in range(10):
        roomy.step()
    roomy.check_buffers()  # the defaults fit Asimov standing on its soles


def test_cuda_without_a_warp_cuda_device_is_a_clear_error():
    if wp.get_cuda_device_count() > 0:
        pytest.skip("Warp sees a CUDA device here")
    robot = build_model(small_cfg(1))
    with pytest.raises(PhysicsError, match="Warp .* sees no CUDA device.*driver"):
        make_physics("warp", robot.mj_model, 1, "cuda:0", 4)


def test_first_compile_shows_a_notice_with_the_cache_folder(monkeypatch, capsys):
    monkeypatch.setattr(warp_backend, "_COMPILE_NOTICE_AFTER_S", 0.0)
    robot = build_model(small_cfg(1))
    phys = make_physics("warp", robot.mj_model, 1, TEST_DEVICE, 4)
    phys.step()
    out = capsys.readouterr().out
    assert "Compiling MuJoCo Warp kernels for cpu" in out
    assert str(wp.config.kernel_cache_dir) in out
