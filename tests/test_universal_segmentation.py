"""The universal-segmentation task (Mask2Former): the three post-processings against transformers' on the
same outputs, end to end from the same image file, options, internals, the CLI (`segment` with a Mask2Former model or `--mode`)."""
from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from engine import InputError, cli, load_task
from engine.tasks import universal_segmentation as us
from engine.types.vision import UniversalSegmentationOptions as Options

from .test_semantic_segmentation import photo, write_png


@pytest.fixture(scope="module")
def photo_file(tmp_path_factory) -> Path:
    return write_png(tmp_path_factory.mktemp("m2f-photos") / "photo.png", photo(90, 130))


def processor():
    from transformers import Mask2FormerImageProcessorPil
    return Mask2FormerImageProcessorPil()


def outputs(seed: int, q: int = 20, labels: int = 6, h: int = 24, w: int = 32):
    """Class and mask logits where several queries pass the thresholds, masks with smooth blobs, some
    queries repeating a label (so fusion and overlaps happen)."""
    g = torch.Generator().manual_seed(seed)
    cls = torch.randn(q, labels + 1, generator=g) * 1.5
    cls[torch.arange(q), torch.randint(0, labels, (q,), generator=g)] += 4.0  # confident queries
    cls[: q // 4, -1] += 6.0  # some "no object"
    low = torch.randn(q, 1, h // 4, w // 4, generator=g) * 6
    masks = torch.nn.functional.interpolate(low, size=(h, w), mode="bilinear", align_corners=False)[:, 0] + 1.0
    return cls, masks


def theirs(mode: str, cls, masks, size, opts: Options):
    out = SimpleNamespace(class_queries_logits=cls[None], masks_queries_logits=masks[None])
    p = processor()
    if mode == "semantic":
        return p.post_process_semantic_segmentation(out, target_sizes=[size])[0].numpy(), None
    if mode == "instance":
        r = p.post_process_instance_segmentation(out, threshold=opts.threshold, mask_threshold=opts.mask_threshold,
                                                 overlap_mask_area_threshold=opts.overlap_mask_area_threshold,
                                                 target_sizes=[size])[0]
    else:
        fuse = set(opts.label_ids_to_fuse) if opts.label_ids_to_fuse is not None else None
        r = p.post_process_panoptic_segmentation(out, threshold=opts.threshold, mask_threshold=opts.mask_threshold,
                                                 overlap_mask_area_threshold=opts.overlap_mask_area_threshold,
                                                 label_ids_to_fuse=fuse, target_sizes=[size])[0]
    return r["segmentation"].numpy(), r["segments_info"]


def ours(mode: str, cls, masks, size, opts: Options):
    fn = {"panoptic": us.panoptic, "instance": us.instance}.get(mode)
    return fn(cls, masks, size, opts) if fn else us.semantic(cls, masks, size)


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("opts", [Options(), Options(threshold=0.8), Options(label_ids_to_fuse=(3, 4, 5)),
                                  Options(mask_threshold=0.3, overlap_mask_area_threshold=0.5,
                                          label_ids_to_fuse=(0, 1, 2, 3, 4, 5)),
                                  Options(threshold=0.99)])
def test_panoptic_equals_transformers(seed, opts):
    cls, masks = outputs(seed)
    size = (75, 113)
    want_map, want = theirs("panoptic", cls, masks, size, opts)
    got_map, got = ours("panoptic", cls, masks, size, opts)
    assert got_map.dtype == np.int32 and np.array_equal(got_map, want_map.astype(np.int32))
    assert [(s[0], s[1], s[3]) for s in got] == [(s["id"], s["label_id"], s["was_fused"]) for s in want]
    np.testing.assert_allclose([s[2] for s in got], [s["score"] for s in want], atol=1e-6)


@pytest.mark.parametrize("seed", [0, 3])
@pytest.mark.parametrize("threshold", [0.0, 0.3, 0.5, 0.9])
def test_instance_equals_transformers(seed, threshold):
    cls, masks = outputs(seed)
    opts = Options(mode="instance", threshold=threshold)
    want_map, want = theirs("instance", cls, masks, (97, 61), opts)
    got_map, got = ours("instance", cls, masks, (97, 61), opts)
    assert np.array_equal(got_map, want_map.astype(np.int32))
    assert [(s[0], s[1]) for s in got] == [(s["id"], s["label_id"]) for s in want]
    np.testing.assert_allclose([s[2] for s in got], [s["score"] for s in want], atol=1e-6)


@pytest.mark.parametrize("seed, size", [(0, (75, 113)), (4, (384, 384)), (5, (20, 300))])
def test_semantic_equals_transformers(seed, size):
    cls, masks = outputs(seed)
    want_map, _ = theirs("semantic", cls, masks, size, Options(mode="semantic"))
    got_map, got = ours("semantic", cls, masks, size, Options(mode="semantic"))
    assert np.array_equal(got_map, want_map)
    assert sorted(s[0] for s in got) == sorted(np.unique(want_map).tolist())


def transformers_run(folder: Path, path: Path, mode: str, **kw):
    from PIL import Image
    from transformers import Mask2FormerForUniversalSegmentation, Mask2FormerImageProcessorPil
    proc = Mask2FormerImageProcessorPil.from_pretrained(folder)
    model = Mask2FormerForUniversalSegmentation.from_pretrained(folder).eval()
    image = Image.open(path).convert("RGB")
    size = [image.size[::-1]]
    with torch.no_grad():
        out = model(**proc(images=image, return_tensors="pt"))
    if mode == "semantic":
        return proc.post_process_semantic_segmentation(out, target_sizes=size)[0].numpy(), None
    fn = proc.post_process_panoptic_segmentation if mode == "panoptic" else proc.post_process_instance_segmentation
    r = fn(out, target_sizes=size, **kw)[0]
    return r["segmentation"].numpy(), r["segments_info"]


def _as_set(segment_map, segments):
    return {(s["label_id"], round(s["score"], 4), (segment_map == s["id"]).tobytes()) for s in segments}


@pytest.mark.parametrize("fixture", ["mask2former_panoptic_checkpoint", "mask2former_semantic_checkpoint"])
@pytest.mark.parametrize("mode", ["panoptic", "instance", "semantic"])
def test_end_to_end_from_the_same_file(request, fixture, mode, photo_file):
    from engine.io.image import read_image
    folder = request.getfixturevalue(fixture)
    task = load_task("universal-segmentation", str(folder), device="cpu")
    threshold = 0.2  # random weights: low class scores
    kw = {} if mode == "semantic" else {"threshold": threshold}
    result = task(read_image(photo_file), Options(mode=mode, **kw))
    want_map, want = transformers_run(folder, photo_file, mode, **kw)
    assert result.image_size == (90, 130) and result.segment_map.shape == (90, 130)
    if mode == "semantic":
        assert np.array_equal(result.label_map, want_map) and result.label_map is result.segment_map
        assert {s.id for s in result.segments} == set(np.unique(want_map).tolist())
        assert sum(s.area for s in result.segments) == 90 * 130
        return
    mine = [{"id": s.id, "label_id": s.label_id, "score": s.score} for s in result.segments]
    assert _as_set(result.segment_map, mine) == _as_set(want_map, want)
    assert len(result.segments) >= 1, "the fixture should give at least one segment"
    for s in result.segments:
        assert s.area == int((result.segment_map == s.id).sum()) and s.label == task.class_names[s.label_id]
        assert s.is_thing is (True if mode == "instance" else None)
    doc = result.to_json()
    assert set(doc["segments"][0]) == {"id", "label_id", "label", "score", "area", "is_thing"}


def test_internals(mask2former_panoptic_checkpoint):
    task = load_task("universal-segmentation", str(mask2former_panoptic_checkpoint), device="cpu")
    r = task(photo(70, 100), Options(internals=True))
    i = r.internals
    cfg = task.model.config
    assert i.input_size == (96, 160)  # short side 96, rounded up to multiples of 32
    assert i.mask_logits.shape == (cfg.num_queries, 24, 40) and i.class_scores.shape == (cfg.num_queries, 7)
    np.testing.assert_allclose(i.class_scores.sum(1), 1.0, rtol=1e-5)
    assert len(i.attention_masks) == cfg.decoder_layers - 1
    assert [m.shape[1:] for m in i.attention_masks] == [(3, 5), (6, 10), (12, 20)]
    assert all(m.dtype == np.bool_ and m.shape[0] == cfg.num_queries for m in i.attention_masks)
    assert task(photo(70, 100)).internals is None
    assert r.segment_colors().shape == (len(r), 3)


def test_options_are_checked(mask2former_panoptic_checkpoint):
    task = load_task("universal-segmentation", str(mask2former_panoptic_checkpoint), device="cpu")
    for bad in (Options(mode="stuff"), Options(threshold=1.5), Options(mask_threshold=float("nan")),
                Options(label_ids_to_fuse=(-1,))):
        with pytest.raises(InputError):
            task(photo(), bad)
    assert task(photo(10, 10)).segment_map.shape == (10, 10)  # resized up for the model, back down after
    assert task.suggested_mode == "panoptic"


def _cli(capsys, *args):
    code = cli.main([str(a) for a in args])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_cli(mask2former_panoptic_checkpoint, photo_file, tmp_path, capsys):
    import cv2
    from engine.io.image import read_image
    task = load_task("universal-segmentation", str(mask2former_panoptic_checkpoint), device="cpu")
    want = task(read_image(photo_file), Options(mode="instance", threshold=0.2))
    npy, png, npz = tmp_path / "seg.npy", tmp_path / "seg.png", tmp_path / "masks.npz"
    code, out, err = _cli(capsys, "segment", photo_file, "--model", mask2former_panoptic_checkpoint, "--device", "cpu",
                          "--mode", "instance", "--threshold", "0.2", "--out", npy, "--masks", npz, "--json")
    assert code == 0, err
    doc = json.loads(out)
    assert doc["mode"] == "instance" and doc["segments"] == want.to_json()["segments"]
    assert np.array_equal(np.load(npy), want.segment_map)
    masks = np.load(npz)
    assert sorted(masks.files, key=int) == [str(s.id) for s in want.segments]
    for s in want.segments:
        assert np.array_equal(masks[str(s.id)], want.segment_map == s.id)
    code, out, err = _cli(capsys, "segment", photo_file, "--model", mask2former_panoptic_checkpoint, "--device", "cpu",
                          "--mode", "semantic", "--out", png)
    assert code == 0, err
    assert "semantic" in out
    sem = task(read_image(photo_file), Options(mode="semantic"))
    assert np.array_equal(cv2.imread(str(png), cv2.IMREAD_UNCHANGED), sem.label_map)
    code, out, err = _cli(capsys, "segment", photo_file, "--model", mask2former_panoptic_checkpoint,
                          "--fuse", "a,b")
    assert code != 0 and "--fuse" in err


def test_segment_without_mode_uses_the_mode_the_checkpoint_was_trained_for(mask2former_panoptic_checkpoint,
                                                                          photo_file, tmp_path, capsys):
    """`segment --model <a Mask2Former folder>`: the folder's config says Mask2Former, its name says
    panoptic; --overlay blends each segment's colour and leaves pixels of no segment as they were."""
    from engine.io.image import read_image
    task = load_task("universal-segmentation", str(mask2former_panoptic_checkpoint), device="cpu")
    image = read_image(photo_file)
    want = task(image, Options(mode="panoptic", threshold=0.2))
    assert want.segments, "the fixture should give segments at threshold 0.2"
    picture = tmp_path / "over.png"
    code, out, err = _cli(capsys, "segment", photo_file, "--model", mask2former_panoptic_checkpoint, "--device", "cpu",
                          "--threshold", "0.2", "--overlay", picture, "--json")
    assert code == 0, err
    doc = json.loads(out)
    assert doc["mode"] == "panoptic" and doc["segments"] == want.to_json()["segments"]
    got = read_image(picture)
    assert np.array_equal(got, us.overlay_segments(image, want))
    none = want.segment_map == -1
    assert np.array_equal(got[none], image[none])
    assert not np.array_equal(got[~none], image[~none])


def test_segment_mode_without_model_picks_the_checkpoint_trained_for_it(photo_file, capsys):
    """(conftest gives the tests an empty Hugging Face cache: offline, the model is not there)"""
    for mode, model in (("instance", "facebook/mask2former-swin-tiny-coco-instance"),
                        ("semantic", "facebook/mask2former-swin-tiny-ade-semantic")):
        code, out, err = _cli(capsys, "segment", photo_file, "--mode", mode, "--offline")
        assert code == 2 and model in err and "offline" in err and "Traceback" not in err


def test_segformer_refuses_mask2former_options_before_loading(segformer_ade_checkpoint, photo_file, tmp_path, capsys):
    for args, words in ((["--mode", "panoptic"], "needs a Mask2Former model"),
                        (["--masks", tmp_path / "m.npz"], "--masks: for Mask2Former"),
                        (["--threshold", "0.3", "--fuse", "1"], "--threshold, --fuse: for Mask2Former")):
        code, out, err = _cli(capsys, "segment", photo_file, "--model", segformer_ade_checkpoint, *args)
        assert code == 2 and words in err, err
        assert len(err.strip().splitlines()) == 1
    # --mode semantic is what SegFormer does: accepted, and runs SegFormer
    code, out, err = _cli(capsys, "segment", photo_file, "--model", segformer_ade_checkpoint, "--device", "cpu",
                          "--mode", "semantic", "--json")
    assert code == 0, err
    assert "labels" in json.loads(out) and "segments" not in json.loads(out)


def test_model_family_from_what_needs_no_download(mask2former_panoptic_checkpoint, segformer_ade_checkpoint):
    from engine.tasks.semantic_segmentation import model_family
    assert model_family(str(mask2former_panoptic_checkpoint)) == "mask2former"
    assert model_family(str(segformer_ade_checkpoint)) == "segformer"
    assert model_family("facebook/mask2former-swin-small-coco-instance") == "mask2former"
    assert model_family("nvidia/segformer-b2-finetuned-ade-512-512") == "segformer"
    assert model_family("someone/my-mask2former-finetune") == "mask2former"  # not cached: by its name
    assert model_family("someone/some-model") is None and model_family(None) is None
