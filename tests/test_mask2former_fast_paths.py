"""The speed paths of Mask2Former + Swin, each against the plain computation it replaces (and
transformers where it has one): the Swin windows as one gather each way, the deformable attention
as one weighted gather, the load-time fusions and packing, the panoptic post-processing a few
queries at a time."""
from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from engine.device import Placement
from engine.models import deformable, mask2former, swin
from engine.models.optimize import PackedLinear, can_pack
from engine.tasks import universal_segmentation as us
from engine.types.vision import UniversalSegmentationOptions as Options

CPU = Placement(torch.device("cpu"), torch.float32, "exact")


@pytest.mark.parametrize("h, w, window, shift", [(14, 21, 7, 3), (13, 20, 7, 3), (13, 20, 7, 0), (3, 5, 7, 3),
                                                 (8, 9, 4, 2), (7, 7, 7, 3)])
def test_window_plan_is_pad_roll_partition(h, w, window, shift):
    """The gather index is the zero padding, the roll and the partition; the scatter index undoes them."""
    x = torch.randn(2, h * w, 5, generator=torch.Generator().manual_seed(h * w))
    plan = swin.window_plan(h, w, window, shift, torch.device("cpu"))
    y = F.pad(x.view(2, h, w, 5), (0, 0, 0, (-w) % window, 0, (-h) % window))
    if shift:
        y = torch.roll(y, shifts=(-shift, -shift), dims=(1, 2))
    want = swin.partition(y, window)  # (B*nW, N, C)
    padded = torch.cat([x, x.new_zeros(2, 1, 5)], dim=1) if plan.padded else x
    got = padded.index_select(1, plan.gather).view(-1, window * window, 5)
    assert torch.equal(got, want)
    assert torch.equal(got.view(2, -1, 5).index_select(1, plan.scatter), x)
    assert plan.padded == (h % window != 0 or w % window != 0) and plan.tokens == got.shape[0] * window * window // 2
    # padded with rows for the GEMM: the same windows first, then zero rows
    more = swin.window_plan(h, w, window, shift, torch.device("cpu"), rows=plan.tokens + 13)
    rows = torch.cat([x, x.new_zeros(2, 1, 5)], dim=1).index_select(1, more.gather)  # (B, tokens + 13, C)
    assert more.padded and more.tokens == plan.tokens and torch.equal(more.scatter, plan.scatter)
    assert torch.equal(rows[:, :plan.tokens], got.view(2, -1, 5)) and not rows[:, plan.tokens:].any()


@pytest.mark.parametrize("b, q, heads, hd, shapes, points", [
    (1, 40, 2, 4, [(3, 5), (6, 10), (12, 20)], 4),
    (3, 11, 4, 8, [(1, 1), (2, 7), (9, 3)], 3),
])
def test_deformable_attention_far_outside_and_on_pixel_edges(b, q, heads, hd, shapes, points):
    """Points far outside the maps (clamped onto the zero padding), on exact pixel centres and on the
    maps' borders: equal to transformers' grid_sample implementation."""
    from transformers.models.mask2former.modeling_mask2former import multi_scale_deformable_attention
    g = torch.Generator().manual_seed(q + b)
    value = torch.randn(b, sum(h * w for h, w in shapes), heads, hd, generator=g)
    loc = torch.rand(b, q, heads, len(shapes), points, 2, generator=g) * 5 - 2
    sizes = torch.tensor([[w, h] for h, w in shapes], dtype=torch.float32)[:, None]  # (L, 1, 2)
    on_grid = (torch.randint(-2, 24, loc.shape, generator=g) + 0.5) / sizes  # pixel centres, borders, beyond
    loc = torch.where(torch.rand(loc.shape, generator=g) < 0.5, on_grid, loc)
    weights = torch.rand(b, q, heads, len(shapes), points, generator=g)
    want = multi_scale_deformable_attention(value, shapes, loc, weights)
    torch.testing.assert_close(deformable.deformable_attention(value, shapes, loc, weights), want,
                               atol=1e-5, rtol=1e-5)


