"""Small random-weight DETR checkpoints, built once per session with transformers (dev-only).

* ``detr_checkpoint``      — what transformers writes with ``use_timm_backbone=False`` and a
  bottleneck ``ResNetConfig`` (``...conv_encoder.model.embedder.embedder.convolution.weight``).
* ``detr_timm_checkpoint`` — the same weights renamed to the REAL hub layout of
  ``facebook/detr-resnet-50`` (timm names, ``use_timm_backbone: true, backbone: "resnet50"``),
  with resnet-50 depths (3, 4, 6, 3) and tiny channel widths.
* ``detr_bin_checkpoint``  — the timm layout saved as ``pytorch_model.bin`` only.

BatchNorm statistics and the class head are randomised so that folding and scores are tested.
"""
from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest

ID2LABEL = {0: "N/A", 1: "person", 2: "bicycle", 3: "N/A", 4: "car", 5: "dog", 6: "N/A", 7: "cat"}
DEPTHS = [3, 4, 6, 3]  # timm resnet50


def hf_key_to_timm(key: str) -> str:
    """transformers-ResNet backbone key -> timm key (the hub layout), written independently of
    engine.models.resnet so the test does not check the code with itself."""
    pre = "model.backbone.conv_encoder.model."
    if not key.startswith(pre):
        return key
    rest = key[len(pre):]
    rest = rest.replace("embedder.embedder.convolution.", "conv1.").replace("embedder.embedder.normalization.", "bn1.")
    m = re.match(r"encoder\.stages\.(\d+)\.layers\.(\d+)\.(.*)$", rest)
    if m:
        stage, block, tail = int(m.group(1)), m.group(2), m.group(3)
        tail = tail.replace("shortcut.convolution.", "downsample.0.").replace("shortcut.normalization.", "downsample.1.")
        tail = re.sub(r"layer\.(\d)\.convolution\.", lambda mm: f"conv{int(mm.group(1)) + 1}.", tail)
        tail = re.sub(r"layer\.(\d)\.normalization\.", lambda mm: f"bn{int(mm.group(1)) + 1}.", tail)
        rest = f"layer{stage + 1}.{block}.{tail}"
    return pre + rest


def _hub_style_config(cfg: dict) -> dict:
    """A config.json shaped like facebook/detr-resnet-50's (timm backbone by name)."""
    out = {k: v for k, v in cfg.items() if k not in ("backbone_config", "backbone_kwargs")}
    out.update({"use_timm_backbone": True, "backbone": "resnet50", "use_pretrained_backbone": True,
                "backbone_config": None, "num_channels": 3, "dilation": False, "max_position_embeddings": 1024,
                "scale_embedding": False, "transformers_version": "4.26.0.dev0"})
    return out


