"""The object-detection task against transformers' DetrImageProcessor + DetrForObjectDetection,
plus bad inputs and engine.imageio."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from engine import load_task
from engine.device import Placement
from engine.errors import CheckpointError, InputError
from engine.io.image import read_image, to_rgb
from engine.types.vision import DetectionOptions, DetectionResult
from engine.tasks.object_detection import ObjectDetection, resize_output_size

SMALL = DetectionOptions(threshold=0.05, shortest_edge=128, longest_edge=200)


@pytest.fixture(scope="module")
def processor(detr_checkpoint):
    from transformers import DetrImageProcessorPil
    return DetrImageProcessorPil.from_pretrained(detr_checkpoint, size={"shortest_edge": 128, "longest_edge": 200})


@pytest.fixture(scope="module")
def task(detr_timm_checkpoint):
    return load_task("object-detection", str(detr_timm_checkpoint), device="cpu")


@pytest.mark.parametrize("hw", [(120, 160), (480, 640), (300, 200), (90, 500), (128, 129), (1000, 20), (77, 77)])
@pytest.mark.parametrize("edges", [(128, 200), (800, 1333), (64, 64)])
def test_output_size_matches_detr_image_processor(hw, edges):
    from transformers.image_transforms import get_size_with_aspect_ratio
    assert resize_output_size(*hw, *edges) == get_size_with_aspect_ratio(hw, edges[0], edges[1])


# One grey level of rounding difference after resizing, normalised: 1 / 255 / min(std) = 0.0175.
ONE_LEVEL = 1.0 / 255.0 / 0.224 + 1e-5


@pytest.mark.parametrize("hw", [(120, 160), (400, 600)])  # upscaled to 128 / downscaled to 128 x 192
def test_pixels_close_to_detr_image_processor(task, processor, detr_test_image, hw):
    import cv2
    image = cv2.resize(detr_test_image, (hw[1], hw[0]), interpolation=cv2.INTER_NEAREST)
    ours = task.preprocess(image, SMALL)
    theirs = processor(images=image, return_tensors="pt")["pixel_values"]
    assert ours.shape == theirs.shape
    diff = (ours.float() - theirs).abs()
    assert diff.max().item() <= ONE_LEVEL  # never more than one grey level
    assert diff.mean().item() < 0.25 * ONE_LEVEL  # and almost always exact


def _theirs(processor, oracle, pixel_values, threshold, size):
    with torch.no_grad():
        outputs = oracle(pixel_values=pixel_values)
    post = processor.post_process_object_detection(outputs, threshold=threshold, target_sizes=[size])[0]
    order = torch.argsort(post["scores"], descending=True)
    probs = outputs.logits[0].softmax(-1)[:, :-1].max(-1).values  # (Q,)
    return {k: v[order].numpy() for k, v in post.items()}, probs.numpy()


def test_detections_equal_post_process_object_detection(task, processor, detr_oracle, detr_test_image):
    """Model + postprocessing: transformers on OUR pixel values gives the same detections."""
    result = task(detr_test_image, SMALL)
    pixels = task.preprocess(detr_test_image, SMALL).float().contiguous()
    theirs, probs = _theirs(processor, detr_oracle, pixels, SMALL.threshold, (120, 160))
    assert isinstance(result, DetectionResult) and len(result) >= 5
    assert np.all(np.diff(result.scores) <= 0)  # best first
    assert np.ptp(result.scores) > 0.1 and np.min(-np.diff(result.scores)) > 1e-4  # spread, no ties
    np.testing.assert_allclose(result.scores, theirs["scores"], atol=1e-5)
    np.testing.assert_array_equal(result.label_ids, theirs["labels"])
    np.testing.assert_allclose(result.boxes, theirs["boxes"], atol=1e-3)  # pixels of 160x120
    assert result.image_size == (120, 160)
    assert result.labels == tuple(detr_oracle.config.id2label[int(i)] for i in result.label_ids)
    np.testing.assert_allclose(probs[result.query_ids], result.scores, atol=1e-5)  # which query made each box
    assert result.timings.model_ms > 0 and result.timings.total_ms >= result.timings.model_ms


def test_end_to_end_close_to_transformers_pipeline(task, processor, detr_oracle, detr_test_image):
    """With transformers' own (PIL) preprocessing: the pixel differences of at most one grey
    level move these random-weight scores by < 0.01 and boxes by < 1 px; same detections."""
    result = task(detr_test_image, SMALL)
    pixels = processor(images=detr_test_image, return_tensors="pt")["pixel_values"]
    theirs, _ = _theirs(processor, detr_oracle, pixels, SMALL.threshold, (120, 160))
    assert len(result) == len(theirs["scores"])
    np.testing.assert_array_equal(result.label_ids, theirs["labels"])
    np.testing.assert_allclose(result.scores, theirs["scores"], atol=0.01)
    np.testing.assert_allclose(result.boxes, theirs["boxes"], atol=1.0)


def test_threshold_filters_and_above(task, detr_test_image):
    everything = task(detr_test_image, DetectionOptions(threshold=0.0, shortest_edge=128, longest_edge=200))
    assert len(everything) == 12  # one per object query
    high = everything.above(0.3)
    again = task(detr_test_image, DetectionOptions(threshold=0.3, shortest_edge=128, longest_edge=200))
    np.testing.assert_array_equal(high.query_ids, again.query_ids)
    assert all(s > 0.3 for s in again.scores)


def test_internals(task, detr_test_image):
    result = task(detr_test_image, DetectionOptions(threshold=0.05, shortest_edge=128, longest_edge=200,
                                                    internals=True))
    inner = result.internals
    assert inner is not None and inner.feature_size == (4, 6)  # 128x170 / 32, rounded up
    assert inner.cross_attention.shape == (12, 4, 6) and inner.cross_attention.dtype == np.float32
    np.testing.assert_allclose(inner.cross_attention.sum(axis=(1, 2)), 1.0, atol=1e-5)
    assert inner.query_scores.shape == (12,)
    np.testing.assert_allclose(inner.query_scores[result.query_ids], result.scores, atol=1e-6)
    assert task(detr_test_image, SMALL).internals is None


def test_grayscale_and_rgba_are_converted(task, detr_test_image):
    gray = detr_test_image.mean(axis=2).astype(np.uint8)
    a = task(gray, SMALL)
    b = task(np.repeat(gray[:, :, None], 3, axis=2), SMALL)
    np.testing.assert_array_equal(a.scores, b.scores)
    rgba = np.concatenate([detr_test_image, np.full((120, 160, 1), 7, np.uint8)], axis=2)
    np.testing.assert_array_equal(task(rgba, SMALL).boxes, task(detr_test_image, SMALL).boxes)


@pytest.mark.parametrize("bad, message", [
    (np.zeros((0, 0, 3), np.uint8), "empty"),
    (np.zeros((10, 10, 3), np.float32), "uint8"),
    (np.zeros((10, 10, 5), np.uint8), "shape"),
    (np.zeros((2, 10, 10, 3), np.uint8), "shape"),
    ([[1, 2], [3, 4]], "numpy array"),
])
def test_bad_input_is_a_clear_error(task, bad, message):
    with pytest.raises(InputError, match=message):
        task(bad, SMALL)


def test_bad_options(task, detr_test_image):
    with pytest.raises(InputError, match="threshold"):
        task(detr_test_image, DetectionOptions(threshold=1.5))
    with pytest.raises(TypeError):
        task(detr_test_image, {"threshold": 0.5})


def test_default_options_come_from_the_preprocessor_config(task):
    assert task.default_options.shortest_edge == 800 and task.default_options.longest_edge == 1333


def test_not_detr_is_refused(detr_timm_checkpoint, tmp_path):
    import shutil
    shutil.copytree(detr_timm_checkpoint, tmp_path / "m", dirs_exist_ok=True)
    cfg = json.loads((tmp_path / "m" / "config.json").read_text())
    cfg["model_type"] = "vit"
    (tmp_path / "m" / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(CheckpointError, match="'vit' model; the object-detection task runs 'detr'"):
        load_task("object-detection", str(tmp_path / "m"), device="cpu")


# ---------------------------------------------------------------------------- batches of different sizes

@pytest.fixture(scope="module")
def second_image(detr_test_image):
    """A 90x200 frame: with SMALL it stays 90x200, the first becomes 128x170; padded to 128x200
    both have padding that reaches the 4x7 feature map."""
    import cv2
    return np.ascontiguousarray(cv2.resize(detr_test_image[::-1], (200, 90), interpolation=cv2.INTER_AREA))


def test_batch_pixels_and_mask_are_padded_like_detr_image_processor(task, processor, detr_test_image, second_image):
    pixels, mask = task.preprocess_batch([detr_test_image, second_image], SMALL)
    theirs = processor(images=[detr_test_image, second_image], return_tensors="pt")
    assert pixels.shape == theirs["pixel_values"].shape == (2, 3, 128, 200)
    torch.testing.assert_close(mask, theirs["pixel_mask"], atol=0, rtol=0)
    assert (pixels.float() - theirs["pixel_values"]).abs().max().item() <= ONE_LEVEL
    assert pixels[0, :, :, 170:].abs().max() == 0 and pixels[1, :, 90:, :].abs().max() == 0


def test_run_batch_equals_post_process_object_detection(task, processor, detr_oracle, detr_test_image, second_image):
    """One padded forward pass; transformers' model on OUR pixels + mask, post-processed with each
    image's ORIGINAL size (no correction for padding), gives the same detections."""
    images = [detr_test_image, second_image]
    results = task.run_batch(images, SMALL)
    pixels, mask = task.preprocess_batch(images, SMALL)
    sizes = [(120, 160), (90, 200)]
    with torch.no_grad():
        outputs = detr_oracle(pixel_values=pixels.float().contiguous(), pixel_mask=mask)
    posts = processor.post_process_object_detection(outputs, threshold=SMALL.threshold, target_sizes=sizes)
    for result, post, size in zip(results, posts, sizes):
        order = torch.argsort(post["scores"], descending=True)
        assert len(result) >= 3 and result.image_size == size
        np.testing.assert_allclose(result.scores, post["scores"][order].numpy(), atol=1e-5)
        np.testing.assert_array_equal(result.label_ids, post["labels"][order].numpy())
        np.testing.assert_allclose(result.boxes, post["boxes"][order].numpy(), atol=1e-3)
    # the padded image's detections are not those of the image alone: the mask is in play
    alone = task(second_image, SMALL)
    assert len(alone) != len(results[1]) or not np.allclose(alone.scores, results[1].scores, atol=1e-3)
    n = len(images)  # timings: each result carries an even share of the batch
    assert results[0].timings == results[1].timings and results[0].timings.model_ms > 0
    assert n * results[0].timings.total_ms > results[0].timings.model_ms


