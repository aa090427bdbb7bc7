"""Rough terrain: the tile generator, its MuJoCo geometry, and the height lookup on the device.

`Terrain.generate(cfg.terrain, seed)` builds legged_gym's layout: `num_rows` difficulty levels (x) by
`num_cols` tiles (y) of `terrain_length` x `terrain_width` m, ringed by a flat `border_size` border.
Each column has one type (`terrain_proportions`, in `TERRAIN_TYPES` order) and row r has difficulty
r / (num_rows - 1), which maps every `*_range` of the config from its min to its max. Everything
comes from one height grid `heights` (float32 [m]): sample (i, j) sits at world (x0 + i * hs,
y0 + j * hs), hs = `horizontal_scale`, x0 = y0 = -(border + hs); tile (r, c) spans x in
[r * L, (r + 1) * L), y in [c * W, (c + 1) * W).

Geometry (all static, in the world body; a plane at `floor_z`, the lowest height, closes it below):

- "trimesh": flat-topped tiles (stairs, obstacles, flat) and tiles whose heights change only in rises
  steeper than `slope_treshold` over one cell (legged_gym turns those into vertical faces) are stacks
  of boxes: box cell i covers [x_i - hs/2, x_i + hs/2), so the surface is the grid's nearest sample
  and every riser is a vertical face. Other tiles (slopes, rough slopes) are heightfield patches, one
  per tile, over its samples plus one on each side, except smooth slopes, which are convex meshes
  (a hill: one frustum; a valley: four wedges on a box). Boxes and meshes are the cheap contacts on
  MuJoCo C (4 per sole; a heightfield gives ~10), see benchmarks/bench_terrain.py.
- "heightfield": one heightfield over all tiles (stair edges become one-cell ramps, as in legged_gym's
  heightfield mode). The border is boxes in both modes.

A heightfield cell is two triangles split along its (x0, y0)-(x1, y1) diagonal (MuJoCo's split), so
`HeightMap` reproduces the surface exactly: nearest sample on box cells, triangle interpolation on
heightfield cells. They differ only within half a cell of a seam between a box region and a patch,
and within one cell of a mesh slope's creases (by up to slope * hs / 2). Smooth slopes are exact
planes; every other height is a multiple of `vertical_scale`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import torch

TERRAIN_TYPES = ("smooth_slope", "rough_slope", "stairs_up", "stairs_down", "discrete_obstacles", "flat")
MESH_TYPES = ("plane", "heightfield", "trimesh")
_FLAT_TOPPED = ("stairs_up", "stairs_down", "discrete_obstacles", "flat")  # boxes in "trimesh"
_ROUGH_GRID = 0.2  # [m] spacing of the rough slope's random bumps (legged_gym's downsampled_scale)
_OBSTACLE_SIZE = (1.0, 2.0)  # [m] side lengths of discrete obstacles (legged_gym)
_NUM_OBSTACLES = 20


@dataclass
class Terrain:
    """A generated terrain (numpy, host). See the module docstring for the grid and geometry.

    Attributes:
        heights: (nx, ny) float32 [m], world z of each sample.
        stepped: (nx, ny) bool, True where the surface is boxes (nearest sample), else a heightfield.
        tile_types: (num_rows, num_cols) int, index into TERRAIN_TYPES.
        tile_difficulty: (num_rows, num_cols) float in [0, 1].
        tile_origins: (num_rows, num_cols, 3) float [m], world: tile centre on the surface.
        boxes: (K, 6) float [m]: centre x, y, z and half sizes x, y, z of each box.
        patches: list of (i0, i1, j0, j1): inclusive sample ranges of each heightfield.
        meshes: list of (k, 3) float [m]: world vertices of each convex mesh (its convex hull).
    """

    heights: np.ndarray
    stepped: np.ndarray
    tile_types: np.ndarray
    tile_difficulty: np.ndarray
    tile_origins: np.ndarray
    horizontal_scale: float
    origin: tuple[float, float]  # world x, y of sample (0, 0) [m]
    floor_z: float
    boxes: np.ndarray = field(default_factory=lambda: np.zeros((0, 6)))
    patches: list[tuple[int, int, int, int]] = field(default_factory=list)
    meshes: list[np.ndarray] = field(default_factory=list)

    @classmethod
    def generate(cls, cfg, seed: int) -> Terrain:
        """Generate the terrain of `cfg` (a `LeggedRobotCfg.terrain`), reproducibly for `seed`."""
        rng = np.random.default_rng(seed)
        hs, rows, cols = cfg.horizontal_scale, cfg.num_rows, cfg.num_cols
        px, py = round(cfg.terrain_length / hs), round(cfg.terrain_width / hs)
        pad = round(cfg.border_size / hs) + 1
        heights = np.zeros((rows * px + 2 * pad, cols * py + 2 * pad), dtype=np.float32)
        bounds = np.cumsum(cfg.terrain_proportions) / np.sum(cfg.terrain_proportions)
        types, difficulty, signs = tile_layout(cfg, rng, bounds)
        for r in range(rows):
            for c in range(cols):
                kind = TERRAIN_TYPES[types[r, c]]
                tile = _tile_heights(kind, difficulty[r, c], signs[r, c], cfg, px, py, rng)
                if kind != "smooth_slope":  # exact planes (the meshes'); the rest on the vertical grid
                    tile = np.round(tile / cfg.vertical_scale) * cfg.vertical_scale
                heights[pad + r * px:pad + (r + 1) * px, pad + c * py:pad + (c + 1) * py] = tile
        centre = heights[pad + px // 2::px][:rows, pad + py // 2::py][:, :cols]
        ox, oy = (np.arange(rows) + 0.5) * cfg.terrain_length, (np.arange(cols) + 0.5) * cfg.terrain_width
        origins = np.stack(np.broadcast_arrays(ox[:, None], oy[None, :], centre), axis=-1).astype(np.float64)
        terrain = cls(heights=heights, stepped=np.ones_like(heights, dtype=bool), tile_types=types,
                      tile_difficulty=difficulty, tile_origins=origins, horizontal_scale=hs,
                      origin=(-pad * hs, -pad * hs), floor_z=float(heights.min()))
        terrain._build_geometry(cfg, pad, px, py)
        return terrain

    def _build_geometry(self, cfg, pad: int, px: int, py: int) -> None:
        """Fill `boxes`, `patches`, `meshes` and `stepped` for `cfg.mesh_type` (module docstring)."""
        rows, cols = self.tile_types.shape
        boxes = _border_boxes(self.heights.shape, pad, rows * px, cols * py, self.floor_z)
        for r, c in np.ndindex(rows, cols) if cfg.mesh_type == "trimesh" else ():
            i0, j0 = pad + r * px, pad + c * py
            tile = self.heights[i0:i0 + px, j0:j0 + py]
            kind = TERRAIN_TYPES[self.tile_types[r, c]]
            if kind in _FLAT_TOPPED or _is_stepped(tile, self.horizontal_scale, cfg.slope_treshold):
                boxes += [(a + i0, b + i0, c0 + j0, c1 + j0, z0, z1)
                          for a, b, c0, c1, z0, z1 in _slabs(tile, self.floor_z)]
            elif kind == "smooth_slope":
                slope = float(tile[px // 2, py // 2]) / _ramp(cfg)  # signed: < 0 for a valley
                base = min(0.0, slope * _ramp(cfg))  # a hill stands on 0, a valley's wedges on its floor
                boxes.append((i0, i0 + px, j0, j0 + py, self.floor_z, base))
                self.meshes += _slope_meshes(r * cfg.terrain_length, c * cfg.terrain_width, slope, cfg)
                self.stepped[i0:i0 + px, j0:j0 + py] = False
            else:
                self.patches.append((i0 - 1, i0 + px, j0 - 1, j0 + py))
        if cfg.mesh_type == "heightfield":
            self.patches.append((pad - 1, pad + rows * px, pad - 1, pad + cols * py))
        for i0, i1, j0, j1 in self.patches:
            self.stepped[i0 + 1:i1, j0 + 1:j1] = False  # the outer samples of a patch keep their boxes
        hs, (x0, y0) = self.horizontal_scale, self.origin
        boxes = _split(_merge(_merge([b for b in boxes if b[5] > b[4]], axis=1), axis=0), px, py)
        self.boxes = np.array([((a + b - 1) * hs / 2 + x0, (c + d - 1) * hs / 2 + y0, (z0 + z1) / 2,
                                (b - a) * hs / 2, (d - c) * hs / 2, (z1 - z0) / 2)
                               for a, b, c, d, z0, z1 in boxes], dtype=np.float64).reshape(-1, 6)

    def patch_geometry(self, patch: tuple[int, int, int, int]) -> tuple[np.ndarray, np.ndarray]:
        """(centre x, y, z [m], heights (nrow = y samples, ncol = x samples) [m] above z) of a patch."""
        i0, i1, j0, j1 = patch
        h = self.heights[i0:i1 + 1, j0:j1 + 1].T.astype(np.float64)  # MuJoCo rows run along y
        hs, (x0, y0) = self.horizontal_scale, self.origin
        centre = np.array([x0 + (i0 + i1) * hs / 2, y0 + (j0 + j1) * hs / 2, h.min()])
        return centre, h - h.min()


def tile_layout(cfg, rng: np.random.Generator, bounds: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(types, difficulty, sign) per tile, each (num_rows, num_cols).

    Curriculum: column c has type choice u = c / num_cols + 0.001 against the cumulative
    proportions, row r difficulty r / (num_rows - 1) (legged_gym). Otherwise both are random per tile,
    difficulty from legged_gym's {0.5, 0.75, 0.9}. Slope tiles in the first half of their type's share
    of u are valleys (sign -1), the rest hills; stairs_up is a pit (sign -1).
    """
    rows, cols = cfg.num_rows, cfg.num_cols
    if cfg.curriculum:
        u = np.broadcast_to(np.arange(cols) / cols + 0.001, (rows, cols))
        difficulty = np.broadcast_to((np.arange(rows) / max(rows - 1, 1))[:, None], (rows, cols))
    else:
        u = rng.uniform(0.0, 1.0, (rows, cols))
        difficulty = rng.choice([0.5, 0.75, 0.9], (rows, cols))
    types = np.minimum(np.searchsorted(bounds, u, side="right"), len(TERRAIN_TYPES) - 1)
    lower = np.concatenate([[0.0], bounds])[types]
    half = (lower + bounds[types]) / 2
    sign = np.where((types <= 1) & (u < half), -1.0, 1.0)
    sign = np.where(types == TERRAIN_TYPES.index("stairs_up"), -1.0, sign)
    return types.astype(np.int64), np.array(difficulty, dtype=np.float64), sign


