"""Colours for dense results, in numpy (torch-free; the CLI's previews and the Vision tab share them).

* :func:`label_colors` — a fixed colour per class id: the same class is always the same colour,
  in every run, model and frame, and neighbouring ids get clearly different hues.
* :func:`apply` — a float map (depth, uncertainty) through a named colormap into RGB uint8.
  The maps are piecewise-linear through a handful of anchor colours, sampled into a 256-entry
  lookup table once.
"""
from __future__ import annotations

from functools import lru_cache

import numpy as np

#: name -> anchor colours, low value first (sRGB 0-255)
ANCHORS: dict[str, tuple[tuple[int, int, int], ...]] = {
    "viridis": ((68, 1, 84), (71, 44, 122), (59, 81, 139), (44, 113, 142), (33, 144, 141),
                (39, 173, 129), (92, 200, 99), (170, 220, 50), (253, 231, 37)),
    "magma": ((0, 0, 4), (28, 16, 68), (79, 18, 123), (129, 37, 129), (181, 54, 122),
              (229, 80, 100), (251, 135, 97), (254, 194, 135), (252, 253, 191)),
    "spectral": ((94, 79, 162), (50, 136, 189), (102, 194, 165), (171, 221, 164), (230, 245, 152),
                 (254, 224, 139), (253, 174, 97), (244, 109, 67), (213, 62, 79), (158, 1, 66)),
    "gray": ((0, 0, 0), (255, 255, 255)),
}
COLORMAPS = tuple(ANCHORS)
DEFAULT = "magma"


@lru_cache(maxsize=None)
def lut(name: str) -> np.ndarray:
    """The (256, 3) uint8 lookup table of a colormap."""
    if name not in ANCHORS:
        raise ValueError(f"unknown colormap {name!r}: choose one of {', '.join(COLORMAPS)}")
    anchors = np.asarray(ANCHORS[name], dtype=np.float64)
    at = np.linspace(0.0, 1.0, len(anchors))
    t = np.linspace(0.0, 1.0, 256)
    table = np.stack([np.interp(t, at, anchors[:, c]) for c in range(3)], axis=1)
    table = np.rint(table).astype(np.uint8)
    table.setflags(write=False)
    return table


def apply(values: np.ndarray, name: str = DEFAULT, low: float | None = None, high: float | None = None,
          reverse: bool = False) -> np.ndarray:
    """(H, W) floats -> (H, W, 3) uint8 RGB. ``low``/``high`` (default: the map's own min / max)
    map to the two ends of the colormap; values outside are clipped; NaNs get the low end.
    ``reverse`` flips the map (depth: near is bright)."""
    v = np.asarray(values, dtype=np.float32)
    finite = v[np.isfinite(v)]
    lo = float(finite.min()) if low is None and finite.size else float(low or 0.0)
    hi = float(finite.max()) if high is None and finite.size else float(high if high is not None else 1.0)
    span = hi - lo if hi > lo else 1.0
    idx = np.nan_to_num((v - lo) * (255.0 / span), nan=0.0, posinf=255.0, neginf=0.0)
    idx = np.clip(idx, 0, 255).astype(np.uint8)
    if reverse:
        idx = 255 - idx
    return lut(name)[idx]


def label_colors(n: int) -> np.ndarray:
    """(n, 3) uint8: a fixed, well-separated colour per class id (golden-angle hues, with three
    alternating lightness / saturation levels so that ids far apart in a big label set still differ)."""
    ids = np.arange(n, dtype=np.float64)
    hue = (ids * 0.381966) % 1.0  # the golden angle, as a fraction of the circle
    sat = np.array([0.80, 0.55, 0.95])[np.arange(n) % 3]
    val = np.array([0.95, 0.80, 0.65])[(np.arange(n) // 3) % 3]
    i = np.floor(hue * 6.0).astype(int) % 6
    f = hue * 6.0 - np.floor(hue * 6.0)
    p, q, t = val * (1 - sat), val * (1 - f * sat), val * (1 - (1 - f) * sat)
    r = np.choose(i, [val, q, p, p, t, val])
    g = np.choose(i, [t, val, val, q, p, p])
    b = np.choose(i, [p, p, t, val, val, q])
    out = np.rint(np.stack([r, g, b], axis=1) * 255).astype(np.uint8)
    out.setflags(write=False)
    return out
