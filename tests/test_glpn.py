"""Our GLPN (engine.models.glpn) against transformers' GLPNForDepthEstimation."""
from __future__ import annotations

import json
import shutil

import pytest
import torch

from engine.device import Placement, resolve
from engine.errors import CheckpointError, InputError
from engine.hub import load_weights
from engine.models import glpn, segformer
from engine.models.common import load_strict

LAYOUTS = ["glpn_nyu_checkpoint", "glpn_kitti_checkpoint"]
EXACT = resolve("cpu", "exact")


def _oracle(folder):
    """transformers' model read from the same files, with a hook on each Selective Feature Fusion's
    sigmoid (transformers does not return the attention maps)."""
    from transformers import GLPNForDepthEstimation
    model = GLPNForDepthEstimation.from_pretrained(folder).eval()
    model.fusion_maps = []
    for m in model.decoder.stages:
        if m.fusion is not None:
            m.fusion.sigmoid.register_forward_hook(lambda mod, args, out: model.fusion_maps.append(out))
    return model


@pytest.fixture(scope="module")
def oracles():
    cache = {}

    def get(folder):
        if folder not in cache:
            cache[folder] = _oracle(folder)
        return cache[folder]
    return get


@pytest.fixture(scope="module")
def ours():
    cache = {}

    def get(folder):
        if folder not in cache:
            cache[folder] = glpn.from_checkpoint(folder, EXACT)
        return cache[folder]
    return get


def _pixels(batch: int, h: int, w: int, seed: int = 3) -> torch.Tensor:
    return torch.rand(batch, 3, h, w, generator=torch.Generator().manual_seed(seed))  # rescaled to [0, 1]


@pytest.mark.parametrize("batch, size", [(1, (96, 64)), (1, (160, 224)), (2, (64, 64)), (1, (32, 480))])
@pytest.mark.parametrize("layout", LAYOUTS)
def test_depth_scales_and_fusion_match_transformers(layout, batch, size, request, oracles, ours):
    folder = request.getfixturevalue(layout)
    model, oracle = ours(folder), oracles(folder)
    max_depth = model.config.max_depth
    pixels = _pixels(batch, *size)
    oracle.fusion_maps.clear()
    with torch.inference_mode():
        depth, scales, fusion = model.forward_with_internals(pixels)
        plain = model(pixels)
        want = oracle(pixel_values=pixels, output_hidden_states=True)
    assert depth.shape == want.predicted_depth.shape == (batch, *size) and depth.dtype == torch.float32
    assert want.predicted_depth.std() > 0.03 * max_depth  # the depths vary, so the comparison means something
    # the depth is a sigmoid times max_depth (10 or 80 m): compared relative to that scale, 1e-5 of it
    torch.testing.assert_close(depth, want.predicted_depth, atol=1e-5 * max_depth, rtol=0)
    torch.testing.assert_close(plain, depth, atol=0, rtol=0)
    assert len(scales) == len(want.hidden_states) == 4
    for mine, theirs in zip(scales, want.hidden_states):
        assert mine.shape == theirs.shape
        torch.testing.assert_close(mine, theirs, atol=1e-4, rtol=0)
    assert len(fusion) == len(oracle.fusion_maps) == 3
    h, w = size
    for k, (mine, theirs) in enumerate(zip(fusion, oracle.fusion_maps)):  # coarsest first: 1/16, 1/8, 1/4
        assert mine.shape == theirs.shape == (batch, 2, h // 2 ** (4 - k), w // 2 ** (4 - k))
        torch.testing.assert_close(mine, theirs, atol=1e-5, rtol=0)
    assert fusion[-1].std() > 0.05  # the maps choose, not a flat 0.5


def test_sides_not_multiples_of_32_are_an_input_error(glpn_nyu_checkpoint, ours, oracles):
    with pytest.raises(InputError, match="multiples of 32"):
        ours(glpn_nyu_checkpoint)(_pixels(1, 130, 97))
    with pytest.raises(RuntimeError), torch.inference_mode():  # transformers cannot run it either
        oracles(glpn_nyu_checkpoint)(pixel_values=_pixels(1, 130, 97))
    with pytest.raises(InputError, match="pixel values"):
        ours(glpn_nyu_checkpoint)(torch.zeros(1, 3, 64))


def test_the_config_drives_the_variant(glpn_nyu_checkpoint, glpn_kitti_checkpoint, ours):
    nyu, kitti = ours(glpn_nyu_checkpoint), ours(glpn_kitti_checkpoint)
    assert nyu.config.max_depth == 10.0 and kitti.config.max_depth == 80.0
    assert nyu.config.decoder_hidden_size == 16 and kitti.config.decoder_hidden_size == 24
    # nyu: the first scale has the decoder's width, so its stage has no 1x1 convolution (as on the hub)
    assert [s.convolution is None for s in nyu.decoder.stages] == [False, False, False, True]
    assert all(s.convolution is not None for s in kitti.decoder.stages)
    assert [s.fusion is None for s in kitti.decoder.stages] == [True, False, False, False]
    assert [len(b) for b in kitti.glpn.encoder.block] == [2, 1, 1, 1]
    assert kitti.config.encoder.sr_ratios == (4, 2, 2, 1) and nyu.config.encoder.sr_ratios == (8, 4, 2, 1)
    state = load_weights(glpn_nyu_checkpoint)
    assert "decoder.stages.3.convolution.weight" not in state
    assert "decoder.stages.0.fusion.convolutional_layer3.weight" not in state


def test_head_in_index_picks_the_decoder_output(glpn_kitti_checkpoint, tmp_path):
    """head_in_index -2: the depth at a quarter of the image's size, from the third decoder stage."""
    from transformers import GLPNForDepthEstimation

    dst = _copy(glpn_kitti_checkpoint, tmp_path, head_in_index=-2)
    model = glpn.from_checkpoint(dst, EXACT)
    oracle = GLPNForDepthEstimation.from_pretrained(dst).eval()
    pixels = _pixels(1, 64, 96)
    with torch.inference_mode():
        depth, _, fusion = model.forward_with_internals(pixels)
        want = oracle(pixel_values=pixels).predicted_depth
    assert depth.shape == want.shape == (1, 16, 24) and len(fusion) == 2
    torch.testing.assert_close(depth, want, atol=1e-5 * 80, rtol=0)


def test_folding_and_fusing_keep_the_answer(glpn_nyu_checkpoint, ours):
    """The plain steps (BatchNorm unfolded, no fused kernels or packing) against the optimised model."""
    config = glpn.GLPNConfig.from_hf(json.loads((glpn_nyu_checkpoint / "config.json").read_text()))
    plain = glpn.GLPNForDepthEstimation(config)
    load_strict(plain, glpn.remap(load_weights(glpn_nyu_checkpoint)), "test")
    plain.eval()
    pixels = _pixels(1, 64, 128, seed=9)
    with torch.inference_mode():
        want, _, want_fusion = plain.forward_with_internals(pixels)
        got, _, fusion = ours(glpn_nyu_checkpoint).forward_with_internals(pixels)
    torch.testing.assert_close(got, want, atol=1e-4, rtol=0)
    for a, b in zip(fusion, want_fusion):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=0)


