"""Our DETR (engine.models.detr + resnet) against transformers' DetrForObjectDetection."""
from __future__ import annotations

import json

import pytest
import torch

from engine.errors import CheckpointError
from engine.hub import load_weights, read_json
from engine.models import detr
from engine.models.resnet import TIMM_DEPTHS, ResNetConfig, hf_to_timm


def _ours(folder):
    return detr.build(read_json(folder, "config.json"), load_weights(folder))


@pytest.fixture(scope="module")
def pixels():
    g = torch.Generator().manual_seed(3)
    return torch.randn(1, 3, 96, 128, generator=g)  # feature map 3x4


@pytest.fixture(scope="module")
def reference(detr_oracle, pixels):
    with torch.no_grad():
        return detr_oracle(pixel_values=pixels, output_attentions=True)


@pytest.mark.parametrize("layout", ["detr_checkpoint", "detr_timm_checkpoint", "detr_bin_checkpoint"])
def test_logits_and_boxes_match_transformers(layout, request, pixels, reference):
    model = _ours(request.getfixturevalue(layout))
    with torch.inference_mode():
        out = model(pixels)
    assert out.logits.shape == reference.logits.shape == (1, 12, 9)
    assert reference.pred_boxes.std() > 1e-3  # boxes vary, so the comparison means something
    torch.testing.assert_close(out.logits, reference.logits, atol=1e-4, rtol=0)
    torch.testing.assert_close(out.boxes, reference.pred_boxes, atol=1e-4, rtol=0)
    assert out.feature_size == (3, 4)


def test_channels_last_and_batch_give_the_same_outputs(detr_timm_checkpoint, pixels, reference):
    model = _ours(detr_timm_checkpoint).to(memory_format=torch.channels_last)
    batch = torch.cat([pixels, pixels]).contiguous(memory_format=torch.channels_last)
    with torch.inference_mode():
        out = model(batch)
    for i in range(2):
        torch.testing.assert_close(out.logits[i], reference.logits[0], atol=1e-4, rtol=0)


def test_cross_attention_internals_match_transformers(detr_timm_checkpoint, pixels, reference):
    model = _ours(detr_timm_checkpoint)
    with torch.inference_mode():
        out = model(pixels, want_attention=True)
    attn = out.cross_attention  # (B, Q, h, w)
    assert attn.shape == (1, 12, 3, 4)
    torch.testing.assert_close(attn.sum(dim=(-1, -2)), torch.ones(1, 12), atol=1e-5, rtol=0)
    theirs = reference.cross_attentions[-1].mean(dim=1).reshape(1, 12, 3, 4)  # last layer, mean over heads
    torch.testing.assert_close(attn, theirs, atol=1e-5, rtol=0)
    torch.testing.assert_close(out.logits, reference.logits, atol=1e-4, rtol=0)  # asking changes nothing


def test_remap_accepts_both_layouts_and_folds_batchnorm(detr_checkpoint, detr_timm_checkpoint):
    a, b = load_weights(detr_checkpoint), load_weights(detr_timm_checkpoint)
    assert any(".embedder.embedder.convolution." in k for k in a)
    assert "model.backbone.conv_encoder.model.layer1.0.downsample.0.weight" in b
    assert "model.backbone.conv_encoder.model.layer3.5.bn2.running_var" in b
    before = dict(b)
    ra, rb = detr.remap(a), detr.remap(b)
    assert b.keys() == before.keys()  # pure
    assert ra.keys() == rb.keys()
    assert "backbone.layer1.0.downsample.0.bias" in rb and "backbone.conv1.bias" in rb
    assert not any("running_" in k or "bn" in k.split(".")[-2] or "num_batches" in k for k in rb)
    for k in ra:
        torch.testing.assert_close(ra[k], rb[k], atol=0, rtol=0)


def test_hf_to_timm_names():
    assert hf_to_timm("embedder.embedder.convolution.weight") == "conv1.weight"
    assert hf_to_timm("embedder.embedder.normalization.running_mean") == "bn1.running_mean"
    assert hf_to_timm("encoder.stages.2.layers.5.layer.1.convolution.weight") == "layer3.5.conv2.weight"
    assert hf_to_timm("encoder.stages.0.layers.0.shortcut.normalization.bias") == "layer1.0.downsample.1.bias"
    assert hf_to_timm("layer1.0.conv1.weight") == "layer1.0.conv1.weight"


