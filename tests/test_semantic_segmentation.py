"""The semantic-segmentation task (SegFormer) against transformers end to end, from the same image file,
on random-weight checkpoints in the real hub layouts; its CLI command (`segment`); a huge image."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from engine import CheckpointError, InputError, cli, load_task
from engine.types.vision import SegmentationOptions

ROOT = Path(__file__).resolve().parents[1]
CHECKPOINTS = ["segformer_ade_checkpoint", "segformer_cityscapes_checkpoint"]


def photo(h: int = 120, w: int = 160, seed: int = 0) -> np.ndarray:
    """A camera-like RGB frame: gradients, hard-edged blocks (so the label map has boundaries)."""
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    img = np.stack([128 + 100 * np.sin(x / 9.0 + seed), 128 + 90 * np.cos(y / 7.0), (x + y) / (h + w) * 255], -1)
    img[h // 4: h * 3 // 5, w // 3: w * 3 // 5] = (230, 40, 40)
    img[h * 2 // 3:, : w // 4] = (20, 200, 60)
    return np.clip(img, 0, 255).astype(np.uint8)


def write_png(path: Path, rgb: np.ndarray) -> Path:
    import cv2
    assert cv2.imwrite(str(path), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    return path


@pytest.fixture(scope="module")
def photo_file(tmp_path_factory) -> Path:
    return write_png(tmp_path_factory.mktemp("seg-photos") / "photo.png", photo())


def transformers_run(folder: Path, path: Path):
    """transformers' own way, from the file: its PIL image processor, its model, its post-processing."""
    from PIL import Image
    from transformers import SegformerForSemanticSegmentation, SegformerImageProcessorPil
    processor = SegformerImageProcessorPil.from_pretrained(folder)
    model = SegformerForSemanticSegmentation.from_pretrained(folder).eval()
    image = Image.open(path).convert("RGB")
    with torch.no_grad():
        out = model(**processor(images=image, return_tensors="pt"))
        labels = processor.post_process_semantic_segmentation(out, target_sizes=[image.size[::-1]])[0].numpy()
    return processor, out, labels


@pytest.mark.parametrize("name", CHECKPOINTS)
def test_label_map_equals_transformers_from_the_same_file(request, name, photo_file):
    from engine.io.image import read_image
    folder = request.getfixturevalue(name)
    ours = load_task("semantic-segmentation", str(folder), device="cpu")(read_image(photo_file))
    processor, out, theirs = transformers_run(folder, photo_file)
    assert ours.label_map.shape == (120, 160) and ours.label_map.dtype == np.uint8 and ours.image_size == (120, 160)
    differ = ours.label_map != theirs
    if differ.any():  # only where transformers' own two best classes are a rounding error apart
        up = torch.nn.functional.interpolate(out.logits, size=(120, 160), mode="bilinear", align_corners=False)[0]
        top2 = up.topk(2, dim=0).values  # (2, H, W)
        gap = (top2[0] - top2[1]).numpy()
        assert differ.sum() <= 3 and (gap[differ] < 1e-4).all(), int(differ.sum())
    assert len(np.unique(theirs)) > 1  # the map has boundaries: the comparison means something
    # the rest of the result agrees with the label map and transformers' logits
    ids, counts = np.unique(ours.label_map, return_counts=True)
    order = np.lexsort((ids, -counts))
    assert ours.label_ids.tolist() == ids[order].tolist() and ours.pixel_counts.tolist() == counts[order].tolist()
    assert int(ours.pixel_counts.sum()) == 120 * 160
    config = json.loads((folder / "config.json").read_text())
    assert ours.class_names == tuple(config["id2label"][str(i)] for i in range(len(config["id2label"])))
    assert ours.labels == tuple(ours.class_names[i] for i in ours.label_ids)
    assert ours.colors.shape == (len(ours.class_names), 3) and ours.colors.dtype == np.uint8
    np.testing.assert_allclose(ours.confidence, out.logits[0].softmax(0).amax(0).numpy(), atol=1e-5)
    assert ours.to_json()["labels"][0] == {"label_id": int(ours.label_ids[0]), "label": ours.labels[0],
                                           "pixels": int(ours.pixel_counts[0])}


@pytest.mark.parametrize("name", CHECKPOINTS)
def test_post_processing_is_transformers_bit_for_bit(request, name, photo_file):
    """Our post-processing on transformers' own logits gives exactly its label map (no tolerance)."""
    from engine.processors import dense
    processor, out, theirs = transformers_run(request.getfixturevalue(name), photo_file)
    assert np.array_equal(dense.upsample_argmax(out.logits[0], (120, 160)), theirs)
    for size in ((480, 640), (77, 1001), (33, 40)):
        want = processor.post_process_semantic_segmentation(out, target_sizes=[size])[0].numpy()
        assert np.array_equal(dense.upsample_argmax(out.logits[0], size), want), size