def _lerp(value_range, difficulty: float) -> float:
    lo, hi = value_range
    return lo + difficulty * (hi - lo)


def _tile_heights(kind: str, d: float, sign: float, cfg, px: int, py: int, rng: np.random.Generator) -> np.ndarray:
    """(px, py) heights [m] of one tile; samples at k * hs from the tile's low corner."""
    hs = cfg.horizontal_scale
    x, y = np.arange(px) * hs, np.arange(py) * hs
    edge = np.minimum(np.minimum(x, cfg.terrain_length - x)[:, None], np.minimum(y, cfg.terrain_width - y)[None, :])
    ramp = _ramp(cfg)  # edge -> platform [m]
    if kind in ("smooth_slope", "rough_slope"):
        h = sign * _lerp(cfg.slope_range, d) * np.minimum(edge, ramp)
        if kind == "rough_slope":
            h = h + _bumps(rng, cfg.roughness, cfg.terrain_length, cfg.terrain_width, px, py, hs)
        return h
    if kind in ("stairs_up", "stairs_down"):
        rings = math.floor(ramp / cfg.step_width + 1e-9)
        return sign * _lerp(cfg.step_height_range, d) * np.minimum(np.floor(edge / cfg.step_width + 1e-9), rings)
    h = np.zeros((px, py))
    if kind == "discrete_obstacles":  # blocks of half or full height (legged_gym also digs holes,
        top = _lerp(cfg.obstacle_height_range, d)  # which would take many boxes each)
        for _ in range(_NUM_OBSTACLES):
            w, ln = (round(rng.uniform(*_OBSTACLE_SIZE) / hs) for _ in range(2))
            i, j = rng.integers(0, max(px - w, 1)), rng.integers(0, max(py - ln, 1))
            h[i:i + w, j:j + ln] = np.maximum(h[i:i + w, j:j + ln], rng.choice([top / 2, top]))
        h[edge >= ramp] = 0.0  # the central platform
    return h