def test_strict_loading_names_missing_and_unexpected_keys(detr_timm_checkpoint):
    state = dict(load_weights(detr_timm_checkpoint))
    state.pop("model.decoder.layers.1.fc2.weight")
    state["model.decoder.layers.1.extra.weight"] = torch.zeros(2)
    with pytest.raises(CheckpointError) as err:
        detr.build(read_json(detr_timm_checkpoint, "config.json"), state)
    msg = str(err.value)
    assert "missing keys: decoder.layers.1.fc2.weight" in msg
    assert "unexpected keys: decoder.layers.1.extra.weight" in msg


def test_wrong_depth_for_the_backbone_name_is_reported(detr_timm_checkpoint):
    cfg = read_json(detr_timm_checkpoint, "config.json")
    cfg["backbone"] = "resnet101"  # 23 blocks in layer3, the weights have 6
    with pytest.raises(CheckpointError, match=r"missing keys: backbone\.layer3\.6\."):
        detr.build(cfg, load_weights(detr_timm_checkpoint))


def test_size_mismatch_is_a_checkpoint_error(detr_timm_checkpoint):
    cfg = read_json(detr_timm_checkpoint, "config.json")
    cfg["d_model"] = 64
    with pytest.raises(CheckpointError, match="size mismatch"):
        detr.build(cfg, load_weights(detr_timm_checkpoint))


# The real hub configs (abridged to the keys that matter, plus a few that must be ignored).
REAL_R50 = {
    "architectures": ["DetrForObjectDetection"], "model_type": "detr", "backbone": "resnet50",
    "use_timm_backbone": True, "use_pretrained_backbone": True, "backbone_config": None, "num_channels": 3,
    "d_model": 256, "encoder_layers": 6, "decoder_layers": 6, "encoder_attention_heads": 8,
    "decoder_attention_heads": 8, "encoder_ffn_dim": 2048, "decoder_ffn_dim": 2048, "num_queries": 100,
    "activation_function": "relu", "position_embedding_type": "sine", "dilation": False, "auxiliary_loss": False,
    "max_position_embeddings": 1024, "init_xavier_std": 1.0, "eos_coefficient": 0.1, "scale_embedding": False,
    "id2label": {str(i): ("N/A" if i in (0, 12, 26, 29, 30, 45, 66, 68, 69, 71, 83) else f"c{i}") for i in range(91)},
}


@pytest.mark.parametrize("name", ["resnet50", "resnet101"])
def test_real_hub_configs_build(name):
    cfg = detr.DetrConfig.from_hf({**REAL_R50, "backbone": name})
    assert cfg.backbone == ResNetConfig(TIMM_DEPTHS[name], 64, (256, 512, 1024, 2048), 3)
    assert cfg.num_labels == 91 and cfg.id2label[12] == "N/A" and cfg.num_queries == 100
    with torch.device("meta"):
        model = detr.DetrForObjectDetection(cfg)
    assert len(model.backbone.layer3) == TIMM_DEPTHS[name][2]
    assert model.input_projection.weight.shape == (256, 2048, 1, 1)
    assert model.class_labels_classifier.weight.shape == (92, 256)


def test_config_errors():
    with pytest.raises(CheckpointError, match="lacks required keys: d_model"):
        detr.DetrConfig.from_hf({k: v for k, v in REAL_R50.items() if k != "d_model"})
    with pytest.raises(CheckpointError, match="resnet18"):
        detr.DetrConfig.from_hf({**REAL_R50, "backbone": "resnet18"})
    with pytest.raises(CheckpointError, match="sine"):
        detr.DetrConfig.from_hf({**REAL_R50, "position_embedding_type": "learned"})
    with pytest.raises(CheckpointError, match="DC5"):
        detr.DetrConfig.from_hf({**REAL_R50, "dilation": True})


