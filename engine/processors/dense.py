"""Dense predictions -> the image's size: SegFormer's label map and GLPN's depth, exactly as
transformers' post-processing gives them, without its cost.

Labels: transformers' ``post_process_semantic_segmentation(outputs, target_sizes=[(H, W)])`` upsamples
the (L, h, w) logits to (L, H, W) with ``F.interpolate(mode="bilinear", align_corners=False)`` and takes
the argmax over L. That is L x H x W floats (150 x 12000 x 9000 = 65 GB for a big photo), almost all
of it wasted: an output pixel's value for class c is a convex combination of c's logits at the 2 x 2
low-resolution cells it lies between (a "quad"), so a class that beats every other at all four
cells by more than the rounding error wins at every pixel of that quad. :func:`upsample_argmax`
therefore

1. bounds each class over each quad (its min and max over the four cells); the best lower bound
   ``LB`` of a quad is a value the winner reaches at every pixel of it, so only classes whose upper
   bound comes within a margin of ``LB`` can win there (the *candidates*; the margin, 2^-16 of the
   largest |logit|, is 16x the rounding error of the two interpolation steps). A quad with one
   candidate takes that label at all its pixels (the low-resolution answer, upsampled as labels);
2. computes, for the pixels of the other quads only and their candidate classes only, the value
   PyTorch's kernel computes, bit for bit, and takes the first maximum (argmax's tie rule).

Step 2 reproduces ATen's CPU kernel (``upsample_generic_Nd_kernel_impl``, ``HelperInterpLinear``):
per axis ``scale = float(in) / out``, source ``src = scale * (dst + 0.5) - 0.5`` clamped at 0 in
float32, ``i0 = min(floor(src), in - 1)``, ``i1 = i0 + (i0 < in - 1)``, ``l1 = clamp(src - i0, 0, 1)``,
``l0 = 1 - l1`` (an axis of the same size copies); then ``t0 * w0 + t1 * w1`` along the width, and
the same along the height. How the compiler fused those multiply-adds (FMA or not, which product)
differs between builds and devices, so :func:`arithmetic` finds it once per device by comparing the
candidates against ``F.interpolate`` itself on random data; an FMA is emulated exactly in float64
(products of two float32 are exact; the sum is rounded to odd, which makes the final rounding to
float32 correct). Where no candidate matches (an unknown build), or where ATen would take its other,
channels-last kernel (outputs with H + W <= 128, or 3 classes on one thread), or where the logits are
not finite, or where nearly every pixel is near a boundary (noisy logits), the labels come from
``F.interpolate`` itself: in one call when (L, H, W) takes at most 256 MB, else a few classes at a time
with a running first maximum (exact too: the kernel's channels are independent).

Depth: ``post_process_depth_estimation`` is a bicubic ``F.interpolate`` of the (h, w) depth: done as
it is (one channel, so H x W floats).
"""
from __future__ import annotations

import functools
import logging
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import torch

log = logging.getLogger(__name__)

#: candidates: a class whose upper bound over a quad is within this fraction of max|logit| of the quad's
#: best lower bound (the rounding error of the two interpolation steps is below 2^-20 of it)
MARGIN = 2.0 ** -16
#: the most (pixel, candidate class) values computed at once (each costs ~150 bytes of temporaries)
PAIRS_PER_CHUNK = 1 << 20
#: quads at least this many output rows tall are refined by segments of rows (see _QuadPlan._block)
REFINE_ROWS = 16
#: the most output pixels labelled per row band
PIXELS_PER_BAND = 1 << 22
#: the fast path's cost per (pixel, class) value relative to F.interpolate's per output value (measured:
#: ~90 vs ~12 ns); above that the direct way is quicker
FAST_COST = 8.0
#: bytes of F.interpolate output held at once by the direct way
DIRECT_BYTES = 256 * 2 ** 20

COMBINES = ("plain", "fma0", "fma1")  # t0*w0 + t1*w1 rounded twice; fma(t0, w0, t1*w1); fma(t1, w1, t0*w0)