def _ramp(cfg) -> float:
    """[m] from a tile's edge to its central platform."""
    return (min(cfg.terrain_length, cfg.terrain_width) - cfg.platform_size) / 2


def _slope_meshes(x0: float, y0: float, slope: float, cfg) -> list[np.ndarray]:
    """Convex pieces of a smooth slope tile with low corner (x0, y0) [m]: a hill (slope > 0) is one
    frustum from z = 0 to its platform; a valley is four wedges from its platform up to z = 0."""
    L, W, r = cfg.terrain_length, cfg.terrain_width, _ramp(cfg)
    t = slope * r  # platform height [m]
    if slope >= 0:
        verts = [(0, 0, 0), (L, 0, 0), (L, W, 0), (0, W, 0), (r, r, t), (L - r, r, t), (L - r, W - r, t), (r, W - r, t)]
        return [np.array(verts, dtype=np.float64) + (x0, y0, 0.0)]
    edge = {"x_lo": ((0, 0), (0, W), (r, r), (r, W - r)), "x_hi": ((L, 0), (L, W), (L - r, r), (L - r, W - r)),
            "y_lo": ((0, 0), (L, 0), (r, r), (L - r, r)), "y_hi": ((0, W), (L, W), (r, W - r), (L - r, W - r))}
    wedges = []
    for (a, b, c, d) in edge.values():  # outer edge a-b at z = 0, inner edge c-d at the platform
        verts = [(*a, 0), (*b, 0), (*a, t), (*b, t), (*c, t), (*d, t)]
        wedges.append(np.array(verts, dtype=np.float64) + (x0, y0, 0.0))
    return wedges


