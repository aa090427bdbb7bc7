"""Tests of `MujocoPhysics` (MuJoCo C + rollout thread pool) on a small box-bodied robot."""

from __future__ import annotations

import math

import mujoco
import numpy as np
import pytest
import torch

from gym.physics.mujoco_backend import MujocoPhysics

XML = """
<mujoco model="boxbot">
  <option timestep="0.005"/>
  <worldbody>
    <geom name="floor" type="plane" size="20 20 0.1"/>
    <body name="torso" pos="0 0 0.05">
      <freejoint name="root"/>
      <geom name="box" type="box" size="0.1 0.08 0.05" mass="1"/>
      <site name="imu" pos="0 0 0.05"/>
      <site name="sole" type="box" pos="0 0 -0.05" size="0.11 0.09 0.01"/>
      <body name="arm1" pos="0.05 0 0.05">
        <joint name="j1" type="hinge" axis="0 1 0" armature="0.01"/>
        <geom type="capsule" fromto="0 0 0 0 0 0.1" size="0.01" mass="0.1"/>
        <body name="arm2" pos="0 0 0.1">
          <joint name="j2" type="hinge" axis="0 1 0" armature="0.01"/>
          <geom type="capsule" fromto="0 0 0 0 0 0.1" size="0.01" mass="0.1"/>
        </body>
      </body>
    </body>
  </worldbody>
  <actuator>
    <position name="a1" joint="j1" kp="20" kv="0.5"/>
    <position name="a2" joint="j2" kp="10" kv="0.3"/>
  </actuator>
  <sensor>
    <framepos name="imu_pos" objtype="site" objname="imu"/>
    <gyro name="imu_gyro" site="imu"/>
    <touch name="sole_touch" site="sole"/>
  </sensor>
</mujoco>
"""
DEC = 4


@pytest.fixture(scope="module")
def model() -> mujoco.MjModel:
    return mujoco.MjModel.from_xml_string(XML)


