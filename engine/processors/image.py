"""Images -> model tensors, as a checkpoint's ``preprocessor_config.json`` says, with resampling that
gives the SAME BYTES as Pillow's ``Image.resize`` (which transformers' image processors call), but
without Pillow.

Why bit-exact: a one-grey-level difference on a tenth of the pixels (what OpenCV's bilinear gives)
moved a full-size DETR's scores by up to 8e-3. Pillow's resampler is deterministic integer
arithmetic, so we reproduce it step by step (read from Pillow's ``libImaging/Resample.c`` and
``Geometry.c``; the code here is our own, vectorised):

* BILINEAR / BICUBIC (and BOX, HAMMING, LANCZOS) are separable: a horizontal pass, then a vertical
  one, each skipped when that side keeps its size. Per output pixel ``i`` of an axis:
  ``scale = in / out``; the filter is widened by ``max(scale, 1)`` when downscaling (antialiasing);
  ``center = (i + 0.5) * scale``; the taps run over ``[int(center - support + 0.5),
  int(center + support + 0.5))`` clipped to the image; weights ``filter((j - center + 0.5) / fs)``
  are normalised to sum 1 in double, then turned into 22-bit fixed point (``32 - 8 - 2`` bits,
  rounding half away from zero). A pass sums ``pixel * weight`` in int32 from ``1 << 21`` and keeps
  ``clip(sum >> 22, 0, 255)``: every pass is rounded to uint8 before the next.
* The pass order matters (each pass rounds). Pillow 13 runs the vertical pass first when the
  height shrinks by more than twice as many pixels as the width (``in_h > out_h`` and ``in_h -
  out_h > 2 * (in_w - out_w)``), else the horizontal one (older releases always went horizontal
  first): we follow Pillow 13, the version installed here and so the one transformers uses.
* RGBA / LA are resampled premultiplied by alpha (Pillow's "RGBa" / "La" modes) and divided back.
* NEAREST is not a filter but Pillow's affine scaling: source ``x = int(x0 + k * step)`` with
  ``x0 = step / 2`` and the position ACCUMULATED by repeated addition in double.
* An image already of the target size comes back as a copy.

A pass is a sparse matrix (out x in, a few taps per row) times the image seen as (in, rest):
int32 end to end (exact, and it can not overflow: the |weights| of a pixel sum to at most ~1.6,
lanczos, so ``255 * 1.6 * 2**22`` stays below ``2**31``), run by scipy's CSR kernel; the
horizontal pass transposes the image (OpenCV) so both passes multiply contiguous rows. Tables are
cached per (in, out, filter).

Then :class:`ImageProcessor` does what transformers' processors do: size rule (fixed height/width,
shortest edge, DETR's shortest/longest, GLPN's ``size_divisor``, ConvNeXT's ``crop_pct``), centre
crop, rescale, normalise (float32, in transformers' operation order, so the values match theirs
exactly) and bottom-right zero padding with a pixel mask (DETR).
"""
from __future__ import annotations

import functools
import logging
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Mapping, Sequence

import numpy as np

from ..errors import CheckpointError, InputError

if TYPE_CHECKING:
    import torch

log = logging.getLogger(__name__)

IMAGENET_MEAN = (0.485, 0.456, 0.406)  # transformers' IMAGENET_DEFAULT_MEAN / _STD
IMAGENET_STD = (0.229, 0.224, 0.225)
STANDARD_MEAN = (0.5, 0.5, 0.5)  # transformers' IMAGENET_STANDARD_MEAN / _STD
STANDARD_STD = (0.5, 0.5, 0.5)

# ============================================================================ Pillow-exact resampling

PRECISION_BITS = 32 - 8 - 2  # Pillow: 8 bits of result, 2 of headroom for negative lobes / overshoot
RESAMPLE_CODES = {0: "nearest", 1: "lanczos", 2: "bilinear", 3: "bicubic", 4: "box", 5: "hamming"}
_SUPPORT = {"box": 0.5, "bilinear": 1.0, "hamming": 1.0, "bicubic": 2.0, "lanczos": 3.0}


def resample_name(resample: str | int) -> str:
    """``"bilinear"``, ``2``, ``"BILINEAR"``, ``"Resampling.BILINEAR"`` -> ``"bilinear"`` (the PIL
    integer codes are what preprocessor_config.json stores)."""
    if isinstance(resample, (int, np.integer)) and not isinstance(resample, bool):
        if int(resample) in RESAMPLE_CODES:
            return RESAMPLE_CODES[int(resample)]
    elif isinstance(resample, str):
        name = resample.rsplit(".", 1)[-1].strip().lower()
        name = {"antialias": "lanczos", "linear": "bilinear", "cubic": "bicubic"}.get(name, name)
        if name in RESAMPLE_CODES.values():
            return name
    raise ValueError(f"Unknown resampling filter {resample!r}; use one of {sorted(RESAMPLE_CODES.values())} "
                     f"or a PIL code {sorted(RESAMPLE_CODES)}.")


