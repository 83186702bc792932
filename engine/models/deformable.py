"""Multi-scale deformable attention (Deformable DETR; Mask2Former's pixel decoder), in plain PyTorch
with no loop over queries, heads, levels or points.

Each query attends, per head, to a few points on every level (scale) of a feature pyramid, at
learned locations, with learned weights; a point's value is the bilinear interpolation of its
level's map there (``grid_sample`` with ``align_corners=False``, zeros outside the map). Here the
levels' value maps sit in ONE table, each map with a border of zero rows and columns, so that every
point's four bilinear taps are rows of that table: ONE weighted gather (``F.embedding_bag`` with
per-sample weights = grid_sample's bilinear weights times the attention weight) samples and sums
them all (:func:`sample_levels`, ~10x faster than grid_sample on a CPU). The points' pixel
coordinates are computed in grid_sample's own order of operations (:func:`to_pixels`), so the
bilinear fractions round as transformers' pure-PyTorch version's do.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F


@dataclass(frozen=True)
class SamplingLayout:
    """How the levels' value maps sit in one table for :func:`sample_levels`, for ``heads`` heads and
    ``points`` points per level: each h x w map padded with zeros to (h + 3) x (w + 3) (one row and
    column before, two after), the maps one after the other, ``rows`` positions in all, each a row of
    the table per head (rows ordered (position, head)).

    Per point, (K,) float32 over the (heads, L, P) order of the points (K = heads * L * P, so that
    the elementwise steps run along rows of K, not along the 4 points): ``w`` and ``h`` of its
    level's map, ``step`` the table rows from one map row to the next (padded width * heads),
    ``origin`` the table row of the map's pixel (0, 0) for its head; ``corners`` (3, K) int32, the
    rows from the top-left tap to the other three (right, below, below right)."""

    shapes: tuple[tuple[int, int], ...]
    heads: int
    points: int
    rows: int
    starts: tuple[int, ...]
    w: torch.Tensor
    h: torch.Tensor
    step: torch.Tensor
    origin: torch.Tensor
    corners: torch.Tensor


_LAYOUTS: dict[tuple, SamplingLayout] = {}


def sampling_layout(shapes, heads: int, points: int, device) -> SamplingLayout:
    key = (tuple(shapes), heads, points, torch.device(device))
    layout = _LAYOUTS.get(key)
    if layout is None:
        if len(_LAYOUTS) > 32:
            _LAYOUTS.clear()
        sizes = [(h + 3) * (w + 3) for h, w in shapes]
        starts = tuple(sum(sizes[:i]) for i in range(len(shapes)))
        n = len(shapes)

        def per_point(v) -> torch.Tensor:  # per level -> (K,) in the points' (heads, L, P) order
            return torch.tensor(v, dtype=torch.float32).view(1, n, 1).expand(heads, n, points).reshape(-1)

        head = torch.arange(heads, dtype=torch.float32).view(heads, 1, 1).expand(heads, n, points).reshape(-1)
        step = per_point([w + 3 for _, w in shapes]) * heads
        origin = per_point([st + (w + 3) + 1 for st, (_, w) in zip(starts, shapes)]) * heads + head
        corners = torch.stack((torch.full_like(step, heads), step, step + heads)).to(torch.int32)  # (3, K)
        to = lambda t: t.to(device)
        layout = _LAYOUTS[key] = SamplingLayout(
            tuple(shapes), heads, points, sum(sizes), starts, to(per_point([w for _, w in shapes])),
            to(per_point([h for h, _ in shapes])), to(step), to(origin), to(corners))
    return layout


def value_table(value: torch.Tensor, layout: SamplingLayout) -> torch.Tensor:
    """value (B, S, heads, hd) over the levels' flattened maps -> (B * rows * heads, hd): each level's
    map zero-padded as the layout says, rows ordered (batch, padded position, head)."""
    b, _, heads, hd = value.shape
    table = value.new_zeros(b, layout.rows, heads, hd)
    start = 0
    for (h, w), st in zip(layout.shapes, layout.starts):  # copies of whole (heads, hd) rows
        table[:, st:st + (h + 3) * (w + 3)].view(b, h + 3, w + 3, heads, hd)[:, 1:h + 1, 1:w + 1] = \
            value[:, start:start + h * w].view(b, h, w, heads, hd)
        start += h * w
    return table.view(-1, hd)


def sample_levels(value: torch.Tensor, layout: SamplingLayout, x: torch.Tensor, y: torch.Tensor,
                  weights: torch.Tensor) -> torch.Tensor:
    """The bilinear sampling and weighted sum of multi-scale deformable attention as ONE weighted
    gather (an embedding bag) over the 4 taps of every query, head, level and point.

    value (B, S, heads, hd); x, y (B, Q, heads, L, P) (or (B, Q, K)) the points in each level's pixel
    coordinates (pixel i's centre at i, as grid_sample with align_corners=False sees them); weights
    the same shape -> (B, Q, heads*hd). Taps outside a map read its zero padding (grid_sample's
    ``padding_mode="zeros"``): points are clamped to [-1, w] first, where both taps of a point
    beyond the map are padding or have weight 0."""
    b, _, heads, hd = value.shape
    q = x.shape[1]
    f32 = torch.float32
    x, y = x.reshape(b, q, -1).to(f32), y.reshape(b, q, -1).to(f32)  # (B, Q, K)
    k = x.shape[-1]
    # (a NaN point, from NaN inputs, onto the padding: its weight keeps the NaN, its rows stay in the table)
    x = torch.clamp(x.nan_to_num(-1.0), torch.full_like(layout.w, -1.0), layout.w)
    y = torch.clamp(y.nan_to_num(-1.0), torch.full_like(layout.h, -1.0), layout.h)
    x0, y0 = x.floor(), y.floor()
    fx, fy = x - x0, y - y0  # the bilinear fractions
    # the top-left tap's table row: y0 * step + x0 * heads + origin, exact in float32
    top_left = torch.addcmul(layout.origin, y0, layout.step).add_(x0, alpha=heads).to(torch.int32)
    index = torch.empty(b, q, k, 4, dtype=torch.int32, device=x.device)  # (B, Q, K, 4) the taps' rows
    index[..., 0] = top_left
    for i in range(3):
        torch.add(top_left, layout.corners[i], out=index[..., i + 1])
    if b > 1:
        index += (torch.arange(b, dtype=torch.int32, device=x.device) * (layout.rows * heads)).view(b, 1, 1, 1)
    a = weights.reshape(b, q, k).to(f32)
    upper, lower = (1 - fy).mul_(a), fy.mul_(a)  # the attention weight of the taps' two rows
    east = 1 - fx
    taps = torch.empty(b, q, k, 4, dtype=f32, device=x.device)  # (B, Q, K, 4) grid_sample's weights, times a
    for i, (row, col) in enumerate(((upper, east), (upper, fx), (lower, east), (lower, fx))):
        torch.mul(row, col, out=taps[..., i])
    per_bag = k // heads * 4  # (L * P * 4 taps for each query and head)
    out = F.embedding_bag(index.view(-1, per_bag), value_table(value, layout), mode="sum",
                          per_sample_weights=taps.view(-1, per_bag).to(value.dtype))  # (B*Q*heads, hd)
    return out.view(b, q, heads * hd)


def to_pixels(location: torch.Tensor, size: torch.Tensor) -> torch.Tensor:
    """Locations in [0, 1] of a map's side -> its pixel coordinates (centre of pixel i at i), in float32
    and in grid_sample's own order of operations (to [-1, 1], then ``(g + 1) * size / 2 - 0.5``, as
    align_corners=False unnormalises), so that the bilinear fractions round as transformers' do."""
    grid = location.to(torch.float32) * 2 - 1
    return (grid + 1).mul_(size / 2).sub_(0.5)


def deformable_attention(value: torch.Tensor, shapes: list[tuple[int, int]], locations: torch.Tensor,
                         weights: torch.Tensor) -> torch.Tensor:
    """Multi-scale deformable attention, every query, head, level and point in one weighted gather.

    value (B, S, heads, hd) over the levels' flattened maps (S = sum h_l*w_l), shapes [(h_l, w_l)],
    locations (B, Q, heads, L, P, 2) as (x, y) in [0, 1] of each level, weights (B, Q, heads, L, P)
    -> (B, Q, heads*hd)."""
    b, q, heads, levels, points, _ = locations.shape
    layout = sampling_layout(shapes, heads, points, value.device)
    x = to_pixels(locations[..., 0].reshape(b, q, -1), layout.w)  # (B, Q, K) in pixels
    y = to_pixels(locations[..., 1].reshape(b, q, -1), layout.h)
    return sample_levels(value, layout, x, y, weights)
