"""Rough terrain: generator, geometry vs height lookup, spawning, curricula, height scan, resume,
config checks, and a sync-free rough env step (both physics backends; Warp on its CPU device)."""

from __future__ import annotations

import math
from types import SimpleNamespace

import mujoco
import numpy as np
import pytest
import torch

from gym.envs import Asimov, AsimovRoughCfg, task_registry
from gym.envs.base.curriculum import CommandCurriculum, TerrainCurriculum
from gym.physics.model_builder import build_model
from gym.rl import OnPolicyRunner
from gym.rl.logger import EpisodeStats
from gym.utils.terrain import TERRAIN_TYPES, HeightMap, Terrain
from gym.utils.validation import config_problems
from tests.conftest import TEST_DEVICE, device_for
from tests.sync_guard import no_host_sync

BACKENDS = ["mujoco", "warp"]
ONE_EACH = [1 / 6] * 6  # column c has type c


def small_cfg(mesh_type: str = "trimesh", n: int = 6, **terrain) -> AsimovRoughCfg:
    """Asimov rough with a small terrain (2 rows x 6 columns of 6 m tiles, 2 m border), one type per
    column, steep features (so every level shows them), no randomization or noise."""
    cfg = AsimovRoughCfg()
    t = cfg.terrain
    t.mesh_type, t.num_rows, t.num_cols, t.border_size = mesh_type, 2, 6, 2.0
    t.terrain_length = t.terrain_width = 6.0
    t.terrain_proportions, t.seed, t.max_init_terrain_level = ONE_EACH, 3, 1
    t.step_height_range, t.slope_range, t.obstacle_height_range = [0.06, 0.1], [0.2, 0.3], [0.06, 0.1]
    for key, value in terrain.items():
        setattr(t, key, value)
    cfg.env.num_envs = n
    cfg.domain_rand.randomize_friction = cfg.domain_rand.randomize_base_mass = False
    cfg.domain_rand.push_robots = False
    cfg.noise.add_noise = False
    return cfg


# -- generator ------------------------------------------------------------------------------------
def test_generation_is_deterministic_with_the_documented_shapes():
    t = small_cfg().terrain
    a, b, c = Terrain.generate(t, 1), Terrain.generate(t, 1), Terrain.generate(t, 2)
    px, pad = 60, 21  # 6 m / 0.1 m; 2 m border / 0.1 m + 1
    assert a.heights.shape == (2 * px + 2 * pad, 6 * px + 2 * pad) and a.heights.dtype == np.float32
    assert a.tile_origins.shape == (2, 6, 3) and a.boxes.shape[1] == 6
    assert np.array_equal(a.heights, b.heights) and np.array_equal(a.boxes, b.boxes) and a.patches == b.patches
    assert not np.array_equal(a.heights, c.heights)  # rough slope and obstacles are random
    assert np.allclose(a.heights / t.vertical_scale, np.round(a.heights / t.vertical_scale), atol=1e-3)


def test_proportions_are_honoured_by_columns_and_by_random_tiles():
    t = AsimovRoughCfg().terrain  # 20 columns of [0.1, 0.1, 0.25, 0.25, 0.1, 0.2]
    terrain = Terrain.generate(t, 0)
    counts = np.bincount(terrain.tile_types[0], minlength=6)
    assert counts.tolist() == [2, 2, 5, 5, 2, 4]
    assert (terrain.tile_types == terrain.tile_types[0]).all()  # a column keeps its type
    t.curriculum, t.num_rows, t.num_cols, t.border_size = False, 40, 50, 1.0
    random = Terrain.generate(t, 0)
    share = np.bincount(random.tile_types.ravel(), minlength=6) / random.tile_types.size
    np.testing.assert_allclose(share, t.terrain_proportions, atol=0.03)