def test_run_batch_end_to_end_close_to_transformers(task, processor, detr_oracle, detr_test_image, second_image):
    """processor(images=[a, b]) + model + post_process_object_detection(target_sizes=original sizes)."""
    results = task.run_batch([detr_test_image, second_image], SMALL)
    inputs = processor(images=[detr_test_image, second_image], return_tensors="pt")
    with torch.no_grad():
        outputs = detr_oracle(pixel_values=inputs["pixel_values"], pixel_mask=inputs["pixel_mask"])
    posts = processor.post_process_object_detection(outputs, threshold=SMALL.threshold,
                                                    target_sizes=[(120, 160), (90, 200)])
    for result, post in zip(results, posts):
        order = torch.argsort(post["scores"], descending=True)
        assert len(result) == len(post["scores"])
        np.testing.assert_array_equal(result.label_ids, post["labels"][order].numpy())
        np.testing.assert_allclose(result.scores, post["scores"][order].numpy(), atol=0.01)
        np.testing.assert_allclose(result.boxes, post["boxes"][order].numpy(), atol=1.0)


def test_run_batch_of_one_equals_run(task, detr_test_image):
    options = DetectionOptions(threshold=0.05, shortest_edge=128, longest_edge=200, internals=True)
    [batched] = task.run_batch([detr_test_image], options)
    single = task(detr_test_image, options)
    np.testing.assert_array_equal(batched.boxes, single.boxes)
    np.testing.assert_array_equal(batched.scores, single.scores)
    np.testing.assert_array_equal(batched.query_ids, single.query_ids)
    assert batched.labels == single.labels and batched.image_size == single.image_size
    np.testing.assert_array_equal(batched.internals.cross_attention, single.internals.cross_attention)
    assert task.run_batch([], options) == []