def _filter(name: str, x: np.ndarray) -> np.ndarray:
    """Pillow's filter kernels on float64 positions, with its operation order (no FMA)."""
    if name == "box":
        return ((x > -0.5) & (x <= 0.5)).astype(np.float64)
    ax = np.abs(x)
    if name == "bilinear":
        return np.where(ax < 1.0, 1.0 - ax, 0.0)
    if name == "bicubic":  # a = -0.5
        near = ((1.5 * ax - 2.5) * ax) * ax + 1.0
        far = (((ax - 5.0) * ax + 8.0) * ax - 4.0) * -0.5
        return np.where(ax < 1.0, near, np.where(ax < 2.0, far, 0.0))
    # sin / cos through the C library, as Pillow calls them (numpy's SIMD versions may differ by an ulp)
    flat = [_scalar_filter(name, v) for v in x.ravel().tolist()]
    return np.asarray(flat, dtype=np.float64).reshape(x.shape)


_F32_054, _F32_046 = float(np.float32(0.54)), float(np.float32(0.46))  # Pillow writes 0.54f, 0.46f


def _scalar_filter(name: str, x: float) -> float:
    def sinc(v: float) -> float:
        if v == 0.0:
            return 1.0
        v = v * math.pi
        return math.sin(v) / v

    if name == "hamming":
        x = -x if x < 0.0 else x
        if x == 0.0:
            return 1.0
        if x >= 1.0:
            return 0.0
        x = x * math.pi
        return math.sin(x) / x * (_F32_054 + _F32_046 * math.cos(x))
    if name == "lanczos":
        return sinc(x) * sinc(x / 3) if -3.0 <= x < 3.0 else 0.0
    raise ValueError(name)


def axis_coefficients(in_size: int, out_size: int, resample: str | int) -> tuple[np.ndarray, np.ndarray]:
    """Pillow's resampling table of one axis: ``(index, weight)``, both (out_size, taps).

    ``index`` (int64) are input positions (clipped into the image where the weight is 0), ``weight``
    the int32 fixed-point weights (``PRECISION_BITS`` fraction bits) of output pixel ``i``:
    ``out[i] = clip((sum_t in[index[i, t]] * weight[i, t] + 2**21) >> 22, 0, 255)``. Read-only,
    cached per (in_size, out_size, filter). Not for "nearest" (see :func:`nearest_index`).
    """
    return _axis_table(int(in_size), int(out_size), resample_name(resample))


@functools.lru_cache(maxsize=256)
def _axis_table(in_size: int, out_size: int, resample: str) -> tuple[np.ndarray, np.ndarray]:
    support0 = _SUPPORT[resample]
    scale = in_size / out_size  # Pillow: (double)(in1 - in0) / outSize, box (0, in)
    filterscale = max(scale, 1.0)
    support = support0 * filterscale
    center = (np.arange(out_size, dtype=np.float64) + 0.5) * scale  # (out,)
    first = np.maximum((center - support + 0.5).astype(np.int64), 0)  # C (int) truncates toward zero
    count = np.minimum((center + support + 0.5).astype(np.int64), in_size) - first  # (out,) taps used
    taps = max(int(count.max()), 1)
    t = np.arange(taps)
    pos = first[:, None] + t[None, :]  # (out, taps)
    used = t[None, :] < count[:, None]  # (out, taps)
    w = _filter(resample, ((pos - center[:, None]) + 0.5) * (1.0 / filterscale))  # (out, taps)
    w = np.where(used, w, 0.0)
    total = np.zeros(out_size)
    for j in range(taps):  # Pillow sums the weights left to right; keep that order (not pairwise)
        total += w[:, j]
    w = np.where(total[:, None] != 0.0, w / np.where(total == 0.0, 1.0, total)[:, None], w)
    one = float(1 << PRECISION_BITS)
    fixed = np.where(w < 0, np.trunc(-0.5 + w * one), np.trunc(0.5 + w * one)).astype(np.int32)
    index = np.minimum(pos, in_size - 1)
    index.flags.writeable = False
    fixed.flags.writeable = False
    return index, fixed


@functools.lru_cache(maxsize=256)
def _axis_matrix(in_size: int, out_size: int, resample: str):
    """The table of :func:`axis_coefficients` as a scipy CSR matrix (out_size, in_size), int32."""
    import scipy.sparse

    index, weight = _axis_table(in_size, out_size, resample)
    keep = weight != 0
    rows = np.broadcast_to(np.arange(out_size)[:, None], index.shape)[keep]
    return scipy.sparse.csr_matrix((weight[keep], (rows, index[keep])), shape=(out_size, in_size), dtype=np.int32)


