"""Observation vectors built from a declared list of terms.

A term `name` is the env method `_obs_<name>()` returning (num_envs, dim). Its scale is
`cfg.normalization.obs_scales.<name>` (default 1) and its noise half-width
`cfg.noise.noise_scales.<name>` (default 0) times `cfg.noise.noise_level`. The noise and scale
vectors are derived from the term list once, so no index is ever written by hand. Noise is uniform,
additive and in the term's physical units: obs = clip((raw + U(-n, n)) * scale).
"""

from __future__ import annotations

import torch


class ObservationGroup:
    """One observation vector (policy or critic) of the env's `_obs_<name>` terms, in order."""

    def __init__(self, env, terms: list[str], noise: bool) -> None:
        if not terms:
            raise ValueError("an observation group needs at least one term (env.observations)")
        self.env, self.terms, self.add_noise = env, list(terms), noise
        cfg = env.cfg
        known = sorted(k[5:] for k in dir(env) if k.startswith("_obs_"))
        self.fns = []
        for name in self.terms:
            fn = getattr(env, f"_obs_{name}", None)
            if not callable(fn):
                raise AttributeError(f"observation term {name!r} has no method _obs_{name} on "
                                     f"{type(env).__name__}; known terms: {known}")
            self.fns.append(fn)
        scales, noises, self.slices, start = [], [], {}, 0
        for name, fn in zip(self.terms, self.fns):
            value = fn()
            if value.ndim != 2 or value.shape[0] != env.num_envs:
                raise ValueError(f"_obs_{name} returned shape {tuple(value.shape)}; expected (num_envs, dim)")
            dim = value.shape[1]
            self.slices[name] = slice(start, start + dim)
            start += dim
            scales.append(_per_dim(getattr(cfg.normalization.obs_scales, name, 1.0), dim, name))
            noises.append(_per_dim(getattr(cfg.noise.noise_scales, name, 0.0), dim, name) * cfg.noise.noise_level)
        self.dim = start
        self.scale_vec = torch.cat(scales).to(env.device)  # (dim,)
        self.noise_vec = torch.cat(noises).to(env.device)  # (dim,) half-widths, physical units
        self.clip = cfg.normalization.clip_observations

    def compute(self) -> torch.Tensor:
        """(num_envs, dim) observation: terms concatenated, noised (if enabled), scaled, clipped."""
        raw = torch.cat([fn() for fn in self.fns], dim=1)
        if self.add_noise:
            raw = raw + (2.0 * torch.rand_like(raw) - 1.0) * self.noise_vec
        return torch.clip(raw * self.scale_vec, -self.clip, self.clip)


def _per_dim(value: float | list[float], dim: int, name: str) -> torch.Tensor:
    v = torch.as_tensor(value, dtype=torch.float32).flatten()
    if v.numel() == 1:
        return v.expand(dim).clone()
    if v.numel() != dim:
        raise ValueError(f"scale/noise for observation {name!r} has {v.numel()} entries; the term has {dim}")
    return v
