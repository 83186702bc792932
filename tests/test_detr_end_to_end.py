"""A FULL-SIZE DETR-ResNet-50 (random weights, real hub layout) end to end: a PNG photo read from
disk -> ``load_task("object-detection")`` equals transformers' DetrImageProcessorPil ->
DetrForObjectDetection -> post_process_object_detection.

This is what proves the preprocessing exact: with OpenCV's resize (one grey level off on ~9% of
the pixels) this model's scores moved by up to 8e-3; with Pillow-exact resampling the pixel values
are identical and what is left is the fp32 noise of two implementations of the same network.
"""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from engine import load_task
from engine.types.vision import DetectionOptions

from .fixtures_detr import _hub_style_config, hf_key_to_timm

pytestmark = pytest.mark.slow


def _coco_like_labels() -> dict[int, str]:
    """91 ids with "N/A" gaps, as facebook/detr-resnet-50's id2label."""
    gaps = {0, 12, 26, 29, 30, 45, 66, 68, 69, 71, 83}
    return {i: ("N/A" if i in gaps else f"class {i}") for i in range(91)}


def _spread_random_weights(model, calibration: torch.Tensor) -> None:
    """Random init makes every object query predict the same thing (uniform attention over a
    25x34 feature map). Make them differ: random frozen-BatchNorm statistics (so folding matters),
    O(1) inputs to the Transformer, distinct queries with sharper cross-attention, spread boxes
    and scores (``calibration``: pixel values of a typical input)."""
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for name, buf in model.named_buffers():
            if name.endswith("running_mean"):
                buf.copy_(torch.randn(buf.shape, generator=g) * 0.1)
            elif name.endswith("running_var"):
                buf.copy_(torch.rand(buf.shape, generator=g) + 0.5)
            elif name.endswith(".weight") and "normalization" in name:
                buf.copy_(torch.rand(buf.shape, generator=g) * 0.5 + 0.75)
            elif name.endswith(".bias") and "normalization" in name:
                buf.copy_(torch.randn(buf.shape, generator=g) * 0.1)
        seen = {}
        hook = model.model.input_projection.register_forward_hook(lambda m, i, o: seen.update(std=i[0].std().item()))
        model(pixel_values=torch.randn(1, 3, 256, 256, generator=g))
        hook.remove()
        model.model.input_projection.weight.mul_(1.0 / seen["std"])  # ResNet-50 features ~240x too large
        for part in (model.model.encoder, model.model.decoder):
            for lin in part.modules():
                if isinstance(lin, torch.nn.Linear):
                    lin.weight.copy_(torch.randn(lin.weight.shape, generator=g) / lin.in_features ** 0.5)
        for layer in model.model.decoder.layers:  # queries look at different places
            layer.encoder_attn.q_proj.weight.mul_(6.0)
            layer.encoder_attn.k_proj.weight.mul_(6.0)
        q = model.model.query_position_embeddings.weight
        q.copy_(torch.randn(q.shape, generator=g))
        last = model.bbox_predictor.layers[-1]
        last.weight.copy_(torch.randn(last.weight.shape, generator=g) * 0.3)
        last.bias.copy_(torch.randn(4, generator=g) * 0.5)
        # class head on what differs between the queries (their shared part cancelled by the bias),
        # scaled so the logits spread over a few units: scores spread over (0, 1), not all ~1
        seen = {}
        head = model.class_labels_classifier
        hook = head.register_forward_hook(lambda m, i, o: seen.update(h=i[0][-1, 0] if i[0].dim() == 4 else i[0][0]))
        model(pixel_values=calibration)
        hook.remove()
        hidden = seen["h"]  # (queries, d_model) of the last decoder layer
        centred = hidden - hidden.mean(0)
        w = torch.randn(head.weight.shape, generator=g)
        w *= 2.5 / (centred @ w.T).std()
        head.weight.copy_(w)
        head.bias.copy_(-(hidden.mean(0) @ w.T) + torch.randn(w.shape[0], generator=g) * 0.5)


@pytest.fixture(scope="module")
def full_detr(tmp_path_factory, photo_png):
    """(transformers model, its DetrImageProcessorPil, hub-layout folder for the engine)."""
    from PIL import Image
    from safetensors.torch import load_file, save_file
    from transformers import DetrConfig, DetrForObjectDetection, DetrImageProcessorPil, ResNetConfig

    torch.manual_seed(0)
    labels = _coco_like_labels()
    backbone = ResNetConfig(embedding_size=64, hidden_sizes=[256, 512, 1024, 2048], depths=[3, 4, 6, 3],
                            layer_type="bottleneck", out_features=["stage4"])
    config = DetrConfig(use_timm_backbone=False, backbone_config=backbone, d_model=256, encoder_layers=6,
                        decoder_layers=6, encoder_ffn_dim=2048, decoder_ffn_dim=2048, encoder_attention_heads=8,
                        decoder_attention_heads=8, num_queries=100, id2label=labels,
                        label2id={v: k for k, v in labels.items()})
    model = DetrForObjectDetection(config).eval()
    small = DetrImageProcessorPil(size={"shortest_edge": 400, "longest_edge": 667})
    calibration = small(images=Image.open(photo_png).convert("RGB"), return_tensors="pt")["pixel_values"]
    _spread_random_weights(model, calibration)
    hf = tmp_path_factory.mktemp("detr-r50-hf")
    model.save_pretrained(hf)
    processor = DetrImageProcessorPil()
    processor.save_pretrained(hf)

    hub = tmp_path_factory.mktemp("detr-r50-hub")
    state = load_file(str(hf / "model.safetensors"))
    save_file({hf_key_to_timm(k): v.contiguous() for k, v in state.items()}, str(hub / "model.safetensors"),
              metadata={"format": "pt"})
    del state
    (hub / "config.json").write_text(json.dumps(_hub_style_config(json.loads((hf / "config.json").read_text()))))
    (hub / "preprocessor_config.json").write_text((hf / "preprocessor_config.json").read_text())
    return model, DetrImageProcessorPil.from_pretrained(hf), hub


