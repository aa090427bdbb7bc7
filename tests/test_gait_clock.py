"""Asimov's gait clock (`cfg.gait`): phase timing, the `gait_phase` observation, the `gait_contact` reward."""

from __future__ import annotations

import math

import pytest
import torch

from gym.envs import Asimov
from tests.conftest import device_for
from tests.test_asimov_rewards import command
from tests.test_env import BACKENDS, N, make_cfg

TERMS = ["base_ang_vel", "projected_gravity", "commands", "dof_pos", "dof_vel", "actions", "gait_phase"]


def gait_cfg():
    cfg = make_cfg()
    cfg.env.observations = list(TERMS)
    cfg.rewards.scales.gait_contact = 1.0
    return cfg


@pytest.fixture(scope="module", params=BACKENDS)
def env(request):
    env = Asimov(gait_cfg(), device_for(request.param), physics=request.param)
    env.reset()
    return env


def test_clock_advances_by_dt_over_period_and_wraps(env):
    assert env.num_obs == 47 and env.obs_group.slices["gait_phase"] == slice(45, 47)
    assert env.gait_phase.min() >= 0 and env.gait_phase.max() < 1
    env.gait_phase[:] = torch.tensor([0.0, 0.25, 0.99, 0.5])
    env.step(torch.zeros(N, 12))
    step = env.dt / env.cfg.gait.period  # 0.02 / 0.4 of a cycle
    expected = torch.tensor([step, 0.25 + step, (0.99 + step) % 1.0, 0.5 + step])
    assert not env.reset_buf.any()  # a reset would redraw the phase
    torch.testing.assert_close(env.gait_phase.cpu(), expected)


def test_stance_schedule_alternates_the_feet(env):
    # left foot offset 0, right 0.5; stance while (phase + offset) mod 1 < 0.6
    env.gait_phase[:] = torch.tensor([0.05, 0.3, 0.58, 0.8])
    expected = torch.tensor([[True, True], [True, False], [True, True], [False, True]])
    assert torch.equal(env.gait_stance().cpu(), expected)


def test_phase_observation_is_zero_at_a_zero_command(env):
    env.gait_phase[:] = torch.tensor([0.0, 0.25, 0.5, 0.125])
    command(env, vx=0.1)
    angle = 2 * math.pi * torch.tensor([0.0, 0.25, 0.5, 0.125])
    torch.testing.assert_close(env._obs_gait_phase().cpu(), torch.stack((angle.sin(), angle.cos()), dim=1))
    command(env, wz=0.3)  # turning in place steps to the clock too
    assert torch.all(env._obs_gait_phase().norm(dim=1) > 0.99)
    command(env)
    assert torch.all(env._obs_gait_phase() == 0)
    env.compute_observations()
    assert torch.all(env.obs_buf[:, 45:47] == 0)


def test_gait_contact_counts_feet_that_follow_the_clock(env):
    env.gait_phase[:] = torch.tensor([0.3, 0.3, 0.3, 0.05])  # stance: [L], [L], [L], [L and R]
    env.foot_contact = torch.tensor([[True, False], [False, True], [True, True], [True, True]])
    command(env, vx=0.1)
    torch.testing.assert_close(env._reward_gait_contact().cpu(), torch.tensor([2.0, 0.0, 1.0, 2.0]))
    command(env)  # standing is stand_still_feet's business
    assert torch.all(env._reward_gait_contact() == 0)


def test_reset_redraws_only_the_reset_envs_phase(env):
    env.gait_phase[:] = 2.0  # out of range on purpose: a redrawn phase lies in [0, 1)
    env.reset_envs(torch.tensor([True, False, True, False], device=env.device))
    assert torch.all(env.gait_phase[[0, 2]] < 1) and torch.all(env.gait_phase[[1, 3]] == 2.0)


@pytest.mark.parametrize("field,value", [("period", 0.0), ("stance_fraction", 1.0), ("offsets", [0.0])])
def test_bad_gait_config_names_the_fix(field, value):
    cfg = gait_cfg()
    setattr(cfg.gait, field, value)
    with pytest.raises(ValueError, match="gait: need period > 0"):
        Asimov(cfg, "cpu", physics="mujoco")


def test_export_metadata_carries_the_clock_for_firmware(env):
    from gym.utils.export import policy_metadata

    meta = policy_metadata(env, "asimov")
    assert meta["observation_names"][-1] == "gait_phase" and meta["observation_slices"][-1] == [45, 47]
    clock = meta["gait_clock"]
    assert clock["period_s"] == 0.4 and clock["command_threshold"] == 0.05 and "modulo 1" in clock["rule"]


def test_the_contract_checks_the_clock_period(env):
    from gym.envs import AsimovCfg
    from gym.utils.export import policy_metadata
    from gym.utils.firmware_contract import contract_rows, deviations

    class Contract(AsimovCfg.contract):
        observation_names = TERMS
        observation_dims = [3, 3, 3, 12, 12, 12, 2]
        observation_scales = [0.25, 1.0, 1.0, 1.0, 0.05, 1.0, 1.0]
        gait_clock = {"period_s": 0.4, "command_threshold": 0.05}

    meta = policy_metadata(env, "asimov")
    assert [r.item for r in contract_rows(meta, Contract) if r.item.startswith("gait")] == [
        "gait clock period_s", "gait clock command_threshold"]
    assert not [p for p in deviations(contract_rows(meta, Contract)) if "gait" in p or "obs" in p]
    Contract.gait_clock = {"period_s": 0.5, "command_threshold": 0.05}
    assert "gait clock period_s is 0.4, contract 0.5" in deviations(contract_rows(meta, Contract))
    meta.pop("gait_clock")
    assert "gait clock period_s is None, contract 0.5" in deviations(contract_rows(meta, Contract))
