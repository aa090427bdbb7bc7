"""The standard legged_gym reward terms, as a mixin of `LeggedRobot`.

Each `_reward_<name>` returns a (num_envs,) tensor from the state buffers that `LeggedRobot`
refreshes after every policy step; it runs only when `cfg.rewards.scales.<name>` is non-zero and is
then multiplied by that scale and by the policy dt. Frames: `base_lin_vel`, `base_ang_vel` and
`projected_gravity` are in the BODY frame; foot positions, velocities and forces in the WORLD frame.
"""

from __future__ import annotations

import torch


class LeggedRewardsMixin:
    # -- velocity tracking ------------------------------------------------------------------
    def _reward_tracking_lin_vel(self) -> torch.Tensor:
        """exp(-|cmd_xy - v_xy|^2 / tracking_sigma), body frame (legged_gym)."""
        error = torch.sum(torch.square(self.commands[:, :2] - self.base_lin_vel[:, :2]), dim=1)
        return torch.exp(-error / self.cfg.rewards.tracking_sigma)

    def _reward_tracking_ang_vel(self) -> torch.Tensor:
        """exp(-(cmd_wz - w_z)^2 / ang_tracking_sigma)."""
        error = torch.square(self.commands[:, 2] - self.base_ang_vel[:, 2])
        return torch.exp(-error / self.cfg.rewards.ang_tracking_sigma)

    # -- base motion --------------------------------------------------------------------------
    def _reward_lin_vel_z(self) -> torch.Tensor:
        """v_z^2 [m^2/s^2], body frame."""
        return torch.square(self.base_lin_vel[:, 2])

    def _reward_ang_vel_xy(self) -> torch.Tensor:
        """w_x^2 + w_y^2 [rad^2/s^2], body frame."""
        return torch.sum(torch.square(self.base_ang_vel[:, :2]), dim=1)

    def _reward_orientation(self) -> torch.Tensor:
        """|g_xy|^2 of the projected gravity: 0 when level."""
        return torch.sum(torch.square(self.projected_gravity[:, :2]), dim=1)

    def _reward_base_height(self) -> torch.Tensor:
        """(base height above the terrain under it - base_height_target)^2 [m^2]."""
        return torch.square(self.base_height - self.cfg.rewards.base_height_target)

    # -- joints and actions ---------------------------------------------------------------------
    def _reward_torques(self) -> torch.Tensor:
        """sum tau^2 [Nm^2] of the PD torques of the last physics step."""
        return torch.sum(torch.square(self.torques), dim=1)

    def _reward_dof_vel(self) -> torch.Tensor:
        return torch.sum(torch.square(self.dof_vel), dim=1)

    def _reward_dof_acc(self) -> torch.Tensor:
        """sum ((qd_{t-1} - qd_t) / dt)^2 over joints."""
        return torch.sum(torch.square((self.last_dof_vel - self.dof_vel) / self.dt), dim=1)

    def _reward_action_rate(self) -> torch.Tensor:
        """|a_t - a_{t-1}|^2 of the raw policy actions."""
        return torch.sum(torch.square(self.last_actions - self.actions), dim=1)

    def _reward_dof_pos_limits(self) -> torch.Tensor:
        """Sum over joints of how far q is outside the soft limits [rad]."""
        below = (self.dof_pos_limits[:, 0] - self.dof_pos).clip(min=0.0)
        above = (self.dof_pos - self.dof_pos_limits[:, 1]).clip(min=0.0)
        return torch.sum(below + above, dim=1)

    def _reward_stand_still(self) -> torch.Tensor:
        """sum |q - q0| when the commanded speed is below command_threshold."""
        still = torch.norm(self.commands[:, :2], dim=1) < self.cfg.rewards.command_threshold
        return torch.sum(torch.abs(self.dof_pos - self.default_dof_pos), dim=1) * still

    # -- contacts -----------------------------------------------------------------------------
    def _reward_collision(self) -> torch.Tensor:
        """Number of `asset.penalize_contacts_on` bodies touching the floor."""
        return torch.sum(self.penalized_contacts.float(), dim=1)

    def _reward_termination(self) -> torch.Tensor:
        """1 for a termination that is not a timeout."""
        return (self.reset_buf & ~self.time_out_buf).float()

    def _reward_feet_air_time(self) -> torch.Tensor:
        """At each landing, air_time - feet_air_time_target [s], only while a move is commanded.

        Each landing counts once: `first_contact` is true for one step per touchdown and the air
        time restarts from zero only when the foot leaves the ground again (legged_gym ORs the
        previous contact into the filter, which can count one landing twice).
        """
        air = (self.last_air_time - self.cfg.rewards.feet_air_time_target) * self.first_contact
        moving = torch.norm(self.commands[:, :2], dim=1) > self.cfg.rewards.command_threshold
        return torch.sum(air, dim=1) * moving

    def _reward_feet_stumble(self) -> torch.Tensor:
        """1 if any foot's horizontal contact force exceeds 5x its vertical force."""
        f = self.foot_forces
        return torch.any(torch.norm(f[..., :2], dim=-1) > 5.0 * torch.abs(f[..., 2]), dim=1).float()

    def _reward_feet_contact_forces(self) -> torch.Tensor:
        """Sum over feet of the contact force above max_contact_force [N]."""
        excess = torch.norm(self.foot_forces, dim=-1) - self.cfg.rewards.max_contact_force
        return torch.sum(excess.clip(min=0.0), dim=1)

    def _reward_feet_slip(self) -> torch.Tensor:
        """Sum over feet in contact of |v_xy|^2 [m^2/s^2] of the foot site, world frame."""
        return torch.sum(self.foot_contact * torch.sum(torch.square(self.foot_vel[..., :2]), dim=-1), dim=1)

    def _reward_feet_slide(self) -> torch.Tensor:
        """Sum over feet in contact of |v_xy| [m/s] of the foot site, world frame, at every command
        (Isaac Lab's feet_slide). Linear in the speed, so slow sliding costs in proportion: the
        quadratic `feet_slip` makes a 0.05 m/s slide nearly free."""
        return torch.sum(self.foot_contact * torch.norm(self.foot_vel[..., :2], dim=-1), dim=1)
