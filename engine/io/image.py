"""Reading images from disk into (H, W, 3) uint8 RGB arrays, with errors a person can act on.

OpenCV decodes (``cv2.imdecode`` on bytes read with numpy, so non-ASCII paths work on every
platform). No torch here: the GUI uses this module too.
"""
from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np

from ..errors import InputError

log = logging.getLogger(__name__)

MAX_FILE_BYTES = 200 * 1024 * 1024  # 200 MB
MAX_PIXELS = 120_000_000  # 120 megapixels: a 12000x9000 photo (108 MP) opens; decoded, 360 MB of RGB at most


def _image_size_from_header(data: np.ndarray) -> tuple[int, int] | None:
    """(height, width) from a PNG or JPEG header without decoding, or None if unknown.

    Lets :func:`read_image` refuse a decompression bomb before allocating its pixels.
    """
    b = data[:65536].tobytes()
    if b.startswith(b"\x89PNG\r\n\x1a\n") and len(b) >= 24:
        return int.from_bytes(b[20:24], "big"), int.from_bytes(b[16:20], "big")
    if b.startswith(b"\xff\xd8"):
        i = 2
        while i + 9 < len(b):
            if b[i] != 0xFF:
                return None
            marker = b[i + 1]
            if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:
                i += 2
                continue
            seg = int.from_bytes(b[i + 2:i + 4], "big")
            if marker in (0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF):
                return int.from_bytes(b[i + 5:i + 7], "big"), int.from_bytes(b[i + 7:i + 9], "big")
            i += 2 + seg
    return None


def looks_like_video(data: np.ndarray) -> bool:
    """True when the bytes start like a video container (MP4/MOV, AVI, Matroska/WebM, MPEG, ASF)."""
    b = data[:16].tobytes()
    return (b[4:8] == b"ftyp" or (b[:4] == b"RIFF" and b[8:12] == b"AVI ") or b[:4] == b"\x1a\x45\xdf\xa3"
            or b[:4] in (b"\x00\x00\x01\xba", b"\x00\x00\x01\xb3")
            or b[:16] == bytes.fromhex("3026b2758e66cf11a6d900aa0062ce6c"))


def to_rgb(image: np.ndarray) -> np.ndarray:
    """Grayscale (H, W) or (H, W, 1), RGB (H, W, 3) or RGBA (H, W, 4) uint8 -> (H, W, 3) uint8 RGB.

    Alpha is dropped (not blended): detection looks at the colour channels only.
    """
    if not isinstance(image, np.ndarray):
        raise InputError(f"Expected an image as a numpy array, got {type(image).__name__}.")
    if image.dtype != np.uint8:
        raise InputError(f"Expected an 8-bit image (uint8), got {image.dtype}; convert it, e.g. "
                         f"(img * 255).clip(0, 255).astype(np.uint8) for floats in [0, 1].")
    if image.size == 0:
        raise InputError(f"The image is empty (shape {image.shape}).")
    if image.ndim == 2:
        return np.repeat(image[:, :, None], 3, axis=2)
    if image.ndim == 3 and image.shape[2] == 1:
        return np.repeat(image, 3, axis=2)
    if image.ndim == 3 and image.shape[2] == 3:
        return image
    if image.ndim == 3 and image.shape[2] == 4:
        return np.ascontiguousarray(image[:, :, :3])
    raise InputError(f"Expected an image of shape (H, W, 3) (or grayscale (H, W), RGBA (H, W, 4)), "
                     f"got shape {image.shape}.")


def read_image(path: str | os.PathLike) -> np.ndarray:
    """Read an image file (PNG, JPEG, BMP, TIFF, WebP, ...) as (H, W, 3) uint8 RGB."""
    import cv2

    p = Path(path).expanduser()
    if not p.exists():
        raise InputError(f"Image file not found: {p}")
    if not p.is_file():
        raise InputError(f"{p} is not a file.")
    size = p.stat().st_size
    if size == 0:
        raise InputError(f"Image file {p.name} is empty (0 bytes).")
    if size > MAX_FILE_BYTES:
        raise InputError(f"Image file {p.name} is too large ({size / 2**20:.0f} MB; the limit is "
                         f"{MAX_FILE_BYTES // 2**20} MB).")
    try:
        data = np.fromfile(str(p), dtype=np.uint8)
    except OSError as exc:
        raise InputError(f"Could not read {p.name}: {exc.strerror or exc}") from exc
    hw = _image_size_from_header(data)
    if hw is not None and hw[0] * hw[1] > MAX_PIXELS:
        raise InputError(f"Image {p.name} is too large ({hw[1]}x{hw[0]} = {hw[0] * hw[1] / 1e6:.0f} megapixels; "
                         f"the limit is {MAX_PIXELS // 1_000_000}).")
    try:
        decoded = cv2.imdecode(data, cv2.IMREAD_UNCHANGED)
    except cv2.error as exc:
        raise InputError(f"{p.name} could not be decoded as an image: {str(exc).strip().splitlines()[-1]}") from exc
    if decoded is None or decoded.size == 0:
        if looks_like_video(data):
            raise InputError(f"{p.name} is a video, not an image. Taskscope plays videos in the app (open or drop "
                             f"it on the Vision tab, or run `python main.py {p.name}`); this command takes images.")
        raise InputError(f"{p.name} is not an image Taskscope can read, or it is corrupt.")
    if decoded.shape[0] * decoded.shape[1] > MAX_PIXELS:
        raise InputError(f"Image {p.name} is too large ({decoded.shape[1]}x{decoded.shape[0]}; the limit is "
                         f"{MAX_PIXELS // 1_000_000} megapixels).")
    if decoded.dtype == np.uint16:  # 16-bit PNG/TIFF
        decoded = (decoded >> 8).astype(np.uint8)
    elif decoded.dtype != np.uint8:
        decoded = cv2.normalize(decoded, None, 0, 255, cv2.NORM_MINMAX).astype(np.uint8)
    if decoded.ndim == 3 and decoded.shape[2] == 4:
        decoded = cv2.cvtColor(decoded, cv2.COLOR_BGRA2RGB)
    elif decoded.ndim == 3 and decoded.shape[2] == 3:
        decoded = cv2.cvtColor(decoded, cv2.COLOR_BGR2RGB)
    return to_rgb(decoded)