def test_the_encoder_is_segformers():
    assert glpn.MixTransformerEncoder is segformer.MixTransformerEncoder


def test_remap_is_pure_and_drops_legacy_buffers(glpn_nyu_checkpoint):
    state = load_weights(glpn_nyu_checkpoint)
    assert "decoder.stages.1.fusion.convolutional_layer1.1.num_batches_tracked" in state
    before = dict(state)
    mapped = glpn.remap(state)
    assert state.keys() == before.keys()  # pure
    assert not [k for k in mapped if k.endswith("num_batches_tracked")]
    bare = glpn.remap({"encoder.layer_norm.0.weight": torch.ones(2)})
    assert list(bare) == ["glpn.encoder.layer_norm.0.weight"]


def _copy(src, tmp_path, **changes):
    dst = shutil.copytree(src, tmp_path / "ckpt")
    if changes:
        cfg = json.loads((dst / "config.json").read_text())
        cfg.update(changes)
        (dst / "config.json").write_text(json.dumps(cfg))
    return dst


def _edit_weights(folder, edit) -> None:
    from safetensors.torch import load_file, save_file
    state = load_file(str(folder / "model.safetensors"))
    edit(state)
    save_file(state, str(folder / "model.safetensors"))


def test_a_missing_weight_is_named(glpn_nyu_checkpoint, tmp_path):
    dst = _copy(glpn_nyu_checkpoint, tmp_path)
    _edit_weights(dst, lambda s: s.pop("decoder.stages.2.fusion.convolutional_layer2.1.running_var"))
    with pytest.raises(CheckpointError,
                       match=r"missing keys: decoder\.stages\.2\.fusion\.convolutional_layer2\.1\.running_var"):
        glpn.from_checkpoint(dst, EXACT)


def test_a_wrongly_shaped_weight_is_named(glpn_nyu_checkpoint, tmp_path):
    dst = _copy(glpn_nyu_checkpoint, tmp_path)

    def edit(state):
        state["head.head.0.weight"] = torch.zeros(16, 16, 5, 5)
    _edit_weights(dst, edit)
    with pytest.raises(CheckpointError, match=r"size mismatch for head\.head\.0\.weight"):
        glpn.from_checkpoint(dst, EXACT)


def test_a_decoder_width_that_does_not_fit_is_named(glpn_nyu_checkpoint, tmp_path):
    dst = _copy(glpn_nyu_checkpoint, tmp_path, decoder_hidden_size=32)  # a wider decoder than the weights'
    with pytest.raises(CheckpointError, match=r"size mismatch for decoder\.stages\.0\.convolution\.weight"):
        glpn.from_checkpoint(dst, EXACT)


def test_other_models_are_refused(glpn_nyu_checkpoint, segformer_ade_checkpoint, tmp_path):
    with pytest.raises(CheckpointError, match="'segformer' model, not a GLPN"):
        glpn.from_checkpoint(segformer_ade_checkpoint, EXACT)
    with pytest.raises(CheckpointError, match="without a depth-estimation head"):
        glpn.from_checkpoint(_copy(glpn_nyu_checkpoint, tmp_path, architectures=["GLPNModel"]), EXACT)
    with pytest.raises(CheckpointError, match="head_in_index 4"):
        glpn.GLPNConfig.from_hf({"hidden_sizes": [8] * 4, "depths": [1] * 4, "sr_ratios": [1] * 4,
                                 "num_attention_heads": [1] * 4, "head_in_index": 4})


def test_fast_precision_runs(glpn_kitti_checkpoint):
    model = glpn.from_checkpoint(glpn_kitti_checkpoint, Placement(torch.device("cpu"), torch.bfloat16, "fast"))
    with torch.inference_mode():
        depth, scales, fusion = model.forward_with_internals(_pixels(1, 64, 96))
    assert depth.dtype == torch.float32 and depth.shape == (1, 64, 96) and torch.isfinite(depth).all()
    assert 0 <= float(depth.min()) and float(depth.max()) <= 80
