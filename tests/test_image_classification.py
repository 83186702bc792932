"""The image-classification task (ViT and ConvNeXT) against transformers' pipeline end to end, from
the same image file, on random-weight checkpoints in the real hub layouts; the CLI command."""
from __future__ import annotations

import json

import numpy as np
import pytest

from engine import ClassificationOptions, CheckpointError, InputError, load_task


@pytest.fixture(scope="module")
def photo_file(tmp_path_factory):
    """A camera-like 4:3 PNG (smooth gradients and hard edges, so resampling differences would show)."""
    import cv2
    h, w = 120, 160
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    img = np.stack([128 + 100 * np.sin(x / 9.0), 128 + 90 * np.cos(y / 7.0), (x + y) / (h + w) * 255], -1)
    img[30:70, 50:90] = (230, 40, 40)
    img = np.clip(img, 0, 255).astype(np.uint8)
    path = tmp_path_factory.mktemp("photos") / "photo.png"
    cv2.imwrite(str(path), cv2.cvtColor(img, cv2.COLOR_RGB2BGR))
    return path


def _pipeline(folder):
    import transformers
    from transformers import pipeline
    pre = json.loads((folder / "preprocessor_config.json").read_text())
    kind = pre.get("image_processor_type") or pre.get("feature_extractor_type", "").replace("FeatureExtractor",
                                                                                          "ImageProcessor")
    kind = kind.replace("Fast", "")
    cls = getattr(transformers, kind + "Pil", None) or getattr(transformers, kind)
    return pipeline("image-classification", model=str(folder), image_processor=cls.from_pretrained(folder),
                    device="cpu")


CHECKPOINTS = ["vit_checkpoint", "vit_bin_checkpoint", "vit_pooler_checkpoint", "vit_p16_checkpoint",
               "convnext_checkpoint", "convnext_hub_checkpoint", "convnext_noscale_checkpoint"]


@pytest.mark.parametrize("name", CHECKPOINTS)
def test_top_k_equals_the_transformers_pipeline_from_the_same_file(request, name, photo_file):
    from engine.io.image import read_image
    folder = request.getfixturevalue(name)
    ours = load_task("image-classification", str(folder), device="cpu")(read_image(photo_file),
                                                                       ClassificationOptions(top_k=5))
    theirs = _pipeline(folder)(str(photo_file), top_k=5)
    assert list(ours.labels) == [d["label"] for d in theirs]
    np.testing.assert_allclose(ours.scores, [d["score"] for d in theirs], atol=1e-4)
    assert ours.image_size == (120, 160)


@pytest.mark.parametrize("name", ["vit_checkpoint", "convnext_checkpoint"])
def test_internals_are_maps_over_the_grid(request, name, photo_file):
    from engine.io.image import read_image
    task = load_task("image-classification", str(request.getfixturevalue(name)), device="cpu")
    plain = task(read_image(photo_file), ClassificationOptions(top_k=3))
    r = task(read_image(photo_file), ClassificationOptions(top_k=3, internals=True))
    np.testing.assert_allclose(r.scores, plain.scores, atol=1e-6)  # asking for internals changes nothing
    inside = r.internals
    assert inside is not None and all(m.shape == inside.grid for m in inside.maps.values())
    x0, y0, x1, y1 = inside.crop_box
    assert 0 <= x0 < x1 <= 160 and 0 <= y0 < y1 <= 120
    if inside.kind == "attention":
        assert {"rollout", "mean", "head 1"} <= set(inside.maps)
        for m in inside.maps.values():
            assert m.min() >= 0 and abs(float(m.sum()) - 1.0) < 1e-4
    else:
        assert inside.kind == "class-map" and set(inside.maps) == {"class map"}


def test_convnext_crop_box_is_the_centre_crop(convnext_hub_checkpoint, photo_file):
    """crop_pct: the shortest edge is resized to size / crop_pct, then the centre is cropped."""
    from engine.io.image import read_image
    task = load_task("image-classification", str(convnext_hub_checkpoint), device="cpu")
    x0, y0, x1, y1 = task(read_image(photo_file), ClassificationOptions(internals=True)).internals.crop_box
    assert abs((x0 + x1) / 2 - 80) < 1.5 and abs((y0 + y1) / 2 - 60) < 1.5  # centred
    assert x1 - x0 < 160 and y1 - y0 < 120  # a crop, not the whole frame


def test_bad_inputs_and_options(vit_checkpoint):
    task = load_task("image-classification", str(vit_checkpoint), device="cpu")
    with pytest.raises(InputError, match="top-k"):
        task(np.zeros((32, 32, 3), np.uint8), ClassificationOptions(top_k=0))
    with pytest.raises(InputError, match="uint8"):
        task(np.zeros((32, 32, 3), np.float32))
    with pytest.raises(InputError, match="empty"):
        task(np.zeros((0, 32, 3), np.uint8))
    tiny = task(np.full((1, 1, 3), 200, np.uint8))  # 1 px: resized up, still an answer
    assert len(tiny) == 5
    assert len(task(np.zeros((4, 900, 3), np.uint8))) == 5  # extreme aspect ratio


def test_wrong_architecture_is_a_clear_error(detr_timm_checkpoint, vit_backbone_checkpoint):
    with pytest.raises(CheckpointError, match="image-classification"):
        load_task("image-classification", str(detr_timm_checkpoint), device="cpu")
    with pytest.raises(CheckpointError):
        load_task("image-classification", str(vit_backbone_checkpoint), device="cpu")


def test_cli_classify_image_json(vit_checkpoint, photo_file, tmp_path, capsys):
    from engine import cli
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"\x89PNG\r\n\x1a\n not an image")
    args = ["classify-image", str(photo_file), "--model", str(vit_checkpoint), "--device", "cpu", "--top-k", "3"]
    assert cli.main([*args, "--json"]) == 0
    block = json.loads(capsys.readouterr().out)
    assert block["file"] == str(photo_file) and [set(d) for d in block["labels"]] == [
        {"label", "label_id", "score"}] * 3
    scores = [d["score"] for d in block["labels"]]
    assert scores == sorted(scores, reverse=True)
    # one unreadable file among good ones: reported on its own, the others still classified, exit 2
    assert cli.main([*args[:2], str(broken), *args[2:], "--json"]) == 2
    captured = capsys.readouterr()
    blocks = json.loads(captured.out)
    assert [("error" in b) for b in blocks] == [False, True] and "broken.png" in captured.err
    assert cli.main(args) == 0
    assert "photo.png (160x120)" in capsys.readouterr().out
