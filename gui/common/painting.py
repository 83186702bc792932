"""Colours and images shared by whatever draws over a frame: class colours, heat maps."""
from __future__ import annotations

import zlib

import numpy as np
from PySide6.QtGui import QColor, QImage


def class_colour(label: str) -> QColor:
    """A stable, saturated colour per class name (same class, same colour, every run)."""
    h = zlib.crc32(label.encode("utf-8"))
    hue = (h * 0.618033988749895 % 1.0) * 359
    return QColor.fromHsv(int(hue), 200 + (h >> 8) % 56, 235)


def rgb_to_qimage(rgb: np.ndarray) -> QImage:
    """Wrap an (H, W, 3) uint8 array as a QImage (copied, so the array may be reused)."""
    rgb = np.ascontiguousarray(rgb)
    h, w = rgb.shape[:2]
    return QImage(rgb.data, w, h, rgb.strides[0], QImage.Format.Format_RGB888).copy()


# a perceptual dark-to-bright ramp (black-red-orange-yellow-white) for attention maps
_RAMP = np.array([[0, 0, 4], [87, 16, 110], [188, 55, 84], [249, 142, 9], [252, 255, 164]], np.float32)


def heatmap_image(attention: np.ndarray, max_alpha: int = 200) -> QImage:
    """(h, w) map -> a small ARGB image, colour and opacity growing with the value (min to max)."""
    a = np.asarray(attention, np.float32)
    a = a - a.min()
    top = float(a.max())
    a = a / top if top > 0 else a
    x = a.ravel() * (len(_RAMP) - 1)
    lo = np.clip(np.floor(x).astype(np.int64), 0, len(_RAMP) - 2)
    t = (x - lo)[:, None]
    rgb = (_RAMP[lo] * (1 - t) + _RAMP[lo + 1] * t).reshape(*a.shape, 3)
    alpha = (a ** 1.5 * max_alpha)[..., None]  # the low background stays see-through
    argb = np.concatenate([rgb, alpha], axis=-1).astype(np.uint8)  # (h, w, 4) RGBA
    argb = np.ascontiguousarray(argb)
    h, w = a.shape
    return QImage(argb.data, w, h, argb.strides[0], QImage.Format.Format_RGBA8888).copy()
