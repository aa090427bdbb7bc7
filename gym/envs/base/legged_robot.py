"""`LeggedRobot`: batched velocity-tracking env for a legged robot (legged_gym's design, MuJoCo physics).

Read top to bottom: construction, `step()` and the small overridable steps it calls, resets,
commands and pushes, observations. The standard rewards live in `rewards.py` (a mixin). Physics
runs behind `gym.physics.Physics`; this class only reads and writes its torch tensors.

Frames: `base_lin_vel`, `base_ang_vel` and `projected_gravity` are in the BODY frame; `base_pos`,
foot positions, velocities and contact forces are in the WORLD frame. Commands are (v_x, v_y, w_z,
heading) in the body frame, heading in the world frame. One policy step = `control.decimation`
physics steps with the joint targets held (50 Hz policy / 200 Hz motors on Asimov).

Age of each quantity after a step: the state buffers (`base_*`, `projected_gravity`, `dof_*`) are the
state after the step's last physics tick (age 0; the IMU velocities are computed from it as MuJoCo's
gyro and velocimeter would read it). Foot positions, velocities, contacts and forces come from
sensors, which the last tick's forward pass computed: one tick (`sim.dt`) older. The policy's IMU
terms (`base_ang_vel`, `projected_gravity`) are `latency.imu` ticks old and its joint terms (`dof_pos`,
`dof_vel`) `latency.joint` ticks old (`measured_*`, 0 unless `domain_rand.randomize_latency`); its
new targets act `latency.action` ticks into the next step (gym/envs/base/latency.py). Both physics
backends give the same ages.
"""

from __future__ import annotations

import math

import mujoco
import torch

from gym.envs.base.base_config import public_attrs
from gym.envs.base.curriculum import CommandCurriculum, Curricula, TerrainCurriculum
from gym.envs.base.domain_rand import SensorErrors, apply_startup_randomization
from gym.envs.base.latency import Latency
from gym.envs.base.legged_robot_config import LeggedRobotCfg
from gym.envs.base.observations import ObservationGroup
from gym.envs.base.rewards import LeggedRewardsMixin
from gym.physics import make_physics
from gym.physics.model_builder import build_model, match_joint_param
from gym.utils.math import quat_from_yaw, quat_rotate_inverse, wrap_to_pi, yaw_from_quat
from gym.utils.terrain import HeightMap, Terrain, scan_points