def _unprepared(folder):
    """Our model as loaded, without the load-time fusions and packing (the plain layers' paths)."""
    from engine.hub import load_weights, read_json
    from engine.models.common import load_strict
    from engine.models.optimize import place
    model = mask2former.Mask2FormerForUniversalSegmentation(mask2former.Mask2FormerConfig.from_hf(
        read_json(folder, "config.json")))
    load_strict(model, mask2former.remap(load_weights(folder)), "test")
    return place(model, CPU)


@pytest.mark.parametrize("fixture", ["mask2former_panoptic_checkpoint", "mask2former_semantic_checkpoint"])
def test_prepared_model_equals_the_plain_one(request, fixture):
    folder = request.getfixturevalue(fixture)
    fast, plain = mask2former.from_checkpoint(folder, CPU), _unprepared(folder)
    packed = [m for m in fast.modules() if isinstance(m, PackedLinear)]
    assert not any(isinstance(m, PackedLinear) for m in plain.modules())
    if can_pack("cpu", torch.float32):  # every linear layer packed (where this torch build has the oneDNN ops)
        assert not any(type(m) is torch.nn.Linear for m in fast.modules()) and len(packed) > 20
    x = torch.randn(2, 3, 70, 100, generator=torch.Generator().manual_seed(7))
    with torch.inference_mode():
        a, b = fast(x, want_masks=True), plain(x, want_masks=True)
    torch.testing.assert_close(a.class_logits, b.class_logits, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(a.mask_logits, b.mask_logits, atol=1e-4, rtol=1e-4)
    assert all(torch.equal(m, n) for m, n in zip(a.attention_masks, b.attention_masks))


def _confident(q: int, k: int, seed: int, labels: int = 6, h: int = 24, w: int = 32):
    """Class and mask logits of q queries of which exactly k pass threshold 0.5, masks overlapping."""
    g = torch.Generator().manual_seed(seed)
    cls = torch.randn(q, labels + 1, generator=g)
    cls[:, -1] += 8.0  # "no object" ...
    chosen = torch.randperm(q, generator=g)[:k]
    cls[chosen, -1] -= 8.0
    cls[chosen, torch.randint(0, labels, (k,), generator=g)] += 9.0  # ... except for k confident queries
    low = torch.randn(q, 1, h // 4, w // 4, generator=g) * 6
    masks = F.interpolate(low, size=(h, w), mode="bilinear", align_corners=False)[:, 0] + 1.0
    # exact ties: the kept queries share one class row and every third one the same mask, so that
    # the argmax's first-wins rule decides pixels, and a last-bit difference between two queries'
    # resized masks (another code path for some) would move them
    cls[chosen] = cls[chosen[0]].clone()
    masks[chosen] = masks[chosen[torch.arange(k) % 3]].clone()
    return cls, masks


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("q, k", [(20, 1), (20, 2), (20, 3), (20, 4), (20, 11), (20, 12), (30, 19), (30, 27),
                                  (3, 3), (3, 2), (2, 1)])
def test_panoptic_in_chunks_equals_transformers(q, k, threads):
    """Every count of kept queries (those that make torch's resize take its 3-channel path too),
    at 1 and 2 threads, on a size whose width is not a multiple of 8: the same map, bit for bit
    (every query that wins a pixel makes a segment, so the map is the per-pixel argmax)."""
    from transformers import Mask2FormerImageProcessorPil
    cls, masks = _confident(q, k, seed=q * 31 + k)
    size = (61, 203)
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        got_map, got = us.panoptic(cls, masks, size, Options(overlap_mask_area_threshold=0.0))
        out = SimpleNamespace(class_queries_logits=cls[None], masks_queries_logits=masks[None])
        r = Mask2FormerImageProcessorPil().post_process_panoptic_segmentation(
            out, overlap_mask_area_threshold=0.0, target_sizes=[size])[0]
    finally:
        torch.set_num_threads(before)
    scores, labels = cls.softmax(-1).max(-1)
    assert int(((labels != cls.shape[1] - 1) & (scores > 0.5)).sum()) == k  # the kept queries
    assert np.array_equal(got_map, r["segmentation"].numpy().astype(np.int32))
    assert [(s[0], s[1]) for s in got] == [(s["id"], s["label_id"]) for s in r["segments_info"]]
    assert len(got) >= min(k, 2)  # the queries share the pixels: the argmax decides


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("q, k", [(20, 1), (20, 3), (20, 4), (20, 11), (20, 15), (30, 27), (3, 3), (3, 2), (2, 1)])
def test_scaled_masks_are_transformers_values_bit_for_bit(q, k, threads):
    """The values the panoptic argmax compares, chunk by chunk, equal those of transformers' order of
    operations (every query resized together, then the kept ones) exactly — torch's resize of 3
    channels takes another path at 1 thread, so chunks of 3 would not."""
    cls, masks = _confident(q, k, seed=q + k)
    size = (45, 203)
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        scores, labels = cls.softmax(-1).max(-1)
        keep = (labels != cls.shape[1] - 1) & (scores > 0.5)
        full = F.interpolate(masks[None], size=us.POST_SIZE, mode="bilinear", align_corners=False)[0].sigmoid()
        want = F.interpolate(full[keep][None], size=size, mode="bilinear", align_corners=False)[0]
        want = want * scores[keep].view(-1, 1, 1)
        got = torch.cat([p for _, p in us.scaled_masks(masks, torch.nonzero(keep).flatten(), scores[keep], size)])
    finally:
        torch.set_num_threads(before)
    assert int(keep.sum()) == k and torch.equal(got, want)


def test_chunks_cover_every_query_once():
    for k in range(1, 60):
        chunks = us._chunks(k)
        assert [i for s, e in chunks for i in range(s, e)] == list(range(k))
        assert all(e - s >= 4 for s, e in chunks) or chunks == [(0, k)]


@pytest.mark.parametrize("size", [(96, 128), (64, 224), (128, 64)])
def test_attention_region_from_the_block_middles_is_bit_exact(mask2former_panoptic_checkpoint, size):
    """The masked attention's regions computed from the pixels the resize reads only: the same
    bits as resizing the whole 1/4 mask map (a 1/4 map 2, 4 and 8 times the three scales, and
    sides reduced by different factors)."""
    model = mask2former.from_checkpoint(mask2former_panoptic_checkpoint, CPU)
    g = torch.Generator().manual_seed(size[0])
    pixel_embeddings = torch.randn(2, model.config.mask_feature_size, size[0] // 4, size[1] // 4, generator=g)
    queries = torch.randn(2, model.config.num_queries, model.config.hidden_dim, generator=g)
    full = model.predict_masks(queries, pixel_embeddings)  # (B, Q, H/4, W/4)
    h4, w4 = size[0] // 4, size[1] // 4
    for small in [(h4 // f, w4 // f) for f in (2, 4, 8, 6) if h4 % f == 0 and w4 % f == 0] + [(h4 // 4, w4 // 2), (h4, w4 // 8)]:
        want = F.interpolate(full, size=small, mode="bilinear", align_corners=False)
        picked = mask2former.region_pixels(pixel_embeddings, small)
        assert picked.shape[-2:] == tuple(s * (2 if side // s >= 4 else side // s) for s, side in zip(small, (h4, w4)))
        assert torch.equal(model.attention_region(queries, picked, small), want.sigmoid() >= 0.5)
        # and the logits themselves, not only their signs
        part = model.predict_masks(queries, picked)
        assert torch.equal(F.interpolate(part, size=small, mode="bilinear", align_corners=False), want)
    assert mask2former._block_middles(24, 12, "cpu") is None and mask2former._block_middles(25, 5, "cpu") is None
    assert mask2former._block_middles(24, 3, "cpu").tolist() == [3, 4, 11, 12, 19, 20]