def _start_state(m: mujoco.MjModel, n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Distinct, slightly perturbed starting states (k, nq), (k, nv), float64."""
    rng = np.random.default_rng(0)
    qpos = np.tile(m.qpos0, (n, 1))
    qpos[:, 7:] = rng.uniform(-0.3, 0.3, (n, 2))
    qvel = rng.normal(0.0, 0.2, (n, m.nv))
    return torch.from_numpy(qpos), torch.from_numpy(qvel)


def _reference(m: mujoco.MjModel, qpos, qvel, ctrl, nsteps: int) -> mujoco.MjData:
    d = mujoco.MjData(m)
    d.qpos[:], d.qvel[:], d.ctrl[:] = qpos, qvel, ctrl
    for _ in range(nsteps):
        mujoco.mj_step(m, d)
    return d


def test_num_envs_zero_raises(model):
    with pytest.raises(ValueError):
        MujocoPhysics(model, 0)


def test_step_matches_plain_mjdata_loop(model):
    n, calls = 3, 5
    phys = MujocoPhysics(model, n, decimation=DEC, nthread=2)
    qpos, qvel = _start_state(model, n)
    phys.set_state(torch.arange(n), qpos, qvel)
    ctrl = torch.tensor([[0.5, -0.4], [-0.3, 0.2], [0.0, 0.6]], dtype=torch.float32)
    phys.ctrl[:] = ctrl
    for _ in range(calls):
        phys.step()
    for e in range(n):
        d = _reference(model, qpos[e].numpy(), qvel[e].numpy(), ctrl[e].double().numpy(), calls * DEC)
        st = phys._state[e]
        assert st[0] == pytest.approx(calls * DEC * model.opt.timestep, rel=1e-12)  # exactly that many steps
        np.testing.assert_allclose(st[phys._qpos_sl], d.qpos, rtol=1e-9, atol=1e-9)
        np.testing.assert_allclose(st[phys._qvel_sl], d.qvel, rtol=1e-9, atol=1e-9)
        np.testing.assert_allclose(phys.qpos[e].numpy(), d.qpos, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(phys.qvel[e].numpy(), d.qvel, rtol=1e-5, atol=1e-6)
        # sensordata is what mj_step leaves in MjData (sensors of the last step's mj_forward)
        np.testing.assert_allclose(phys.sensordata[e].numpy(), d.sensordata, rtol=1e-5, atol=1e-5)
    assert phys.sensordata.dtype == torch.float32 and phys.sensordata.shape == (n, model.nsensordata)
    assert float(phys.sensordata[:, 6].min()) > 0.0  # box rests on the floor: touch > 0
    one = MujocoPhysics(model, 1, decimation=1, nthread=1)  # decimation 1, single thread
    one.set_state(torch.arange(1), qpos[:1], qvel[:1])
    one.ctrl[:] = ctrl[:1]
    one.step()
    d = _reference(model, qpos[0].numpy(), qvel[0].numpy(), ctrl[0].double().numpy(), 1)
    np.testing.assert_allclose(one._state[0, one._qpos_sl], d.qpos, rtol=1e-9, atol=1e-12)


def test_held_ctrl_moves_joints_toward_target(model):
    phys = MujocoPhysics(model, 2, decimation=DEC, nthread=2)
    phys.ctrl[0] = torch.tensor([0.4, -0.4])
    for _ in range(50):
        phys.step()
    np.testing.assert_allclose(phys.qpos[0, 7:].numpy(), [0.4, -0.4], atol=0.05)
    np.testing.assert_allclose(phys.qpos[1, 7:].numpy(), [0.0, 0.0], atol=1e-3)


def test_sensordata_valid_after_construction_and_reset(model):
    phys = MujocoPhysics(model, 4, decimation=DEC)
    d = mujoco.MjData(model)
    mujoco.mj_forward(model, d)
    np.testing.assert_allclose(phys.sensordata.numpy(), np.tile(d.sensordata, (4, 1)), atol=1e-6)
    phys.ctrl[:] = 0.3
    for _ in range(3):
        phys.step()
    before_q, before_s = phys.qpos.clone(), phys.sensordata.clone()
    before_state = phys._state.copy()
    qpos, qvel = _start_state(model, 2)
    qpos[:, :3] = torch.tensor([[1.0, 2.0, 0.3], [-1.0, 0.5, 0.4]], dtype=torch.float64)
    ids = torch.tensor([1, 3])
    phys.set_state(ids, qpos, qvel)
    for e in (0, 2):  # untouched envs
        assert torch.equal(phys.qpos[e], before_q[e]) and torch.equal(phys.sensordata[e], before_s[e])
        assert np.array_equal(phys._state[e], before_state[e])
    for row, e in enumerate(ids.tolist()):
        d = mujoco.MjData(model)
        d.qpos[:], d.qvel[:], d.ctrl[:] = qpos[row].numpy(), qvel[row].numpy(), phys.ctrl[e].numpy()
        mujoco.mj_forward(model, d)
        np.testing.assert_allclose(phys.qpos[e].numpy(), d.qpos, rtol=1e-6)
        np.testing.assert_allclose(phys.sensordata[e].numpy(), d.sensordata, rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(phys.sensordata[e, :3].numpy(), d.site_xpos[0], atol=1e-6)
        assert phys._state[e, 0] == 0.0 and not phys._warm[e].any()
    phys.step()  # continues from the reset state
    assert phys._state[1, 0] == pytest.approx(DEC * model.opt.timestep)


def _slide(phys: MujocoPhysics, steps: int = 25) -> np.ndarray:
    """Push every box along +x at 2 m/s and return the x distance after `steps` env steps."""
    n = phys.num_envs
    qpos = torch.from_numpy(np.tile(phys.mj_model.qpos0, (n, 1)))
    qvel = torch.zeros(n, phys.mj_model.nv, dtype=torch.float64)
    qvel[:, 0] = 2.0
    phys.set_state(torch.arange(n), qpos, qvel)
    for _ in range(steps):
        phys.step()
    return phys.qpos[:, 0].numpy().copy()


def test_set_geom_friction_only_chosen_env(model):
    phys = MujocoPhysics(model, 3, decimation=DEC, nthread=2)
    base = _slide(phys)
    assert base[0] == pytest.approx(base[1]) and base[1] == pytest.approx(base[2])
    floor, box = (mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_GEOM, s) for s in ("floor", "box"))
    phys.set_geom_friction(torch.tensor([1]), [floor, box], torch.tensor([[0.05, 0.05]]))
    assert phys._models[0] is model and phys._models[2] is model and phys._models[1] is not model
    assert model.geom_friction[box, 0] == 1.0  # the shared model is untouched
    x = _slide(phys)
    assert x[1] > x[0] + 0.1  # low friction slides further
    np.testing.assert_allclose(x[[0, 2]], base[[0, 2]], rtol=1e-6)


def test_set_body_mass_scales_inertia_and_subtree(model):
    phys = MujocoPhysics(model, 2, decimation=DEC)
    torso = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_BODY, "torso")
    old_mass, old_inertia = float(model.body_mass[torso]), model.body_inertia[torso].copy()
    old_subtree = float(model.body_subtreemass[torso])
    phys.set_body_mass(torch.tensor([1]), torso, torch.tensor([3.0 * old_mass]))
    m1 = phys._models[1]
    assert m1.body_mass[torso] == pytest.approx(3.0 * old_mass)
    np.testing.assert_allclose(m1.body_inertia[torso], 3.0 * old_inertia)
    assert m1.body_subtreemass[torso] == pytest.approx(old_subtree + 2.0 * old_mass)
    assert m1.body_subtreemass[0] == pytest.approx(model.body_subtreemass[0] + 2.0 * old_mass)
    assert m1.body_invweight0[torso, 0] < model.body_invweight0[torso, 0]
    assert phys._models[0] is model and model.body_mass[torso] == old_mass
    qpos = torch.from_numpy(np.tile(model.qpos0, (2, 1)))
    qpos[:, 2] = 1.0  # in the air: the torso's pitch rate is the arm swing's reaction alone
    phys.set_state(torch.arange(2), qpos, torch.zeros(2, model.nv, dtype=torch.float64))
    phys.ctrl[:] = 0.5
    for _ in range(5):
        phys.step()
    w0, w1 = abs(float(phys.qvel[0, 4])), abs(float(phys.qvel[1, 4]))
    assert 0.0 < w1 < 0.6 * w0  # heavier, stiffer torso recoils less


def test_nan_ctrl_is_a_fault_of_that_env_only(model):
    phys = MujocoPhysics(model, 3, decimation=DEC)
    phys.ctrl[2, 1] = math.nan
    phys.step()  # MuJoCo would silently zero a NaN control; the env is flagged instead
    assert phys.fault.tolist() == [False, False, True]
    assert torch.isfinite(phys.qpos).all()
    phys.ctrl[2, 1] = 0.0
    phys.step()
    assert not phys.fault.any()


def test_nan_state_is_reported_per_env(model):
    phys = MujocoPhysics(model, 3, decimation=DEC)
    qpos, qvel = _start_state(model, 1)
    qpos[0, 8] = math.nan
    phys.set_state(torch.tensor([1]), qpos, qvel)
    assert phys.nonfinite().tolist() == [False, True, False]
    phys.step()  # MuJoCo resets the env (bad qpos) and warns; we must not continue silently
    assert phys.fault.tolist() == [False, True, False]


def test_silent_divergence_reset_is_a_fault(model):
    phys = MujocoPhysics(model, 3, decimation=DEC)
    qpos, qvel = _start_state(model, 1)
    qvel[0, 6] = 1e11  # finite, but beyond mjMAXVAL: mj_step resets the data with a warning
    phys.set_state(torch.tensor([2]), qpos, qvel)
    assert not phys.nonfinite().any()  # finite, so the state check passes
    phys.step()
    assert phys.fault.tolist() == [False, False, True]