@pytest.fixture(scope="module")
def photo_png(tmp_path_factory):
    """A 640x480 photo-like PNG: smooth gradients, soft-edged shapes, a little sensor noise."""
    import cv2
    h, w = 480, 640
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    sky = np.stack([90 + 80 * yy / h, 130 + 60 * yy / h, 200 - 50 * yy / h], axis=-1)
    ground = np.stack([70 + 40 * xx / w, 120 - 30 * yy / h, 60 + 20 * np.sin(xx / 37)], axis=-1)
    image = np.where((yy > 300 + 20 * np.sin(xx / 90))[..., None], ground, sky)
    cv2.circle(image, (180, 210), 70, (220, 50, 40), -1, lineType=cv2.LINE_AA)
    cv2.rectangle(image, (360, 140), (560, 330), (40, 170, 70), -1, lineType=cv2.LINE_AA)
    cv2.ellipse(image, (470, 390), (90, 35), 15, 0, 360, (240, 230, 90), -1, lineType=cv2.LINE_AA)
    image = cv2.GaussianBlur(image, (0, 0), 1.2)
    image += np.random.default_rng(0).normal(0, 3, image.shape).astype(np.float32)
    rgb = image.clip(0, 255).astype(np.uint8)
    path = tmp_path_factory.mktemp("photo") / "photo.png"
    assert cv2.imwrite(str(path), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    return path


@pytest.fixture(scope="module")
def engine_task(full_detr):
    return load_task("object-detection", str(full_detr[2]), device="cpu")


@pytest.fixture(scope="module")
def oracle_run(full_detr, photo_png):
    """transformers end to end on the same file (read with Pillow, as a user of theirs would)."""
    from PIL import Image
    model, processor, _ = full_detr
    image = Image.open(photo_png).convert("RGB")
    inputs = processor(images=image, return_tensors="pt")
    with torch.no_grad():
        outputs = model(**inputs)
    return np.asarray(image), inputs, outputs


def _threshold_in_a_gap(scores: np.ndarray) -> float:
    """Midpoint of the widest gap between consecutive best scores (ranks 3..25): kept set stable."""
    s = np.sort(scores)[::-1][:26]
    gaps = s[2:-1] - s[3:]
    i = 2 + int(np.argmax(gaps))
    assert s[i] - s[i + 1] > 2e-3, "no clear gap in the random model's scores"
    return float((s[i] + s[i + 1]) / 2)


def test_pixels_are_identical_to_detr_image_processor(engine_task, oracle_run, photo_png):
    from engine.io.image import read_image
    frame = read_image(photo_png)  # OpenCV decode
    theirs_image, inputs, _ = oracle_run
    assert np.array_equal(frame, theirs_image)  # lossless: the same pixels reach both
    assert (engine_task.default_options.shortest_edge, engine_task.default_options.longest_edge) == (800, 1333)
    ours = engine_task.preprocess(frame, engine_task.default_options)
    assert ours.shape == inputs["pixel_values"].shape == (1, 3, 800, 1066)
    assert torch.equal(ours.float().contiguous(), inputs["pixel_values"])  # bit for bit


def test_detections_equal_transformers_end_to_end(engine_task, full_detr, oracle_run, photo_png):
    from engine.io.image import read_image
    _, processor, _ = full_detr
    _, _, outputs = oracle_run
    probs = outputs.logits[0].softmax(-1)[:, :-1].max(-1).values.numpy()  # (100,) best real class per query
    threshold = _threshold_in_a_gap(probs)
    post = processor.post_process_object_detection(outputs, threshold=threshold, target_sizes=[(480, 640)])[0]
    order = torch.argsort(post["scores"], descending=True)
    theirs = {k: v[order].numpy() for k, v in post.items()}

    result = engine_task(read_image(photo_png), DetectionOptions(threshold=threshold))
    assert len(result) == len(theirs["scores"]) >= 3
    np.testing.assert_array_equal(result.label_ids, theirs["labels"])
    np.testing.assert_allclose(result.scores, theirs["scores"], atol=1e-4, rtol=0)
    np.testing.assert_allclose(result.boxes, theirs["boxes"], atol=0.01, rtol=0)  # pixels of 640x480
    np.testing.assert_allclose(probs[result.query_ids], result.scores, atol=1e-4)  # the same queries
    assert result.image_size == (480, 640)
