"""The Swin backbone against transformers' (inside Mask2Former), on inputs not divisible by the window."""
from __future__ import annotations

import pytest
import torch

from engine.models import mask2former, swin


def _pair(folder):
    from transformers import Mask2FormerForUniversalSegmentation
    from engine.device import Placement
    theirs = Mask2FormerForUniversalSegmentation.from_pretrained(folder).eval()
    ours = mask2former.from_checkpoint(folder, Placement(torch.device("cpu"), torch.float32, "exact"))
    return ours, theirs


@pytest.mark.parametrize("size", [(64, 64), (75, 101), (130, 90), (32, 224)])
def test_feature_maps_match_transformers(mask2former_panoptic_checkpoint, size):
    ours, theirs = _pair(mask2former_panoptic_checkpoint)
    x = torch.randn(1, 3, *size, generator=torch.Generator().manual_seed(sum(size)))
    with torch.inference_mode():
        want = theirs.model.pixel_level_module.encoder(x).feature_maps
        got = ours.model.pixel_level_module.encoder(x)
    assert len(got) == len(want) == 4
    for g, w in zip(got, want):
        assert g.shape == w.shape
        torch.testing.assert_close(g, w, atol=1e-4, rtol=1e-4)


def test_other_variant_from_config(mask2former_semantic_checkpoint):
    ours, theirs = _pair(mask2former_semantic_checkpoint)
    assert ours.config.backbone.window_size == 4 and ours.config.backbone.depths == (2, 1, 1, 1)
    x = torch.randn(2, 3, 70, 45, generator=torch.Generator().manual_seed(3))
    with torch.inference_mode():
        for g, w in zip(ours.model.pixel_level_module.encoder(x), theirs.model.pixel_level_module.encoder(x).feature_maps):
            torch.testing.assert_close(g, w, atol=1e-4, rtol=1e-4)


def test_remap_takes_both_layouts():
    hub = {"encoder.layers.0.blocks.0.attention.self.query.weight": 1,
           "encoder.layers.0.blocks.0.attention.self.relative_position_index": 2,
           "encoder.layers.0.blocks.0.attention.output.dense.bias": 3,
           "encoder.layers.0.blocks.0.intermediate.dense.weight": 4,
           "encoder.layers.0.blocks.0.output.dense.weight": 5}
    assert swin.remap(hub) == {"encoder.layers.0.blocks.0.attention.query.weight": 1,
                               "encoder.layers.0.blocks.0.attention.proj.bias": 3,
                               "encoder.layers.0.blocks.0.fc1.weight": 4, "encoder.layers.0.blocks.0.fc2.weight": 5}
    new = {"swin.encoder.layers.0.blocks.0.attention.q_proj.weight": 1, "swin.layernorm.weight": 0,
           "swin.encoder.layers.0.blocks.0.attention.relative_position_bias.relative_position_bias_table": 2,
           "swin.encoder.layers.0.blocks.0.mlp.fc2.bias": 3}
    assert swin.remap(new) == {"encoder.layers.0.blocks.0.attention.query.weight": 1,
                               "encoder.layers.0.blocks.0.attention.relative_position_bias_table": 2,
                               "encoder.layers.0.blocks.0.fc2.bias": 3}


def test_relative_position_index_matches_transformers():
    from transformers.models.swin.modeling_swin import SwinRelativePositionBias
    for w in (4, 7):
        assert torch.equal(swin.relative_position_index(w).flatten(),
                           SwinRelativePositionBias(2, (w, w)).relative_position_index)