@functools.lru_cache(maxsize=256)
def nearest_index(in_size: int, out_size: int) -> np.ndarray:
    """Pillow's NEAREST source positions (out_size,) int64; -1 where it samples outside (stays 0).

    Pillow (affine scaling) starts at ``step / 2`` and ADDS ``step`` per pixel in double; the
    cumulative sum reproduces those roundings (numpy's accumulate is sequential)."""
    step = in_size / out_size
    pos = np.full(out_size, step)
    pos[0] = 0.0 + step * 0.5
    pos = np.add.accumulate(pos)
    index = np.where(pos < 0.0, -1, pos.astype(np.int64))
    index = np.where(index < in_size, index, -1)
    index.flags.writeable = False
    return index


def _transpose(x: np.ndarray) -> np.ndarray:
    """(A, B, C) -> contiguous (B, A, C) (OpenCV's transpose is several times numpy's copy)."""
    if x.shape[2] <= 4 and min(x.shape[:2]) > 0:
        import cv2
        out = cv2.transpose(x if x.shape[2] > 1 else x[:, :, 0])
        return out.reshape(x.shape[1], x.shape[0], x.shape[2])  # (B, A, C)
    return np.ascontiguousarray(x.transpose(1, 0, 2))  # (B, A, C)


def _vertical_pass(x: np.ndarray, resample: str, out_h: int) -> np.ndarray:
    """(H, W, C) uint8 -> (out_h, W, C) uint8: one Pillow pass along the rows."""
    h, w, c = x.shape
    matrix = _axis_matrix(h, out_h, resample)
    rows = x.reshape(h, w * c)  # (H, W*C)
    out = np.empty((out_h, w * c), dtype=np.uint8)  # (out_h, W*C)
    step = max(1024, (1 << 22) // max(h, out_h))  # column blocks: int32 temporaries of <= ~16 MB
    for start in range(0, w * c, step):
        acc = matrix @ rows[:, start:start + step]  # (out_h, block) int32, exact
        acc += 1 << (PRECISION_BITS - 1)
        np.right_shift(acc, PRECISION_BITS, out=acc)
        np.clip(acc, 0, 255, out=acc)
        out[:, start:start + step] = acc
    return out.reshape(out_h, w, c)  # (out_h, W, C)


def _horizontal_pass(x: np.ndarray, resample: str, out_w: int) -> np.ndarray:
    """(H, W, C) uint8 -> (H, out_w, C) uint8: the same pass on the transposed image."""
    return _transpose(_vertical_pass(_transpose(x), resample, out_w))


def _premultiply(x: np.ndarray) -> np.ndarray:
    """RGBA / LA -> Pillow's RGBa / La: colour * alpha / 255 rounded as Pillow's MULDIV255."""
    colour, alpha = x[..., :-1].astype(np.uint16), x[..., -1:].astype(np.uint16)
    t = colour * alpha + 128
    out = x.copy()
    out[..., :-1] = ((t >> 8) + t) >> 8
    return out


def _unpremultiply(x: np.ndarray) -> np.ndarray:
    """Pillow's RGBa / La -> RGBA / LA: colour * 255 // alpha clipped, alpha 0 and 255 kept as is."""
    alpha = x[..., -1:].astype(np.int32)
    colour = x[..., :-1].astype(np.int32)
    divided = np.minimum(colour * 255 // np.maximum(alpha, 1), 255)
    out = x.copy()
    out[..., :-1] = np.where((alpha == 0) | (alpha == 255), colour, divided)
    return out


def resize(image: np.ndarray, size: tuple[int, int], resample: str | int = "bilinear") -> np.ndarray:
    """(H, W, C) or (H, W) uint8 -> (out_h, out_w, C) / (out_h, out_w) uint8, ``size = (out_h,
    out_w)``: the same bytes as ``np.asarray(PIL.Image.fromarray(image).resize((out_w, out_h),
    resample))`` (C = 1 as Pillow's "L", 2 "LA", 3 "RGB", 4 "RGBA").

    ``resample``: "nearest", "bilinear", "bicubic", "box", "hamming", "lanczos" or a PIL code
    (0, 2, 3, 4, 5, 1). Output sides are clamped to at least 1 pixel.
    """
    name = resample_name(resample)
    if not isinstance(image, np.ndarray) or image.dtype != np.uint8:
        raise InputError(f"resize takes a uint8 numpy image, got {getattr(image, 'dtype', type(image).__name__)}.")
    if image.ndim not in (2, 3) or image.size == 0 or (image.ndim == 3 and not 1 <= image.shape[2] <= 4):
        raise InputError(f"resize takes an (H, W) or (H, W, 1..4) image, got shape {image.shape}.")
    flat = image.ndim == 2
    x = np.ascontiguousarray(image[:, :, None] if flat else image)  # (H, W, C)
    h, w, c = x.shape
    out_h, out_w = max(1, int(size[0])), max(1, int(size[1]))
    if (out_h, out_w) == (h, w):
        out = x.copy()
    elif name == "nearest":
        rows, cols = nearest_index(h, out_h), nearest_index(w, out_w)
        out = x[np.maximum(rows, 0)][:, np.maximum(cols, 0)]  # (out_h, out_w, C)
        if rows.min() < 0 or cols.min() < 0:  # outside the source (never for plain resizes): zeros
            out[rows < 0] = 0
            out[:, cols < 0] = 0
    else:
        alpha = c in (2, 4)
        if alpha:
            x = _premultiply(x)
        if out_h < h and (h - out_h) > (w - out_w) * 2:  # Pillow 13: height shrinks much more: rows first
            y = _vertical_pass(x, name, out_h)
            out = _horizontal_pass(y, name, out_w) if out_w != w else y
        else:
            y = _horizontal_pass(x, name, out_w) if out_w != w else x
            out = _vertical_pass(y, name, out_h) if out_h != h else y
        if alpha:
            out = _unpremultiply(out)
    return out[:, :, 0] if flat else out


def center_crop(image: np.ndarray, height: int, width: int) -> np.ndarray:
    """(H, W, C) -> (height, width, C), the centre as transformers' ``center_crop`` takes it (top =
    (H - height) // 2); where the image is smaller it is zero-padded around, as theirs."""
    h, w = image.shape[:2]
    top, left = _crop_origin(h, w, height, width)
    if top >= 0 and left >= 0 and top + height <= h and left + width <= w:
        return np.ascontiguousarray(image[top:top + height, left:left + width])
    out = np.zeros((height, width) + image.shape[2:], dtype=image.dtype)
    src_t, src_l = max(top, 0), max(left, 0)
    src_b, src_r = min(top + height, h), min(left + width, w)
    out[src_t - top:src_b - top, src_l - left:src_r - left] = image[src_t:src_b, src_l:src_r]
    return out


def _crop_origin(h: int, w: int, height: int, width: int) -> tuple[int, int]:
    """Top-left of transformers' centre crop in image coordinates: ((h - height) // 2, (w - width)
    // 2), negative where it pads (their padded canvas centres the image at ceil(pad / 2), which
    lands the crop exactly there)."""
    return (h - height) // 2, (w - width) // 2


# ============================================================================ size rules (transformers')

def shortest_longest_size(height: int, width: int, shortest_edge: int, longest_edge: int | None) -> tuple[int, int]:
    """(new_h, new_w): the short side becomes ``shortest_edge`` unless the long side would then exceed
    ``longest_edge`` (DETR, Mask2Former); rounding as transformers' ``get_size_with_aspect_ratio``."""
    size = shortest_edge
    raw = None
    if longest_edge is not None:
        lo, hi = float(min(height, width)), float(max(height, width))
        if hi / lo * size > longest_edge:
            raw = longest_edge * lo / hi
            size = int(round(raw))
    if (height <= width and height == size) or (width <= height and width == size):
        return height, width
    if width < height:
        return (int(raw * height / width) if raw is not None else int(size * height / width)), size
    return size, (int(raw * width / height) if raw is not None else int(size * width / height))


def shortest_edge_size(height: int, width: int, shortest_edge: int) -> tuple[int, int]:
    """(new_h, new_w) with the short side ``shortest_edge`` and the long side truncated, as
    transformers' ``get_resize_output_image_size(default_to_square=False)``."""
    short, long = (width, height) if width <= height else (height, width)
    new_long = int(shortest_edge * long / short)
    return (new_long, shortest_edge) if width <= height else (shortest_edge, new_long)


def longest_edge_size(height: int, width: int, longest_edge: int) -> tuple[int, int]:
    """(new_h, new_w) with the long side ``longest_edge``, rounded half up (transformers' SAM rule)."""
    scale = longest_edge * 1.0 / max(height, width)
    return int(height * scale + 0.5), int(width * scale + 0.5)


def max_height_width_size(height: int, width: int, max_height: int, max_width: int) -> tuple[int, int]:
    """(new_h, new_w) fitting inside (max_height, max_width), truncated (transformers' rule)."""
    scale = min(max_height / height, max_width / width)
    return int(height * scale), int(width * scale)


def size_rule(height: int, width: int, size: Mapping[str, int]) -> tuple[int, int]:
    """Apply one of transformers' size layouts to an image of (height, width) -> (new_h, new_w)."""
    keys = set(size)
    if keys == {"height", "width"}:
        return int(size["height"]), int(size["width"])
    if keys == {"shortest_edge", "longest_edge"}:
        return shortest_longest_size(height, width, int(size["shortest_edge"]), int(size["longest_edge"]))
    if keys == {"shortest_edge"}:
        return shortest_edge_size(height, width, int(size["shortest_edge"]))
    if keys == {"longest_edge"}:
        return longest_edge_size(height, width, int(size["longest_edge"]))
    if keys == {"max_height", "max_width"}:
        return max_height_width_size(height, width, int(size["max_height"]), int(size["max_width"]))
    raise ValueError(f"Unsupported size layout {dict(size)}.")


# ============================================================================ configuration

# Class defaults of transformers' image processors, as read in transformers 5.24
# (models/*/image_processing_pil_*.py), in the layout a preprocessor_config.json uses. "_family"
# selects legacy handling of "max_size" (see _size_from_hf).
_TYPE_DEFAULTS: dict[str, dict[str, Any]] = {
    "ViTImageProcessor": {"size": {"height": 224, "width": 224}, "resample": 2, "image_mean": STANDARD_MEAN,
                          "image_std": STANDARD_STD, "do_resize": True, "do_rescale": True, "do_normalize": True},
    "ConvNextImageProcessor": {"size": {"shortest_edge": 384}, "crop_pct": 224 / 256, "resample": 3,
                               "image_mean": STANDARD_MEAN, "image_std": STANDARD_STD, "do_resize": True,
                               "do_rescale": True, "do_normalize": True, "default_to_square": False},
    "DetrImageProcessor": {"size": {"shortest_edge": 800, "longest_edge": 1333}, "resample": 2,
                           "image_mean": IMAGENET_MEAN, "image_std": IMAGENET_STD, "do_resize": True,
                           "do_rescale": True, "do_normalize": True, "do_pad": True, "default_to_square": False,
                           "_family": "detr"},
    "SegformerImageProcessor": {"size": {"height": 512, "width": 512}, "resample": 2, "image_mean": IMAGENET_MEAN,
                                "image_std": IMAGENET_STD, "do_resize": True, "do_rescale": True,
                                "do_normalize": True},
    "GLPNImageProcessor": {"size": None, "size_divisor": 32, "resample": 2, "do_resize": True, "do_rescale": True,
                           "do_normalize": False, "_family": "glpn"},
    "Mask2FormerImageProcessor": {"size": {"shortest_edge": 800, "longest_edge": 1333}, "size_divisor": 32,
                                  "divisor_rounding": "ceil", "resample": 2, "image_mean": IMAGENET_MEAN,
                                  "image_std": IMAGENET_STD, "do_resize": True, "do_rescale": True,
                                  "do_normalize": True, "do_pad": True, "default_to_square": False,
                                  "_family": "maskformer"},
}
_TYPE_DEFAULTS["MaskFormerImageProcessor"] = dict(_TYPE_DEFAULTS["Mask2FormerImageProcessor"])


def canonical_type(name: str | None) -> str | None:
    """"ViTImageProcessorPil" / "ViTImageProcessorFast" / "ViTFeatureExtractor" -> "ViTImageProcessor"."""
    if not name:
        return None
    for suffix in ("Pil", "Fast"):
        if name.endswith(suffix):
            name = name[: -len(suffix)]
    if name.endswith("FeatureExtractor"):
        name = name[: -len("FeatureExtractor")] + "ImageProcessor"
    return name


def processor_defaults(type_name: str | None) -> dict[str, Any]:
    """The class defaults of a transformers image processor type (empty when not one we know)."""
    return dict(_TYPE_DEFAULTS.get(canonical_type(type_name) or "", {}))


def _number(value: Any, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise CheckpointError(f"preprocessor_config.json: {what} must be a number, got {value!r}.")
    return float(value)


def _triple(value: Any, what: str) -> tuple[float, ...]:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return (float(value),) * 3
    if isinstance(value, (list, tuple)) and len(value) in (1, 3):
        values = tuple(_number(v, what) for v in value)
        return values * 3 if len(values) == 1 else values
    raise CheckpointError(f"preprocessor_config.json: {what} must be a number or 3 numbers, got {value!r}.")


def _size_from_hf(size: Any, *, default_to_square: bool, max_size: int | None) -> dict[str, int] | None:
    """Any of transformers' size spellings -> one of its size dicts (or None)."""
    if size is None:
        return {"longest_edge": int(max_size)} if max_size is not None and not default_to_square else None
    if isinstance(size, (int, float)) and not isinstance(size, bool):
        s = int(size)
        if default_to_square:
            return {"height": s, "width": s}
        return {"shortest_edge": s} if max_size is None else {"shortest_edge": s, "longest_edge": int(max_size)}
    if isinstance(size, (list, tuple)) and len(size) == 2:
        return {"height": int(size[0]), "width": int(size[1])}
    if isinstance(size, Mapping):
        out = {str(k): int(v) for k, v in size.items() if v is not None}
        try:
            size_rule(100, 100, out)  # a known layout?
        except ValueError:
            raise CheckpointError(f"preprocessor_config.json: size {dict(size)} has keys this app does not know "
                                  f"(height/width, shortest_edge[/longest_edge], longest_edge, "
                                  f"max_height/max_width).") from None
        return out
    raise CheckpointError(f"preprocessor_config.json: size {size!r} is not a number, a pair or a dict.")


def _crop_from_hf(crop: Any) -> tuple[int, int] | None:
    if crop is None:
        return None
    if isinstance(crop, (int, float)) and not isinstance(crop, bool):
        return int(crop), int(crop)
    if isinstance(crop, (list, tuple)) and len(crop) == 2:
        return int(crop[0]), int(crop[1])
    if isinstance(crop, Mapping) and "height" in crop and "width" in crop:
        return int(crop["height"]), int(crop["width"])
    raise CheckpointError(f"preprocessor_config.json: crop_size {crop!r} is not a number, a pair or "
                          f"{{'height', 'width'}}.")


@dataclass(frozen=True)
class ImageProcessorConfig:
    """What a transformers image processor does to an image, read from preprocessor_config.json.

    ``size`` is one of transformers' size dicts (treat it as read-only): ``{"height", "width"}``
    (warp), ``{"shortest_edge"[, "longest_edge"]}``, ``{"longest_edge"}``, ``{"max_height",
    "max_width"}``, or None (keep the size). ``size_divisor`` rounds the sides to a multiple:
    DOWN from the original size (GLPN, ``divisor_rounding="floor"``) or UP after the size rule
    (Mask2Former, ``"ceil"``). ``crop_pct`` is ConvNeXT's rule: shortest edge ``s < 384`` ->
    resize the short side to ``int(s / crop_pct)`` and centre-crop ``(s, s)``; ``s >= 384`` -> warp
    to ``(s, s)``. ``do_pad``: pad a batch bottom-right with zeros to its largest size, with a
    pixel mask (DETR, Mask2Former).
    """

    do_resize: bool = True
    size: dict | None = None
    size_divisor: int | None = None
    divisor_rounding: str = "floor"
    resample: str = "bilinear"
    crop_pct: float | None = None
    do_center_crop: bool = False
    crop_size: tuple[int, int] | None = None
    do_rescale: bool = True
    rescale_factor: float = 1 / 255
    do_normalize: bool = True
    image_mean: tuple[float, float, float] = IMAGENET_MEAN
    image_std: tuple[float, float, float] = IMAGENET_STD
    do_pad: bool = False
    processor_type: str | None = None  # the transformers class it was read as, for messages

    @classmethod
    def from_hf(cls, pre: Mapping[str, Any] | None, *, defaults: Mapping[str, Any] | None = None,
                default_type: str | None = None) -> ImageProcessorConfig:
        """From a preprocessor_config.json dict, in every layout transformers writes (legacy
        ``"size": 224``, DETR's ``"size": 800, "max_size": 1333``, size dicts, ``"resample": 2``,
        ``crop_size`` as a number or dict). Unknown keys are ignored.

        Missing keys come from the class defaults of the file's ``image_processor_type`` (or
        ``feature_extractor_type``), else of ``default_type`` (what the task's model uses), then
        from ``defaults`` (same layout as the file), then from this dataclass.
        """
        pre = dict(pre or {})
        named = canonical_type(pre.get("image_processor_type") or pre.get("feature_extractor_type"))
        kind = named if named in _TYPE_DEFAULTS else canonical_type(default_type)
        if named and named not in _TYPE_DEFAULTS:
            log.info("preprocessor_config.json names %s; reading its keys with %s defaults", named, kind or "generic")
        merged: dict[str, Any] = {**dict(defaults or {}), **processor_defaults(kind), **pre}
        family = merged.get("_family")
        square = bool(merged.get("default_to_square", True))
        max_size = pre.get("max_size")
        if "size" in pre and family == "detr" and max_size is None:
            max_size = 1333  # DetrImageProcessor: a legacy int size always came with longest edge 1333
        if "size" not in pre and family == "maskformer" and max_size is not None:
            merged["size"] = {**merged["size"], "longest_edge": int(max_size)}
            max_size = None
        size = _size_from_hf(merged.get("size"), default_to_square=square, max_size=max_size)
        if family == "glpn":  # GLPNImageProcessor ignores size: only size_divisor shapes the image
            size = None
        divisor = merged.get("size_divisor")
        rounding = str(merged.get("divisor_rounding", "floor"))
        if rounding not in ("floor", "ceil"):
            raise ValueError(f"divisor_rounding must be 'floor' or 'ceil', got {rounding!r}.")
        crop_pct = merged.get("crop_pct")
        try:
            resample = resample_name(merged.get("resample", 2))
        except ValueError as e:
            raise CheckpointError(f"preprocessor_config.json: {e}") from None
        mean = _triple(merged.get("image_mean", IMAGENET_MEAN), "image_mean")
        std = _triple(merged.get("image_std", IMAGENET_STD), "image_std")
        if any(s == 0 for s in std):
            raise CheckpointError(f"preprocessor_config.json: image_std {std} has a zero.")
        return cls(
            do_resize=bool(merged.get("do_resize", True)),
            size=size,
            size_divisor=int(divisor) if divisor else None,
            divisor_rounding=rounding,
            resample=resample,
            crop_pct=float(crop_pct) if crop_pct is not None else None,
            do_center_crop=bool(merged.get("do_center_crop") or False),
            crop_size=_crop_from_hf(merged.get("crop_size")),
            do_rescale=bool(merged.get("do_rescale", True)),
            rescale_factor=_number(merged.get("rescale_factor", 1 / 255), "rescale_factor"),
            do_normalize=bool(merged.get("do_normalize", True)),
            image_mean=mean,
            image_std=std,
            do_pad=bool(merged.get("do_pad") or False),
            processor_type=kind,
        )


# ============================================================================ processor

class ImageProcessor:
    """RGB uint8 images -> (B, 3, H, W) model inputs, as the transformers processor the config
    describes would give them (pixel values equal to theirs, not just close).

    >>> proc = ImageProcessor.from_config(ImageProcessorConfig.from_hf(pre, default_type="ViTImageProcessor"))
    >>> pixels, mask = proc([frame_rgb], torch.device("cpu"), torch.float32)
    """

    def __init__(self, config: ImageProcessorConfig) -> None:
        self.config = config
        self._constants: dict[Any, tuple] = {}

    @classmethod
    def from_config(cls, config: ImageProcessorConfig) -> ImageProcessor:
        return cls(config)

    @classmethod
    def from_folder(cls, folder, default_type: str) -> ImageProcessor:
        """A checkpoint folder's preprocessor_config.json (``default_type``'s defaults when it has none)."""
        from ..hub import read_json
        return cls.from_hf(read_json(folder, "preprocessor_config.json", required=False), default_type=default_type)

    @classmethod
    def from_hf(cls, pre: Mapping[str, Any] | None, **kwargs) -> ImageProcessor:
        """Shortcut for ``from_config(ImageProcessorConfig.from_hf(pre, **kwargs))``."""
        return cls(ImageProcessorConfig.from_hf(pre, **kwargs))

    def __repr__(self) -> str:
        return f"ImageProcessor({self.config})"

    # ------------------------------------------------------------------ geometry

    def _size(self, size_override: Mapping[str, int] | Sequence[int] | None) -> dict | None:
        if size_override is None:
            return self.config.size
        if isinstance(size_override, Mapping):
            return dict(size_override)
        h, w = size_override
        return {"height": int(h), "width": int(w)}

    def _convnext_edge(self, size: dict | None) -> int | None:
        """ConvNeXT's crop_pct rule applies: the shortest edge it crops to, else None."""
        if self.config.crop_pct is None or not size or set(size) != {"shortest_edge"}:
            return None
        return int(size["shortest_edge"])

    def output_size(self, height: int, width: int, size_override=None) -> tuple[int, int]:
        """(h, w) an image of (height, width) is RESIZED to (before any crop), with transformers'
        rounding; sides are at least 1 pixel."""
        c = self.config
        if not c.do_resize:
            return height, width
        size = self._size(size_override)
        edge = self._convnext_edge(size)
        if edge is not None:
            if edge < 384:
                out = shortest_edge_size(height, width, int(edge / c.crop_pct))
            else:
                out = (edge, edge)
        elif size:
            out = size_rule(height, width, size)
        else:
            out = (height, width)
        if c.size_divisor:
            d = c.size_divisor
            if c.divisor_rounding == "ceil":
                out = (int(math.ceil(out[0] / d) * d), int(math.ceil(out[1] / d) * d))
            else:  # GLPN; a side below one multiple would be 0 (an error in transformers): keep one multiple
                out = (max(out[0] // d * d, d), max(out[1] // d * d, d))
        return max(1, int(out[0])), max(1, int(out[1]))

    def _crops(self, size: dict | None) -> list[tuple[int, int]]:
        """The centre crops applied after resizing, in order."""
        crops = []
        edge = self._convnext_edge(size) if self.config.do_resize else None
        if edge is not None and edge < 384:
            crops.append((edge, edge))
        if self.config.do_center_crop and self.config.crop_size:
            crops.append(self.config.crop_size)
        return crops

    def input_size(self, height: int, width: int, size_override=None) -> tuple[int, int]:
        """(h, w) of the model input made from an image of (height, width): after resize and crop."""
        out = self.output_size(height, width, size_override)
        crops = self._crops(self._size(size_override))
        return crops[-1] if crops else out

    def crop_box(self, height: int, width: int, size_override=None) -> tuple[float, float, float, float]:
        """(x0, y0, x1, y1) in pixels of the ORIGINAL image that the model input covers (beyond the
        image where a crop pads)."""
        rh, rw = self.output_size(height, width, size_override)
        y0, x0, h, w = 0, 0, rh, rw  # in resized pixels
        for ch, cw in self._crops(self._size(size_override)):
            top, left = _crop_origin(h, w, ch, cw)
            y0, x0, h, w = y0 + top, x0 + left, ch, cw
        sy, sx = height / rh, width / rw
        return (float(x0 * sx), float(y0 * sy), float((x0 + w) * sx), float((y0 + h) * sy))

    def prepare(self, image: np.ndarray, size_override=None) -> np.ndarray:
        """(H, W, 3) uint8 RGB -> the resized and cropped (h, w, 3) uint8 image the model will see
        (before rescale / normalise): what the GUI can show as "the model's input"."""
        from ..io.image import to_rgb
        image = to_rgb(image)
        out_h, out_w = self.output_size(image.shape[0], image.shape[1], size_override)
        out = resize(image, (out_h, out_w), self.config.resample) if self.config.do_resize else image
        for ch, cw in self._crops(self._size(size_override)):
            out = center_crop(out, ch, cw)
        return np.ascontiguousarray(out)

    # ------------------------------------------------------------------ tensors

    def _device_constants(self, device: torch.device) -> tuple:
        key = str(device)
        if key not in self._constants:
            import torch
            c = self.config
            mean = torch.tensor(c.image_mean, dtype=torch.float32, device=device).reshape(1, 3, 1, 1)  # (1, 3, 1, 1)
            std = torch.tensor(c.image_std, dtype=torch.float32, device=device).reshape(1, 3, 1, 1)  # (1, 3, 1, 1)
            # transformers rescales in float64 and rounds to float32; for 1/255 a float32 division by
            # 255 gives those values exactly; any other factor goes through a 256-entry table
            if c.rescale_factor == 1 / 255:
                rescale = torch.full((1, 1, 1, 1), 255.0, dtype=torch.float32, device=device)
            else:
                table = (np.arange(256, dtype=np.float64) * c.rescale_factor).astype(np.float32)
                rescale = torch.from_numpy(table).to(device)
            self._constants[key] = (mean, std, rescale)
        return self._constants[key]

    def normalise(self, pixels: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) uint8 -> float32 rescaled and normalised as transformers does
        (``float32(x * factor)``, then ``(x - mean) / std`` in float32)."""
        c = self.config
        mean, std, rescale = self._device_constants(pixels.device)
        if c.do_rescale and c.rescale_factor != 1 / 255:
            x = rescale[pixels.long()]  # (B, 3, H, W) float32, same strides as pixels
        else:
            x = pixels.float()
            if c.do_rescale:
                x = x.div_(rescale)  # a tensor, not a Python scalar: no reciprocal-multiply shortcut
        if c.do_normalize:
            x = x.sub_(mean).div_(std)
        return x

    def __call__(self, images: Sequence[np.ndarray], device: torch.device | str, dtype: torch.dtype | None = None, *,
                 channels_last: bool = False, size_override=None) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(H_i, W_i, 3) uint8 RGB images -> ``(pixels, mask)``: pixels (B, 3, H, W) in ``dtype`` on
        ``device`` (float32 arithmetic, then cast), and the (B, H, W) int64 pixel mask (1 = image,
        0 = padding) when images of different sizes were padded bottom-right with zeros, else None.

        ``size_override`` replaces the config's size (a size dict, or (h, w)), e.g. DETR's
        user-chosen ``{"shortest_edge": 512, "longest_edge": 1333}``. Images that come out of
        different sizes need ``do_pad`` (else an InputError: run them one at a time).
        """
        import torch

        if isinstance(images, np.ndarray):
            images = list(images) if images.ndim == 4 else [images]
        if not len(images):
            raise InputError("No images to process.")
        device = torch.device(device)
        dtype = torch.float32 if dtype is None else dtype
        prepared = [self.prepare(image, size_override) for image in images]  # (h_i, w_i, 3) uint8 each
        height = max(p.shape[0] for p in prepared)
        width = max(p.shape[1] for p in prepared)
        padded = any(p.shape[:2] != (height, width) for p in prepared)
        if padded and not self.config.do_pad:
            raise InputError(f"These images come out of different sizes ({sorted({p.shape[:2] for p in prepared})}) "
                             f"and this model's processor does not pad; process them one at a time.")
        if len(prepared) == 1:
            batch = prepared[0][None]  # (1, H, W, 3)
            if not batch.flags.writeable:  # (an unresized read-only input) torch wants writable memory
                batch = batch.copy()
        elif not padded:
            batch = np.stack(prepared)  # (B, H, W, 3)
        else:
            batch = np.zeros((len(prepared), height, width, 3), dtype=np.uint8)  # (B, H, W, 3)
            for i, p in enumerate(prepared):
                batch[i, : p.shape[0], : p.shape[1]] = p
        pixels = torch.from_numpy(batch).to(device).permute(0, 3, 1, 2)  # (B, 3, H, W), channels-last memory
        x = self.normalise(pixels)
        mask = None
        if padded:
            mask = torch.zeros((len(prepared), height, width), dtype=torch.int64)  # (B, H, W)
            for i, p in enumerate(prepared):
                h, w = p.shape[:2]
                mask[i, :h, :w] = 1
                x[i, :, h:, :] = 0.0  # padding is zero AFTER normalisation, as transformers pads
                x[i, :, :, w:] = 0.0
            mask = mask.to(device)
        x = x.to(dtype)
        fmt = torch.channels_last if channels_last else torch.contiguous_format
        return x.contiguous(memory_format=fmt), mask