def test_run_batch_internals_keep_each_image_s_own_cells(task, detr_test_image, second_image):
    options = DetectionOptions(threshold=0.05, shortest_edge=128, longest_edge=200, internals=True)
    a, b = task.run_batch([detr_test_image, second_image], options)
    assert a.internals.feature_size == (4, 6) and a.internals.cross_attention.shape == (12, 4, 6)
    assert b.internals.feature_size == (3, 7) and b.internals.cross_attention.shape == (12, 3, 7)
    for r in (a, b):  # the padding's cells had no attention, so what is kept still sums to 1
        np.testing.assert_allclose(r.internals.cross_attention.sum(axis=(1, 2)), 1.0, atol=1e-5)


def test_run_batch_bad_input(task, detr_test_image):
    with pytest.raises(InputError, match="list of images"):
        task.run_batch(detr_test_image, SMALL)
    with pytest.raises(InputError, match="uint8"):
        task.run_batch([detr_test_image, np.zeros((10, 10, 3), np.float32)], SMALL)
    with pytest.raises(InputError, match="threshold"):
        task.run_batch([detr_test_image], DetectionOptions(threshold=1.5))


def test_cli_detect_several_images(detr_timm_checkpoint, detr_test_image, second_image, tmp_path, capsys):
    import cv2

    from engine import cli
    paths = []
    for name, image in (("a.png", detr_test_image), ("b.png", second_image)):
        ok, data = cv2.imencode(".png", cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
        (tmp_path / name).write_bytes(data.tobytes())
        paths.append(str(tmp_path / name))
    common = ["--model", str(detr_timm_checkpoint), "--device", "cpu", "--threshold", "0.05", "--size", "128"]
    assert cli.main(["detect", *paths, *common, "--json"]) == 0
    blocks = json.loads(capsys.readouterr().out)
    assert [b["image"] for b in blocks] == paths and [b["size"] for b in blocks] == [[120, 160], [90, 200]]
    assert cli.main(["detect", paths[1], *common, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["size"] == [90, 200]  # one image: one object, as before
    assert cli.main(["detect", *paths, *common]) == 0
    text = capsys.readouterr().out
    assert text.count(" objects in ") == 2 and "(200x90)" in text


# ---------------------------------------------------------------------------- imageio

def test_read_image_roundtrip(tmp_path, detr_test_image):
    import cv2
    path = tmp_path / "ünïcode frame.png"
    ok, data = cv2.imencode(".png", cv2.cvtColor(detr_test_image, cv2.COLOR_RGB2BGR))
    assert ok
    path.write_bytes(data.tobytes())
    np.testing.assert_array_equal(read_image(path), detr_test_image)
    ok, data = cv2.imencode(".png", detr_test_image[:, :, 0])  # grayscale file
    (tmp_path / "gray.png").write_bytes(data.tobytes())
    gray = read_image(tmp_path / "gray.png")
    assert gray.shape == (120, 160, 3) and np.array_equal(gray[:, :, 1], detr_test_image[:, :, 0])


def test_read_image_errors(tmp_path):
    with pytest.raises(InputError, match="not found"):
        read_image(tmp_path / "nope.jpg")
    (tmp_path / "empty.png").write_bytes(b"")
    with pytest.raises(InputError, match="empty"):
        read_image(tmp_path / "empty.png")
    (tmp_path / "corrupt.jpg").write_bytes(b"\xff\xd8\xff\xe0" + bytes(range(256)) * 4)
    with pytest.raises(InputError, match="corrupt"):
        read_image(tmp_path / "corrupt.jpg")
    (tmp_path / "notes.png").write_text("this is a text file, not a picture\n")
    with pytest.raises(InputError, match="not an image"):
        read_image(tmp_path / "notes.png")
    with pytest.raises(InputError, match="not a file"):
        read_image(tmp_path)


def test_read_image_refuses_huge_images_from_the_header(tmp_path):
    import zlib
    # a valid PNG header claiming 20000 x 20000 pixels: refused before decoding
    ihdr = (20000).to_bytes(4, "big") * 2 + bytes([8, 2, 0, 0, 0])
    chunk = b"IHDR" + ihdr
    png = b"\x89PNG\r\n\x1a\n" + len(ihdr).to_bytes(4, "big") + chunk + zlib.crc32(chunk).to_bytes(4, "big")
    (tmp_path / "bomb.png").write_bytes(png)
    with pytest.raises(InputError, match="too large"):
        read_image(tmp_path / "bomb.png")


def test_to_rgb():
    assert to_rgb(np.zeros((4, 5), np.uint8)).shape == (4, 5, 3)
    assert to_rgb(np.zeros((4, 5, 1), np.uint8)).shape == (4, 5, 3)
    with pytest.raises(InputError, match="uint8"):
        to_rgb(np.zeros((4, 5, 3), np.int32))


def test_the_hubs_legacy_preprocessor_config_loads(detr_timm_checkpoint, tmp_path):
    """facebook/detr-resnet-50/101 ship the old preprocessor_config.json layout: "size": 800,
    "max_size": 1333 (a number, not a dict). It must load and set the default resize."""
    import shutil
    folder = tmp_path / "legacy"
    shutil.copytree(detr_timm_checkpoint, folder)
    (folder / "preprocessor_config.json").write_text(json.dumps({
        "do_normalize": True, "do_resize": True, "feature_extractor_type": "DetrFeatureExtractor",
        "format": "coco_detection", "image_mean": [0.485, 0.456, 0.406], "image_std": [0.229, 0.224, 0.225],
        "max_size": 700, "size": 600}))
    task = load_task("object-detection", str(folder), device="cpu")
    assert (task.default_options.shortest_edge, task.default_options.longest_edge) == (600, 700)


@pytest.mark.parametrize("pre, expected", [
    ({"size": 800, "max_size": 1333}, (800, 1333)),
    ({"size": 800}, (800, 1333)),
    ({"size": {"shortest_edge": 512, "longest_edge": 900}}, (512, 900)),
    ({"size": {"height": 800, "width": 800}}, None),
    ({}, None),
])
def test_checkpoint_resize_reads_both_layouts(pre, expected):
    from engine.tasks.object_detection import checkpoint_resize
    assert checkpoint_resize(pre) == expected


def test_a_segmentation_or_speech_checkpoint_is_named(detr_timm_checkpoint, w2v_base_ctc, tmp_path):
    import shutil
    with pytest.raises(CheckpointError, match="'wav2vec2' model; the object-detection task runs 'detr'"):
        load_task("object-detection", str(w2v_base_ctc), device="cpu")
    folder = tmp_path / "panoptic"
    shutil.copytree(detr_timm_checkpoint, folder)
    cfg = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps(dict(cfg, architectures=["DetrForSegmentation"])))
    with pytest.raises(CheckpointError, match="DetrForSegmentation checkpoint.*ObjectDetection head"):
        load_task("object-detection", str(folder), device="cpu")
