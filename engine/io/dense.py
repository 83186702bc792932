"""Writing dense results to files (torch-free): label maps, depth maps and their pictures.

* label ids: ``.png`` single-channel, 8-bit when every id fits (< 256), else 16-bit; or ``.npy``
  (the label map's own dtype);
* depth: ``.npy`` float32 metres; ``.png`` 16-bit, metres x 256 rounded and clipped to 0..65535 (the
  KITTI depth-benchmark convention: 1/256 m steps up to 256 m; 0 means no depth);
* pictures (an overlay, a coloured preview): ``.png`` or ``.jpg`` RGB.

PNGs are encoded with OpenCV (a runtime dependency, and it writes 16-bit PNGs) and written with
Python's own file functions, so any path works. :func:`check_output` checks a path before any work,
so the CLI can refuse a bad one before a model loads.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ..errors import InputError

LABEL_SUFFIXES = (".png", ".npy")
DEPTH_SUFFIXES = (".npy", ".png")
PICTURE_SUFFIXES = (".png", ".jpg", ".jpeg")
#: depth PNGs store metres x this (KITTI)
DEPTH_PNG_SCALE = 256.0
#: rows blended per step by :func:`overlay` (bounded memory on huge images)
_BAND_PIXELS = 1 << 22


def check_output(path: str | os.PathLike, suffixes: tuple[str, ...], what: str) -> Path:
    """``path`` if a ``what`` file can be written there (known suffix, existing writable folder, not
    a folder itself); an InputError saying what is wrong otherwise."""
    p = Path(path).expanduser()
    if p.is_dir():
        raise InputError(f"{path} is a folder; give a file name for the {what}.")
    if p.suffix.lower() not in suffixes:
        raise InputError(f"{what} must end in {' or '.join(suffixes)}: {path}")
    parent = p.parent if str(p.parent) else Path(".")
    if not parent.is_dir():
        raise InputError(f"Cannot write {path}: the folder {parent} does not exist.")
    if not os.access(parent, os.W_OK) or (p.exists() and not os.access(p, os.W_OK)):
        raise InputError(f"Cannot write {path}: permission denied.")
    return p


def per_input(path: Path, stem: str, several: bool) -> Path:
    """The output path for the input named ``stem``: ``{stem}`` in the name is replaced by it; otherwise,
    when there are several inputs, ``-<stem>`` is added before the suffix (labels.png, photo.jpg ->
    labels-photo.png); one input writes to ``path`` itself."""
    if "{stem}" in path.name:
        return path.with_name(path.name.replace("{stem}", stem))
    return path.with_name(f"{path.stem}-{stem}{path.suffix}") if several else path


def _write(path: Path, data: bytes) -> Path:
    try:
        with open(path, "wb") as f:
            f.write(data)
    except OSError as exc:
        raise InputError(f"Could not write {path}: {exc.strerror or exc}") from exc
    return path


def _png(image: np.ndarray, ext: str = ".png") -> bytes:
    import cv2
    ok, buf = cv2.imencode(ext, image)
    if not ok:
        raise InputError(f"Could not encode a {image.shape} {image.dtype} image as {ext}.")
    return buf.tobytes()


def _npy(path: Path, array: np.ndarray) -> Path:
    try:
        with open(path, "wb") as f:
            np.save(f, array, allow_pickle=False)
    except OSError as exc:
        raise InputError(f"Could not write {path}: {exc.strerror or exc}") from exc
    return path


def write_labels(path: str | os.PathLike, label_map: np.ndarray) -> Path:
    """(H, W) label ids -> ``.png`` (8-bit when all ids < 256, else 16-bit) or ``.npy``."""
    p = Path(path)
    if p.suffix.lower() == ".npy":
        return _npy(p, np.ascontiguousarray(label_map))
    ids = label_map if label_map.dtype == np.uint8 else (
        label_map.astype(np.uint8) if label_map.size and int(label_map.max()) < 256 else label_map.astype(np.uint16))
    return _write(p, _png(np.ascontiguousarray(ids)))


def depth_png(depth: np.ndarray) -> np.ndarray:
    """Metres -> the 16-bit PNG values: round(metres x 256), clipped to 0..65535 (NaN -> 0)."""
    scaled = np.nan_to_num(np.asarray(depth, np.float32) * np.float32(DEPTH_PNG_SCALE), nan=0.0)
    return np.clip(np.rint(scaled), 0, 65535).astype(np.uint16)


def write_depth(path: str | os.PathLike, depth: np.ndarray) -> Path:
    """(H, W) metres -> ``.npy`` float32 or a 16-bit ``.png`` of metres x 256."""
    p = Path(path)
    if p.suffix.lower() == ".npy":
        return _npy(p, np.ascontiguousarray(depth, dtype=np.float32))
    return _write(p, _png(depth_png(depth)))


def write_picture(path: str | os.PathLike, rgb: np.ndarray) -> Path:
    """(H, W, 3) uint8 RGB -> ``.png`` or ``.jpg``."""
    import cv2
    p = Path(path)
    ext = ".jpg" if p.suffix.lower() in (".jpg", ".jpeg") else ".png"
    return _write(p, _png(cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2BGR), ext))


def overlay(image: np.ndarray, label_map: np.ndarray, colors: np.ndarray, alpha: float = 0.5) -> np.ndarray:
    """Each pixel's class colour blended over the (H, W, 3) uint8 image (``alpha`` of the colour), in
    row bands so a huge image needs little more than the output's memory."""
    h, w = label_map.shape
    if image.shape[:2] != (h, w):
        raise InputError(f"The image is {image.shape[1]}x{image.shape[0]} but the label map {w}x{h}.")
    out = np.empty((h, w, 3), np.uint8)
    a = int(round(alpha * 256))
    band = max(1, _BAND_PIXELS // max(1, w))
    for y in range(0, h, band):
        colour = colors[label_map[y:y + band]].astype(np.uint16)  # (rows, W, 3)
        mixed = (image[y:y + band, :, :3].astype(np.uint16) * (256 - a) + colour * a + 128) >> 8
        out[y:y + band] = mixed.astype(np.uint8)
    return out