def test_difficulty_rises_with_the_row_and_heights_match_each_type():
    cfg = small_cfg(step_height_range=[0.05, 0.1], slope_range=[0.1, 0.3])
    cfg.terrain.num_rows = 3
    t = Terrain.generate(cfg.terrain, 0)
    pad, px = 21, 60
    kinds = [TERRAIN_TYPES[k] for k in t.tile_types[0]]
    assert kinds == list(TERRAIN_TYPES)
    rings = 5  # (6 m tile - 3 m platform) / 2 / 0.3 m treads

    def tile(r, c):
        return t.heights[pad + r * px:pad + (r + 1) * px, pad + c * px:pad + (c + 1) * px]

    for r, d in enumerate([0.0, 0.5, 1.0]):
        step, slope = 0.05 + 0.05 * d, 0.1 + 0.2 * d
        assert tile(r, 3)[30, 30] == pytest.approx(rings * step, abs=0.003)  # stairs down: a pyramid
        assert tile(r, 2)[30, 30] == pytest.approx(-rings * step, abs=0.003)  # stairs up: a pit
        assert tile(r, 3)[0, 30] == tile(r, 2)[0, 30] == 0.0  # tile edges at 0
        assert tile(r, 3)[2, 30] == 0.0 and tile(r, 3)[3, 30] == pytest.approx(step, abs=0.003)  # 0.3 m in
        assert abs(tile(r, 0)[10, 30]) == pytest.approx(slope * 1.0, abs=0.003)  # 1 m from the edge
        assert (tile(r, 5) == 0).all()  # flat
        assert t.tile_origins[r, 3, 2] == pytest.approx(rings * step, abs=0.003)
    assert (np.diff(t.tile_origins[:, 3, 2]) > 0).all() and (np.diff(t.tile_origins[:, 2, 2]) < 0).all()
    obstacles = [np.abs(tile(r, 4)).max() for r in range(3)]
    assert obstacles == sorted(obstacles) and obstacles[0] > 0


@pytest.mark.parametrize("mesh_type", ["trimesh", "heightfield"])
def test_height_lookup_matches_the_geometry_by_ray_casts(mesh_type):
    cfg = small_cfg(mesh_type, num_cols=7, terrain_proportions=[2 / 7] + [1 / 7] * 5)  # a valley, a hill
    terrain = Terrain.generate(cfg.terrain, 5)
    m = build_model(cfg, terrain).mj_model
    if mesh_type == "trimesh":  # 2 rows: rough slopes as patches, smooth slopes as meshes, the rest boxes
        assert len(terrain.boxes) > 50 and len(terrain.patches) == 2 and len(terrain.meshes) == 2 * (4 + 1)
        assert terrain.stepped[21 + 30, 21 + 4 * 60 + 30] and not terrain.stepped[21 + 30, 21 + 30]  # stairs, slope
    d = mujoco.MjData(m)
    d.qpos[0] = -50.0  # the robot out of the way
    mujoco.mj_forward(m, d)
    rng = np.random.default_rng(0)
    rows, cols = terrain.tile_types.shape
    xy = np.stack([rng.uniform(0.2, 6.0 * rows - 0.2, 400), rng.uniform(0.2, 6.0 * cols - 0.2, 400)], axis=1)
    on_face = np.abs(np.mod(xy / 0.1 + 0.5, 1.0) - 0.5) < 0.5 - 1e-3  # off the box faces at (i +- 1/2) hs
    xy = xy[on_face.all(axis=1)]
    geomid = np.zeros(1, np.int32)
    group = np.array([1, 0, 0, 0, 0, 0], np.uint8)  # terrain geoms only (group 0)
    ray = [5.0 - mujoco.mj_ray(m, d, np.array([x, y, 5.0]), np.array([0.0, 0.0, -1.0]), group, 1, -1, geomid)
           for x, y in xy]
    lookup = HeightMap(terrain, "cpu").heights_at(torch.as_tensor(xy, dtype=torch.float32)).numpy()
    # a mesh slope's creases (edges, platform edge, diagonals) fall inside grid cells: within one cell of
    # them the grid's triangles cut the corner by up to slope * hs / 2
    local = np.mod(xy, 6.0)
    crease = np.minimum(np.abs(np.abs(local - 3.0) - 1.5).min(axis=1), np.abs(local[:, 0] - local[:, 1]))
    crease = np.minimum(crease, np.abs(local[:, 0] + local[:, 1] - 6.0))
    crease = np.minimum(crease, np.minimum(local, 6.0 - local).min(axis=1))  # the tile's edges
    near = (mesh_type == "trimesh") & (xy[:, 1] < 12.0) & (crease < 0.15)  # columns 0, 1: smooth slopes
    np.testing.assert_allclose(lookup[~near], np.array(ray)[~near], atol=2e-4)
    np.testing.assert_allclose(lookup[near], np.array(ray)[near], atol=0.3 * 0.1 / 2 + 1e-4)
    assert (~near).sum() > 300