@pytest.fixture(scope="session")
def detr_checkpoint(tmp_path_factory) -> Path:
    import torch
    from transformers import DetrConfig, DetrForObjectDetection, DetrImageProcessorPil, ResNetConfig

    torch.manual_seed(0)
    backbone = ResNetConfig(embedding_size=8, hidden_sizes=[16, 32, 64, 128], depths=DEPTHS,
                            layer_type="bottleneck", out_features=["stage4"])
    config = DetrConfig(use_timm_backbone=False, backbone_config=backbone, d_model=32, encoder_layers=2,
                        decoder_layers=2, encoder_ffn_dim=64, decoder_ffn_dim=64, encoder_attention_heads=4,
                        decoder_attention_heads=4, num_queries=12, id2label=ID2LABEL,
                        label2id={v: k for k, v in ID2LABEL.items()})
    model = DetrForObjectDetection(config).eval()
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for name, buf in model.named_buffers():  # frozen BatchNorm: make folding matter
            if name.endswith("running_mean"):
                buf.copy_(torch.randn(buf.shape, generator=g) * 0.1)
            elif name.endswith("running_var"):
                buf.copy_(torch.rand(buf.shape, generator=g) + 0.5)
            elif name.endswith(".weight") and "normalization" in name:
                buf.copy_(torch.rand(buf.shape, generator=g) * 0.5 + 0.75)
            elif name.endswith(".bias") and "normalization" in name:
                buf.copy_(torch.randn(buf.shape, generator=g) * 0.1)
        w = model.class_labels_classifier.weight  # spread the scores so thresholds are not knife edges
        w.copy_(torch.randn(w.shape, generator=g) * 1.5)
        model.class_labels_classifier.bias.copy_(torch.randn(w.shape[0], generator=g) * 0.5)
        # the random ResNet's features are ~250x larger than a trained one's: scale the 1x1
        # projection so the Transformer sees O(1) inputs and the queries do not all collapse
        model.model.input_projection.weight.mul_(1 / 250)
        for part in (model.model.encoder, model.model.decoder):  # init std 0.02 makes attention uniform
            for lin in part.modules():
                if isinstance(lin, torch.nn.Linear):
                    lin.weight.copy_(torch.randn(lin.weight.shape, generator=g) / lin.in_features ** 0.5)
        q = model.model.query_position_embeddings.weight  # distinct object queries
        q.copy_(torch.randn(q.shape, generator=g))
        last = model.bbox_predictor.layers[-1]  # and the boxes, so they are not all ~0.5
        last.weight.copy_(torch.randn(last.weight.shape, generator=g) * 0.3)
        last.bias.copy_(torch.randn(4, generator=g) * 0.5)
    folder = tmp_path_factory.mktemp("detr-hf")
    model.save_pretrained(folder)
    DetrImageProcessorPil().save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def detr_timm_checkpoint(detr_checkpoint, tmp_path_factory) -> Path:
    from safetensors.torch import load_file, save_file

    folder = tmp_path_factory.mktemp("detr-timm")
    state = load_file(str(detr_checkpoint / "model.safetensors"))
    renamed = {hf_key_to_timm(k): v.contiguous() for k, v in state.items()}
    # the hub file carries a legacy buffer that nothing needs
    import torch
    renamed["model.backbone.conv_encoder.model.layer1.0.downsample.1.num_batches_tracked"] = torch.tensor(0)
    save_file(renamed, str(folder / "model.safetensors"), metadata={"format": "pt"})
    cfg = json.loads((detr_checkpoint / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps(_hub_style_config(cfg), indent=2))
    shutil.copy(detr_checkpoint / "preprocessor_config.json", folder / "preprocessor_config.json")
    return folder


@pytest.fixture(scope="session")
def detr_bin_checkpoint(detr_timm_checkpoint, tmp_path_factory) -> Path:
    import torch
    from safetensors.torch import load_file

    folder = tmp_path_factory.mktemp("detr-bin")
    state = load_file(str(detr_timm_checkpoint / "model.safetensors"))
    torch.save(state, folder / "pytorch_model.bin")
    for name in ("config.json", "preprocessor_config.json"):
        shutil.copy(detr_timm_checkpoint / name, folder / name)
    return folder


@pytest.fixture(scope="session")
def detr_oracle(detr_checkpoint):
    """transformers' DetrForObjectDetection on the same weights (fp32, eval)."""
    from transformers import DetrForObjectDetection
    # eager attention so that output_attentions returns the weights
    return DetrForObjectDetection.from_pretrained(detr_checkpoint, attn_implementation="eager").eval()


@pytest.fixture(scope="session")
def detr_test_image():
    """A deterministic 120x160 RGB frame with some structure (gradients + blocks)."""
    import numpy as np
    rng = np.random.default_rng(0)
    h, w = 120, 160
    yy, xx = np.mgrid[0:h, 0:w]
    img = np.stack([xx * 255 // w, yy * 255 // h, (xx + yy) * 255 // (h + w)], axis=-1).astype(np.uint8)
    img[20:60, 30:90] = (200, 40, 40)
    img[70:110, 100:150] = (30, 180, 60)
    noise = rng.integers(0, 30, size=img.shape, dtype=np.uint8)
    return np.ascontiguousarray(img // 2 + noise)
