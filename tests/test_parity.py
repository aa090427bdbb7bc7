"""MuJoCo Warp and MuJoCo C backends give the same physics for the same model, state and controls.

Tolerance: with a converged solver (50 Newton / line-search iterations) the only difference is Warp's
float32 arithmetic against MuJoCo C's float64. Measured over these 200 physics steps of marching in
place (two lift-offs and touchdowns per env): |dq| <= 6e-7 rad or m, |dqd| <= 3e-5 rad/s. The test
allows 1e-4 and 2e-3 (~100x headroom for other CPUs and compilers).

Two things legitimately break this agreement and are kept out of the test: (1) at the training
default of 10 iterations Newton sometimes stops before converging, at different points on the two
backends (up to ~0.1-0.3 rad/s per step: solver truncation, not a backend disagreement); (2) a foot
that grazes the floor (contact flickering on and off) is a knife-edge event where a 1e-7 difference
decides whether a corner touches, after which the trajectories part by ~1e-3 m.
"""

from __future__ import annotations

import math

import pytest
import torch

from gym.envs import Asimov
from tests.conftest import device_for
from tests.test_env import make_cfg


def make_pair(num_envs: int, **changes) -> dict[str, Asimov]:
    envs = {}
    for backend in ("mujoco", "warp"):
        cfg = make_cfg(sim__iterations=50, sim__ls_iterations=50, env__episode_length_s=100.0, **changes)
        cfg.env.num_envs = num_envs
        envs[backend] = Asimov(cfg, device_for(backend), physics=backend)
        envs[backend].reset()
    return envs


def march_in_place(k: int, amp: float = 0.4, freq: float = 1.0) -> torch.Tensor:
    """(2, 12) actions at policy step k: flex hip pitch and knee of one leg at a time (signs per §3)."""
    phase = 2 * math.pi * freq * 0.02 * k
    left, right = max(0.0, math.sin(phase)), max(0.0, -math.sin(phase))
    a = torch.zeros(12)
    a[0], a[3] = amp * left, -2 * amp * left
    a[6], a[9] = -amp * right, 2 * amp * right
    return a.expand(2, 12)


def test_200_physics_steps_agree_with_contacts():
    envs = make_pair(2)
    c, w = envs["mujoco"], envs["warp"]
    torch.testing.assert_close(c.physics.qpos, w.physics.qpos)
    contact_changes = 0
    previous = c.foot_contact.clone()
    for k in range(50):  # 50 policy steps x decimation 4 = 200 physics steps
        actions = march_in_place(k)
        c.step(actions)
        w.step(actions)
        assert (c.physics.qpos - w.physics.qpos).abs().max() < 1e-4, f"qpos differs at policy step {k}"
        assert (c.physics.qvel - w.physics.qvel).abs().max() < 2e-3, f"qvel differs at policy step {k}"
        assert torch.equal(c.foot_contact, w.foot_contact), f"foot contact differs at policy step {k}"
        contact_changes += int((c.foot_contact != previous).sum())
        previous = c.foot_contact.clone()
    assert contact_changes >= 4  # feet lift off and land, so the contact check is not vacuous
    physical = [i for i in range(45) if not 6 <= i < 9]  # commands, gait clock (45-46): per instance
    torch.testing.assert_close(c.obs_buf[:, physical], w.obs_buf[:, physical], atol=5e-3, rtol=0)


@pytest.mark.parametrize("action,falls", [(0.0, False), (1.0, True)])
def test_same_policy_falls_or_stands_alike(action, falls):
    # A deterministic policy for 2 s from the same states: holding the default pose stands; driving
    # every joint to +1 (hip roll and knee far off the pose) falls, on both backends.
    envs = make_pair(2)
    fell = {}
    for name, env in envs.items():
        fell[name] = torch.zeros(2, dtype=torch.bool)
        for _ in range(100):
            _, _, _, dones, extras = env.step(torch.full((2, 12), action))
            fell[name] |= dones & ~extras["time_outs"]
    assert torch.equal(fell["mujoco"], fell["warp"])
    assert bool(fell["mujoco"].all()) == falls