# -- spawning -------------------------------------------------------------------------------------
def _lowest_points(m: mujoco.MjModel, qpos: np.ndarray) -> np.ndarray:
    """(k, 3) world points: the corners of each collision box and the bottom of each capsule."""
    d = mujoco.MjData(m)
    d.qpos[:] = qpos
    mujoco.mj_kinematics(m, d)
    points = []
    for g in range(m.ngeom):
        if m.geom_bodyid[g] == 0 or not m.geom_conaffinity[g]:
            continue
        pos, rot, size = d.geom_xpos[g], d.geom_xmat[g].reshape(3, 3), m.geom_size[g]
        if m.geom_type[g] == mujoco.mjtGeom.mjGEOM_BOX:
            signs = np.array(np.meshgrid([-1, 1], [-1, 1], [-1, 1])).reshape(3, -1).T
            points += list(pos + (signs * size) @ rot.T)
        else:  # capsule: both ends, one radius down
            for s in (-1, 1):
                points.append(pos + s * size[1] * rot[:, 2] - np.array([0, 0, size[0]]))
    return np.array(points)


@pytest.mark.parametrize("backend", BACKENDS)
def test_every_env_spawns_on_the_surface_of_every_type(backend):
    env = Asimov(small_cfg(n=12), device_for(backend), physics=backend)
    types = env.curricula.terrain.types.tolist()
    assert sorted(set(types)) == list(range(6))  # every terrain type is used
    qpos = env.physics.qpos.double().cpu().numpy()
    for i in range(env.num_envs):
        pts = _lowest_points(env.robot.mj_model, qpos[i])
        ground = env.height_map.heights_at(torch.as_tensor(pts[:, :2], dtype=torch.float32, device=env.device))
        clearance = pts[:, 2] - ground.cpu().numpy()
        assert clearance.min() > -0.003, (TERRAIN_TYPES[types[i]], clearance.min())  # the flat spawn's 2.4 mm
        assert clearance.min() < 0.08  # on it, not dropped from high
    zero = torch.zeros(env.num_envs, 12, device=env.device)
    for _ in range(15):  # hold the default pose: the feet settle on the surface
        env.step(zero)
    assert env.foot_contact.all(), env.foot_contact
    assert not env.penalized_contacts.any() and not env.terminate_contacts.any()
    force = -env.foot_forces[..., 2].sum(dim=1)  # the sensor's sign: as on the flat floor
    assert ((force > 120) & (force < 250)).all(), force  # its weight (17 kg, 168 N): standing, no launch
    assert (env.base_height > 0.6).all() and (env.episode_length_buf == 15).all()  # nobody fell


