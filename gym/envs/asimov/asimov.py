"""`Asimov`: the base env plus the reward terms of the Asimov data sheet §9 that legged_gym lacks.

Each term's docstring gives its §9 formula; `cfg.rewards.scales` holds the §9 weights (multiplied by
the policy dt = 0.02 s, as §9's per-step reward). s = |cmd_xy| + |cmd_wz| is the command speed.
"""

from __future__ import annotations

import torch

from gym.envs.base.legged_robot import LeggedRobot
from gym.physics.model_builder import match_joint_param
from gym.utils.math import quat_rotate


class Asimov(LeggedRobot):
    def _init_buffers(self) -> None:
        super()._init_buffers()
        r, dev = self.cfg.rewards, self.device

        def sigmas(table: dict[str, float]) -> torch.Tensor:
            return torch.tensor([match_joint_param(table, j, "pose_sigma") for j in self.joint_names], device=dev)

        self.pose_sigma_walking = sigmas(r.pose_sigma_walking)  # (num_dof,) [rad]
        self.pose_sigma_running = sigmas(r.pose_sigma_running)
        self.swing_peak = torch.zeros(self.num_envs, self.num_feet, device=dev)  # [m] max site z this swing
        self.last_swing_peak = torch.zeros(self.num_envs, self.num_feet, device=dev)  # of the last landing
        self.feet_contact_time = torch.zeros(self.num_envs, self.num_feet, device=dev)  # [s] in the current stance
        self._angmom_cols = self.robot.sensor("root_angmom")
        from gym.utils.validation import gait_problems  # here: validation imports cli, which imports gym.envs

        problems = gait_problems(self.cfg)
        if problems:
            raise ValueError(problems[0])
        self.gait_offsets = torch.tensor(self.cfg.gait.offsets, dtype=torch.float, device=dev)  # (num_feet,) [cycles]
        self.gait_phase = torch.zeros(self.num_envs, device=dev)  # (N,) in [0, 1) cycles, drawn at each reset

    def post_physics_step(self) -> None:
        """Advance the gait clock by one policy step (dt / gait.period cycles), then the base step."""
        self.gait_phase = torch.remainder(self.gait_phase + self.dt / self.cfg.gait.period, 1.0)
        super().post_physics_step()

    def command_speed(self) -> torch.Tensor:
        """s = |cmd_xy| + |cmd_wz| (§9), (num_envs,)."""
        return torch.norm(self.commands[:, :2], dim=1) + torch.abs(self.commands[:, 2])

    def _moving(self) -> torch.Tensor:
        """(num_envs,) bool: s > command_threshold (0.05, §9's condition on the foot terms)."""
        return self.command_speed() > self.cfg.rewards.command_threshold

    def _update_feet_air_time(self) -> None:
        """The base flight timers, each foot's time in its current stance (`feet_contact_time`, 0 in
        the air) and its peak site height over its swing: at a landing (`first_contact`) the swing's
        peak moves to `last_swing_peak` and the tracker restarts."""
        super()._update_feet_air_time()
        self.feet_contact_time = torch.where(self.foot_contact, self.feet_contact_time + self.dt,
                                             torch.zeros_like(self.feet_contact_time))
        self.last_swing_peak = torch.where(self.first_contact, self.swing_peak, self.last_swing_peak)
        z = self.foot_pos[..., 2]
        self.swing_peak = torch.where(self.foot_contact, torch.zeros_like(z), torch.maximum(self.swing_peak, z))

    def _reset_buffers(self, mask: torch.Tensor) -> None:
        super()._reset_buffers(mask)
        self.swing_peak.masked_fill_(mask.unsqueeze(1), 0.0)
        self.last_swing_peak.masked_fill_(mask.unsqueeze(1), 0.0)
        self.feet_contact_time.masked_fill_(mask.unsqueeze(1), 0.0)
        self.gait_phase = torch.where(mask, torch.rand_like(self.gait_phase), self.gait_phase)

    # -- gait clock (not §9 / §16; cfg.gait) -----------------------------------------------------------
    def gait_stance(self) -> torch.Tensor:
        """(num_envs, num_feet) bool: the clock's stance feet, (phase + offset_foot) mod 1 < stance_fraction."""
        return torch.remainder(self.gait_phase.unsqueeze(1) + self.gait_offsets, 1.0) < self.cfg.gait.stance_fraction

    def _obs_gait_phase(self) -> torch.Tensor:
        """(num_envs, 2) [sin 2 pi phase, cos 2 pi phase] while s > command_threshold, [0, 0] at a zero
        command: the firmware advances phase by 0.02 s / gait.period per policy step, wrapping at 1."""
        angle = 2.0 * torch.pi * self.gait_phase
        return torch.stack((torch.sin(angle), torch.cos(angle)), dim=1) * self._moving().unsqueeze(1)

    # -- §9 terms ---------------------------------------------------------------------------------
    def _reward_track_linear_velocity(self) -> torch.Tensor:
        """exp(-(|cmd_xy - v_xy|^2 + v_z^2) / track_linear_velocity_sigma), body-frame velocimeter (§9)."""
        v = self.base_lin_vel
        error = torch.sum(torch.square(self.commands[:, :2] - v[:, :2]), dim=1) + torch.square(v[:, 2])
        return torch.exp(-error / self.cfg.rewards.track_linear_velocity_sigma)

    def _reward_track_angular_velocity(self) -> torch.Tensor:
        """exp(-((cmd_wz - w_z)^2 + w_x^2 + w_y^2) / track_angular_velocity_sigma), body-frame gyro (§9)."""
        w = self.base_ang_vel
        error = torch.square(self.commands[:, 2] - w[:, 2]) + torch.sum(torch.square(w[:, :2]), dim=1)
        return torch.exp(-error / self.cfg.rewards.track_angular_velocity_sigma)

    def _reward_upright(self) -> torch.Tensor:
        """exp(-|g_xy|^2 / upright_sigma): 1 when the pelvis is level (§9 upright)."""
        tilt = torch.sum(torch.square(self.projected_gravity[:, :2]), dim=1)
        return torch.exp(-tilt / self.cfg.rewards.upright_sigma)

    def _reward_pose(self) -> torch.Tensor:
        """exp(-mean_j (q_j - q0_j)^2 / sigma_j^2), sigma by command speed s (§9 pose).

        s < 0.05: sigma = pose_sigma_standing for every joint; s < 1.5: walking table; else running.
        """
        s = self.command_speed().unsqueeze(1)
        sigma = torch.where(s < 1.5, self.pose_sigma_walking, self.pose_sigma_running)
        sigma = torch.where(s < self.cfg.rewards.command_threshold,
                            torch.full_like(sigma, self.cfg.rewards.pose_sigma_standing), sigma)
        return torch.exp(-torch.mean(torch.square(self.dof_pos - self.default_dof_pos) / sigma**2, dim=1))

    def _reward_body_ang_vel(self) -> torch.Tensor:
        """w_x^2 + w_y^2 [rad^2/s^2] of the pelvis in the WORLD frame (§9 body_ang_vel); the gyro
        sits at the pelvis origin with the base's axes, so w_world = R(base_quat) w_gyro."""
        w_world = quat_rotate(self.base_quat, self.base_ang_vel)
        return torch.sum(torch.square(w_world[:, :2]), dim=1)

    def _reward_angular_momentum(self) -> torch.Tensor:
        """|L|^2 [(kg m^2/s)^2]: the robot's angular momentum about its centre of mass, world frame
        (§9 angular_momentum; the `root_angmom` subtreeangmom sensor of the base body)."""
        angmom = self.physics.sensordata[:, self._angmom_cols]
        return torch.sum(torch.square(angmom), dim=1)

    def _reward_air_time(self) -> torch.Tensor:
        """sum_feet 1[lo < current air time < hi] while s > air_time_min_command (§9 air_time,
        lo, hi = rewards.air_time_range = 0.05, 0.5 s). Paid every step a foot is in the air."""
        lo, hi = self.cfg.rewards.air_time_range
        t = self.feet_air_time
        in_window = ((t > lo) & (t < hi)).float()
        return torch.sum(in_window, dim=1) * (self.command_speed() > self.cfg.rewards.air_time_min_command)

    def _reward_foot_clearance(self) -> torch.Tensor:
        """sum_feet |z_site - foot_clearance_target| * |v_site,xy| while s > 0.05 (§9 foot_clearance).

        Penalizes feet that move horizontally at the wrong height: swing feet should lift to the
        target, stance feet should not slide. World frame, metres.
        """
        height_error = torch.abs(self.foot_pos[..., 2] - self.cfg.rewards.foot_clearance_target)
        speed = torch.norm(self.foot_vel[..., :2], dim=-1)
        return torch.sum(height_error * speed, dim=1) * self._moving()

    def _reward_foot_swing_height(self) -> torch.Tensor:
        """sum_feet at a landing (peak_z / foot_clearance_target - 1)^2 while s > 0.05 (§9
        foot_swing_height); peak_z [m] is the foot site's highest world z during the swing."""
        error = torch.square(self.last_swing_peak / self.cfg.rewards.foot_clearance_target - 1.0)
        return torch.sum(error * self.first_contact, dim=1) * self._moving()

    def _reward_foot_slip(self) -> torch.Tensor:
        """sum_feet in contact |v_site,xy|^2 [m^2/s^2] while s > 0.05 (§9 foot_slip)."""
        return self._reward_feet_slip() * self._moving()

    def _reward_feet_air_time_positive_biped(self) -> torch.Tensor:
        """Isaac Lab's biped stepping term (not §9): while exactly one foot is down and s > 0.05,
        min(stance foot's contact time, swing foot's air time) [s], clipped at
        `rewards.biped_air_time_threshold`; 0 in double support or flight. Rewards alternating single
        stance, which a shuffle (both feet down) or a hop never earns."""
        single_stance = torch.sum(self.foot_contact, dim=1) == 1
        in_mode = torch.where(self.foot_contact, self.feet_contact_time, self.feet_air_time)
        reward = torch.min(in_mode, dim=1).values.clamp(max=self.cfg.rewards.biped_air_time_threshold)
        return reward * single_stance * self._moving()

    def _reward_stand_still_feet(self) -> torch.Tensor:
        """Number of feet not in contact while s < 0.05 (not §9): stand still with both feet down."""
        airborne = torch.sum((~self.foot_contact).float(), dim=1)
        return airborne * ~self._moving()

    def _reward_double_support(self) -> torch.Tensor:
        """1 while both feet are in contact and s > 0.05, else 0 (not §9). A biped that stands, shuffles
        or twists on both feet when told to move pays it every step; one that steps pays only its short
        double-support phases. Off at a zero command, where `stand_still_feet` wants both feet down."""
        return torch.all(self.foot_contact, dim=1).float() * self._moving()

    def _reward_gait_contact(self) -> torch.Tensor:
        """Number of feet whose contact matches the clock's stance (`gait_stance`) while s > 0.05 (not
        §9; unitree_rl_gym's `contact` term). 0 at a zero command, where `stand_still_feet` rules."""
        match = (self.foot_contact == self.gait_stance()).float()
        return torch.sum(match, dim=1) * self._moving()

    def _reward_soft_landing(self) -> torch.Tensor:
        """sum_feet at a landing |F_contact| [N] while s > 0.05 (§9 soft_landing): the net contact
        force of the foot on the last physics tick of the landing step."""
        force = torch.norm(self.foot_forces, dim=-1)
        return torch.sum(force * self.first_contact, dim=1) * self._moving()
