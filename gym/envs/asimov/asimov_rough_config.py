"""Asimov on rough terrain (`asimov_rough`): the flat task's robot, rewards and PPO on generated tiles.

Data sheet §10: 8 x 8 m tiles, 10 difficulty rows x 20 columns, a 20 m border, the terrain curriculum
on with initial levels 0..5; stairs 0-0.10 m high, 0.3 m treads, 3 m platforms. The reference mixes
40 % flat and 30 % each of pyramid stairs (down) and inverted pyramid stairs (up); this task keeps
stairs as the main share and adds legged_gym's other types (slopes, rough slopes, obstacles), scaled
to a 0.73 m biped. The policy keeps the 47-float firmware observation; the critic adds the height
scan (17 x 11 points, 0.1 m apart, around the base).
"""

from __future__ import annotations

from gym.envs.asimov.asimov_config import AsimovCfg, AsimovCfgPPO


class AsimovRoughCfg(AsimovCfg):
    class env(AsimovCfg.env):
        critic_observations = [*AsimovCfg.env.critic_observations, "height_scan"]

    class terrain(AsimovCfg.terrain):
        mesh_type = "trimesh"  # boxes for stairs (vertical faces), heightfield patches for slopes
        border_size = 20.0
        num_rows = 10
        num_cols = 20
        terrain_length = 8.0
        terrain_width = 8.0
        curriculum = True
        max_init_terrain_level = 5
        # smooth slope, rough slope, stairs up, stairs down, discrete obstacles, flat
        terrain_proportions = [0.1, 0.1, 0.25, 0.25, 0.1, 0.2]
        step_height_range = [0.0, 0.10]  # §10
        step_width = 0.3  # §10
        platform_size = 3.0  # §10
        slope_range = [0.0, 0.3]  # up to ~17 degrees
        obstacle_height_range = [0.02, 0.08]
        roughness = 0.03
        measure_heights = True

    class commands(AsimovCfg.commands):
        curriculum = True  # widen v_x from +-0.8 toward +-1.0 m/s when tracking is good
        max_curriculum = 1.0
        curriculum_step = 0.1
        curriculum_reward = "track_linear_velocity"  # §9's exp(-error) tracking term

    class domain_rand(AsimovCfg.domain_rand):
        # 64 (friction, mass) sets as legged_gym's friction buckets: MuJoCo C keeps one model copy per
        # set, and the terrain makes each copy ~1-3 MB.
        num_buckets = 64

    class noise(AsimovCfg.noise):
        class noise_scales(AsimovCfg.noise.noise_scales):
            height_scan = 0.1  # [m] used only if the policy observes the scan

    class sim(AsimovCfg.sim):
        # MuJoCo Warp. A sole on a stair edge touches two boxes (4 contacts each), on a heightfield
        # patch ~10: 2 x 10 x 4 pyramidal rows + 12 joint limits = 92 < njmax. 32 worlds flailing on
        # this terrain for 150 steps peaked at 34 rows and 6 contacts per world.
        nconmax = 32
        njmax = 128


class AsimovRoughCfgPPO(AsimovCfgPPO):
    class runner(AsimovCfgPPO.runner):
        experiment_name = "asimov_rough"