def _bumps(rng: np.random.Generator, amplitude: float, length: float, width: float, px: int, py: int,
           hs: float) -> np.ndarray:
    """U(-amplitude, amplitude) heights on a `_ROUGH_GRID` m grid, bilinearly resampled to (px, py)."""
    cx, cy = np.arange(0, length + _ROUGH_GRID, _ROUGH_GRID), np.arange(0, width + _ROUGH_GRID, _ROUGH_GRID)
    coarse = rng.uniform(-amplitude, amplitude, (len(cx), len(cy)))
    x, y = np.arange(px) * hs, np.arange(py) * hs
    along_x = np.stack([np.interp(x, cx, coarse[:, j]) for j in range(len(cy))], axis=1)
    return np.stack([np.interp(y, cy, row) for row in along_x])


def _is_stepped(tile: np.ndarray, hs: float, slope_treshold: float) -> bool:
    """Every height change between neighbouring samples is steeper than `slope_treshold` (or none)."""
    diffs = np.concatenate([np.abs(np.diff(tile, axis=0)).ravel(), np.abs(np.diff(tile, axis=1)).ravel()])
    diffs = diffs[diffs > 1e-9]
    return bool(np.all(diffs / hs > slope_treshold))


def _slabs(tile: np.ndarray, floor_z: float) -> list[tuple[int, int, int, int, float, float]]:
    """Boxes (i0, i1, j0, j1 sample ranges, z0, z1 [m]) whose union is the solid under `tile`.

    One slab per height level: the maximal rectangles of {h >= level} from the previous level up.
    A pyramid of n steps is n + 1 boxes; a pit n rings of 4.
    """
    out, below = [], floor_z
    for level in np.unique(tile):
        if level > below:
            out += [(i0, i1, j0, j1, below, float(level)) for i0, i1, j0, j1 in _rectangles(tile >= level)]
        below = float(level)
    return out


