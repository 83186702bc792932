"""Our SegFormer (engine.models.segformer) against transformers' SegformerForSemanticSegmentation."""
from __future__ import annotations

import json
import shutil

import pytest
import torch

from engine.device import Placement, resolve
from engine.errors import CheckpointError, InputError
from engine.hub import load_weights
from engine.models import segformer
from engine.models.common import load_strict

LAYOUTS = ["segformer_ade_checkpoint", "segformer_cityscapes_checkpoint"]
EXACT = resolve("cpu", "exact")


@pytest.fixture(scope="module")
def oracles():
    """transformers' model per checkpoint folder, read from the same files."""
    from transformers import SegformerForSemanticSegmentation
    cache = {}

    def get(folder):
        if folder not in cache:
            cache[folder] = SegformerForSemanticSegmentation.from_pretrained(folder).eval()
        return cache[folder]
    return get


@pytest.fixture(scope="module")
def ours():
    cache = {}

    def get(folder):
        if folder not in cache:
            cache[folder] = segformer.from_checkpoint(folder, EXACT)
        return cache[folder]
    return get


def _pixels(batch: int, h: int, w: int, seed: int = 3) -> torch.Tensor:
    return torch.randn(batch, 3, h, w, generator=torch.Generator().manual_seed(seed))


def _ceil4(n: int) -> int:
    return -(-n // 4)


@pytest.mark.parametrize("batch, size", [(1, (130, 97)), (1, (512, 512)), (2, (64, 96)), (1, (33, 250))])
@pytest.mark.parametrize("layout", LAYOUTS)
def test_logits_and_scales_match_transformers(layout, batch, size, request, oracles, ours):
    folder = request.getfixturevalue(layout)
    pixels = _pixels(batch, *size)
    with torch.inference_mode():
        logits, scales = ours(folder).forward_with_internals(pixels)
        plain = ours(folder)(pixels)
        want = oracles(folder)(pixel_values=pixels, output_hidden_states=True)
    labels = ours(folder).config.num_labels
    assert logits.shape == want.logits.shape == (batch, labels, _ceil4(size[0]), _ceil4(size[1]))
    assert logits.dtype == torch.float32
    assert want.logits.std() > 0.3  # the logits vary, so the comparison means something
    assert (want.logits.argmax(1) != want.logits.argmax(1)[..., :1, :1]).any()  # not one label everywhere
    torch.testing.assert_close(logits, want.logits, atol=1e-4, rtol=0)
    torch.testing.assert_close(plain, logits, atol=0, rtol=0)
    assert len(scales) == len(want.hidden_states) == 4
    for mine, theirs in zip(scales, want.hidden_states):  # (B, C_i, h_i, w_i) at 1/4 .. 1/32
        assert mine.shape == theirs.shape
        torch.testing.assert_close(mine, theirs, atol=1e-4, rtol=0)


def test_the_config_drives_the_variant(segformer_ade_checkpoint, segformer_cityscapes_checkpoint, ours):
    ade, city = ours(segformer_ade_checkpoint), ours(segformer_cityscapes_checkpoint)
    for model, folder in ((ade, segformer_ade_checkpoint), (city, segformer_cityscapes_checkpoint)):
        cfg = json.loads((folder / "config.json").read_text())
        c = model.config
        assert c.encoder.hidden_sizes == tuple(cfg["hidden_sizes"]) and c.encoder.depths == tuple(cfg["depths"])
        assert c.encoder.sr_ratios == tuple(cfg["sr_ratios"])
        assert c.decoder_hidden_size == cfg["decoder_hidden_size"]
        enc = model.segformer.encoder
        assert [len(b) for b in enc.block] == cfg["depths"]
        for blocks, heads, sr in zip(enc.block, cfg["num_attention_heads"], cfg["sr_ratios"]):
            attn = blocks[0].attention.self
            assert attn.heads == heads and attn.sr_ratio == sr
            assert (attn.sr_patch is not None) == (sr > 1)
        assert c.num_labels == len(c.id2label) == len(cfg["id2label"])
    assert ade.config.num_labels == 12 and ade.config.id2label[2] == "sky"
    assert city.config.num_labels == 19 and city.config.id2label[13] == "car"
    assert ade.config.encoder.num_attention_heads == (1, 2, 5, 8)
    assert city.config.encoder.num_attention_heads == (1, 2, 3, 4)


def test_folding_the_decode_head_and_fusing_kernels_keep_the_answer(segformer_ade_checkpoint, ours):
    """The plain steps (no fold, no fused q/k/v, no packing, the spatial reduction as a conv) against
    the optimised model: the load-time rewrites are exact up to float rounding."""
    config = segformer.SegformerConfig.from_hf(json.loads((segformer_ade_checkpoint / "config.json").read_text()))
    plain = segformer.SegformerForSemanticSegmentation(config)
    load_strict(plain, segformer.remap(load_weights(segformer_ade_checkpoint)), "test")
    plain.eval()
    pixels = _pixels(1, 70, 45, seed=11)
    with torch.inference_mode():
        want, want_scales = plain.forward_with_internals(pixels)
        got, scales = ours(segformer_ade_checkpoint).forward_with_internals(pixels)
    assert ours(segformer_ade_checkpoint).decode_head.folded is not None and plain.decode_head.folded is None
    torch.testing.assert_close(got, want, atol=1e-4, rtol=0)
    for a, b in zip(scales, want_scales):
        torch.testing.assert_close(a, b, atol=1e-4, rtol=0)


def test_the_fused_depthwise_conv_is_checked_and_matches_the_plain_one():
    assert isinstance(segformer.fused_conv_is_exact(torch.float32), bool)
    conv = torch.nn.Conv2d(24, 24, 3, padding=1, groups=24)
    x = torch.randn(2, 9, 11, 24).permute(0, 3, 1, 2)  # (B, C, h, w) channels-last view
    with torch.inference_mode():
        for act in ("none", "tanh", "relu"):
            want = segformer.conv_act(conv, x, act, fused=False)
            if segformer.fused_conv_is_exact(torch.float32):
                torch.testing.assert_close(segformer.conv_act(conv, x, act, fused=True), want, atol=1e-5, rtol=0)


def test_remap_is_pure_and_drops_legacy_buffers(segformer_ade_checkpoint, segformer_bare_checkpoint):
    state = load_weights(segformer_ade_checkpoint)
    assert "decode_head.batch_norm.num_batches_tracked" in state  # transformers writes it, as the hub files have it
    before = dict(state)
    mapped = segformer.remap(state)
    assert state.keys() == before.keys()  # pure
    assert not [k for k in mapped if k.endswith("num_batches_tracked")]
    assert "segformer.encoder.block.0.0.attention.self.sr.weight" in mapped
    bare = segformer.remap(load_weights(segformer_bare_checkpoint))
    assert "segformer.encoder.patch_embeddings.0.proj.weight" in bare


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


def test_a_missing_weight_is_named(segformer_ade_checkpoint, tmp_path):
    dst = _copy(segformer_ade_checkpoint, tmp_path)
    _edit_weights(dst, lambda s: s.pop("segformer.encoder.block.2.1.mlp.dwconv.dwconv.weight"))
    with pytest.raises(CheckpointError,
                       match=r"missing keys: segformer\.encoder\.block\.2\.1\.mlp\.dwconv\.dwconv\.weight"):
        segformer.from_checkpoint(dst, EXACT)


def test_a_wrongly_shaped_weight_is_named(segformer_ade_checkpoint, tmp_path):
    dst = _copy(segformer_ade_checkpoint, tmp_path)

    def edit(state):
        state["decode_head.linear_c.1.proj.weight"] = torch.zeros(32, 33)
    _edit_weights(dst, edit)
    with pytest.raises(CheckpointError, match=r"size mismatch for decode_head\.linear_c\.1\.proj\.weight"):
        segformer.from_checkpoint(dst, EXACT)


def test_an_unexpected_weight_is_named(segformer_ade_checkpoint, tmp_path):
    dst = _copy(segformer_ade_checkpoint, tmp_path)

    def edit(state):
        state["decode_head.linear_c.4.proj.weight"] = torch.zeros(32, 64)
    _edit_weights(dst, edit)
    with pytest.raises(CheckpointError, match=r"unexpected keys: decode_head\.linear_c\.4\.proj\.weight"):
        segformer.from_checkpoint(dst, EXACT)


def test_weights_of_another_variant_do_not_fit(segformer_ade_checkpoint, tmp_path):
    dst = _copy(segformer_ade_checkpoint, tmp_path, sr_ratios=[8, 4, 2, 2])  # stage 4 would reduce: sr weights
    with pytest.raises(CheckpointError, match=r"missing keys: segformer\.encoder\.block\.3\.0\.attention\.self\.sr"):
        segformer.from_checkpoint(dst, EXACT)


def test_an_encoder_without_decode_head_is_refused(segformer_bare_checkpoint, tmp_path):
    with pytest.raises(CheckpointError, match="without a semantic-segmentation head"):
        segformer.from_checkpoint(segformer_bare_checkpoint, EXACT)
    dst = _copy(segformer_bare_checkpoint, tmp_path, architectures=None, num_labels=12)
    with pytest.raises(CheckpointError, match=r"missing keys: decode_head\."):
        segformer.from_checkpoint(dst, EXACT)


def test_other_models_and_incomplete_configs_are_refused(segformer_ade_checkpoint, tmp_path):
    with pytest.raises(CheckpointError, match="'glpn' model, not a SegFormer"):
        segformer.from_checkpoint(_copy(segformer_ade_checkpoint, tmp_path, model_type="glpn"), EXACT)
    with pytest.raises(CheckpointError, match="lacks required keys: sr_ratios"):
        segformer.SegformerConfig.from_hf({"hidden_sizes": [8] * 4, "depths": [1] * 4,
                                           "num_attention_heads": [1] * 4, "num_labels": 2})
    with pytest.raises(CheckpointError, match="not a multiple of its 3 attention heads"):
        segformer.SegformerConfig.from_hf({"hidden_sizes": [8] * 4, "depths": [1] * 4, "sr_ratios": [1] * 4,
                                           "num_attention_heads": [3] * 4, "num_labels": 2})
    with pytest.raises(CheckpointError, match="neither id2label nor num_labels"):
        segformer.SegformerConfig.from_hf({"hidden_sizes": [8] * 4, "depths": [1] * 4, "sr_ratios": [1] * 4,
                                           "num_attention_heads": [1] * 4})


def test_bad_input_is_an_input_error(segformer_ade_checkpoint, ours):
    model = ours(segformer_ade_checkpoint)
    with pytest.raises(InputError, match="too small"):
        model(_pixels(1, 16, 64))
    with pytest.raises(InputError, match="pixel values"):
        model(torch.zeros(1, 1, 64, 64))
    with torch.inference_mode():
        assert model(_pixels(1, 32, 32)).shape == (1, 12, 8, 8)  # the smallest size the hub's b0 takes


def test_fast_precision_runs(segformer_ade_checkpoint):
    model = segformer.from_checkpoint(segformer_ade_checkpoint, Placement(torch.device("cpu"), torch.bfloat16, "fast"))
    with torch.inference_mode():
        logits, scales = model.forward_with_internals(_pixels(1, 64, 48))
    assert logits.dtype == torch.float32 and logits.shape == (1, 12, 16, 12) and torch.isfinite(logits).all()
    assert [s.shape[1] for s in scales] == [16, 32, 40, 64]
