"""Mask2Former against transformers: deformable attention, class and mask logits, loading."""
from __future__ import annotations

import json

import pytest
import torch

from engine.device import Placement
from engine.errors import CheckpointError
from engine.models import deformable, mask2former

CPU = Placement(torch.device("cpu"), torch.float32, "exact")


@pytest.mark.parametrize("b, q, heads, hd, shapes, points", [
    (1, 7, 2, 4, [(3, 5), (6, 10), (12, 20)], 4),
    (2, 30, 8, 32, [(4, 4), (8, 8), (16, 16)], 4),
    (1, 5, 1, 3, [(9, 2), (1, 1), (5, 17)], 2),
])
def test_deformable_attention_matches_transformers(b, q, heads, hd, shapes, points):
    from transformers.models.mask2former.modeling_mask2former import multi_scale_deformable_attention
    g = torch.Generator().manual_seed(q)
    s = sum(h * w for h, w in shapes)
    value = torch.randn(b, s, heads, hd, generator=g)
    # locations partly outside [0, 1] too: zeros padding there
    locations = torch.rand(b, q, heads, len(shapes), points, 2, generator=g) * 1.4 - 0.2
    weights = torch.rand(b, q, heads, len(shapes), points, generator=g)
    want = multi_scale_deformable_attention(value, shapes, locations, weights)
    got = deformable.deformable_attention(value, shapes, locations, weights)
    torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)


def _pair(folder):
    from transformers import Mask2FormerForUniversalSegmentation
    return mask2former.from_checkpoint(folder, CPU), Mask2FormerForUniversalSegmentation.from_pretrained(folder).eval()


@pytest.mark.parametrize("fixture, size", [("mask2former_panoptic_checkpoint", (96, 96)),
                                           ("mask2former_panoptic_checkpoint", (96, 160)),
                                           ("mask2former_panoptic_checkpoint", (75, 101)),
                                           ("mask2former_semantic_checkpoint", (64, 128)),
                                           ("mask2former_semantic_checkpoint", (70, 45))])
def test_logits_match_transformers(request, fixture, size):
    ours, theirs = _pair(request.getfixturevalue(fixture))
    x = torch.randn(1, 3, *size, generator=torch.Generator().manual_seed(size[0] * size[1]))
    with torch.inference_mode():
        want = theirs(pixel_values=x)
        got = ours(x, want_masks=True)
    torch.testing.assert_close(got.class_logits, want.class_queries_logits, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(got.mask_logits, want.masks_queries_logits, atol=1e-4, rtol=1e-4)
    assert len(got.attention_masks) == ours.config.decoder_layers - 1
    # the masks are not trivial: some queries see part of the image, and the classes differ
    assert want.class_queries_logits.std() > 0.1 and want.masks_queries_logits.std() > 0.1


def test_batch_of_two(mask2former_panoptic_checkpoint):
    ours, theirs = _pair(mask2former_panoptic_checkpoint)
    x = torch.randn(2, 3, 64, 96, generator=torch.Generator().manual_seed(5))
    with torch.inference_mode():
        want, got = theirs(pixel_values=x), ours(x)
    torch.testing.assert_close(got.mask_logits, want.masks_queries_logits, atol=1e-4, rtol=1e-4)


def test_config_variant_and_errors(mask2former_panoptic_checkpoint, mask2former_semantic_checkpoint, tmp_path):
    cfg = json.loads((mask2former_semantic_checkpoint / "config.json").read_text())
    c = mask2former.Mask2FormerConfig.from_hf(cfg)
    assert c.pre_norm and c.enforce_input_projection and c.hidden_dim == 64 and c.num_labels == 6
    with pytest.raises(CheckpointError, match="backbone_config"):
        mask2former.Mask2FormerConfig.from_hf({"model_type": "mask2former"})
    with pytest.raises(CheckpointError, match="resnet"):
        mask2former.Mask2FormerConfig.from_hf({**cfg, "backbone_config": {"model_type": "resnet"}})
    # the weights of one variant do not fit the other: the error lists the keys
    (tmp_path / "config.json").write_text(json.dumps(cfg))
    (tmp_path / "model.safetensors").write_bytes((mask2former_panoptic_checkpoint / "model.safetensors").read_bytes())
    with pytest.raises(CheckpointError, match="do not fit"):
        mask2former.from_checkpoint(tmp_path, CPU)


def test_remap_drops_training_only_keys():
    state = {"criterion.empty_weight": 0, "class_predictor.bias": 1,
             "model.pixel_level_module.encoder.encoder.layers.0.blocks.0.attention.self.key.bias": 2,
             "model.pixel_level_module.encoder.encoder.layers.0.blocks.0.attention.self.relative_position_index": 3}
    assert mask2former.remap(state) == {
        "class_predictor.bias": 1, "model.pixel_level_module.encoder.encoder.layers.0.blocks.0.attention.key.bias": 2}


def test_gelu_decoder_variant_matches_transformers(tmp_path):
    """activation_function "gelu" (the config allows relu and gelu): the decoder layers' MLP."""
    from .fixtures_mask2former import HUB_PREPROCESSOR, PANOPTIC, PANOPTIC_SWIN, build, write_hub_layout
    folder = write_hub_layout(build(20, PANOPTIC_SWIN, **{**PANOPTIC, "activation_function": "gelu"}),
                              tmp_path / "gelu", HUB_PREPROCESSOR)
    ours, theirs = _pair(folder)
    assert ours.config.activation_function == "gelu"
    x = torch.randn(1, 3, 64, 96, generator=torch.Generator().manual_seed(3))
    with torch.inference_mode():
        want, got = theirs(pixel_values=x), ours(x)
    torch.testing.assert_close(got.class_logits, want.class_queries_logits, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(got.mask_logits, want.masks_queries_logits, atol=1e-4, rtol=1e-4)
