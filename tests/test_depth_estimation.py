"""The depth-estimation task (GLPN) against transformers end to end, from the same image file, on
random-weight checkpoints in the real hub layouts; the pixel cap for big images; its CLI (`depth`)."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from engine import CheckpointError, InputError, load_task
from engine.tasks.depth_estimation import capped_size
from engine.types.vision import DepthOptions
from tests.test_semantic_segmentation import _cli, _one_line, photo, run_huge, write_png

CHECKPOINTS = ["glpn_nyu_checkpoint", "glpn_kitti_checkpoint"]


def transformers_depth(folder: Path, image, size: tuple[int, int]) -> np.ndarray:
    """transformers' own way: its PIL image processor, its model, post_process_depth_estimation."""
    from transformers import GLPNForDepthEstimation, GLPNImageProcessorPil
    processor = GLPNImageProcessorPil.from_pretrained(folder)
    model = GLPNForDepthEstimation.from_pretrained(folder).eval()
    with torch.no_grad():
        out = model(**processor(images=image, return_tensors="pt"))
        return processor.post_process_depth_estimation(out, target_sizes=[size])[0]["predicted_depth"].numpy()


@pytest.mark.parametrize("name", CHECKPOINTS)
@pytest.mark.parametrize("hw", [(120, 160), (101, 170)])  # sides multiples of 32 or not (rounded down)
def test_depth_equals_transformers_from_the_same_file(request, name, hw, tmp_path):
    from PIL import Image

    from engine.io.image import read_image
    folder = request.getfixturevalue(name)
    path = write_png(tmp_path / "photo.png", photo(*hw))
    task = load_task("depth-estimation", str(folder), device="cpu")
    ours = task(read_image(path))
    theirs = transformers_depth(folder, Image.open(path).convert("RGB"), hw)
    assert ours.depth.shape == hw and ours.depth.dtype == np.float32 and ours.image_size == hw
    max_depth = json.loads((folder / "config.json").read_text())["max_depth"]
    assert ours.max_depth == max_depth
    assert np.abs(ours.depth - theirs).max() <= 1e-4 * max_depth
    assert theirs.std() > 1e-3 * max_depth  # the depths vary: the comparison means something
    d = ours.to_json()
    assert set(d) >= {"min", "max", "mean"} and d["min"] <= d["mean"] <= d["max"]
    assert ours.depth_at(3, 4) == float(ours.depth[4, 3])


