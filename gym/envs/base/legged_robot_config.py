"""Default configs for a legged robot env (`LeggedRobotCfg`) and its PPO training (`LeggedRobotCfgPPO`).

Names follow legged_gym / Isaac Lab. Units: SI (m, s, rad, kg, N, Nm). A robot subclasses both and
overrides only what differs (see `gym/envs/asimov/asimov_config.py`).
"""

from __future__ import annotations

from gym.envs.base.base_config import BaseConfig


class LeggedRobotCfg(BaseConfig):
    # Dotted key -> value applied when the sim device is the CPU (before flags and --set), so a
    # plain `train.py` on a laptop uses settings that train there in reasonable time.
    cpu_defaults = {"env.num_envs": 1024}

    class env:
        num_envs = 4096
        num_actions = 12
        episode_length_s = 20.0  # [s] then a timeout (truncation, reported in extras["time_outs"])
        send_timeouts = True
        # Observation terms, in order. Each name maps to `LeggedRobot._obs_<name>()` returning
        # (num_envs, dim); its scale is `normalization.obs_scales.<name>` and its noise
        # `noise.noise_scales.<name>` (uniform, in the term's physical units, applied before scaling).
        observations = [
            "base_lin_vel", "base_ang_vel", "projected_gravity", "commands",
            "dof_pos", "dof_vel", "actions",
        ]
        # Privileged critic terms; empty list = critic sees the policy observation.
        critic_observations: list[str] = []

    class terrain:
        # "plane": a flat floor. "trimesh": generated tiles (gym/utils/terrain.py): stairs, obstacles and
        # flat tiles as boxes with vertical faces, smooth slopes as convex meshes, rough slopes as
        # heightfield patches (fastest on MuJoCo C). "heightfield": the tiles as one MuJoCo heightfield
        # (steps become one-cell ramps; fewest geoms, faster on MuJoCo Warp).
        mesh_type = "plane"
        static_friction = 1.0  # sliding friction of the floor / terrain
        restitution = 0.0
        seed = -1  # terrain generator seed; -1 = the run seed (torch.initial_seed())
        horizontal_scale = 0.1  # [m] height-grid spacing
        vertical_scale = 0.005  # [m] heights are multiples of this
        border_size = 25.0  # [m] flat border around the tiles
        curriculum = True  # rows are difficulty levels; robots move up / down (legged_gym's rule)
        max_init_terrain_level = 5  # initial level U{0..this} (curriculum); else every row
        terrain_length = 8.0  # [m] tile size along x (one difficulty level)
        terrain_width = 8.0  # [m] tile size along y
        num_rows = 10  # difficulty levels
        num_cols = 20  # tiles per level; column c has one type
        # Shares of [smooth slope, rough slope, stairs up, stairs down, discrete obstacles, flat]; sum 1.
        terrain_proportions = [0.1, 0.1, 0.35, 0.25, 0.2, 0.0]
        slope_treshold = 0.75  # "trimesh": slopes rising more than this over one cell become vertical faces
        # Per terrain type, value at difficulty 0 and 1 (row r: difficulty r / (num_rows - 1)).
        slope_range = [0.0, 0.4]  # rise / run of the slopes (hills and valleys)
        step_height_range = [0.05, 0.23]  # [m] stairs
        obstacle_height_range = [0.05, 0.25]  # [m] discrete obstacles (+-, and half)
        roughness = 0.05  # [m] rough slope: U(-r, r) bumps on a 0.2 m grid
        step_width = 0.31  # [m] stair tread
        platform_size = 3.0  # [m] flat square in the centre of each tile (the spawn area)
        # Height scan (observation term "height_scan"): points in the yaw-aligned base frame [m].
        measure_heights = False
        measured_points_x = [-0.8, -0.7, -0.6, -0.5, -0.4, -0.3, -0.2, -0.1, 0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6,
                             0.7, 0.8]
        measured_points_y = [-0.5, -0.4, -0.3, -0.2, -0.1, 0.0, 0.1, 0.2, 0.3, 0.4, 0.5]

    class commands:
        # Widen lin_vel_x by curriculum_step [m/s] at both ends (up to +-max_curriculum) once per
        # episode length when the episodes that ended earned > 80 % of the max of `curriculum_reward`
        # (a reward term in [0, 1] per step, e.g. an exp(-error) tracking term).
        curriculum = False
        max_curriculum = 1.0  # [m/s]
        curriculum_step = 0.5  # [m/s]
        curriculum_reward = "tracking_lin_vel"
        num_commands = 4  # lin_vel_x, lin_vel_y, ang_vel_yaw, heading (heading mode overwrites yaw rate)
        resampling_time_range = [10.0, 10.0]  # [s] each env resamples after U(lo, hi)
        heading_command = True  # if true, heading envs compute ang_vel_yaw from the heading error
        rel_heading_envs = 1.0  # fraction of envs in heading mode (when heading_command)
        rel_standing_envs = 0.0  # fraction of envs given a zero command
        rel_turn_envs = 0.0  # fraction of envs given a pure yaw-rate command (v_xy = 0): turn in place
        # fraction of envs whose (v_x, v_y) draw is multiplied by slow_scale and w_z by slow_yaw_scale (no
        # heading): slow walking, which independent uniform draws per axis almost never give (|v_x| < 0.15 and
        # |v_y|, |w_z| < 0.1 in ~0.5 % of Asimov's draws). slow_yaw_scale = 0 walks slowly straight.
        rel_slow_envs = 0.0
        slow_scale = 0.25
        slow_yaw_scale = 0.25
        heading_stiffness = 0.5  # ang_vel_yaw = clip(heading_stiffness * heading_error)
        min_norm = 0.0  # [m/s] |v_xy| below this (after slow_scale) is set to 0 (0 disables)

        class ranges:
            lin_vel_x = [-1.0, 1.0]  # [m/s], body frame
            lin_vel_y = [-1.0, 1.0]  # [m/s], body frame
            ang_vel_yaw = [-1.0, 1.0]  # [rad/s]
            heading = [-3.14159, 3.14159]  # [rad], world frame
            turn_ang_vel = [0.0, 1.0]  # [rad/s] |w_z| of the rel_turn_envs (sign random); lo > 0 skips creeping

    class init_state:
        pos = [0.0, 0.0, 1.0]  # x, y, z [m]
        rot = [1.0, 0.0, 0.0, 0.0]  # w, x, y, z [quat], MuJoCo order
        lin_vel = [0.0, 0.0, 0.0]  # [m/s], world frame
        ang_vel = [0.0, 0.0, 0.0]  # [rad/s], body frame
        xy_range = [0.0, 0.0]  # [m] uniform offset of the spawn x and y at each reset
        yaw_range = [0.0, 0.0]  # [rad] uniform spawn yaw at each reset
        default_joint_angles: dict[str, float] = {}  # joint name -> angle [rad]; action offset

    class control:
        control_type = "P"  # position targets tracked by a PD actuator in the physics
        # Matched by substring of the joint name (legged_gym style); every joint must match one key.
        stiffness: dict[str, float] = {}  # Kp [Nm/rad]
        damping: dict[str, float] = {}  # Kd [Nm*s/rad]
        effort_limit: dict[str, float] = {}  # [Nm] actuator force range
        armature: dict[str, float] = {}  # [kg m^2] reflected rotor inertia
        action_scale: float | dict[str, float] = 0.5  # target = default + scale * action
        decimation = 4  # physics steps per policy step, targets held (zero-order hold)

    class asset:
        file = ""  # MJCF path; "{GYM_ROOT_DIR}" is substituted
        name = "robot"
        base_body = ""  # body carrying the free joint
        imu_site = ""  # site for gyro / velocimeter (body frame)
        foot_bodies: list[str] = []  # one per foot; contact sensors and foot rewards
        foot_sites: list[str] = []  # one per foot; foot position / velocity sensors
        penalize_contacts_on: list[str] = []  # body names: contact with the floor is penalized
        terminate_after_contacts_on: list[str] = []  # body names: contact with the floor ends the episode
        self_collisions = False  # if False, only contacts with the floor are enabled

    class domain_rand:
        randomize_friction = True
        friction_range = [0.5, 1.25]  # sliding friction of the foot geoms, per env, at startup
        randomize_base_mass = False
        added_mass_range = [-1.0, 1.0]  # [kg] added to the body below, inertia scaled with it
        added_mass_body = ""  # "" = asset.base_body
        # 0: every env draws its own friction and added mass. B > 0: B (friction, mass) sets are drawn
        # and each env takes one at random (legged_gym draws friction from 64 buckets). MuJoCo C keeps
        # one model copy per distinct set (mj_sizeModel bytes each), so a large terrain wants buckets.
        num_buckets = 0
        push_robots = True
        push_interval_s = [15.0, 15.0]  # [s] U(lo, hi) between pushes, per env
        max_push_vel_xy = 1.0  # [m/s] U(-max, max) added to the world-frame base x, y velocity
        # Drawn once per env at startup from the nominal model (gym/envs/base/domain_rand.py; the draws
        # are env.domain_rand_values and <run>/domain_rand_values.yaml). "per joint" = per env and joint.
        randomize_restitution = False
        restitution_range = [0.0, 0.5]  # foot-floor coefficient of restitution (foot contact damping ratio)
        randomize_com = False
        com_offset_range = [-0.02, 0.02]  # [m] x, y, z each, added to the CoM of added_mass_body
        randomize_link_mass = False
        link_mass_scale_range = [0.9, 1.1]  # x every body's mass (inertia scaled alike), per env and body
        randomize_gains = False
        kp_scale_range = [0.9, 1.1]  # x actuator Kp, per joint
        kd_scale_range = [0.9, 1.1]  # x actuator Kd, per joint
        randomize_motor_strength = False
        motor_strength_range = [0.9, 1.1]  # x effort limit, per joint
        randomize_joint_dynamics = False
        armature_scale_range = [0.9, 1.1]  # x joint armature, per joint
        joint_damping_range = [0.0, 0.1]  # [Nm s/rad] added viscous joint damping, per joint
        joint_friction_range = [0.0, 0.2]  # [Nm] added joint friction loss, per joint
        randomize_encoder_offset = False
        encoder_offset_range = [-0.02, 0.02]  # [rad] per joint: the policy and the motor PD read q + offset
        randomize_imu_mounting = False
        imu_mounting_range = [-0.035, 0.035]  # [rad] roll, pitch, yaw each of the IMU in the base (~2 deg)
        # Latency in physics ticks (sim.dt each), drawn per env U{lo..hi} at every reset, 0..decimation
        # (gym/envs/base/latency.py). Off: no delay at all.
        randomize_latency = False
        action_latency_range = [0, 2]  # new targets act this many ticks into the policy step (CAN delay)
        imu_latency_range = [0, 1]  # age of base_ang_vel / projected_gravity in the policy observation
        joint_latency_range = [0, 1]  # age of dof_pos / dof_vel in the policy observation

    class rewards:
        class scales:
            termination = -0.0
            tracking_lin_vel = 1.0
            tracking_ang_vel = 0.5
            lin_vel_z = -2.0
            ang_vel_xy = -0.05
            orientation = -0.0
            torques = -0.00001
            dof_vel = -0.0
            dof_acc = -2.5e-7
            base_height = -0.0
            feet_air_time = 1.0
            collision = -1.0
            feet_stumble = -0.0
            action_rate = -0.01
            stand_still = -0.0
            dof_pos_limits = -0.0
            feet_contact_forces = -0.0

        only_positive_rewards = True  # clip the summed reward at zero (legged_gym)
        tracking_sigma = 0.25  # tracking_lin_vel = exp(-|cmd_xy - v_xy|^2 / sigma)
        ang_tracking_sigma = 0.25  # tracking_ang_vel = exp(-(cmd_wz - w_z)^2 / sigma)
        soft_dof_pos_limit = 1.0  # fraction of the joint range before the limit penalty starts
        base_height_target = 1.0  # [m]
        max_contact_force = 100.0  # [N] feet_contact_forces penalizes the excess
        feet_air_time_target = 0.5  # [s] air time rewarded above this at each landing
        command_threshold = 0.1  # [m/s] below this |cmd_xy| counts as "stand still"

    class termination:
        max_tilt = 1.2217  # [rad] fall when the base z axis tilts more than this (70 deg)
        min_base_height = 0.0  # [m] fall when the base is below this (0 disables)

    class normalization:
        class obs_scales:
            base_lin_vel = 2.0
            base_ang_vel = 0.25
            projected_gravity = 1.0
            commands = 1.0
            dof_pos = 1.0
            dof_vel = 0.05
            actions = 1.0

        clip_observations = 100.0
        clip_actions = 100.0

    class noise:
        add_noise = True
        noise_level = 1.0  # multiplies every noise scale

        class noise_scales:  # uniform noise half-width, physical units, applied before the scale
            base_lin_vel = 0.1
            base_ang_vel = 0.2
            projected_gravity = 0.05
            dof_pos = 0.01
            dof_vel = 1.5

    class sim:
        dt = 0.005  # [s] physics step
        gravity = [0.0, 0.0, -9.81]  # [m/s^2]
        integrator = "implicitfast"
        solver = "newton"
        iterations = 10
        ls_iterations = 20
        cone = "pyramidal"
        # MuJoCo Warp buffers; an overflow stops the run with the sizes to set (`check_buffers`).
        # njmax: 2 soles x 8 contacts x 4 pyramidal rows + 12 joint limits = 76, plus room for
        # knees / pelvis (Asimov flailing at random peaked at 34 rows). Each row of njmax costs
        # time: on Warp's CPU device 192 was 17% slower than 96, 128 6%.
        nconmax = 24  # contacts per world, a pool shared by all worlds (Asimov averaged 3.4)
        njmax = 128  # constraint rows per world
        graph_capture = True  # MuJoCo Warp: capture the decimation loop as a graph (False = eager, slow)
        physics = "auto"  # "warp" (MuJoCo Warp), "mujoco" (MuJoCo C, CPU threads), "auto": warp on CUDA else mujoco

    class viewer:
        ref_env = 0
        pos = [2.0, 2.0, 1.0]  # [m]
        lookat = [0.0, 0.0, 0.5]  # [m]