def _rectangles(mask: np.ndarray) -> list[tuple[int, int, int, int]]:
    """Greedy cover of `mask` (2-D bool) by rectangles [i0, i1) x [j0, j1) inside it, which may
    overlap: from the first uncovered cell, as wide as the mask allows, then as tall (a union of k
    overlapping blocks takes about k boxes, not the many pieces of a disjoint cover)."""
    todo = mask.copy()
    out = []
    while todo.any():
        i, j = np.unravel_index(np.argmax(todo), todo.shape)
        j0 = j - int(np.argmin(mask[i, j::-1])) + 1 if not mask[i, :j + 1].all() else 0  # extend left too
        row = mask[i, j0:]
        width = int(np.argmin(row)) if not row.all() else len(row)
        full = mask[i:, j0:j0 + width].all(axis=1)
        height = int(np.argmin(full)) if not full.all() else len(full)
        todo[i:i + height, j0:j0 + width] = False
        out.append((int(i), int(i + height), int(j0), int(j0 + width)))
    return out


def _merge(boxes: list[tuple], axis: int) -> list[tuple]:
    """Join boxes (i0, i1, j0, j1, z0, z1) that touch along `axis` (0: i, 1: j) and agree in the
    other extents: the equal ring strips and bases of neighbouring tiles become one box each."""
    lo, hi = (0, 1) if axis == 0 else (2, 3)
    rest = [k for k in range(6) if k not in (lo, hi)]
    out: list[list] = []
    for box in sorted(boxes, key=lambda b: ([b[k] for k in rest], b[lo])):
        last = out[-1] if out else None
        if last is not None and all(last[k] == box[k] for k in rest) and last[hi] == box[lo]:
            last[hi] = box[hi]
        else:
            out.append(list(box))
    return [tuple(b) for b in out]