def test_internals(segformer_ade_checkpoint):
    task = load_task("semantic-segmentation", str(segformer_ade_checkpoint), device="cpu")
    image = photo(90, 130, seed=1)
    plain = task(image)
    r = task(image, SegmentationOptions(internals=True))
    assert np.array_equal(r.label_map, plain.label_map) and plain.internals is None
    inside = r.internals
    assert inside.input_size == (512, 512)
    assert [s.shape for s in inside.scales] == [(128, 128), (64, 64), (32, 32), (16, 16)]
    assert all(s.dtype == np.float32 and (s >= 0).all() for s in inside.scales)
    u = inside.maps["uncertainty"]
    assert u.shape == r.confidence.shape == (128, 128)
    assert (u >= -1e-6).all() and (u <= np.log(len(r.class_names)) + 1e-4).all()
    label, p = r.label_at(5, 7)
    assert label == int(r.label_map[7, 5]) and 0 < p <= 1


def test_wrong_checkpoints_are_clear_errors(segformer_bare_checkpoint, glpn_nyu_checkpoint):
    with pytest.raises(CheckpointError, match="SemanticSegmentation head"):
        load_task("semantic-segmentation", str(segformer_bare_checkpoint), device="cpu")
    with pytest.raises(CheckpointError, match="'glpn' model"):
        load_task("semantic-segmentation", str(glpn_nyu_checkpoint), device="cpu")


def test_bad_inputs(segformer_ade_checkpoint):
    task = load_task("semantic-segmentation", str(segformer_ade_checkpoint), device="cpu")
    for bad, message in [(np.zeros((0, 10, 3), np.uint8), "empty"), (np.zeros((20, 20, 3), np.float32), "8-bit"),
                         ("photo.png", "numpy array"), (np.zeros((4, 5, 6, 3), np.uint8), "shape")]:
        with pytest.raises(InputError, match=message):
            task(bad)
    tiny = task(np.full((1, 1, 3), 7, np.uint8))  # one pixel: still a label
    assert tiny.label_map.shape == (1, 1) and int(tiny.pixel_counts.sum()) == 1
    gray = task(np.full((40, 30), 100, np.uint8))
    assert gray.label_map.shape == (40, 30)


# ------------------------------------------------------------------------------ the CLI

def _cli(capsys, *args) -> tuple[int, str, str]:
    code = cli.main([str(a) for a in args])
    out = capsys.readouterr()
    return code, out.out, out.err