@dataclass(frozen=True)
class Arithmetic:
    """How one device's bilinear kernel rounds: the source index with an FMA or not, and each of the
    two multiply-add levels (width, then height) as one of :data:`COMBINES`."""

    src_fma: bool
    inner: str
    outer: str


# ------------------------------------------------------------------------------ exact float32 arithmetic
# Values are carried as float64 arrays that hold float32 numbers: a product of two is then exact, and
# each rounding point of the float32 kernel is an explicit rounding to float32.

_LOW_BITS = (1 << 29) - 1  # the float64 mantissa bits below float32's precision
_MIDPOINT = 1 << 28  # ... exactly half a float32 ulp
_TINY_EXPONENT = 1023 - 125  # below 2^-125 float32 loses precision (subnormals): always checked


def _round_sum(p: np.ndarray, c: np.ndarray) -> np.ndarray:
    """float32(p + c) rounded ONCE (p an exact product, c a float32 value, both float64) -> float64.
    The float64 sum is rounded already; rounding it again is wrong only where it fell exactly on a
    float32 midpoint (or is tiny): there the sum is redone rounded to odd, which makes the float32
    rounding right (53 >= 24 + 2 bits)."""
    s = p + c
    bits = s.view(np.int64)
    risky = ((bits & _LOW_BITS) == _MIDPOINT) | (((bits >> 52) & 0x7FF) < _TINY_EXPONENT)
    out = s.astype(np.float32)
    if risky.any():
        idx = np.flatnonzero(risky)
        pp, cc, ss = p.reshape(-1)[idx], c.reshape(-1)[idx], s.reshape(-1)[idx]
        bb = ss - pp
        err = (pp - (ss - bb)) + (cc - bb)  # TwoSum: ss + err == pp + cc exactly
        odd = (err != 0) & ((ss.view(np.int64) & 1) == 0)
        ss = np.where(odd, np.nextafter(ss, np.where(err > 0, np.inf, -np.inf)), ss)
        out.reshape(-1)[idx] = ss.astype(np.float32)
    return out.astype(np.float64)


def _round(x: np.ndarray) -> np.ndarray:
    return x.astype(np.float32).astype(np.float64)


def fma32(a: np.ndarray, b: np.ndarray, c: np.ndarray) -> np.ndarray:
    """``a * b + c`` rounded once to float32 (a fused multiply-add), for float32 inputs."""
    a64, b64, c64 = (np.asarray(v, np.float32).astype(np.float64) for v in (a, b, c))
    p, c64 = np.broadcast_arrays(a64 * b64, c64)
    return _round_sum(np.ascontiguousarray(p), np.ascontiguousarray(c64)).astype(np.float32)


def _combine64(t0: np.ndarray, w0: np.ndarray, t1: np.ndarray, w1: np.ndarray, how: str) -> np.ndarray:
    """``t0 * w0 + t1 * w1`` as the float32 kernel rounds it (``how`` one of :data:`COMBINES`), on float64
    arrays holding float32 values."""
    if how == "plain":
        return _round(_round(t0 * w0) + _round(t1 * w1))
    if how == "fma0":
        p, c = np.broadcast_arrays(t0 * w0, _round(t1 * w1))
    elif how == "fma1":
        p, c = np.broadcast_arrays(t1 * w1, _round(t0 * w0))
    else:
        raise ValueError(how)
    return _round_sum(np.ascontiguousarray(p), np.ascontiguousarray(c))


def combine(t0: np.ndarray, w0: np.ndarray, t1: np.ndarray, w1: np.ndarray, how: str) -> np.ndarray:
    """``t0 * w0 + t1 * w1`` in float32, rounded as ``how`` (one of :data:`COMBINES`) says."""
    f = [np.asarray(v, np.float32).astype(np.float64) for v in (t0, w0, t1, w1)]
    return _combine64(*f, how).astype(np.float32)