# -- curricula ------------------------------------------------------------------------------------
def test_terrain_curriculum_moves_levels_by_walked_distance():
    terrain = Terrain.generate(small_cfg(num_rows=4).terrain, 0)
    cfg = small_cfg(num_rows=4).terrain
    cur = TerrainCurriculum(terrain, cfg, 6, torch.device("cpu"))
    cur.levels = torch.tensor([1, 1, 1, 0, 3, 2])
    cur.origins = cur.tile_origins[cur.levels, cur.types]
    walked = torch.tensor([3.5, 0.5, 2.0, 0.1, 3.5, 5.0])  # tile 6 m: up beyond 3 m
    command = torch.tensor([[0.5, 0.0]] * 6)  # 0.5 m/s * 20 s * 0.5 = 5 m: down below 5 m ...
    command[2] = command[4] = torch.tensor([0.1, 0.0])  # ... or 1 m
    base = cur.origins[:, :2] + torch.stack([walked, torch.zeros(6)], dim=1)
    mask = torch.tensor([True, True, True, True, True, False])
    torch.manual_seed(0)
    cur.update(mask, base, command, 20.0)
    assert cur.levels[:4].tolist() == [2, 0, 1, 0]  # up, down, stays (walked 2 m of 1 m asked), floor 0
    assert 0 <= int(cur.levels[4]) < 4  # solved the top level: a random level
    assert int(cur.levels[5]) == 2  # not reset: unchanged
    assert torch.equal(cur.origins, cur.tile_origins[cur.levels, cur.types])
    solved = TerrainCurriculum(terrain, cfg, 200, torch.device("cpu"))
    solved.levels.fill_(3)
    solved.update(torch.ones(200, dtype=torch.bool), solved.origins[:, :2] + 4.0, torch.zeros(200, 2), 20.0)
    assert set(solved.levels.tolist()) == {0, 1, 2, 3}  # spread over all levels


def test_command_curriculum_widens_lin_vel_x_when_tracking_is_good():
    cfg = small_cfg()
    lo, span = torch.tensor([-0.8, -0.6]), torch.tensor([1.6, 1.2])
    cur = CommandCurriculum(cfg, {"track_linear_velocity": 2.0 * 0.02}, 1000, lo, span)
    logged = torch.tensor([True, True, False])
    cur.record(logged, torch.tensor([0.7, 0.8, 0.0]) * 2.0 * 0.02 * 1000)  # 70 % and 80 % of the max
    cur.update(1000)
    assert cur.range_x().tolist() == pytest.approx([-0.8, 0.8])  # mean 75 %: not good enough
    cur.record(logged, torch.tensor([0.9, 0.95, 0.0]) * 2.0 * 0.02 * 1000)
    cur.update(999)  # not a check step: nothing yet
    assert cur.range_x().tolist() == pytest.approx([-0.8, 0.8])
    cur.update(2000)
    assert cur.range_x().tolist() == pytest.approx([-0.9, 0.9]) and span[1] == pytest.approx(1.2)
    for k in range(3, 6):
        cur.record(logged, torch.tensor([1.0, 1.0, 0.0]) * 2.0 * 0.02 * 1000)
        cur.update(1000 * k)
    assert cur.range_x().tolist() == pytest.approx([-1.0, 1.0])  # capped at max_curriculum


def test_terrain_level_is_logged_saved_and_restored_on_resume(tmp_path):
    cfg = small_cfg(n=8)
    _, train_cfg = task_registry.get_cfgs("asimov_rough", sim_device="cpu")
    train_cfg.policy.actor_hidden_dims = train_cfg.policy.critic_hidden_dims = [16]
    train_cfg.runner.num_steps_per_env = 2
    env = Asimov(cfg, "cpu", physics="mujoco")
    runner = OnPolicyRunner(env, train_cfg, tmp_path)
    metrics = []
    runner.add_logger(lambda m, it: metrics.append(m))
    runner.learn(1)
    assert metrics[0]["Curriculum/terrain_level"] == pytest.approx(float(env.curricula.terrain.levels.float().mean()))
    env.load_curriculum_state({"terrain_levels": torch.tensor([1, 0, 1, 1, 0, 1, 1, 1])})
    runner.save(tmp_path / "model_1.pt")
    fresh_env = Asimov(small_cfg(n=8), "cpu", physics="mujoco")
    fresh = OnPolicyRunner(fresh_env, train_cfg, tmp_path)
    fresh.load(tmp_path / "model_1.pt")
    assert fresh_env.curricula.terrain.levels.tolist() == [1, 0, 1, 1, 0, 1, 1, 1]
    assert torch.equal(fresh_env.env_origins, fresh_env.curricula.terrain.tile_origins[
        fresh_env.curricula.terrain.levels, fresh_env.curricula.terrain.types])
    stats = EpisodeStats(2, "cpu")  # the metric itself: the env's latest value, a mean over ranks
    stats.step(torch.zeros(2), torch.zeros(2, dtype=torch.bool), {"curriculum": {"terrain_level": torch.tensor(2.5)}})
    assert stats.pop_metrics()["Curriculum/terrain_level"] == 2.5


