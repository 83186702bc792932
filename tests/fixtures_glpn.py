"""Small random-weight GLPN depth estimators, built once per session with transformers (dev-only), in
the key layout the hub has and transformers 5 writes (``glpn.encoder.block.S.J...``,
``decoder.stages.S.fusion.convolutional_layer1.0.weight``, ``head.head.0.weight``; no
``decoder.stages.3.convolution`` where the first scale already has ``decoder_hidden_size`` channels).

* ``glpn_nyu_checkpoint``   — shaped like ``vinvino02/glpn-nyu`` (MiT encoder, decoder as wide as the
  first stage, ``max_depth`` 10) but smaller: 16/32/48/64 channels, depths 1/2/2/1, heads 1/2/3/4,
  decoder 16; a 4.17-era config.json and the hub's legacy ``preprocessor_config.json``
  (``GLPNFeatureExtractor``, ``size_divisor`` 32).
* ``glpn_kitti_checkpoint`` — like ``vinvino02/glpn-kitti`` (``max_depth`` 80), another variant from its
  config alone: depths 2/1/1/1, heads 1/1/2/4, reduction 4/2/2/1, decoder 24 (every decoder stage
  then has its 1x1 convolution); preprocessor written by ``GLPNImageProcessorPil``.

Weights and BatchNorm statistics are randomised as for SegFormer (tests.fixtures_segformer.randomise),
the head's last convolution and each fusion's last one scaled up so that the depths vary widely and the
attention maps really choose (their sigmoids far from flat, not saturated).
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.fixtures_segformer import randomise

NYU = dict(hidden_sizes=[16, 32, 48, 64], depths=[1, 2, 2, 1], num_attention_heads=[1, 2, 3, 4],
           sr_ratios=[8, 4, 2, 1], decoder_hidden_size=16, max_depth=10)
KITTI = dict(hidden_sizes=[16, 32, 48, 64], depths=[2, 1, 1, 1], num_attention_heads=[1, 1, 2, 4],
             sr_ratios=[4, 2, 2, 1], decoder_hidden_size=24, max_depth=80)


def _estimator(seed: int, **kw):
    import torch
    from transformers import GLPNConfig, GLPNForDepthEstimation

    torch.manual_seed(seed)
    model = GLPNForDepthEstimation(GLPNConfig(**kw)).eval()
    randomise(model, seed + 1)
    with torch.no_grad():
        model.head.head[2].weight.mul_(4.0)
        model.head.head[2].bias.zero_()
        for stage in model.decoder.stages[1:]:  # sharper attention maps: the fusion really chooses
            stage.fusion.convolutional_layer3.weight.mul_(4.0)
    return model


@pytest.fixture(scope="session")
def glpn_nyu_checkpoint(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("glpn-nyu-small")
    _estimator(0, **NYU).save_pretrained(folder)
    cfg = json.loads((folder / "config.json").read_text())
    cfg = {k: v for k, v in cfg.items() if k not in ("dtype",)}
    cfg.update({"downsampling_rates": [1, 4, 8, 16], "fusion_hidden_size": 64, "image_size": 224,
                "torch_dtype": "float32", "transformers_version": "4.17.0.dev0"})
    (folder / "config.json").write_text(json.dumps(cfg, indent=2))
    (folder / "preprocessor_config.json").write_text(json.dumps({
        "do_rescale": True, "do_resize": True, "feature_extractor_type": "GLPNFeatureExtractor", "resample": 2,
        "size_divisor": 32}, indent=2))
    return folder


@pytest.fixture(scope="session")
def glpn_kitti_checkpoint(tmp_path_factory) -> Path:
    from transformers import GLPNImageProcessorPil

    folder = tmp_path_factory.mktemp("glpn-kitti-small")
    _estimator(10, **KITTI).save_pretrained(folder)
    GLPNImageProcessorPil().save_pretrained(folder)
    return folder
