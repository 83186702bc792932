"""Small random-weight ConvNeXT checkpoints, built once per session with transformers (dev-only).

* ``convnext_checkpoint``         — what transformers 5 writes (``model.safetensors``), hidden sizes
  8/16/24/32, depths 1/1/2/1, layer scale, 5 named labels, a 64x64 image processor.
* ``convnext_noscale_checkpoint`` — ``layer_scale_init_value: 0`` (no gamma) and depths 2/1/3/1.
* ``convnext_hub_checkpoint``     — the first one's weights in the REAL hub layout of
  ``facebook/convnext-tiny-224``'s older files: ``pytorch_model.bin`` only, a 4.17-era config.json
  and a legacy ``preprocessor_config.json`` (``"size": 64`` as an int, ``crop_pct``, ``resample: 3``).
* ``convnext_bare_checkpoint``    — a ``ConvNextModel`` (no classification head).

Layer scales, LayerNorm weights and biases and the classifier are randomised: the init values
(gamma 1e-6, LayerNorm 1/0) would hide errors in exactly those places.
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest

ID2LABEL = {0: "tabby cat", 1: "golden retriever", 2: "goldfish", 3: "teapot", 4: "volcano"}
SIZES = [8, 16, 24, 32]


def _randomise(model, seed: int) -> None:
    import torch
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("layer_scale_parameter"):
                p.copy_(torch.rand(p.shape, generator=g) * 0.9 + 0.1)
            elif ("layernorm" in name or "downsampling_layer.0" in name) and name.endswith(".weight"):
                p.copy_(torch.rand(p.shape, generator=g) * 0.8 + 0.6)
            elif ("layernorm" in name or "downsampling_layer.0" in name) and name.endswith(".bias"):
                p.copy_(torch.randn(p.shape, generator=g) * 0.2)
            elif name.startswith("classifier."):
                p.copy_(torch.randn(p.shape, generator=g))


def _build(tmp_path_factory, name: str, seed: int, head: bool = True, **kwargs) -> Path:
    import torch
    from transformers import ConvNextConfig, ConvNextForImageClassification, ConvNextImageProcessorPil, ConvNextModel

    torch.manual_seed(seed)
    config = ConvNextConfig(num_channels=3, patch_size=4, image_size=64, id2label=ID2LABEL,
                            label2id={v: k for k, v in ID2LABEL.items()}, **kwargs)
    model = (ConvNextForImageClassification if head else ConvNextModel)(config).eval()
    _randomise(model, seed + 100)
    folder = tmp_path_factory.mktemp(name)
    model.save_pretrained(folder)
    ConvNextImageProcessorPil(size={"shortest_edge": 64}, crop_pct=0.875).save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def convnext_checkpoint(tmp_path_factory) -> Path:
    return _build(tmp_path_factory, "convnext-hf", 0, hidden_sizes=SIZES, depths=[1, 1, 2, 1],
                  layer_scale_init_value=1e-6)


@pytest.fixture(scope="session")
def convnext_noscale_checkpoint(tmp_path_factory) -> Path:
    return _build(tmp_path_factory, "convnext-noscale", 1, hidden_sizes=SIZES, depths=[2, 1, 3, 1],
                  layer_scale_init_value=0.0)


@pytest.fixture(scope="session")
def convnext_bare_checkpoint(tmp_path_factory) -> Path:
    return _build(tmp_path_factory, "convnext-bare", 2, head=False, hidden_sizes=SIZES, depths=[1, 1, 1, 1])


@pytest.fixture(scope="session")
def convnext_hub_checkpoint(convnext_checkpoint, tmp_path_factory) -> Path:
    """``convnext_checkpoint``'s weights laid out like facebook/convnext-tiny-224 on the hub."""
    import torch
    from safetensors.torch import load_file

    folder = tmp_path_factory.mktemp("convnext-hub")
    state = load_file(str(convnext_checkpoint / "model.safetensors"))
    torch.save(state, folder / "pytorch_model.bin")
    config = {  # the shape of the hub file (transformers 4.17), tiny sizes
        "architectures": ["ConvNextForImageClassification"],
        "depths": [1, 1, 2, 1],
        "drop_path_rate": 0.0,
        "hidden_act": "gelu",
        "hidden_sizes": SIZES,
        "id2label": {str(k): v for k, v in ID2LABEL.items()},
        "image_size": 64,
        "initializer_range": 0.02,
        "label2id": {v: str(k) for k, v in ID2LABEL.items()},
        "layer_norm_eps": 1e-12,
        "layer_scale_init_value": 1e-06,
        "model_type": "convnext",
        "num_channels": 3,
        "num_stages": 4,
        "patch_size": 4,
        "torch_dtype": "float32",
        "transformers_version": "4.17.0.dev0",
    }
    (folder / "config.json").write_text(json.dumps(config, indent=2))
    preprocessor = {
        "crop_pct": 0.875,
        "do_normalize": True,
        "do_resize": True,
        "feature_extractor_type": "ConvNextFeatureExtractor",
        "image_mean": [0.485, 0.456, 0.406],
        "image_std": [0.229, 0.224, 0.225],
        "resample": 3,
        "size": 64,
    }
    (folder / "preprocessor_config.json").write_text(json.dumps(preprocessor, indent=2))
    return folder
