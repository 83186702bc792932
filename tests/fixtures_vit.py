"""Small random-weight ViT image classifiers, built once per session with transformers (dev-only).

* ``vit_checkpoint``        — what transformers 5 writes: ``model.safetensors`` with the hub key names,
  hidden 48, 3 layers, 4 heads, 32-px images in 8-px patches (a 4x4 grid), 5 named labels, and a
  ``preprocessor_config.json`` written by ``ViTImageProcessorPil`` (``size`` 32x32).
* ``vit_p16_checkpoint``     — another variant from its config alone: 64-px images in 16-px patches,
  6 heads, no q/k/v bias, ``gelu_new``, ``layer_norm_eps`` 1e-6.
* ``vit_bin_checkpoint``     — ``vit_checkpoint``'s weights in the REAL hub layout of
  ``google/vit-base-patch16-224``: ``pytorch_model.bin`` only, an old-style config.json and a legacy
  ``preprocessor_config.json`` (``"size": 32`` as an int, ``"resample": 2``).
* ``vit_pooler_checkpoint``  — the same weights as safetensors carrying ``vit.pooler.dense.*`` and a
  ``vit.embeddings.position_ids`` buffer, as checkpoints converted with a pooler do.
* ``vit_backbone_checkpoint`` — a ``ViTModel`` without a classification head.

Every weight is randomised (LayerNorms too, queries/keys scaled up so attention is peaked, position
embeddings large so interpolating them matters), so nothing is trivially identity.
"""
from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

VIT_LABELS = {0: "tabby cat", 1: "golden retriever", 2: "espresso", 3: "volcano", 4: "bicycle"}


def _randomise(model, seed: int) -> None:
    import torch

    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "layernorm" in name and name.endswith("weight"):
                p.copy_(torch.rand(p.shape, generator=g) + 0.5)
            elif p.dim() == 1:  # biases, LayerNorm shifts
                p.copy_(torch.randn(p.shape, generator=g) * 0.2)
            elif name.endswith(("cls_token", "position_embeddings")):
                p.copy_(torch.randn(p.shape, generator=g) * 0.7)
            else:  # linear / conv weights, O(1) outputs; queries and keys larger to peak the attention
                fan_in = math.prod(p.shape[1:])
                scale = 2.5 if any(s in name for s in ("q_proj", "k_proj", ".query", ".key")) else 1.0
                p.copy_(torch.randn(p.shape, generator=g) * scale / math.sqrt(fan_in))


def _save(model, folder: Path, image_size: int) -> Path:
    from transformers import ViTImageProcessorPil

    model.save_pretrained(folder)
    ViTImageProcessorPil(size={"height": image_size, "width": image_size}).save_pretrained(folder)
    return folder


def _classifier(seed: int, **kw):
    import torch
    from transformers import ViTConfig, ViTForImageClassification

    torch.manual_seed(seed)
    config = ViTConfig(hidden_size=48, num_hidden_layers=3, intermediate_size=96, id2label=VIT_LABELS,
                       label2id={v: k for k, v in VIT_LABELS.items()}, **kw)
    model = ViTForImageClassification(config).eval()
    _randomise(model, seed + 1)
    return model


@pytest.fixture(scope="session")
def vit_checkpoint(tmp_path_factory) -> Path:
    model = _classifier(0, num_attention_heads=4, image_size=32, patch_size=8)
    return _save(model, tmp_path_factory.mktemp("vit-tiny-patch8-32"), 32)


@pytest.fixture(scope="session")
def vit_p16_checkpoint(tmp_path_factory) -> Path:
    model = _classifier(10, num_attention_heads=6, image_size=64, patch_size=16, qkv_bias=False,
                        hidden_act="gelu_new", layer_norm_eps=1e-6)
    return _save(model, tmp_path_factory.mktemp("vit-tiny-patch16-64"), 64)


def _hub_style(src: Path, dst: Path) -> dict:
    """config.json and preprocessor_config.json as google/vit-base-patch16-224 has them (older keys)."""
    cfg = json.loads((src / "config.json").read_text())
    cfg = {k: v for k, v in cfg.items() if k not in ("dtype", "pooler_act", "pooler_output_size")}
    cfg.update({"architectures": ["ViTForImageClassification"], "qkv_bias": True,
                "transformers_version": "4.13.0.dev0", "torch_dtype": "float32"})
    (dst / "config.json").write_text(json.dumps(cfg, indent=2))
    size = cfg["image_size"]
    (dst / "preprocessor_config.json").write_text(json.dumps({
        "do_normalize": True, "do_resize": True, "feature_extractor_type": "ViTFeatureExtractor",
        "image_mean": [0.5, 0.5, 0.5], "image_std": [0.5, 0.5, 0.5], "resample": 2, "size": size}, indent=2))
    return cfg


def _state(folder: Path) -> dict:
    from safetensors.torch import load_file
    return load_file(str(folder / "model.safetensors"))


@pytest.fixture(scope="session")
def vit_bin_checkpoint(vit_checkpoint, tmp_path_factory) -> Path:
    import torch

    dst = tmp_path_factory.mktemp("vit-hub-bin")
    _hub_style(vit_checkpoint, dst)
    torch.save(_state(vit_checkpoint), dst / "pytorch_model.bin")
    return dst


@pytest.fixture(scope="session")
def vit_pooler_checkpoint(vit_checkpoint, tmp_path_factory) -> Path:
    import torch
    from safetensors.torch import save_file

    dst = tmp_path_factory.mktemp("vit-hub-pooler")
    cfg = _hub_style(vit_checkpoint, dst)
    state = _state(vit_checkpoint)
    d, t = cfg["hidden_size"], 1 + (cfg["image_size"] // cfg["patch_size"]) ** 2
    g = torch.Generator().manual_seed(7)
    state["vit.pooler.dense.weight"] = torch.randn(d, d, generator=g)
    state["vit.pooler.dense.bias"] = torch.randn(d, generator=g)
    state["vit.embeddings.position_ids"] = torch.arange(t)[None]
    save_file(state, str(dst / "model.safetensors"))
    return dst


@pytest.fixture(scope="session")
def vit_backbone_checkpoint(tmp_path_factory) -> Path:
    import torch
    from transformers import ViTConfig, ViTModel

    torch.manual_seed(20)
    model = ViTModel(ViTConfig(hidden_size=48, num_hidden_layers=1, num_attention_heads=4, intermediate_size=96,
                               image_size=32, patch_size=8)).eval()
    return _save(model, tmp_path_factory.mktemp("vit-backbone"), 32)