class LeggedRobotCfgPPO(BaseConfig):
    seed = 1
    # As LeggedRobotCfg.cpu_defaults. On 2 CPU cores the PPO update of 512-256-128 networks takes
    # twice as long as collecting the batch; 256-128-64 keeps end-to-end FPS near collection speed.
    cpu_defaults = {"policy.actor_hidden_dims": [256, 128, 64], "policy.critic_hidden_dims": [256, 128, 64]}

    class policy:
        init_noise_std = 1.0
        actor_hidden_dims = [512, 256, 128]
        critic_hidden_dims = [512, 256, 128]
        activation = "elu"  # elu, relu, selu, tanh, leaky_relu
        tanh_mean = False  # bound the action mean to [-1, 1] with tanh

    class algorithm:
        value_loss_coef = 1.0
        use_clipped_value_loss = True
        clip_param = 0.2
        entropy_coef = 0.01
        num_learning_epochs = 5
        num_mini_batches = 4  # mini batch size = num_envs * num_steps_per_env / num_mini_batches
        learning_rate = 1.0e-3
        schedule = "adaptive"  # "adaptive" (from KL) or "fixed"
        gamma = 0.99
        lam = 0.95
        desired_kl = 0.01
        max_grad_norm = 1.0

    class runner:
        num_steps_per_env = 24  # rollout length per env per iteration
        max_iterations = 1500
        # [min] stop (and save) at the first iteration boundary after this much training wall time,
        # even before max_iterations; None = no limit. Several ranks stop together (the slowest one's clock).
        max_wall_time_min: float | None = None
        empirical_normalization = True  # running mean / std of actor and critic observations
        collection_threads = 1  # torch threads while stepping a CPU env (0 = leave torch's default)
        # Stop when more than this fraction of num_envs is reset for non-finite physics in one iteration.
        max_nonfinite_fraction = 0.25
        save_interval = 50  # iterations between checkpoints
        # Each checkpoint is also exported to <run>/exported/ as ONNX + TorchScript + JSON metadata
        # (gym/utils/export.py); a failed export only warns.
        export_policy = True
        # Several ranks (--gpu_ids, --num_processes, torchrun): the bound on every collective; a rank
        # that stops or hangs ends the others after at most this long.
        dist_timeout_s = 300.0
        experiment_name = "test"
        run_name = ""
        resume = False
        load_run: str | int = -1  # -1 = newest run folder
        checkpoint = -1  # -1 = newest model_<it>.pt