def test_transformers_layout_config_reads_its_resnet(detr_checkpoint):
    cfg = detr.DetrConfig.from_hf(json.loads((detr_checkpoint / "config.json").read_text()))
    assert cfg.backbone == ResNetConfig((3, 4, 6, 3), 8, (16, 32, 64, 128), 3)
    assert cfg.id2label[3] == "N/A" and cfg.num_labels == 8


# ---------------------------------------------------------------------------- padded batches

@pytest.fixture(scope="module")
def padded_batch():
    """Two images of different sizes padded bottom-right to 96x128 (feature map 3x4), as
    DetrImageProcessor.pad does (zeros after normalisation), and their pixel mask. The second
    one's padding reaches the feature map: nearest cells sample rows 0/32/64 and columns 0/32/64/96."""
    g = torch.Generator().manual_seed(5)
    pixels = torch.zeros(2, 3, 96, 128)
    mask = torch.zeros(2, 96, 128, dtype=torch.long)
    pixels[0] = torch.randn(3, 96, 128, generator=g)
    mask[0] = 1
    pixels[1, :, :50, :80] = torch.randn(3, 50, 80, generator=g)
    mask[1, :50, :80] = 1
    return pixels, mask


def test_padded_batch_matches_transformers(detr_timm_checkpoint, detr_oracle, padded_batch):
    pixels, mask = padded_batch
    model = _ours(detr_timm_checkpoint).to(memory_format=torch.channels_last)
    with torch.no_grad():
        theirs = detr_oracle(pixel_values=pixels, pixel_mask=mask, output_attentions=True)
    with torch.inference_mode():
        out = model(pixels.contiguous(memory_format=torch.channels_last), pixel_mask=mask, want_attention=True)
        alone = model(pixels[1:, :, :50, :80])  # the second image unpadded
        unmasked = model(pixels)  # the padded pixels without their mask
    torch.testing.assert_close(out.logits, theirs.logits, atol=1e-4, rtol=0)
    torch.testing.assert_close(out.boxes, theirs.pred_boxes, atol=1e-4, rtol=0)
    assert out.feature_mask.tolist() == [[[True] * 4] * 3, [[True, True, True, False]] * 2 + [[False] * 4]]
    attn = out.cross_attention  # (B, Q, h, w): padded cells get no attention, each map sums to 1
    torch.testing.assert_close(attn, theirs.cross_attentions[-1].mean(dim=1).reshape(2, 12, 3, 4), atol=1e-5, rtol=0)
    assert attn[1, :, 2, :].abs().max() == 0 and attn[1, :, :, 3].abs().max() == 0
    # the mask matters: without it the padded image's predictions are different
    assert (unmasked.logits[1] - out.logits[1]).abs().max() > 1e-2
    # the full-size image is unaffected by its neighbour's padding
    torch.testing.assert_close(out.logits[0], unmasked.logits[0], atol=1e-5, rtol=0)
    assert alone.logits.shape == (1, 12, 9)


def test_masked_positions_equal_the_plain_ones_without_padding():
    ones = torch.ones(2, 3, 5, dtype=torch.bool)
    plain = detr.sine_position_encoding(3, 5, 32, torch.device("cpu"), torch.float32)
    torch.testing.assert_close(detr.masked_sine_position_encoding(ones, 32, torch.float32), plain.expand(2, 15, 32),
                               atol=1e-6, rtol=0)
    part = ones.clone()
    part[1, 2:, :] = False
    part[1, :, 3:] = False
    pos = detr.masked_sine_position_encoding(part, 32, torch.float32).reshape(2, 3, 5, 32)
    small = detr.sine_position_encoding(2, 3, 32, torch.device("cpu"), torch.float32).reshape(2, 3, 32)
    torch.testing.assert_close(pos[1, :2, :3], small, atol=1e-6, rtol=0)  # the real part spans [0, 2π] itself
    assert detr.feature_mask(torch.ones(2, 96, 128), 3, 4) is None  # no padding: nothing to mask
    pixel_mask = torch.ones(1, 96, 128)
    pixel_mask[:, 90:] = 0  # thinner than a cell: vanishes at the feature map's resolution
    assert detr.feature_mask(pixel_mask, 3, 4) is None