class LeggedRobot(LeggedRewardsMixin):
    sensor_errors = SensorErrors()  # none until _apply_startup_randomization draws them

    def __init__(self, cfg: LeggedRobotCfg, sim_device: str = "cpu", physics: str | None = None) -> None:
        """Build the model and `cfg.env.num_envs` worlds on `sim_device` ("cpu", "cuda", "cuda:0").

        `physics` ("warp" / "mujoco") overrides `cfg.sim.physics`. Raises FileNotFoundError /
        ValueError / KeyError for a bad asset or config, naming the problem.
        """
        self.cfg = cfg
        self.device = torch.device(sim_device)
        self.num_envs = cfg.env.num_envs
        self.num_actions = cfg.env.num_actions
        self.dt = cfg.control.decimation * cfg.sim.dt  # policy step [s]
        self.max_episode_length_s = cfg.env.episode_length_s
        self.max_episode_length = math.ceil(self.max_episode_length_s / self.dt)
        t = cfg.terrain
        seed = t.seed if t.seed >= 0 else torch.initial_seed() % 2**32  # -1: the run seed
        self.terrain = Terrain.generate(t, seed) if t.mesh_type != "plane" else None
        self.height_map = HeightMap(self.terrain, self.device)
        self.robot = build_model(cfg, self.terrain)
        self.physics = make_physics(physics or cfg.sim.physics, self.robot.mj_model, self.num_envs, sim_device,
                                    cfg.control.decimation, nconmax=cfg.sim.nconmax, njmax=cfg.sim.njmax,
                                    graph_capture=cfg.sim.graph_capture)
        self.latency = Latency(cfg, self.physics, self.device)
        self._init_buffers()
        self._prepare_reward_functions()
        self.curricula = Curricula(TerrainCurriculum(self.terrain, t, self.num_envs, self.device), CommandCurriculum(
            cfg, self.reward_scales, self.max_episode_length, self._cmd_lo, self._cmd_span))
        self._apply_startup_randomization()
        self.obs_group = ObservationGroup(self, cfg.env.observations, noise=cfg.noise.add_noise)
        critic_terms = cfg.env.critic_observations
        self.critic_group = ObservationGroup(self, critic_terms, noise=False) if critic_terms else None
        self.num_obs = self.obs_group.dim
        self.num_privileged_obs = self.critic_group.dim if self.critic_group else self.num_obs
        self.reset()

    # -- construction -----------------------------------------------------------------------
    def _init_buffers(self) -> None:
        n, dev, r, c = self.num_envs, self.device, self.robot, self.cfg
        tensor = lambda x: torch.as_tensor(x, dtype=torch.float32, device=dev)  # noqa: E731
        self.joint_names = r.joint_names
        self.num_dof = len(r.joint_names)
        self.default_dof_pos = tensor([c.init_state.default_joint_angles.get(j, 0.0) for j in r.joint_names])
        scale = c.control.action_scale
        self.action_scale = tensor([match_joint_param(scale, j, "action_scale") if isinstance(scale, dict)
                                    else scale for j in r.joint_names])
        self.p_gains, self.d_gains = tensor(r.stiffness), tensor(r.damping)
        self.torque_limits = tensor(r.effort_limit)
        self.joint_lo, self.joint_hi = tensor(r.joint_range[:, 0]), tensor(r.joint_range[:, 1])
        mid = (self.joint_lo + self.joint_hi) / 2
        half = (self.joint_hi - self.joint_lo) / 2 * c.rewards.soft_dof_pos_limit
        self.dof_pos_limits = torch.stack([mid - half, mid + half], dim=1)  # (num_dof, 2) soft limits
        self._qpos_idx = _slice_if_contiguous(r.qpos_adr, dev)  # a slice gives views, not copies
        self._dof_idx = _slice_if_contiguous(r.dof_adr, dev)
        self.num_feet = len(c.asset.foot_bodies)
        self.gravity_dir = tensor([0.0, 0.0, -1.0]).expand(n, 3)
        zeros = lambda *s, **kw: torch.zeros(*s, device=dev, **kw)  # noqa: E731
        self.actions, self.last_actions = zeros(n, self.num_actions), zeros(n, self.num_actions)
        self.last_dof_vel = zeros(n, self.num_dof)
        self.commands = zeros(n, 4)  # v_x, v_y [m/s], w_z [rad/s] body frame; heading [rad] world
        self.heading_env = zeros(n, dtype=torch.bool)
        self.command_time_left, self.push_time_left = zeros(n), zeros(n)
        self.feet_air_time, self.last_air_time = zeros(n, self.num_feet), zeros(n, self.num_feet)
        self.first_contact = zeros(n, self.num_feet, dtype=torch.bool)
        self.episode_length_buf = zeros(n, dtype=torch.long)
        self.reset_buf = zeros(n, dtype=torch.bool)
        self.time_out_buf = zeros(n, dtype=torch.bool)
        self.rew_buf = zeros(n)
        self.friction_coeffs = torch.full((n, 1), c.terrain.static_friction, device=dev)
        self._pending_fault = zeros(n, dtype=torch.bool)  # non-finite action / obs: reset next step
        i, nq, nv = c.init_state, self.physics.qpos.shape[1], self.physics.qvel.shape[1]
        self._qpos_init = zeros(1, nq)  # start state constants, built once
        self._qpos_init[0, 0:3] = tensor(i.pos)
        self._qpos_init[0, 3:7] = tensor(i.rot)
        self._qpos_init[0, self._qpos_idx] = self.default_dof_pos
        self._qvel_init = zeros(1, nv)
        self._qvel_init[0, 0:3], self._qvel_init[0, 3:6] = tensor(i.lin_vel), tensor(i.ang_vel)
        self.common_step_counter = 0
        self.extras: dict = {}
        cmd = c.commands
        # uniform draws lo + span * U(0, 1), one column per quantity (one random kernel per use)
        lo_span = lambda *ranges: (tensor([a for a, _ in ranges]), tensor([b - a for a, b in ranges]))  # noqa: E731
        self._cmd_lo, self._cmd_span = lo_span(cmd.ranges.lin_vel_x, cmd.ranges.lin_vel_y, cmd.ranges.ang_vel_yaw,
                                               cmd.ranges.heading, cmd.resampling_time_range)
        self._turn_lo, self._turn_span = lo_span(cmd.ranges.turn_ang_vel)
        self._spawn_lo, self._spawn_span = lo_span(i.xy_range, i.xy_range, i.yaw_range)
        dr = c.domain_rand
        push = (-dr.max_push_vel_xy, dr.max_push_vel_xy)
        self._push_lo, self._push_span = lo_span(dr.push_interval_s, push, push)
        self._scan_points = scan_points(c.terrain.measured_points_x, c.terrain.measured_points_y).to(dev)  # (P, 2)
        self._imu_frame()
        self._sensor_indices()
        self._refresh_state()
        self._measure()  # the observation terms' inputs, so ObservationGroup can size them

    def _prepare_reward_functions(self) -> None:
        """Collect `_reward_<name>` for every non-zero scale; scales are multiplied by dt."""
        self.reward_scales: dict[str, float] = {}
        for name, scale in public_attrs(self.cfg.rewards.scales).items():
            if scale == 0:
                continue
            if not callable(getattr(self, f"_reward_{name}", None)):
                known = sorted(k[8:] for k in dir(self) if k.startswith("_reward_"))
                raise AttributeError(f"rewards.scales.{name} has no method _reward_{name} on "
                                     f"{type(self).__name__}; known terms: {known}")
            self.reward_scales[name] = scale * self.dt
        self._reward_scale_vec = torch.tensor(list(self.reward_scales.values()), device=self.device)
        # (N, terms) running episode sums; `episode_sums[name]` are column views of it
        self._episode_sums = torch.zeros(self.num_envs, len(self.reward_scales), device=self.device)
        self.episode_sums = {k: self._episode_sums[:, i] for i, k in enumerate(self.reward_scales)}
        # (N, terms) scale * dt * r_i of the last step, columns in `reward_scales` order
        self.reward_terms = torch.zeros(self.num_envs, len(self.reward_scales), device=self.device)

    def _apply_startup_randomization(self) -> None:
        """Per-env robot parameters drawn once from the nominal model (gym/envs/base/domain_rand.py:
        friction, restitution, masses, CoM, gains, motor strength, joint dynamics, encoder offsets,
        IMU mounting; `domain_rand.num_buckets`). `domain_rand_values[item]` holds the draws (N, ...);
        `sensor_errors` applies the sensor-side ones to the policy's observations."""
        self.domain_rand_values = apply_startup_randomization(self)
        if self.latency.randomize:
            self.domain_rand_values.update(self.latency.values())  # live: redrawn at each reset

    # -- stepping -----------------------------------------------------------------------------
    def step(self, actions: torch.Tensor) -> tuple:
        """Apply `actions` (num_envs, num_actions) for one policy step.

        Returns (obs, privileged_obs, rewards (N,), dones (N,) bool, extras) with
        extras["time_outs"] (N,) bool for episodes cut by the time limit (truncations) and the
        reset bookkeeping of `reset_envs`. Issues no host synchronisation on CUDA: every per-env
        decision is a fixed-shape mask. Envs that went non-finite are reset (see `_faults`).
        """
        clip = self.cfg.normalization.clip_actions
        actions = actions.to(self.device)
        finite = torch.isfinite(actions).all(dim=1, keepdim=True)
        self.actions = torch.where(finite, torch.clip(actions, -clip, clip), 0.0)
        self._pending_fault |= ~finite.squeeze(1)
        self.physics.ctrl.copy_(self.compute_targets(self.actions))
        self.physics.step()
        self.post_physics_step()
        return self.obs_buf, self.privileged_obs_buf, self.rew_buf, self.reset_buf, self.extras

    def compute_targets(self, actions: torch.Tensor) -> torch.Tensor:
        """Joint position targets [rad] = default_dof_pos + action_scale * actions (per joint), as
        true joint angles: less the encoder offset the motor's PD loop reads (domain_rand)."""
        return self.sensor_errors.joint_target(self.default_dof_pos + self.action_scale * actions)

    def post_physics_step(self) -> None:
        self.episode_length_buf += 1
        self.common_step_counter += 1
        self._refresh_state()
        self._update_feet_air_time()
        self._update_commands()
        self.check_termination()
        self.compute_reward()
        fault = self._faults()
        self.rew_buf = torch.where(fault, 0.0, self.rew_buf)
        self.time_out_buf &= ~fault
        self.reset_buf |= fault
        self.reset_envs(self.reset_buf, fault)
        self._apply_pushes(~self.reset_buf)
        self.compute_observations()
        self.last_actions.copy_(self.actions)
        self.last_dof_vel.copy_(self.dof_vel)

    def _faults(self) -> torch.Tensor:
        """(N,) bool: envs to reset because their simulation broke in this step.

        Non-finite qpos / qvel / sensordata, a backend fault (MuJoCo reset or stopped the env), a
        non-finite reward, or a non-finite action or observation in the previous step. The
        faulted transition is a termination with reward 0, so nothing non-finite reaches PPO.
        """
        fault = self.physics.nonfinite() | ~torch.isfinite(self.rew_buf)
        fault |= self.physics.fault | self._pending_fault
        self._pending_fault.zero_()
        return fault

    def _refresh_state(self) -> None:
        """Derive the state buffers the rewards and observations read from the physics tensors."""
        p = self.physics
        self.base_pos, self.base_quat = p.qpos[:, 0:3], p.qpos[:, 3:7]
        self.base_height = self.base_pos[:, 2] - self.height_map.heights_at(self.base_pos[:, :2])  # above terrain
        self.base_lin_vel, self.base_ang_vel, self.projected_gravity = self._imu_readings(p.qpos, p.qvel)
        self.dof_pos = p.qpos[:, self._qpos_idx]
        self.dof_vel = p.qvel[:, self._dof_idx]
        targets = torch.maximum(torch.minimum(self.compute_targets(self.actions), self.joint_hi), self.joint_lo)
        self.torques = (self.p_gains * (targets - self.dof_pos) - self.d_gains * self.dof_vel).clip(
            -self.torque_limits, self.torque_limits)
        feet = p.sensordata[:, self._foot_cols].unflatten(1, (self.num_feet, 10))  # a view if contiguous
        self.foot_pos = feet[..., 0:3]  # (N, feet, 3) [m], world
        self.foot_vel = feet[..., 3:6]  # (N, feet, 3) [m/s], world
        self.foot_contact = feet[..., 6] > 0  # (N, feet) bool
        self.foot_forces = feet[..., 7:10]  # (N, feet, 3) [N], world
        self.penalized_contacts = p.sensordata[:, self._penalized_cols] > 0
        self.terminate_contacts = p.sensordata[:, self._terminate_cols] > 0

    def _imu_frame(self) -> None:
        """The IMU site's pose in the free-joint base body (built once): the site must be on that body
        or on a body welded to it (no joint in between)."""
        m, site = self.robot.mj_model, self.cfg.asset.imu_site
        body = int(m.site(site).bodyid[0])
        while m.body_jntnum[body] == 0 and body > 0:  # climb welded bodies to the one with the joint
            body = int(m.body_parentid[body])
        if body == 0 or m.body_jntnum[body] != 1 or m.jnt_type[m.body_jntadr[body]] != mujoco.mjtJoint.mjJNT_FREE:
            raise ValueError(f"asset.imu_site {site!r} does not move rigidly with a free-floating base body; "
                             "put the IMU site on the base (asset.base_body)")
        d = mujoco.MjData(m)
        mujoco.mj_kinematics(m, d)
        base_rot = d.xmat[body].reshape(3, 3)
        as_tensor = lambda x: torch.as_tensor(x, dtype=torch.float32, device=self.device)  # noqa: E731
        self._imu_rot = as_tensor(base_rot.T @ d.site_xmat[m.site(site).id].reshape(3, 3))  # site axes, base frame
        self._imu_pos = as_tensor(base_rot.T @ (d.site_xpos[m.site(site).id] - d.xpos[body]))  # [m], base frame

    def _imu_readings(self, qpos: torch.Tensor, qvel: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """(linear velocity [m/s], angular velocity [rad/s]) of the IMU site in its own frame, as MuJoCo's
        velocimeter and gyro read them, and the projected gravity (unit, base frame), each (N, 3), of
        the state `qpos` (N, nq) / `qvel` (N, nv). Free joint: qvel[:, 0:3] is the base origin's world
        velocity, qvel[:, 3:6] the base-frame angular velocity."""
        quat, w = qpos[:, 3:7], qvel[:, 3:6]
        v = quat_rotate_inverse(quat, qvel[:, 0:3]) + torch.cross(w, self._imu_pos.expand_as(w), dim=1)
        return v @ self._imu_rot, w @ self._imu_rot, quat_rotate_inverse(quat, self.gravity_dir)

    def _measure(self) -> None:
        """The policy's sensor readings (`measured_ang_vel`, `measured_gravity`, `measured_dof_pos`,
        `measured_dof_vel`): the state `latency.imu` / `latency.joint` ticks before the step's end,
        from the physics' tick history; the current state when no observation latency is set. Run
        once per step, by `compute_observations`."""
        lat, p = self.latency, self.physics
        if not lat.delays_observations:
            self.measured_ang_vel, self.measured_gravity = self.base_ang_vel, self.projected_gravity
            self.measured_dof_pos, self.measured_dof_vel = self.dof_pos, self.dof_vel
            return
        _, self.measured_ang_vel, self.measured_gravity = self._imu_readings(
            lat.at(p.qpos_history, lat.imu), lat.at(p.qvel_history, lat.imu))
        self.measured_dof_pos = lat.at(p.qpos_history, lat.joint)[:, self._qpos_idx]
        self.measured_dof_vel = lat.at(p.qvel_history, lat.joint)[:, self._dof_idx]

    def _update_feet_air_time(self) -> None:
        """Advance the per-foot flight timers by one policy step (exactly once per step).

        A touchdown is one `first_contact` step carrying the whole flight time in `last_air_time`.
        """
        air = self.feet_air_time + self.dt
        self.first_contact = self.foot_contact & (self.feet_air_time > 0)
        self.last_air_time = torch.where(self.first_contact, air, self.last_air_time)
        self.feet_air_time = torch.where(self.foot_contact, torch.zeros_like(air), air)

    def _sensor_indices(self) -> None:
        """Sensordata columns, built once: per foot [pos xyz, vel xyz, contact found, force xyz]
        and the contact-found column of each penalized / terminating body. `build_model` adds the
        sensors in that order, so these are slices and the state buffers are views."""
        s = self.robot.sensor

        def cols(name: str, n: int | None = None) -> list[int]:
            sl = s(name)
            return list(range(sl.start, sl.stop))[:n]

        feet = [c for i in range(self.num_feet)
                for c in cols(f"foot_pos_{i}") + cols(f"foot_vel_{i}") + cols(f"foot_contact_{i}", 4)]
        found = [[s(f"contact_{b}").start for b in bodies]
                 for bodies in (self.cfg.asset.penalize_contacts_on, self.cfg.asset.terminate_after_contacts_on)]
        self._foot_cols = _slice_if_contiguous(feet, self.device)
        self._penalized_cols, self._terminate_cols = (_slice_if_contiguous(f, self.device) for f in found)

    def check_termination(self) -> None:
        """Falls (tilt, base below min_base_height above the terrain, forbidden contact) terminate;
        the time limit truncates."""
        t = self.cfg.termination
        fell = -self.projected_gravity[:, 2] < math.cos(t.max_tilt)
        fell |= self.base_height < t.min_base_height
        fell |= self.terminate_contacts.any(dim=1)
        self.time_out_buf = self.episode_length_buf >= self.max_episode_length
        self.reset_buf = fell | self.time_out_buf

    def compute_reward(self) -> None:
        """rew = sum_i scale_i * dt * r_i; each term must return (num_envs,).

        A diverged env's sums may turn non-finite; they are left out of the logged statistics and
        zeroed at its reset (see `_faults`, `reset_envs`).
        """
        terms = []
        for name in self.reward_scales:
            term = getattr(self, f"_reward_{name}")()
            if term.shape != (self.num_envs,):
                raise ValueError(f"_reward_{name} returned shape {tuple(term.shape)}; "
                                 f"rewards must have shape ({self.num_envs},)")
            terms.append(term)
        if not terms:
            self.rew_buf = torch.zeros(self.num_envs, device=self.device)
            return
        scaled = torch.stack(terms, dim=1) * self._reward_scale_vec  # (N, terms)
        self.reward_terms = scaled
        self.rew_buf = scaled.sum(dim=1)
        self._episode_sums += scaled
        if self.cfg.rewards.only_positive_rewards:
            self.rew_buf.clip_(min=0.0)

    def check_buffers(self) -> None:
        """Raise PhysicsError if a physics buffer overflowed (synchronises: once per iteration)."""
        self.physics.check_buffers()

    # -- resets ----------------------------------------------------------------------------------
    def reset(self) -> tuple:
        """Reset every env; returns (obs, privileged_obs)."""
        self.reset_envs(torch.ones(self.num_envs, dtype=torch.bool, device=self.device))
        self.compute_observations()
        return self.obs_buf, self.privileged_obs_buf

    def reset_envs(self, mask: torch.Tensor, fault: torch.Tensor | None = None) -> None:
        """Reset the envs where `mask` (N,) bool is set: pose, buffers, commands (no host sync).

        Fills `extras`: "time_outs" (N,) bool; "episode": per reward term, the SUM over the reset
        envs of their episode's per-second value (0-dim); "episode_count": how many envs that sum
        covers (0-dim; faulted envs, `fault` (N,) bool, are left out); "nonfinite_resets": how many
        were reset for a fault (0-dim); "curriculum": {"terrain_level": mean level of all envs,
        "max_lin_vel_x": the command range's max} (0-dim each) when those curricula are on. The reset
        envs' curricula move first (`Curricula.update`), so they spawn on their new tile.
        """
        logged = mask if fault is None else mask & ~fault  # a diverged env's sums are not logged
        sums = torch.where(logged.unsqueeze(1), self._episode_sums, 0.0).sum(dim=0) / self.max_episode_length_s
        self.extras = {
            "time_outs": self.time_out_buf,  # check_termination makes a new tensor every step
            "episode": {f"rew_{name}": value for name, value in zip(self.reward_scales, sums.unbind())},
            "episode_count": logged.sum(),
            "nonfinite_resets": fault.sum() if fault is not None else torch.zeros((), dtype=torch.long,
                                                                                  device=self.device),
        }
        tracking = self.episode_sums.get(self.cfg.commands.curriculum_reward)
        log = self.curricula.update(logged, self.common_step_counter, self.base_pos[:, :2], self.commands[:, :2],
                                    tracking, self.max_episode_length_s)
        if log:
            self.extras["curriculum"] = log
        self.env_origins = self.curricula.terrain.origins  # (N, 3) [m] world
        qpos, qvel = self._initial_state()
        rest = self.compute_targets(torch.zeros_like(self.actions))  # held until the first action acts
        self.physics.ctrl.copy_(torch.where(mask.unsqueeze(1), rest, self.physics.ctrl))
        self.latency.resample(mask)
        self.physics.reset_envs(mask, qpos, qvel)
        self._reset_buffers(mask)
        self._refresh_state()

    def curriculum_state(self) -> dict[str, torch.Tensor]:
        """Terrain levels and command range; the runner saves it in checkpoints (resume continues it)."""
        return self.curricula.state_dict()

    def load_curriculum_state(self, state: dict[str, torch.Tensor]) -> None:
        """Restore `curriculum_state()`; the envs move to their restored tiles at their next reset."""
        self.curricula.load_state_dict(state)
        self.env_origins = self.curricula.terrain.origins

    def _initial_state(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Full-batch (N, nq), (N, nv) start states: default pose at the env's origin (tile centre,
        zero on a plane) + init_state.pos + U(xy_range), z above the highest terrain within 0.3 m,
        yaw U(yaw_range), init velocities (world linear, body angular)."""
        n = self.num_envs
        u = self._spawn_lo + self._spawn_span * torch.rand(n, 3, device=self.device)  # x, y, yaw
        qpos = self._qpos_init.expand(n, -1).clone()
        qpos[:, 0:2] += u[:, 0:2] + self.env_origins[:, 0:2]
        qpos[:, 2] += self.height_map.spawn_heights_at(qpos[:, 0:2])
        qpos[:, 3:7] = quat_from_yaw(u[:, 2])
        return qpos, self._qvel_init.expand(n, -1)

    def _reset_buffers(self, mask: torch.Tensor) -> None:
        m = mask.unsqueeze(1)
        self._episode_sums.masked_fill_(m, 0.0)
        for buf in (self.actions, self.last_actions, self.last_dof_vel, self.feet_air_time, self.last_air_time):
            buf.masked_fill_(m, 0.0)
        self.episode_length_buf.masked_fill_(mask, 0)
        self._resample_commands(mask)
        push_in = self._push_lo[0] + self._push_span[0] * torch.rand(self.num_envs, device=self.device)
        self.push_time_left = torch.where(mask, push_in, self.push_time_left)

    # -- commands and pushes --------------------------------------------------------------------
    def _update_commands(self) -> None:
        """Resample expired commands; heading envs steer w_z toward their heading target."""
        self.command_time_left -= self.dt
        self._resample_commands(self.command_time_left <= 0)
        c = self.cfg.commands
        if c.heading_command:
            heading = yaw_from_quat(self.base_quat)
            w_z = c.heading_stiffness * wrap_to_pi(self.commands[:, 3] - heading)
            w_z = w_z.clip(*c.ranges.ang_vel_yaw)
            self.commands[:, 2] = torch.where(self.heading_env, w_z, self.commands[:, 2])

    def _resample_commands(self, mask: torch.Tensor) -> None:
        """Draw (v_x, v_y, w_z, heading) from `commands.ranges` where `mask` (N,) is set; a
        `rel_standing_envs` fraction stand (zero command), a `rel_turn_envs` fraction turn in place
        (v_xy = 0, |w_z| from `ranges.turn_ang_vel`, either sign), a `rel_slow_envs` fraction walk
        slowly (v_xy times `slow_scale`, w_z times `slow_yaw_scale`), some of the rest track a heading.
        Then |v_xy| below `min_norm` [m/s] becomes 0 (legged_gym's). Draws for every env and keeps the
        masked rows."""
        c = self.cfg.commands
        u = torch.rand(self.num_envs, 11, device=self.device)
        draw = self._cmd_lo + self._cmd_span * u[:, :5]  # v_x, v_y, w_z, heading, time to next
        cmd = draw[:, :4]
        standing = u[:, 5] < c.rel_standing_envs
        turning = (u[:, 7] < c.rel_turn_envs) & ~standing
        cmd[:, :3] *= (~standing).unsqueeze(1)
        cmd[:, :2] *= (~turning).unsqueeze(1)
        turn_rate = (self._turn_lo + self._turn_span * u[:, 8]) * torch.where(u[:, 9] < 0.5, -1.0, 1.0)
        cmd[:, 2] = torch.where(turning, turn_rate, cmd[:, 2])
        slow = (u[:, 10] < c.rel_slow_envs) & ~standing & ~turning
        cmd[:, :2] *= torch.where(slow, c.slow_scale, 1.0).unsqueeze(1)
        cmd[:, 2] *= torch.where(slow, c.slow_yaw_scale, 1.0)
        if c.min_norm > 0:  # after slow scaling: a gap in |v_xy| between zero and the slowest walk
            cmd[:, :2] *= (torch.norm(cmd[:, :2], dim=1) >= c.min_norm).unsqueeze(1)
        heading_env = (u[:, 6] < c.rel_heading_envs) & ~standing & ~turning & ~slow if c.heading_command \
            else torch.zeros_like(standing)
        self.commands = torch.where(mask.unsqueeze(1), cmd, self.commands)
        self.heading_env = torch.where(mask, heading_env, self.heading_env)
        self.command_time_left = torch.where(mask, draw[:, 4], self.command_time_left)

    def _apply_pushes(self, allowed: torch.Tensor) -> None:
        """Kick envs whose push timer expired (and that did not just reset, `allowed` (N,)): add
        U(-max_push_vel_xy, max) [m/s] to the world-frame base x, y velocity. The kick takes
        effect at the next physics tick (legged_gym's velocity write; sensors see it after it)."""
        dr = self.cfg.domain_rand
        if not dr.push_robots:
            return
        self.push_time_left -= self.dt
        due = (self.push_time_left <= 0) & allowed
        u = self._push_lo + self._push_span * torch.rand(self.num_envs, 3, device=self.device)  # next, kick
        self.push_time_left = torch.where(due, u[:, 0], self.push_time_left)
        qvel = self.physics.qvel.clone()
        qvel[:, 0:2] += u[:, 1:3]
        self.physics.set_qvel(due, qvel)

    # -- observations ---------------------------------------------------------------------------
    def compute_observations(self) -> None:
        """Fill `obs_buf` (policy, noisy) and `privileged_obs_buf` (critic, noise-free).

        Non-finite entries are replaced by 0 and their env is reset at the next step (a fault), so
        the policy, the normalizer and PPO only ever see finite observations.
        """
        self._measure()
        obs = self.obs_group.compute()
        bad = ~torch.isfinite(obs).all(dim=1)
        self.obs_buf = torch.nan_to_num(obs, nan=0.0, posinf=0.0, neginf=0.0)
        self.privileged_obs_buf = None
        if self.critic_group:
            critic = self.critic_group.compute()
            bad |= ~torch.isfinite(critic).all(dim=1)
            self.privileged_obs_buf = torch.nan_to_num(critic, nan=0.0, posinf=0.0, neginf=0.0)
        self._pending_fault |= bad

    def get_observations(self) -> torch.Tensor:
        return self.obs_buf

    def get_privileged_observations(self) -> torch.Tensor | None:
        return self.privileged_obs_buf

    def _obs_base_lin_vel(self) -> torch.Tensor:
        return self.base_lin_vel

    def _obs_base_ang_vel(self) -> torch.Tensor:
        return self.sensor_errors.imu(self.measured_ang_vel)

    def _obs_projected_gravity(self) -> torch.Tensor:
        return self.sensor_errors.imu(self.measured_gravity)

    def _obs_commands(self) -> torch.Tensor:
        return self.commands[:, :3]

    def _obs_dof_pos(self) -> torch.Tensor:
        return self.sensor_errors.dof_pos(self.measured_dof_pos) - self.default_dof_pos

    def _obs_dof_vel(self) -> torch.Tensor:
        return self.measured_dof_vel

    def _obs_actions(self) -> torch.Tensor:
        return self.actions

    def _obs_foot_height(self) -> torch.Tensor:
        return self.foot_pos[..., 2]

    def _obs_feet_air_time(self) -> torch.Tensor:
        return self.feet_air_time

    def _obs_foot_contact(self) -> torch.Tensor:
        return self.foot_contact.float()

    def _obs_foot_contact_forces(self) -> torch.Tensor:
        f = self.foot_forces.flatten(1)
        return torch.sign(f) * torch.log1p(torch.abs(f))

    def _obs_friction(self) -> torch.Tensor:
        return self.friction_coeffs

    def _obs_height_scan(self) -> torch.Tensor:
        """(N, P) [m]: base height above the terrain at each scan point minus base_height_target,
        clipped to +-1 m (0 on flat ground at the target height; > 0 over a dip). The points are
        `terrain.measured_points_x` x `_y` (x outer) in the yaw-aligned base frame."""
        if not self.cfg.terrain.measure_heights:
            raise ValueError("observation term 'height_scan' needs terrain.measure_heights=True")
        ground = self.height_map.scan(self.base_pos, yaw_from_quat(self.base_quat), self._scan_points)
        return (self.base_pos[:, 2:3] - ground - self.cfg.rewards.base_height_target).clip(-1.0, 1.0)


def _slice_if_contiguous(adr, device: torch.device) -> slice | torch.Tensor:
    """Column selector for joint / sensor addresses: a slice when they are consecutive (views, also
    for none), else an index."""
    adr = [int(a) for a in adr]
    if not adr:
        return slice(0, 0)
    if adr == list(range(adr[0], adr[0] + len(adr))):
        return slice(adr[0], adr[0] + len(adr))
    return torch.as_tensor(adr, device=device)
