"""Batched rotation helpers. Quaternions are (w, x, y, z), MuJoCo's order; shapes (N, 4) and (N, 3)."""

from __future__ import annotations

import torch


def quat_rotate(q: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """Rotate vectors `v` (N, 3) by unit quaternions `q` (N, 4): body frame -> world frame."""
    w, xyz = q[:, :1], q[:, 1:]
    t = 2.0 * torch.cross(xyz, v, dim=-1)
    return v + w * t + torch.cross(xyz, t, dim=-1)


def quat_rotate_inverse(q: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """Rotate vectors `v` (N, 3) by the inverse of `q` (N, 4): world frame -> body frame."""
    w, xyz = q[:, :1], q[:, 1:]
    t = 2.0 * torch.cross(xyz, v, dim=-1)
    return v - w * t + torch.cross(xyz, t, dim=-1)


def quat_from_yaw(yaw: torch.Tensor) -> torch.Tensor:
    """Quaternions (N, 4) of a rotation by `yaw` (N,) [rad] about world z."""
    half = 0.5 * yaw
    zeros = torch.zeros_like(yaw)
    return torch.stack([torch.cos(half), zeros, zeros, torch.sin(half)], dim=-1)


def yaw_from_quat(q: torch.Tensor) -> torch.Tensor:
    """Heading [rad] (N,) of the body x axis projected on the world xy plane."""
    w, x, y, z = q.unbind(-1)
    return torch.atan2(2.0 * (w * z + x * y), 1.0 - 2.0 * (y * y + z * z))


def wrap_to_pi(angle: torch.Tensor) -> torch.Tensor:
    """Wrap angles [rad] to [-pi, pi)."""
    return torch.remainder(angle + torch.pi, 2.0 * torch.pi) - torch.pi


def sample_uniform(lo: float, hi: float, shape: tuple[int, ...], device: torch.device) -> torch.Tensor:
    """Uniform samples in [lo, hi)."""
    return lo + (hi - lo) * torch.rand(shape, device=device)