# -- height scan and terrain-relative base height --------------------------------------------------
def _place(env: Asimov, x: float, y: float, yaw: float = 0.0, above: float = 0.73) -> None:
    qpos = env.physics.qpos.clone()
    ground = float(env.height_map.heights_at(torch.tensor([[x, y]], device=env.device))[0])
    qpos[0, 0], qpos[0, 1], qpos[0, 2] = x, y, ground + above
    qpos[0, 3:7] = torch.tensor([math.cos(yaw / 2), 0.0, 0.0, math.sin(yaw / 2)])
    env.physics.set_state(torch.tensor([0]), qpos[:1], torch.zeros_like(env.physics.qvel[:1]))
    env._refresh_state()


def test_height_scan_is_yaw_aligned_and_shows_a_stair_edge():
    env = Asimov(small_cfg(n=1), "cpu", physics="mujoco")
    t = env.terrain
    assert env._obs_height_scan().shape == (1, 17 * 11)
    i, j = 1, 3  # row 1, stairs down (a pyramid): the first riser is 0.25 m in from the tile's low x edge
    x0, y0 = i * 6.0, j * 6.0 + 3.0
    step = float(t.tile_origins[i, j, 2]) / 5  # 5 treads up to the platform
    _place(env, x0 + 0.20, y0)  # standing on the lowest tread, facing +x, the riser 5 cm ahead
    scan = env._obs_height_scan().reshape(17, 11)  # x outer (-0.8 .. 0.8), y inner
    behind, ahead = scan[8 - 2, 5], scan[8 + 2, 5]  # -0.2 m and +0.2 m along the base's x
    assert float(behind - ahead) == pytest.approx(step, abs=1e-4)
    _place(env, x0 + 0.20, y0, yaw=math.pi / 2)  # facing +y: the step is now on the base's right side (-y)
    scan = env._obs_height_scan().reshape(17, 11)
    assert float(scan[8, 5 - 2] - scan[8, 5 + 2]) == pytest.approx(-step, abs=1e-4)
    assert float(scan[8 - 2, 5] - scan[8 + 2, 5]) == pytest.approx(0.0, abs=1e-4)


def test_base_height_reward_and_termination_use_the_terrain_on_a_slope():
    cfg = small_cfg(n=1)
    cfg.rewards.base_height_target = 0.7
    env = Asimov(cfg, "cpu", physics="mujoco")
    slope = abs(float(env.terrain.heights[21 + 60 + 10, 21 + 30]) / 1.0)  # row 1, smooth slope, 1 m in
    assert slope > 0.2
    x, y = 6.0 + 1.0, 3.0
    _place(env, x, y, above=0.75)
    ground = float(env.height_map.heights_at(torch.tensor([[x, y]]))[0])
    assert abs(ground) == pytest.approx(slope * 1.0, abs=1e-3)
    assert float(env.base_height[0]) == pytest.approx(0.75, abs=1e-5)
    assert float(env._reward_base_height()[0]) == pytest.approx(0.05**2, abs=1e-5)
    top = env.terrain.tile_origins[1, 3]  # the pyramid's top platform, 0.4 m up
    _place(env, float(top[0]), float(top[1]), above=0.32)
    env.check_termination()
    assert not bool(env.reset_buf[0])
    _place(env, float(top[0]), float(top[1]), above=0.25)  # z = 0.65 > min_base_height, 0.25 above the steps
    env.check_termination()
    assert bool(env.reset_buf[0])


