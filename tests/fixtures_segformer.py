"""Small random-weight SegFormer semantic-segmentation checkpoints, built once per session with
transformers (dev-only), in the key layout the hub has and transformers 5 writes (``model.safetensors``,
``segformer.encoder.block.S.J.attention.self.query.weight``, ``decode_head.linear_c.S.proj.weight``,
``decode_head.batch_norm.num_batches_tracked`` ...).

* ``segformer_ade_checkpoint``        — shaped like ``nvidia/segformer-b0-finetuned-ade-512-512`` but
  smaller: 4 stages of 16/32/40/64 channels, 2 blocks each, heads 1/2/5/8, spatial reduction
  8/4/2/1, decoder 32, 12 ADE20K label names; a config.json as the hub has it (4.12-era keys) and
  the hub's legacy ``preprocessor_config.json`` (``SegformerFeatureExtractor``, ``"size": 512``,
  ``"reduce_labels": true``).
* ``segformer_cityscapes_checkpoint`` — another variant from its config alone, as the b-variants
  differ (like ``nvidia/segformer-b1-finetuned-cityscapes-1024-1024``): 24/48/72/96 channels, depths
  1/1/3/1, heads 1/2/3/4, reduction 4/2/2/1, decoder 40, the 19 Cityscapes classes; its
  preprocessor written by ``SegformerImageProcessorPil`` (1024x1024, ``do_reduce_labels`` false).
* ``segformer_bare_checkpoint``       — a ``SegformerModel`` (an encoder without decode head).

Every weight is randomised with a non-zero spread (LayerNorm gains and shifts, BatchNorm running
statistics and affine too; queries and keys scaled up so the attention is peaked), so no step is
trivially the identity and the logits vary across positions.
"""
from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

ADE_LABELS = {0: "wall", 1: "building", 2: "sky", 3: "floor", 4: "tree", 5: "ceiling", 6: "road", 7: "bed",
              8: "windowpane", 9: "grass", 10: "cabinet", 11: "sidewalk"}
CITYSCAPES_LABELS = {i: name for i, name in enumerate([
    "road", "sidewalk", "building", "wall", "fence", "pole", "traffic light", "traffic sign", "vegetation",
    "terrain", "sky", "person", "rider", "car", "truck", "bus", "train", "motorcycle", "bicycle"])}


def randomise(model, seed: int) -> None:
    """Every parameter and BatchNorm statistic random, with a spread that keeps activations O(1)."""
    import torch

    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            norm = "norm" in name  # layer_norm*, batch_norm, convolutional_layerN.1 (handled below)
            if norm and name.endswith("weight"):
                p.copy_(torch.rand(p.shape, generator=g) + 0.5)
            elif p.dim() == 1:  # biases, norm shifts
                p.copy_(torch.randn(p.shape, generator=g) * 0.2)
            else:  # linear / conv weights; queries and keys larger to peak the attention
                fan_in = math.prod(p.shape[1:])
                scale = 2.5 if any(s in name for s in (".query.", ".key.")) else 1.0
                p.copy_(torch.randn(p.shape, generator=g) * scale / math.sqrt(fan_in))
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.weight.copy_(torch.rand(m.weight.shape, generator=g) + 0.5)
                m.bias.copy_(torch.randn(m.bias.shape, generator=g) * 0.2)
                m.running_mean.copy_(torch.randn(m.running_mean.shape, generator=g) * 0.3)
                m.running_var.copy_(torch.rand(m.running_var.shape, generator=g) + 0.5)
                m.num_batches_tracked.fill_(1000)


def _segmenter(seed: int, labels: dict[int, str], head: bool = True, **kw):
    import torch
    from transformers import SegformerConfig, SegformerForSemanticSegmentation, SegformerModel

    torch.manual_seed(seed)
    config = SegformerConfig(id2label=labels, label2id={v: k for k, v in labels.items()}, **kw)
    model = (SegformerForSemanticSegmentation if head else SegformerModel)(config).eval()
    randomise(model, seed + 1)
    return model


ADE = dict(hidden_sizes=[16, 32, 40, 64], depths=[2, 2, 2, 2], num_attention_heads=[1, 2, 5, 8],
           sr_ratios=[8, 4, 2, 1], decoder_hidden_size=32)
CITYSCAPES = dict(hidden_sizes=[24, 48, 72, 96], depths=[1, 1, 3, 1], num_attention_heads=[1, 2, 3, 4],
                  sr_ratios=[4, 2, 2, 1], decoder_hidden_size=40)


@pytest.fixture(scope="session")
def segformer_ade_checkpoint(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("segformer-b0ish-ade")
    _segmenter(0, ADE_LABELS, **ADE).save_pretrained(folder)
    cfg = json.loads((folder / "config.json").read_text())
    cfg = {k: v for k, v in cfg.items() if k not in ("dtype",)}
    cfg.update({"architectures": ["SegformerForSemanticSegmentation"], "downsampling_rates": [1, 4, 8, 16],
                "image_size": 224, "torch_dtype": "float32", "transformers_version": "4.12.0.dev0",
                "id2label": {str(k): v for k, v in ADE_LABELS.items()},
                "label2id": {v: k for k, v in ADE_LABELS.items()}})
    (folder / "config.json").write_text(json.dumps(cfg, indent=2))
    (folder / "preprocessor_config.json").write_text(json.dumps({
        "do_normalize": True, "do_resize": True, "feature_extractor_type": "SegformerFeatureExtractor",
        "image_mean": [0.485, 0.456, 0.406], "image_std": [0.229, 0.224, 0.225], "reduce_labels": True,
        "resample": 2, "size": 512}, indent=2))
    return folder


@pytest.fixture(scope="session")
def segformer_cityscapes_checkpoint(tmp_path_factory) -> Path:
    from transformers import SegformerImageProcessorPil

    folder = tmp_path_factory.mktemp("segformer-b1ish-cityscapes")
    _segmenter(10, CITYSCAPES_LABELS, **CITYSCAPES).save_pretrained(folder)
    SegformerImageProcessorPil(size={"height": 1024, "width": 1024}, do_reduce_labels=False).save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def segformer_bare_checkpoint(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("segformer-bare")
    _segmenter(20, ADE_LABELS, head=False, **ADE).save_pretrained(folder)
    return folder
