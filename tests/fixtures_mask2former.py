"""Small random-weight Mask2Former + Swin checkpoints, built once per session with transformers
(dev-only), in the key layout of ``facebook/mask2former-swin-tiny-coco-panoptic`` on the hub
(``model.pixel_level_module.encoder.encoder.layers.S.blocks.J.attention.self.query.weight``, the
``relative_position_index`` buffers, ``criterion.empty_weight``; no ``swin.layernorm``).

* ``mask2former_panoptic_checkpoint`` — Swin with 16 channels, depths 1/1/2/1, heads 1/2/2/4, window 7
  (so every map of a small image is padded to windows); pixel decoder and queries of 32 channels,
  2 deformable-attention layers, 4 decoder layers, 12 queries, 6 labels (3 things, 3 stuff); the hub's
  ``preprocessor_config.json`` shape (Mask2FormerImageProcessor, shortest edge 384 -> here 96).
* ``mask2former_semantic_checkpoint`` — another variant from its config alone: window 4, pre-norm
  decoder, input projections enforced, hidden 64.

Weights get a spread (LayerNorm gains, biases; the class head and mask embedder scaled so that a few
queries pass the thresholds) so that no step is trivially the identity.
"""
from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

LABELS = {0: "person", 1: "car", 2: "dog", 3: "sky", 4: "grass", 5: "road"}


def randomise(model, seed: int) -> None:
    import torch
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "norm" in name and name.endswith("weight") or name.endswith("_layernorm.weight"):
                p.copy_(torch.rand(p.shape, generator=g) + 0.5)
            elif p.dim() == 1:
                p.copy_(torch.randn(p.shape, generator=g) * 0.2)
            elif "relative_position_bias_table" in name or "level_embed" in name or "queries_" in name:
                p.copy_(torch.randn(p.shape, generator=g))
            else:
                fan_in = math.prod(p.shape[1:])
                scale = 2.0 if any(s in name for s in ("class_predictor", "mask_embedder", "q_proj", "k_proj")) else 1.0
                p.copy_(torch.randn(p.shape, generator=g) * scale / math.sqrt(fan_in))


def build(seed: int, swin: dict, **kw):
    import torch
    from transformers import Mask2FormerConfig, Mask2FormerForUniversalSegmentation, SwinConfig
    torch.manual_seed(seed)
    backbone = SwinConfig(out_features=["stage1", "stage2", "stage3", "stage4"], **swin)
    config = Mask2FormerConfig(backbone_config=backbone, id2label=LABELS, label2id={v: k for k, v in LABELS.items()},
                               **kw)
    model = Mask2FormerForUniversalSegmentation(config).eval()
    randomise(model, seed + 1)
    return model


def write_hub_layout(model, folder: Path, preprocessor: dict) -> Path:
    """save_pretrained, then the file as the hub has it: the Swin blocks' relative_position_index buffers
    added, the unused final Swin LayerNorm removed."""
    import torch
    from safetensors.torch import load_file, save_file
    from engine.models.swin import relative_position_index
    model.save_pretrained(folder)
    state = load_file(folder / "model.safetensors")
    state = {k: v for k, v in state.items() if ".swin.layernorm." not in k}
    window = model.config.backbone_config.window_size
    for k in list(state):
        if k.endswith("attention.self.relative_position_bias_table"):
            state[k.replace("relative_position_bias_table", "relative_position_index")] = \
                relative_position_index(window).to(torch.int64)
    save_file(state, folder / "model.safetensors", metadata={"format": "pt"})
    cfg = json.loads((folder / "config.json").read_text())
    cfg.pop("dtype", None)
    cfg.update({"torch_dtype": "float32", "transformers_version": "4.26.0.dev0"})
    (folder / "config.json").write_text(json.dumps(cfg, indent=2))
    (folder / "preprocessor_config.json").write_text(json.dumps(preprocessor, indent=2))
    return folder


PANOPTIC_SWIN = dict(embed_dim=16, depths=[1, 1, 2, 1], num_heads=[1, 2, 2, 4], window_size=7, drop_path_rate=0.3)
PANOPTIC = dict(feature_size=32, mask_feature_size=32, hidden_dim=32, encoder_feedforward_dim=64, encoder_layers=2,
                decoder_layers=4, num_attention_heads=4, dim_feedforward=64, num_queries=12)
SEMANTIC_SWIN = dict(embed_dim=12, depths=[2, 1, 1, 1], num_heads=[1, 2, 3, 3], window_size=4)
SEMANTIC = dict(feature_size=32, mask_feature_size=48, hidden_dim=64, encoder_feedforward_dim=48, encoder_layers=1,
                decoder_layers=3, num_attention_heads=2, dim_feedforward=32, num_queries=7, pre_norm=True,
                enforce_input_projection=True)
HUB_PREPROCESSOR = {
    "do_normalize": True, "do_resize": True, "ignore_index": 255, "image_processor_type": "Mask2FormerImageProcessor",
    "image_mean": [0.48500001430511475, 0.4560000002384186, 0.4059999883174896],
    "image_std": [0.2290000021457672, 0.2239999920129776, 0.22499999403953552], "num_labels": 6,
    "reduce_labels": False, "resample": 2, "size": {"shortest_edge": 96, "longest_edge": 1333},
    "size_divisor": 32}


@pytest.fixture(scope="session")
def mask2former_panoptic_checkpoint(tmp_path_factory) -> Path:
    return write_hub_layout(build(0, PANOPTIC_SWIN, **PANOPTIC), tmp_path_factory.mktemp("m2f-swin-panoptic"),
                            HUB_PREPROCESSOR)


@pytest.fixture(scope="session")
def mask2former_semantic_checkpoint(tmp_path_factory) -> Path:
    return write_hub_layout(build(10, SEMANTIC_SWIN, **SEMANTIC), tmp_path_factory.mktemp("m2f-swin-semantic"),
                            {**HUB_PREPROCESSOR, "size": {"shortest_edge": 64, "longest_edge": 128}})