# -- config checks ---------------------------------------------------------------------------------
def test_config_validation_names_each_terrain_problem():
    cfg = small_cfg()
    _, train_cfg = task_registry.get_cfgs("asimov_rough", sim_device="cpu")
    t = cfg.terrain
    t.terrain_proportions, t.terrain_length, t.slope_range = [0.5, 0.5, 0.5, 0.0, 0.0, 0.0], 6.05, [-0.1, 0.2]
    cfg.terrain.measure_heights = False
    cfg.commands.curriculum_reward = "no_such_term"
    cfg.domain_rand.num_buckets = -1
    problems = "\n".join(config_problems(Asimov, cfg, train_cfg))
    assert "terrain_proportions=[0.5, 0.5, 0.5, 0.0, 0.0, 0.0]: the shares sum to 1.5, not 1" in problems
    assert "terrain.terrain_length=6.05: must be a multiple of terrain.horizontal_scale=0.1" in problems
    assert "terrain.slope_range=[-0.1, 0.2]: must be >= 0" in problems
    assert "'height_scan' needs it; --set terrain.measure_heights=True" in problems
    assert "commands.curriculum_reward='no_such_term': the command curriculum needs a reward term" in problems
    assert "domain_rand.num_buckets=-1" in problems
    t.terrain_proportions = [0.5, 0.5]
    assert "must list 6 shares" in "\n".join(config_problems(Asimov, cfg, train_cfg))
    t.terrain_proportions = [1.5, -0.5, 0, 0, 0, 0]
    assert "shares must be >= 0" in "\n".join(config_problems(Asimov, cfg, train_cfg))
    t.mesh_type = "trimsh"
    assert "terrain.mesh_type='trimsh': unknown; did you mean 'trimesh'?" in config_problems(Asimov, cfg, train_cfg)[0]
    assert config_problems(Asimov, small_cfg(), train_cfg) == []


# -- buffers, buckets, no host sync ----------------------------------------------------------------
def test_buckets_bound_the_mujoco_model_copies():
    cfg = small_cfg(n=32)
    cfg.domain_rand.randomize_friction = cfg.domain_rand.randomize_base_mass = True
    cfg.domain_rand.num_buckets = 4
    env = Asimov(cfg, "cpu", physics="mujoco")
    assert len({id(m) for m in env.physics._models}) <= 4
    assert len(set(env.friction_coeffs.flatten().tolist())) <= 4


def test_rough_env_step_has_no_host_synchronisation_and_no_buffer_overflow():
    cfg = small_cfg(n=6)
    cfg.env.episode_length_s = 0.1  # resets (and both curricula) every 5 steps
    cfg.commands.resampling_time_range = [0.02, 0.06]
    cfg.domain_rand.push_robots, cfg.domain_rand.push_interval_s = True, [0.04, 0.1]
    env = Asimov(cfg, TEST_DEVICE, physics="warp")
    env.step(torch.zeros(env.num_envs, 12, device=env.device))  # graph capture (syncs allowed)
    with no_host_sync():
        for _ in range(12):
            env.step(torch.rand(env.num_envs, 12, device=env.device) - 0.5)
            extras = env.extras
    assert set(extras["curriculum"]) == {"terrain_level", "max_lin_vel_x"}
    for _ in range(30):  # random flailing on stairs and slopes: the task's nconmax / njmax suffice
        env.step(2 * torch.rand(env.num_envs, 12, device=env.device) - 1)
    env.check_buffers()


def test_asimov_rough_task_is_registered_and_keeps_the_firmware_observation():
    env_cfg, train_cfg = task_registry.get_cfgs("asimov_rough", sim_device="cpu")
    flat_cfg, _ = task_registry.get_cfgs("asimov", sim_device="cpu")
    assert env_cfg.env.observations == flat_cfg.env.observations
    assert env_cfg.env.critic_observations[-1] == "height_scan" and flat_cfg.terrain.mesh_type == "plane"
    assert train_cfg.runner.experiment_name == "asimov_rough"
    assert task_registry.get_task_class("asimov_rough") is Asimov
    env, _ = task_registry.make_env("asimov_rough", SimpleNamespace(physics="mujoco", sim_device="cpu"),
                                    env_cfg=small_cfg(n=2))
    assert env.num_obs == 47 and env.critic_group.slices["height_scan"] == slice(
        env.num_privileged_obs - 187, env.num_privileged_obs)