def test_internals(glpn_nyu_checkpoint):
    task = load_task("depth-estimation", str(glpn_nyu_checkpoint), device="cpu")
    image = photo(100, 140)
    plain = task(image)
    r = task(image, DepthOptions(internals=True))
    np.testing.assert_allclose(r.depth, plain.depth, atol=1e-6)
    inside = r.internals
    assert inside.input_size == (96, 128)
    assert [s.shape for s in inside.scales] == [(24, 32), (12, 16), (6, 8), (3, 4)]
    names = [f"fusion 1/{k} {part}" for k in (16, 8, 4) for part in ("local", "global")]
    assert list(inside.maps) == names
    for k in (16, 8, 4):
        for part in ("local", "global"):
            m = inside.maps[f"fusion 1/{k} {part}"]
            assert m.shape == (96 // k, 128 // k) and m.dtype == np.float32 and (m >= 0).all() and (m <= 1).all()


def test_capped_size():
    assert capped_size(480, 640, 1920 * 1088) is None
    assert capped_size(1080, 1920, 1920 * 1088) is None
    h, w = capped_size(9000, 12000, 1920 * 1088)
    assert h % 32 == 0 and w % 32 == 0 and h * w <= 1920 * 1088 and abs(w / h - 12000 / 9000) < 0.05
    assert capped_size(20000, 40, 10000) == (288, 32)  # a side never below one multiple, the cap kept
    assert capped_size(40, 20000, 1024) == (32, 32)
    for hw in [(5000, 33), (33, 5000), (7001, 9999), (2000, 2000)]:
        h, w = capped_size(*hw, 50_000)
        assert h * w <= 50_000 and h % 32 == 0 and w % 32 == 0 and h >= 32 and w >= 32


def test_a_big_image_is_scaled_down_for_the_model(glpn_nyu_checkpoint):
    """Beyond max_pixels the model sees the image scaled down (to multiples of 32); the depth comes back at
    the image's size, as transformers' post-processing of that smaller image to the full size."""
    task = load_task("depth-estimation", str(glpn_nyu_checkpoint), device="cpu")
    image = photo(300, 410)
    options = DepthOptions(max_pixels=160 * 128, internals=True)
    r = task(image, options)
    assert r.depth.shape == (300, 410)
    ih, iw = r.internals.input_size
    assert ih * iw <= 160 * 128 and ih % 32 == 0 and iw % 32 == 0
    small = task.model_input(image, options)
    assert small.shape[:2] == (ih, iw)
    theirs = transformers_depth(glpn_nyu_checkpoint, small, (300, 410))
    assert np.abs(r.depth - theirs).max() <= 1e-4 * r.max_depth
    assert task(image, DepthOptions(internals=True)).internals.input_size == (288, 384)  # under the cap: as is


def test_options_and_inputs_are_checked(glpn_nyu_checkpoint, segformer_ade_checkpoint):
    task = load_task("depth-estimation", str(glpn_nyu_checkpoint), device="cpu")
    for bad in (DepthOptions(max_pixels=100), DepthOptions(max_pixels=True)):
        with pytest.raises(InputError, match="max_pixels"):
            task(photo(64, 64), bad)
    with pytest.raises(InputError, match="empty"):
        task(np.zeros((10, 0, 3), np.uint8))
    tiny = task(np.full((5, 7, 3), 50, np.uint8))  # smaller than 32: one multiple of 32 for the model
    assert tiny.depth.shape == (5, 7)
    with pytest.raises(CheckpointError, match="'segformer' model"):
        load_task("depth-estimation", str(segformer_ade_checkpoint), device="cpu")


# ------------------------------------------------------------------------------ the CLI

def test_cli_out_npy_png_preview_json(glpn_kitti_checkpoint, tmp_path, capsys):
    import cv2

    from engine.io.image import read_image
    path = write_png(tmp_path / "street.png", photo(96, 150))
    want = load_task("depth-estimation", str(glpn_kitti_checkpoint), device="cpu")(read_image(path)).depth
    npy, png, preview = tmp_path / "d.npy", tmp_path / "d.png", tmp_path / "p.png"
    code, out, err = _cli(capsys, "depth", path, "--model", glpn_kitti_checkpoint, "--device", "cpu", "--out", npy,
                          "--preview", preview, "--colormap", "viridis", "--json")
    assert code == 0, err
    back = np.load(npy)
    assert back.dtype == np.float32 and np.array_equal(back, want)
    doc = json.loads(out)
    assert doc["file"] == str(path) and doc["max_depth"] == 80.0 and doc["size"] == [150, 96]
    assert abs(doc["min"] - float(want.min())) < 1e-3 and abs(doc["mean"] - float(want.mean())) < 1e-3
    assert cv2.imread(str(preview)).shape == (96, 150, 3)
    code, out, err = _cli(capsys, "depth", path, "--model", glpn_kitti_checkpoint, "--device", "cpu", "--out", png)
    assert code == 0 and " m" in out
    stored = cv2.imread(str(png), cv2.IMREAD_UNCHANGED)
    assert stored.dtype == np.uint16 and stored.shape == (96, 150)
    assert np.array_equal(stored, np.clip(np.rint(want * 256), 0, 65535).astype(np.uint16))  # KITTI: metres x 256


def test_depth_png_clips():
    from engine.io.dense import depth_png
    assert depth_png(np.array([[0.0, 1.5, 300.0, np.nan, -2.0]], np.float32)).tolist() == [[0, 384, 65535, 0, 0]]


def test_cli_bad_arguments_fail_before_the_model_loads(tmp_path, capsys):
    path = write_png(tmp_path / "x.png", photo(40, 40))
    missing_model = tmp_path / "no-model"
    for args, message in [
        (["--out", tmp_path / "depth.tiff"], "must end in .npy or .png"),
        (["--out", tmp_path / "none" / "d.npy"], "does not exist"),
        (["--preview", tmp_path], "is a folder"),
        (["--colormap", "magma"], "--preview"),
    ]:
        code, out, err = _cli(capsys, "depth", path, *args, "--model", missing_model, "--offline")
        assert code == 2 and out == ""
        _one_line(err, message)
    with pytest.raises(SystemExit):  # argparse: an unknown colormap, a max-pixels of 0
        _cli(capsys, "depth", path, "--colormap", "rainbow", "--preview", tmp_path / "p.png")
    with pytest.raises(SystemExit):
        _cli(capsys, "depth", path, "--max-pixels", "0")


@pytest.mark.slow
def test_a_12000x9000_image_in_bounded_memory(glpn_nyu_checkpoint):
    """Scaled to the pixel cap for the model, the depth map at 12000x9000 (432 MB of float32)."""
    h, w, dtype, grew_mb = run_huge("depth-estimation", glpn_nyu_checkpoint)
    assert (h, w, dtype) == (9000, 12000, "float32")
    assert grew_mb < 2500, grew_mb


def test_fast_is_not_offered_for_the_dense_models_yet(glpn_nyu_checkpoint, segformer_ade_checkpoint):
    """Their reduced-precision answers were not measured: 'fast' runs them exact, with a notice."""
    import torch
    from engine.device import Placement
    from engine.tasks.depth_estimation import DepthEstimation
    from engine.tasks.semantic_segmentation import SemanticSegmentation
    fast = Placement(torch.device("cpu"), torch.bfloat16, "fast")
    for cls, folder, name in ((DepthEstimation, glpn_nyu_checkpoint, "GLPN"),
                              (SemanticSegmentation, segformer_ade_checkpoint, "SegFormer")):
        task = cls.load("fixture", folder, fast)
        assert task.placement.precision == "exact" and task.placement.dtype == torch.float32
        assert f"not offered for {name}" in task.precision_notice
        assert all(p.dtype == torch.float32 for p in task.model.parameters())