def _split(boxes: list[tuple], px: int, py: int) -> list[tuple]:
    """Cut boxes longer than a tile (`px`, `py` samples) into equal pieces that are not: MuJoCo's
    bounding-volume tree of the world's geoms degrades with a few huge boxes (the border frame, the
    merged bases): a foot on such a terrain cost 13 us of collision per step instead of 5."""
    out = []
    for i0, i1, j0, j1, z0, z1 in boxes:
        ni, nj = -(-(i1 - i0) // px), -(-(j1 - j0) // py)
        for a in range(ni):
            for b in range(nj):
                out.append((i0 + a * (i1 - i0) // ni, i0 + (a + 1) * (i1 - i0) // ni,
                            j0 + b * (j1 - j0) // nj, j0 + (b + 1) * (j1 - j0) // nj, z0, z1))
    return out


def _border_boxes(shape: tuple[int, int], pad: int, nx: int, ny: int, floor_z: float) -> list[tuple]:
    """The flat (z = 0) frame around the `nx` x `ny` tile samples: four boxes from the floor up."""
    sx, sy = shape
    frame = [(0, pad, 0, sy), (pad + nx, sx, 0, sy), (pad, pad + nx, 0, pad), (pad, pad + nx, pad + ny, sy)]
    return [(a, b, c, d, floor_z, 0.0) for a, b, c, d in frame]


class HeightMap:
    """Terrain height at world (x, y) points, vectorised on the device (no host synchronisation).

    Built from a `Terrain` (None: the flat plane, height 0 everywhere). It keeps the tile area plus
    two border samples; points beyond take the nearest of those (the border is flat at 0).
    `heights_at` is exact (see the module docstring); `scan` reads the nearest sample (within
    hs / 2 of the point: exact on boxes, off by up to slope * hs / 2 on a heightfield) at a third of
    the cost. `spawn_heights_at` is the highest sample within `spawn_radius` [m] (square), so a
    robot placed there does not start inside a step.
    """

    def __init__(self, terrain: Terrain | None, device: torch.device | str, spawn_radius: float = 0.3) -> None:
        self.device = torch.device(device)
        self.flat = terrain is None
        if self.flat:
            return
        hs = self.hs = terrain.horizontal_scale
        pad = max(round(-terrain.origin[0] / hs) - 2, 0)  # crop to the tiles + 2 samples: the border is flat
        crop = (slice(pad, terrain.heights.shape[0] - pad), slice(pad, terrain.heights.shape[1] - pad))
        self.shape = terrain.heights[crop].shape
        self.origin = torch.tensor([terrain.origin[0] + pad * hs, terrain.origin[1] + pad * hs], device=self.device)
        self.heights = torch.as_tensor(terrain.heights[crop], device=self.device).reshape(-1)  # (nx * ny,)
        self.stepped = torch.as_tensor(terrain.stepped[crop], device=self.device).reshape(-1)
        k = max(1, math.ceil(spawn_radius / hs))
        spawn = _max_filter(terrain.heights, k)[crop]
        self.spawn = torch.as_tensor(spawn, device=self.device).reshape(-1)

    def _grid(self, xy: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(..., 2) world [m] -> grid coordinates x, y (...), clamped inside the last cell."""
        g = (xy - self.origin) / self.hs
        nx, ny = self.shape
        return g[..., 0].clamp(0.0, nx - 1.0001), g[..., 1].clamp(0.0, ny - 1.0001)

    def heights_at(self, xy: torch.Tensor) -> torch.Tensor:
        """(..., 2) world x, y [m] -> (...) surface z [m]."""
        if self.flat:
            return torch.zeros(xy.shape[:-1], device=xy.device)
        ny = self.shape[1]
        gx, gy = self._grid(xy)
        fx, fy = gx.floor(), gy.floor()
        u, v = gx - fx, gy - fy
        base = (fx * ny + fy).long()
        h = self.heights
        h00, h10, h01, h11 = h[base], h[base + ny], h[base + 1], h[base + ny + 1]
        right, up = u >= 0.5, v >= 0.5
        nearest = torch.where(right, torch.where(up, h11, h10), torch.where(up, h01, h00))
        boxes = self.stepped[base + right.long() * ny + up.long()]
        # MuJoCo's heightfield triangles: (00, 10, 11) where u >= v, else (00, 01, 11)
        tri = torch.where(u >= v, h00 + u * (h10 - h00) + v * (h11 - h10), h00 + v * (h01 - h00) + u * (h11 - h01))
        return torch.where(boxes, nearest, tri)

    def scan(self, base_pos: torch.Tensor, yaw: torch.Tensor, points: torch.Tensor) -> torch.Tensor:
        """(N, P) surface z [m] (nearest sample) at `points` (P, 2) [m] of the yaw-aligned base
        frame of `base_pos` (N, 3) [m] world and `yaw` (N,) [rad]."""
        cos, sin = torch.cos(yaw).unsqueeze(1), torch.sin(yaw).unsqueeze(1)
        px, py = points[:, 0], points[:, 1]
        xy = torch.stack([base_pos[:, 0:1] + cos * px - sin * py, base_pos[:, 1:2] + sin * px + cos * py], dim=-1)
        return self._nearest(self.heights, xy) if not self.flat else torch.zeros(xy.shape[:-1], device=xy.device)

    def spawn_heights_at(self, xy: torch.Tensor) -> torch.Tensor:
        """(..., 2) -> (...) the highest sample within `spawn_radius` of the nearest sample [m]."""
        return self._nearest(self.spawn, xy) if not self.flat else torch.zeros(xy.shape[:-1], device=xy.device)

    def _nearest(self, grid: torch.Tensor, xy: torch.Tensor) -> torch.Tensor:
        gx, gy = self._grid(xy)
        return grid[(gx.round() * self.shape[1] + gy.round()).long()]


def _max_filter(a: np.ndarray, k: int) -> np.ndarray:
    """Maximum over the (2k + 1) x (2k + 1) window around each sample (edges: the window inside)."""
    out = a.copy()
    for axis in (0, 1):
        src, out = out, out.copy()
        for s in range(1, k + 1):
            lo = [slice(None)] * 2
            hi = [slice(None)] * 2
            lo[axis], hi[axis] = slice(0, -s), slice(s, None)
            np.maximum(out[tuple(lo)], src[tuple(hi)], out=out[tuple(lo)])
            np.maximum(out[tuple(hi)], src[tuple(lo)], out=out[tuple(hi)])
    return out


def scan_points(xs: list[float], ys: list[float]) -> torch.Tensor:
    """(len(xs) * len(ys), 2) body-frame scan offsets [m], x outer, y inner (legged_gym's order)."""
    gx, gy = torch.meshgrid(torch.tensor(xs, dtype=torch.float32), torch.tensor(ys, dtype=torch.float32),
                            indexing="ij")
    return torch.stack([gx.flatten(), gy.flatten()], dim=1)