def axis_table(n_in: int, n_out: int, src_fma: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(i0, i1, w0, w1) for every output index of one axis, as ATen's linear interpolation
    (align_corners=False) computes them: int64 indices, float32 weights."""
    if n_in == n_out:  # ATen: "scale_factor = 1, simply copy"
        idx = np.arange(n_out, dtype=np.int64)
        return idx, idx.copy(), np.ones(n_out, np.float32), np.zeros(n_out, np.float32)
    scale = np.float32(n_in) / np.float32(n_out)  # float(input_size) / output_size
    d = np.arange(n_out, dtype=np.float32) + np.float32(0.5)
    if src_fma:
        src = fma32(np.full_like(d, scale), d, np.full_like(d, -0.5))
    else:
        src = d * scale - np.float32(0.5)
    src = np.where(src < 0, np.float32(0), src).astype(np.float32)
    i0 = np.minimum(np.floor(src).astype(np.int64), n_in - 1)
    w1 = np.clip(src - i0.astype(np.float32), np.float32(0), np.float32(1)).astype(np.float32)
    i1 = i0 + (i0 < n_in - 1)
    w0 = (np.float32(1) - w1).astype(np.float32)
    return i0, i1, w0, w1


def emulate(logits: np.ndarray, size: tuple[int, int], how: Arithmetic) -> np.ndarray:
    """The full (C, H, W) bilinear upsampling of (C, h, w) float32 logits with the arithmetic ``how``
    (for calibration and tests; small sizes only)."""
    r0, r1, rw0, rw1 = axis_table(logits.shape[1], size[0], how.src_fma)
    c0, c1, cw0, cw1 = axis_table(logits.shape[2], size[1], how.src_fma)
    x = np.asarray(logits, np.float32).astype(np.float64)
    rows0, rows1 = x[:, r0], x[:, r1]  # (C, H, w)
    f = lambda v: v.astype(np.float64)  # noqa: E731
    top = _combine64(rows0[:, :, c0], f(cw0), rows0[:, :, c1], f(cw1), how.inner)  # (C, H, W)
    bottom = _combine64(rows1[:, :, c0], f(cw0), rows1[:, :, c1], f(cw1), how.inner)
    return _combine64(top, f(rw0)[:, None], bottom, f(rw1)[:, None], how.outer).astype(np.float32)


# ------------------------------------------------------------------------------ which arithmetic

#: calibration shapes: (channels, h, w) -> (H, W), all on ATen's generic kernel (H + W > 128, C != 3)
_CALIBRATION = (((5, 13, 17), (97, 131)), ((4, 9, 7), (301, 211)), ((6, 90, 80), (71, 67)), ((5, 32, 32), (120, 160)))


def reference_kernel_is_generic(channels: int, height: int, width: int) -> bool:
    """Whether ATen (CPU) interpolates contiguous (1, channels, h, w) logits to (height, width) with its
    generic kernel (the one emulated); else it takes the channels-last one."""
    import torch
    return height + width > 128 and not (torch.get_num_threads() == 1 and channels == 3)


@functools.lru_cache(maxsize=None)
def arithmetic(device: str = "cpu") -> Arithmetic | None:
    """The arithmetic of ``device``'s bilinear kernel, found by comparing every candidate with
    ``F.interpolate`` on random data (once per device and process), or None when none matches."""
    import torch
    import torch.nn.functional as F
    gen = np.random.default_rng(1234)
    cases = []
    for (c, h, w), size in _CALIBRATION:
        x = (gen.standard_normal((c, h, w)) * 4).astype(np.float32)
        with torch.inference_mode():
            ref = F.interpolate(torch.from_numpy(x)[None].to(device), size=size, mode="bilinear",
                                align_corners=False)[0].cpu().numpy()
        cases.append((x, size, ref))
    for src_fma in (True, False):
        for inner in COMBINES:
            for outer in COMBINES:
                how = Arithmetic(src_fma, inner, outer)
                if all(np.array_equal(emulate(x, size, how), ref) for x, size, ref in cases):
                    log.info("bilinear arithmetic on %s: %s", device, how)
                    return how
    log.warning("The bilinear interpolation of %s rounds in a way not emulated here; segmentation labels are "
                "computed with F.interpolate a few classes at a time (exact, slower).", device)
    return None


# ------------------------------------------------------------------------------ labels

def label_dtype(num_labels: int) -> np.dtype:
    return np.dtype(np.uint8) if num_labels <= 256 else np.dtype(np.uint16)


def upsample_argmax(logits: torch.Tensor, size: tuple[int, int], *, method: str = "auto") -> np.ndarray:
    """(L, h, w) logits -> the (H, W) label map that ``F.interpolate(logits[None], size, mode="bilinear",
    align_corners=False)[0].argmax(0)`` gives on the logits' device (uint8, or uint16 beyond 256 labels),
    in bounded memory. ``method``: "auto" (the cheaper exact way), "fast" (quads, the default where it
    applies) or "direct" (F.interpolate: in one call, or a few classes at a time when that would take
    more than 256 MB); "fast" falls back to "direct" where it
    cannot be exact."""
    import torch
    if logits.dim() != 3:
        raise ValueError(f"logits must be (L, h, w), got {tuple(logits.shape)}")
    num_labels, h, w = (int(s) for s in logits.shape)
    height, width = int(size[0]), int(size[1])
    device = logits.device
    if device.type == "cpu" and not reference_kernel_is_generic(num_labels, height, width):
        return _reference(logits, (height, width))
    how = arithmetic(str(device)) if method != "direct" else None
    if how is None:
        return _direct(logits, (height, width))
    values = logits.detach().float().cpu().numpy()
    if not np.isfinite(values).all():
        return _direct(logits, (height, width))
    plan = _QuadPlan(np.ascontiguousarray(values), (height, width), how)
    if method == "auto" and plan.pairs * FAST_COST > float(num_labels) * height * width:
        return _direct(logits, (height, width))
    return plan.run()


def _reference(logits: torch.Tensor, size: tuple[int, int]) -> np.ndarray:
    """transformers' own way, for the small or 3-class cases where ATen takes its channels-last kernel."""
    import torch.nn.functional as F
    up = F.interpolate(logits.float().contiguous()[None], size=size, mode="bilinear", align_corners=False)[0]
    return up.argmax(0).cpu().numpy().astype(label_dtype(logits.shape[0]))


def _direct(logits: torch.Tensor, size: tuple[int, int]) -> np.ndarray:
    """The argmax of F.interpolate's values, a few classes at a time (a running first maximum)."""
    import torch
    import torch.nn.functional as F
    num_labels = int(logits.shape[0])
    height, width = size
    if num_labels * height * width * 4 <= DIRECT_BYTES:
        return _reference(logits, size)  # all at once: exactly transformers' call
    x = logits.float().contiguous()[None]  # (1, L, h, w) contiguous: ATen's generic kernel, as transformers'
    step = max(1, min(num_labels, DIRECT_BYTES // max(1, 4 * height * width)))
    if step == 3 and torch.get_num_threads() == 1:
        step = 2  # 3 channels on one thread would take the channels-last kernel
    best = labels = None
    with torch.inference_mode():
        for start in range(0, num_labels, step):
            up = F.interpolate(x[:, start:start + step], size=size, mode="bilinear", align_corners=False)[0]
            arg = up.argmax(0)  # (H, W) the first maximum within the chunk
            top = up.max(0).values
            arg = arg + start
            if best is None:
                best, labels = top, arg
            else:
                better = top > best  # strictly: a tie keeps the lower class, as argmax does
                best = torch.where(better, top, best)
                labels = torch.where(better, arg, labels)
            del up
    return labels.cpu().numpy().astype(label_dtype(num_labels))


class _QuadPlan:
    """The fast path (see the module docstring) for one (L, h, w) logits array and output size."""

    def __init__(self, values: np.ndarray, size: tuple[int, int], how: Arithmetic) -> None:
        self.how = how
        num_labels, h, w = values.shape
        self.num_labels, self.h, self.w = num_labels, h, w
        self.height, self.width = size
        self.rows = axis_table(h, self.height, how.src_fma)  # (i0, i1, w0, w1) per output row
        self.cols = axis_table(w, self.width, how.src_fma)
        self.cells = np.ascontiguousarray(values.transpose(1, 2, 0))  # (h, w, L): a cell's classes together
        v = self.cells
        # bounds of every class over every quad of cells (i, j), (i, j+1), (i+1, j), (i+1, j+1) (edges repeat)
        hi = np.maximum(v, np.concatenate([v[:, 1:], v[:, -1:]], axis=1))  # (h, w, L) over j, j+1
        lo = np.minimum(v, np.concatenate([v[:, 1:], v[:, -1:]], axis=1))
        hi = np.maximum(hi, np.concatenate([hi[1:], hi[-1:]], axis=0))  # ... and i, i+1
        lo = np.minimum(lo, np.concatenate([lo[1:], lo[-1:]], axis=0))
        floor = lo.max(2)  # (h, w): every pixel of the quad has a class at least this high
        margin = np.float32(float(np.abs(v).max()) * MARGIN)
        self.margin = float(margin)
        self.cand = hi >= (floor - margin)[:, :, None]  # (h, w, L): who may win in the quad
        self.ncand = self.cand.sum(2)  # (h, w)
        self.sure = self.cand.argmax(2).astype(label_dtype(num_labels))  # the label where ncand == 1
        self.row_count = np.bincount(self.rows[0], minlength=h)  # output rows per quad row
        self.col_count = np.bincount(self.cols[0], minlength=w)
        self.row_start = np.concatenate([[0], np.cumsum(self.row_count)[:-1]])
        self.col_start = np.concatenate([[0], np.cumsum(self.col_count)[:-1]])
        self.unsure = (self.ncand > 1) & (self.row_count[:, None] > 0) & (self.col_count[None, :] > 0)
        qi, qj = np.nonzero(self.unsure)
        self.pairs = int((self.row_count[qi] * self.col_count[qj] * self.ncand[qi, qj]).sum())

    def run(self) -> np.ndarray:
        out = np.empty((self.height, self.width), dtype=label_dtype(self.num_labels))
        r0, c0 = self.rows[0], self.cols[0]
        band = max(1, PIXELS_PER_BAND // max(1, self.width))
        for y in range(0, self.height, band):  # the certain labels, upsampled as labels
            out[y:y + band] = self.sure[r0[y:y + band]][:, c0]
        qi, qj = np.nonzero(self.unsure)
        if qi.size:
            # quads alike in (rows, columns, candidates) are computed together as dense blocks
            ny, nx, k = self.row_count[qi], self.col_count[qj], self.ncand[qi, qj]
            key = (ny * (self.width + 1) + nx) * (self.num_labels + 1) + k
            order = np.argsort(key, kind="stable")
            bounds = np.flatnonzero(np.diff(key[order])) + 1
            for group in np.split(order, bounds):
                g0 = group[0]
                per_quad = int(ny[g0] * nx[g0] * k[g0])
                step = max(1, PAIRS_PER_CHUNK // per_quad)
                for s in range(0, group.size, step):
                    sel = group[s:s + step]
                    self._block(out, qi[sel], qj[sel], int(ny[g0]), int(nx[g0]), int(k[g0]))
        return out

    def _block(self, out: np.ndarray, qi: np.ndarray, qj: np.ndarray, ny: int, nx: int, k: int) -> None:
        """Label the pixels of G quads that all have ``ny`` x ``nx`` pixels and ``k`` candidates."""
        how = self.how
        g = qi.shape[0]
        _, cls = np.nonzero(self.cand[qi, qj])  # ascending per quad
        cls = cls.reshape(g, k)  # (G, k)
        xs = self.col_start[qj][:, None] + np.arange(nx)  # (G, nx) output columns
        ys = self.row_start[qi][:, None] + np.arange(ny)  # (G, ny) output rows
        ci0, ci1 = self.cols[0][xs][:, None, :], self.cols[1][xs][:, None, :]  # (G, 1, nx)
        cw0 = self.cols[2][xs][:, None, :].astype(np.float64)
        cw1 = self.cols[3][xs][:, None, :].astype(np.float64)
        i0 = qi[:, None, None]
        i1 = self.rows[1][self.row_start[qi]][:, None, None]  # the quad's lower row of cells
        c = cls[:, :, None]  # (G, k, 1)
        v = self.cells
        # along the width, once per (quad, class, column): the same for every row of the quad
        top = _combine64(v[i0, ci0, c].astype(np.float64), cw0, v[i0, ci1, c].astype(np.float64), cw1, how.inner)
        bottom = _combine64(v[i1, ci0, c].astype(np.float64), cw0, v[i1, ci1, c].astype(np.float64), cw1,
                            how.inner)  # (G, k, nx)
        rw0 = self.rows[2][ys][:, None, :, None].astype(np.float64)  # (G, 1, ny, 1)
        rw1 = self.rows[3][ys][:, None, :, None].astype(np.float64)
        if ny < REFINE_ROWS:
            value = _combine64(top[:, :, None, :], rw0, bottom[:, :, None, :], rw1, how.outer)  # (G, k, ny, nx)
            first = value.argmax(1)  # (G, ny, nx): the first maximum, as argmax over all classes
            labels = np.take_along_axis(cls, first.reshape(g, -1), 1).reshape(g, ny, nx)
            out[ys[:, :, None], xs[:, None, :]] = labels
            return
        # tall quads (big upsampling): a column of a quad is linear in the row weight, so the values at
        # a few rows bound the rows between them; only the segments where two classes may cross are
        # computed row by row
        seg = int(math.ceil(math.sqrt(ny)))
        ends = np.unique(np.concatenate([np.arange(0, ny, seg), [ny - 1]]))  # (E,) rows that bound segments
        at = _combine64(top[:, :, None, :], rw0[:, :, ends], bottom[:, :, None, :], rw1[:, :, ends],
                        how.outer)  # (G, k, E, nx)
        lo = np.minimum(at[:, :, :-1], at[:, :, 1:])  # (G, k, E - 1, nx) per segment
        hi = np.maximum(at[:, :, :-1], at[:, :, 1:])
        may = hi >= (lo.max(1) - self.margin)[:, None]  # (G, k, E - 1, nx)
        sure = np.take_along_axis(cls, may.argmax(1).reshape(g, -1), 1).reshape(g, ends.size - 1, nx)
        row_segment = np.minimum(np.searchsorted(ends, np.arange(ny), side="right") - 1, ends.size - 2)
        out[ys[:, :, None], xs[:, None, :]] = sure[:, row_segment, :]  # (G, ny, nx)
        gi, si, xi = np.nonzero(may.sum(1) > 1)  # the segments to compute row by row
        if gi.size:
            rows = np.minimum(ends[si][:, None] + np.arange(seg + 1), ends[si + 1][:, None])  # (m, seg + 1)
            t0, t1 = top[gi, :, xi][:, :, None], bottom[gi, :, xi][:, :, None]  # (m, k, 1)
            w0 = self.rows[2][ys[gi[:, None], rows]][:, None, :].astype(np.float64)  # (m, 1, seg + 1)
            w1 = self.rows[3][ys[gi[:, None], rows]][:, None, :].astype(np.float64)
            value = _combine64(t0, w0, t1, w1, how.outer)  # (m, k, seg + 1)
            labels = np.take_along_axis(cls[gi], value.argmax(1), 1)  # (m, seg + 1)
            out[ys[gi[:, None], rows], xs[gi, xi][:, None]] = labels


def label_counts(label_map: np.ndarray, num_labels: int) -> tuple[np.ndarray, np.ndarray]:
    """(label ids present, their pixel counts), most pixels first (ties: lower id first)."""
    import torch
    flat = torch.from_numpy(np.ascontiguousarray(label_map).reshape(-1))
    if flat.dtype != torch.uint8:  # torch.bincount takes uint8 / int64 (uint8 directly: fast on huge maps)
        flat = flat.to(torch.int64)
    counts = torch.bincount(flat, minlength=num_labels).numpy().astype(np.int64)
    present = np.flatnonzero(counts)
    order = present[np.argsort(-counts[present], kind="stable")]
    return order.astype(np.int64), counts[order]


# ------------------------------------------------------------------------------ depth

def resize_depth(depth: torch.Tensor, size: tuple[int, int]) -> np.ndarray:
    """(h, w) depth -> (H, W) float32 numpy, as post_process_depth_estimation (bicubic,
    align_corners=False)."""
    import torch.nn.functional as F
    d = F.interpolate(depth.float()[None, None], size=tuple(int(s) for s in size), mode="bicubic",
                      align_corners=False)[0, 0]  # (H, W)
    return d.cpu().numpy()
