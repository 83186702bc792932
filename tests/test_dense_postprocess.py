"""engine.processors.dense: the label map at the image's size equals F.interpolate(bilinear,
align_corners=False) + argmax exactly (ties and class boundaries included) while computing only where
two classes may meet; the emulated kernel arithmetic is bit-exact; the depth resize is transformers'."""
from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from engine.processors import dense


def reference(logits: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """transformers' post_process_semantic_segmentation with target_sizes, on one image's logits."""
    up = F.interpolate(torch.from_numpy(logits)[None], size=size, mode="bilinear", align_corners=False)
    return up[0].argmax(dim=0).numpy()


@pytest.fixture
def fast_only(monkeypatch):
    """Fail if the fast path hands the work to F.interpolate (so a test shows the fast path is exact)."""
    def refuse(*args, **kwargs):
        raise AssertionError("the fast path fell back to F.interpolate")
    monkeypatch.setattr(dense, "_direct", refuse)
    monkeypatch.setattr(dense, "_reference", refuse)


def test_the_kernels_arithmetic_is_found_on_this_machine():
    how = dense.arithmetic("cpu")
    assert how is not None, "no emulated arithmetic matches this torch build's bilinear kernel"


SHAPES = [  # (L, h, w) -> (H, W): up, down, mixed, equal sides, one-pixel sides, tall quads (refined)
    ((7, 13, 17), (97, 131)), ((5, 40, 30), (61, 77)), ((4, 32, 32), (120, 160)), ((6, 9, 11), (200, 57)),
    ((5, 16, 16), (16, 400)), ((3, 1, 9), (150, 40)), ((4, 12, 1), (90, 70)), ((8, 5, 6), (411, 389)),
    ((2, 3, 4), (300, 20)), ((9, 128, 128), (480, 640)), ((6, 20, 25), (19, 130)),
]


@pytest.mark.parametrize("shape, size", SHAPES)
def test_emulated_interpolation_is_bit_exact(shape, size):
    how = dense.arithmetic("cpu")
    if how is None or not dense.reference_kernel_is_generic(shape[0], *size):
        pytest.skip("the generic kernel is not the reference here")
    x = (np.random.default_rng(sum(shape) + sum(size)).standard_normal(shape) * 3).astype(np.float32)
    ref = F.interpolate(torch.from_numpy(x)[None], size=size, mode="bilinear", align_corners=False)[0].numpy()
    assert np.array_equal(dense.emulate(x, size, how).view(np.uint32), ref.view(np.uint32))


def _logits(kind: str, shape: tuple[int, int, int], seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    L, h, w = shape
    if kind == "normal":
        return (rng.standard_normal(shape) * 2).astype(np.float32)
    if kind == "integers":  # exact ties between classes at many cells and pixels
        return rng.integers(-2, 3, shape).astype(np.float32)
    if kind == "regions":  # large uniform regions: one class high, the others tied at 0
        x = np.zeros(shape, np.float32)
        yy, xx = np.mgrid[0:h, 0:w]
        region = ((yy * 3 // max(h, 1)) * 2 + (xx * 2 // max(w, 1))) % L
        x[region, yy, xx] = 4.0
        return x
    if kind == "near-ties":  # two classes one ulp apart everywhere (rounding decides)
        base = rng.standard_normal((h, w)).astype(np.float32)
        x = np.repeat(base[None], L, 0)
        x[1 % L] = np.nextafter(base, np.float32(np.inf))
        x[-1] = np.nextafter(base, np.float32(-np.inf))
        return x
    if kind == "equal":  # every class the same everywhere: argmax is 0 everywhere
        return np.full(shape, 0.25, np.float32)
    if kind == "smooth":  # a real model's look: smooth logits, boundaries between regions
        coarse = torch.from_numpy(rng.standard_normal((1, L, 3, 4)).astype(np.float32) * 5)
        return F.interpolate(coarse, size=(h, w), mode="bilinear", align_corners=False)[0].numpy()
    raise ValueError(kind)


KINDS = ["normal", "integers", "regions", "near-ties", "equal", "smooth"]


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("shape, size", SHAPES)
def test_fast_labels_equal_full_interpolation(kind, shape, size, fast_only):
    if not dense.reference_kernel_is_generic(shape[0], *size):
        pytest.skip("ATen's channels-last kernel here: the reference itself is used")
    x = _logits(kind, shape, seed=len(kind) + shape[1] * 7 + size[0])
    got = dense.upsample_argmax(torch.from_numpy(x), size, method="fast")
    assert got.dtype == np.uint8 and got.shape == size
    ref = reference(x, size)
    assert np.array_equal(got, ref), f"{int((got != ref).sum())} of {got.size} pixels differ"


def test_random_shapes_every_method(monkeypatch):
    """Many random shapes and logit kinds, through every path ("auto" picks fast or direct)."""
    rng = np.random.default_rng(7)
    for trial in range(40):
        L = int(rng.integers(1, 12))
        shape = (L, int(rng.integers(1, 30)), int(rng.integers(1, 30)))
        size = (int(rng.integers(1, 260)), int(rng.integers(1, 260)))
        x = _logits(KINDS[trial % len(KINDS)], shape, seed=trial)
        ref = reference(x, size)
        for method in ("auto", "fast", "direct"):
            got = dense.upsample_argmax(torch.from_numpy(x), size, method=method)
            assert np.array_equal(got, ref), (trial, method, shape, size)


def test_the_fast_path_computes_only_near_boundaries():
    x = _logits("regions", (6, 64, 64), seed=0)
    plan = dense._QuadPlan(x, (480, 640), dense.arithmetic("cpu"))
    assert plan.pairs < 0.05 * 6 * 480 * 640  # under 5% of the values F.interpolate computes
    assert np.array_equal(plan.run(), reference(x, (480, 640)))


def test_direct_fallback_in_small_class_chunks(monkeypatch):
    """The direct way (unknown arithmetic, non-finite logits) runs a few classes at a time, still exact."""
    monkeypatch.setattr(dense, "DIRECT_BYTES", 4 * 200 * 150 * 2)  # two classes per chunk
    x = _logits("integers", (7, 20, 15), seed=3)
    assert np.array_equal(dense._direct(torch.from_numpy(x), (200, 150)), reference(x, (200, 150)))


def test_non_finite_logits_follow_torch():
    x = _logits("normal", (5, 10, 12), seed=1)
    x[2, 3, 4] = np.inf
    x[0, 7, 1] = -np.inf
    assert np.array_equal(dense.upsample_argmax(torch.from_numpy(x), (90, 110)), reference(x, (90, 110)))


def test_channels_last_logits_give_the_same_labels():
    """Our model's logits may be channels-last in memory; transformers' are contiguous: same labels."""
    x = torch.from_numpy(_logits("smooth", (8, 32, 32), seed=2))
    cl = x[None].contiguous(memory_format=torch.channels_last)[0]
    assert np.array_equal(dense.upsample_argmax(cl, (130, 170)), reference(x.numpy(), (130, 170)))


def test_many_labels_give_a_16_bit_map():
    x = _logits("normal", (300, 6, 7), seed=4)
    got = dense.upsample_argmax(torch.from_numpy(x), (70, 90))
    assert got.dtype == np.uint16 and np.array_equal(got, reference(x, (70, 90)))


def test_label_counts_most_pixels_first():
    m = np.array([[2, 2, 0], [2, 5, 0]], np.uint8)
    ids, counts = dense.label_counts(m, 7)
    assert ids.tolist() == [2, 0, 5] and counts.tolist() == [3, 2, 1]
    ids, counts = dense.label_counts(m.astype(np.uint16) * 100, 600)  # 16-bit maps too
    assert ids.tolist() == [200, 0, 500] and counts.tolist() == [3, 2, 1]


def _rounded(exact: Fraction) -> np.float32:
    """The float32 nearest to ``exact`` (ties to even), from exact arithmetic."""
    f = np.float32(float(exact))
    best = None
    for c in (np.nextafter(f, np.float32(-np.inf)), f, np.nextafter(f, np.float32(np.inf))):
        d = abs(Fraction(float(c)) - exact)
        even = (np.asarray(c).view(np.uint32) & 1) == 0
        if best is None or d < best[0] or (d == best[0] and even):
            best = (d, c)
    return best[1]


def test_fma32_rounds_once():
    # a * b + c lands on a float32 midpoint in float64 but lies below it: a second rounding of the
    # float64 sum (ties to even) would go up; one rounding stays at c
    a, b, c = np.float32(1 + 2 ** -23), np.float32(2 ** -24 * (1 - 2 ** -23)), np.float32(1 + 2 ** -23)
    assert dense.fma32(np.array([a]), np.array([b]), np.array([c]))[0] == c
    assert np.float32(float(a) * float(b) + float(c)) != c  # the naive way is wrong here
    rng = np.random.default_rng(0)
    a = rng.standard_normal(2000).astype(np.float32)
    b = rng.random(2000).astype(np.float32)
    c = (rng.standard_normal(2000) * 10.0 ** rng.integers(-8, 3, 2000)).astype(np.float32)
    got = dense.fma32(a, b, c)
    want = [_rounded(Fraction(float(x)) * Fraction(float(y)) + Fraction(float(z))) for x, y, z in zip(a, b, c)]
    assert np.array_equal(got, np.array(want, np.float32))


def test_resize_depth_is_transformers_bicubic():
    d = torch.rand(24, 40) * 10
    want = F.interpolate(d[None, None], size=(117, 203), mode="bicubic", align_corners=False)[0, 0].numpy()
    got = dense.resize_depth(d, (117, 203))
    assert got.dtype == np.float32 and np.array_equal(got, want)