def _one_line(err: str, expected: str) -> None:
    lines = [line for line in err.strip().splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and expected in lines[0], err


def test_cli_out_png_npy_overlay_and_json(segformer_ade_checkpoint, photo_file, tmp_path, capsys):
    import cv2

    from engine.io.image import read_image
    task = load_task("semantic-segmentation", str(segformer_ade_checkpoint), device="cpu")
    want = task(read_image(photo_file)).label_map
    png, npy, over = tmp_path / "labels.png", tmp_path / "labels.npy", tmp_path / "overlay.jpg"
    code, out, err = _cli(capsys, "segment", photo_file, "--model", segformer_ade_checkpoint, "--device", "cpu",
                          "--out", png, "--overlay", over, "--json")
    assert code == 0, err
    back = cv2.imread(str(png), cv2.IMREAD_UNCHANGED)
    assert back.dtype == np.uint8 and back.ndim == 2 and np.array_equal(back, want)
    picture = cv2.imread(str(over))
    assert picture.shape == (120, 160, 3)
    doc = json.loads(out)
    assert doc["file"] == str(photo_file) and doc["size"] == [160, 120]
    assert set(doc["labels"][0]) == {"label_id", "label", "pixels"}
    assert sum(d["pixels"] for d in doc["labels"]) == 120 * 160
    assert [d["pixels"] for d in doc["labels"]] == sorted((d["pixels"] for d in doc["labels"]), reverse=True)
    code, out, err = _cli(capsys, "segment", photo_file, "--model", segformer_ade_checkpoint, "--device", "cpu",
                          "--out", npy)
    assert code == 0 and "Wrote" in err and "%" in out
    back = np.load(npy)
    assert back.dtype == want.dtype and np.array_equal(back, want)


def test_cli_several_files_each_its_own_output(segformer_ade_checkpoint, tmp_path, capsys):
    a = write_png(tmp_path / "a.png", photo(64, 80, seed=2))
    b = write_png(tmp_path / "b.png", photo(50, 70, seed=3))
    code, out, err = _cli(capsys, "segment", a, b, "--model", segformer_ade_checkpoint, "--device", "cpu",
                          "--out", tmp_path / "labels.npy", "--json")
    assert code == 0, err
    assert np.load(tmp_path / "labels-a.npy").shape == (64, 80) and np.load(tmp_path / "labels-b.npy").shape == (50, 70)
    assert [d["file"] for d in json.loads(out)] == [str(a), str(b)]
    (tmp_path / "masks").mkdir()
    code, out, err = _cli(capsys, "segment", a, b, "--model", segformer_ade_checkpoint, "--device", "cpu",
                          "--overlay", tmp_path / "masks" / "{stem}.png")
    assert code == 0 and (tmp_path / "masks" / "a.png").exists() and (tmp_path / "masks" / "b.png").exists()


def test_cli_bad_outputs_fail_before_the_model_loads(photo_file, tmp_path, capsys):
    other = tmp_path / "other"
    other.mkdir()
    twin = write_png(other / "photo.png", photo(30, 40))
    missing_model = tmp_path / "no-model"  # reaching the loader would be a different error
    for args, message in [
        (["--out", tmp_path / "no" / "such" / "labels.png"], "does not exist"),
        (["--out", tmp_path / "labels.txt"], "must end in .png or .npy"),
        (["--out", tmp_path], "is a folder"),
        (["--overlay", tmp_path / "overlay.bmp"], "must end in .png or .jpg"),
        ([twin, "--out", tmp_path / "l.png"], "would both write"),
    ]:
        code, out, err = _cli(capsys, "segment", photo_file, *args, "--model", missing_model, "--offline")
        assert code == 2 and out == ""
        _one_line(err, message)


def test_cli_unreadable_files(segformer_ade_checkpoint, tmp_path, capsys):
    empty = tmp_path / "empty.png"
    empty.write_bytes(b"")
    corrupt = tmp_path / "corrupt.png"
    corrupt.write_bytes(b"this is text, not a picture\n" * 20)
    for path, message in [(empty, "empty"), (corrupt, "not an image")]:
        code, out, err = _cli(capsys, "segment", path, "--model", segformer_ade_checkpoint, "--device", "cpu")
        assert code == 2 and out == ""
        _one_line(err, message)
    good = write_png(tmp_path / "good.png", photo(40, 50))  # a bad file among good ones: the others still run
    code, out, err = _cli(capsys, "segment", empty, good, "--model", segformer_ade_checkpoint, "--device", "cpu",
                          "--out", tmp_path / "{stem}-labels.png")
    assert code == 2 and "good.png (50x40)" in out and "empty" in err
    assert (tmp_path / "good-labels.png").exists() and not (tmp_path / "empty-labels.png").exists()


def test_16_bit_label_png_round_trip(tmp_path):
    import cv2

    from engine.io.dense import write_labels
    m = (np.arange(60 * 70).reshape(60, 70) % 300).astype(np.uint16)
    write_labels(tmp_path / "m.png", m)
    back = cv2.imread(str(tmp_path / "m.png"), cv2.IMREAD_UNCHANGED)
    assert back.dtype == np.uint16 and np.array_equal(back, m)
    write_labels(tmp_path / "s.png", (m % 200).astype(np.uint16))  # ids that fit: 8-bit
    assert cv2.imread(str(tmp_path / "s.png"), cv2.IMREAD_UNCHANGED).dtype == np.uint8


# ------------------------------------------------------------------------------ a huge image

HUGE = """
import resource, sys
import numpy as np
from engine import load_task
h, w = 9000, 12000
img = np.full((h, w, 3), 90, np.uint8)
img[:, w // 3:] = (200, 60, 30)
img[h // 2:, : w // 2] = (20, 180, 90)
task = load_task(sys.argv[1], sys.argv[2], device="cpu")
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
r = task(img)
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
out = r.label_map if hasattr(r, "label_map") else r.depth
print(out.shape[0], out.shape[1], str(out.dtype), (peak - before) // 1024, flush=True)
"""


def run_huge(task: str, folder: Path) -> tuple[int, int, str, int]:
    """A 12000x9000 (108 megapixel) image through ``task`` in a fresh process: (H, W, dtype, MB the
    resident peak grew by while it ran)."""
    r = subprocess.run([sys.executable, "-c", HUGE, task, str(folder)], cwd=ROOT, capture_output=True, text=True,
                       timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    h, w, dtype, mb = r.stdout.split()
    return int(h), int(w), dtype, int(mb)


@pytest.mark.slow
def test_a_12000x9000_image_in_bounded_memory(segformer_ade_checkpoint):
    """transformers' way would hold 12 classes x 108 M pixels of float32 logits (5.2 GB) and an int64
    argmax (0.9 GB); ours stays near the image and its label map."""
    h, w, dtype, grew_mb = run_huge("semantic-segmentation", segformer_ade_checkpoint)
    assert (h, w, dtype) == (9000, 12000, "uint8")
    assert grew_mb < 2500, grew_mb


@pytest.mark.slow
def test_a_12000x9000_file_opens(tmp_path):
    """The file reader takes a 108-megapixel photo (the tasks then bound their own memory, above)."""
    import cv2
    from engine.io.image import read_image
    path = tmp_path / "huge.png"
    assert cv2.imwrite(str(path), np.full((9000, 12000, 3), 77, np.uint8))
    img = read_image(path)
    assert img.shape == (9000, 12000, 3) and img.dtype == np.uint8 and int(img[4500, 6000, 0]) == 77
