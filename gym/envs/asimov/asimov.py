"""`Asimov`: the base env plus the Asimov reward terms of the data sheet §9 that legged_gym lacks."""

from __future__ import annotations

import torch

from gym.envs.base.legged_robot import LeggedRobot
from gym.physics.model_builder import match_joint_param


class Asimov(LeggedRobot):
    def _init_buffers(self) -> None:
        super()._init_buffers()
        r, dev = self.cfg.rewards, self.device

        def sigmas(table: dict[str, float]) -> torch.Tensor:
            return torch.tensor([match_joint_param(table, j, "pose_sigma") for j in self.joint_names], device=dev)

        self.pose_sigma_walking = sigmas(r.pose_sigma_walking)  # (num_dof,) [rad]
        self.pose_sigma_running = sigmas(r.pose_sigma_running)

    def command_speed(self) -> torch.Tensor:
        """s = |cmd_xy| + |cmd_wz| (§9), (num_envs,)."""
        return torch.norm(self.commands[:, :2], dim=1) + torch.abs(self.commands[:, 2])

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

    def _reward_foot_clearance(self) -> torch.Tensor:
        """sum_feet |z_site - foot_clearance_target| * |v_site,xy| while moving (§9 foot_clearance).

        Penalizes feet that move horizontally at the wrong height: swing feet should lift to the
        target, stance feet should not slide.
        """
        height_error = torch.abs(self.foot_pos[..., 2] - self.cfg.rewards.foot_clearance_target)
        speed = torch.norm(self.foot_vel[..., :2], dim=-1)
        moving = self.command_speed() > self.cfg.rewards.command_threshold
        return torch.sum(height_error * speed, dim=1) * moving

    def _reward_feet_slip(self) -> torch.Tensor:
        """The base foot-slip term, only while moving (§9 foot_slip)."""
        return super()._reward_feet_slip() * (self.command_speed() > self.cfg.rewards.command_threshold)
