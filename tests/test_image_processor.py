"""engine.processors.image: resampling byte-identical to Pillow, and ImageProcessor equal to
transformers' (PIL-backend) image processors, read from the preprocessor_config.json they write."""
from __future__ import annotations

import itertools
import json

import numpy as np
import pytest
import torch
from PIL import Image

from engine.errors import CheckpointError, InputError
from engine.processors.image import (ImageProcessor, ImageProcessorConfig, axis_coefficients, center_crop,
                                     resample_name, resize, shortest_edge_size, shortest_longest_size)

PIL_CODES = {"nearest": 0, "lanczos": 1, "bilinear": 2, "bicubic": 3, "box": 4, "hamming": 5}


def pillow(image: np.ndarray, out_h: int, out_w: int, resample: str) -> np.ndarray:
    """The oracle: Pillow's resize of the same array ((H, W, 1) as mode "L")."""
    one = image.ndim == 3 and image.shape[2] == 1
    out = np.asarray(Image.fromarray(image[:, :, 0] if one else image).resize((out_w, out_h), PIL_CODES[resample]))
    return out[:, :, None] if one else out


def noise(rng, h, w, c):
    image = rng.integers(0, 256, (h, w, c), dtype=np.uint8)
    if c in (2, 4):  # alpha: fully transparent, opaque and in between (premultiplied path)
        image[..., -1] = rng.choice(np.array([0, 255, 1, 17, 128, 200], dtype=np.uint8), size=(h, w))
    return image


def smooth(h, w, c):
    """Gradients: an off-by-one in weights or rounding shows as a whole band of wrong pixels."""
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    chans = [(xx * (37 + 11 * k) + yy * (23 + 7 * k)) * 255.0 / max(1.0, 37 * w + 23 * h) for k in range(c)]
    image = np.stack(chans, axis=-1).astype(np.uint8)
    if c in (2, 4):
        image[..., -1] = (np.hypot(yy - h / 2, xx - w / 2) * 512 / max(h, w)).clip(0, 255).astype(np.uint8)
    return image


# (in_h, in_w) -> (out_h, out_w): up, down, mixed, odd, 1 px, large ratios, and both pass orders
SIZES = [((1, 1), (1, 1)), ((1, 1), (5, 3)), ((1, 9), (4, 1)), ((9, 1), (1, 4)), ((2, 3), (1, 5)),
         ((3, 2), (7, 1)), ((5, 5), (3, 3)), ((7, 13), (19, 5)), ((13, 7), (5, 19)), ((16, 16), (8, 32)),
         ((31, 64), (29, 200)), ((64, 31), (8, 8)), ((64, 31), (20, 10)), ((90, 45), (20, 10)),
         ((100, 99), (8, 8)), ((100, 99), (10, 20)), ((50, 40), (45, 45)), ((37, 53), (37, 11)),
         ((37, 53), (12, 53)), ((33, 47), (101, 77)), ((120, 160), (128, 170)), ((200, 3), (4, 600)),
         ((3, 200), (600, 4)), ((257, 129), (1, 1)), ((48, 640), (480, 6))]


@pytest.mark.parametrize("resample", ["nearest", "bilinear", "bicubic"])
@pytest.mark.parametrize("channels", [0, 1, 3, 4])  # 0: an (H, W) array
def test_resize_is_byte_identical_to_pillow(resample, channels):
    rng = np.random.default_rng(channels * 10 + len(resample))
    for (h, w), (oh, ow) in SIZES:
        for image in (noise(rng, h, w, max(channels, 1)), smooth(h, w, max(channels, 1))):
            if channels == 0:
                image = image[:, :, 0]
            ours = resize(image, (oh, ow), resample)
            theirs = pillow(image, oh, ow, resample)
            assert ours.dtype == np.uint8 and ours.shape == theirs.shape, ((h, w), (oh, ow))
            if not np.array_equal(ours, theirs):
                bad = np.argwhere(ours != theirs)
                pytest.fail(f"{(h, w)} -> {(oh, ow)} {resample}: {len(bad)} values differ, first at {bad[0]}")


@pytest.mark.parametrize("resample", ["box", "hamming", "lanczos"])
def test_other_pillow_filters_too(resample):
    rng = np.random.default_rng(3)
    for (h, w), (oh, ow) in SIZES[:20]:
        for channels in (1, 2, 3, 4):
            image = noise(rng, h, w, channels)
            ours = resize(image, (oh, ow), resample)
            assert np.array_equal(ours, pillow(image, oh, ow, resample)), ((h, w), (oh, ow))


@pytest.mark.parametrize("resample", ["bilinear", "bicubic", "nearest"])
def test_realistic_frames(resample):
    """Camera-sized frames to model sizes (downscaling with the widened filter, and upscaling)."""
    rng = np.random.default_rng(7)
    frame = smooth(480, 640, 3) // 2 + noise(rng, 480, 640, 3) // 2
    for oh, ow in [(800, 1066), (224, 224), (256, 341), (512, 512), (224, 298)]:
        assert np.array_equal(resize(frame, (oh, ow), resample), pillow(frame, oh, ow, resample)), (oh, ow)
    big = noise(rng, 1080, 1920, 3)
    assert np.array_equal(resize(big, (224, 224), resample), pillow(big, 224, 224, resample))


@pytest.mark.parametrize("resample", ["nearest", "bilinear", "bicubic"])
def test_extreme_ratios(resample):
    rng = np.random.default_rng(11)
    for (h, w), (oh, ow) in [((20000, 1), (1, 1)), ((20000, 1), (3, 2)), ((1, 20000), (1, 1)),
                             ((1, 20000), (2, 7)), ((1, 1), (300, 700)), ((20000, 2), (50, 2)), ((2, 3000), (2, 9))]:
        image = noise(rng, h, w, 3)
        assert np.array_equal(resize(image, (oh, ow), resample), pillow(image, oh, ow, resample)), ((h, w), (oh, ow))
    tall = noise(rng, 20000, 1, 3)  # a ratio that rounds a side to 0: clamped to 1 px, not a crash
    assert resize(tall, (1, 0), resample).shape == (1, 1, 3)
    assert resize(tall, (0, -5), resample).shape == (1, 1, 3)


def test_same_size_is_a_copy_and_non_contiguous_input_works():
    rng = np.random.default_rng(0)
    image = noise(rng, 40, 30, 3)
    out = resize(image, (40, 30), "bicubic")
    assert np.array_equal(out, image) and out is not image and not np.shares_memory(out, image)
    view = image[::2, ::-1]  # strided, negative steps
    assert np.array_equal(resize(view, (7, 11), "bilinear"), pillow(np.ascontiguousarray(view), 7, 11, "bilinear"))


def test_resample_names_and_codes():
    assert [resample_name(c) for c in (0, 1, 2, 3, 4, 5)] == ["nearest", "lanczos", "bilinear", "bicubic", "box",
                                                              "hamming"]
    assert resample_name("BILINEAR") == resample_name("Resampling.BILINEAR") == "bilinear"
    with pytest.raises(ValueError):
        resample_name(7)
    with pytest.raises(ValueError):
        resample_name(True)


def test_bad_images_are_input_errors():
    for bad in (np.zeros((4, 4), np.float32), np.zeros((0, 4, 3), np.uint8), np.zeros((4, 4, 5), np.uint8), [1, 2]):
        with pytest.raises(InputError):
            resize(bad, (2, 2), "bilinear")


def test_coefficient_tables_are_pillow_fixed_point():
    index, weight = axis_coefficients(1920, 224, "bilinear")
    assert index.shape == weight.shape and weight.dtype == np.int32 and not weight.flags.writeable
    one = 1 << 22
    assert np.all(np.abs(weight.sum(1) - one) <= weight.shape[1])  # normalised, then rounded per tap
    assert axis_coefficients(1920, 224, "bilinear")[1] is weight  # cached


# ============================================================================ processors vs transformers

@pytest.fixture(scope="module")
def photos():
    """Odd-sized photo-like frames (gradients, blocks, noise)."""
    rng = np.random.default_rng(5)
    out = []
    for h, w in [(120, 161), (97, 50), (300, 211)]:
        image = smooth(h, w, 3) // 2 + noise(rng, h, w, 3) // 4
        image[h // 4: h // 2, w // 3: w // 2] = (220, 30, 60)
        out.append(np.ascontiguousarray(image))
    return out


def _ours_from_theirs(theirs, tmp_path, **kwargs) -> ImageProcessor:
    """Our processor read from the preprocessor_config.json transformers writes for ``theirs``."""
    theirs.save_pretrained(tmp_path)
    pre = json.loads((tmp_path / "preprocessor_config.json").read_text())
    return ImageProcessor.from_config(ImageProcessorConfig.from_hf(pre, **kwargs))


def _compare(ours: ImageProcessor, theirs, images, tol=1e-5):
    expected = theirs(images=images, return_tensors="pt")
    pixels, mask = ours(images, "cpu", torch.float32)
    assert pixels.shape == expected["pixel_values"].shape and pixels.dtype == torch.float32
    diff = (pixels - expected["pixel_values"]).abs().max().item()
    assert diff <= tol, diff
    return pixels, mask, expected


@pytest.mark.parametrize("kwargs", [{}, {"size": {"height": 384, "width": 384}, "resample": 3}])
def test_vit(photos, tmp_path, kwargs):
    from transformers import ViTImageProcessorPil
    theirs = ViTImageProcessorPil(**kwargs)
    ours = _ours_from_theirs(theirs, tmp_path)
    for image in photos:
        _compare(ours, theirs, [image])
    _, mask, _ = _compare(ours, theirs, photos)  # all warped to one size: a batch without a mask
    assert mask is None


@pytest.mark.parametrize("shortest_edge", [224, 288, 384])  # < 384: resize + crop_pct crop; 384: warp
def test_convnext_crop_pct(photos, tmp_path, shortest_edge):
    from transformers import ConvNextImageProcessorPil
    theirs = ConvNextImageProcessorPil(size={"shortest_edge": shortest_edge})
    ours = _ours_from_theirs(theirs, tmp_path)
    for image in photos:
        pixels, _, _ = _compare(ours, theirs, [image])
        assert pixels.shape[2:] == (shortest_edge, shortest_edge)
    h, w = photos[0].shape[:2]
    box = ours.crop_box(h, w)
    if shortest_edge < 384:  # resized so the short side is s / crop_pct, then the centre (s, s)
        rh, rw = ours.output_size(h, w)
        assert min(rh, rw) == int(shortest_edge / 0.875)
        top, left = (rh - shortest_edge) // 2, (rw - shortest_edge) // 2
        expected = (left * w / rw, top * h / rh, (left + shortest_edge) * w / rw, (top + shortest_edge) * h / rh)
        np.testing.assert_allclose(box, expected)
    else:
        assert box == (0.0, 0.0, float(w), float(h))


def test_detr_pads_with_a_pixel_mask(photos, tmp_path):
    from transformers import DetrImageProcessorPil
    theirs = DetrImageProcessorPil(size={"shortest_edge": 200, "longest_edge": 333})
    ours = _ours_from_theirs(theirs, tmp_path)
    pixels, mask, expected = _compare(ours, theirs, photos[:2])  # 120x161 -> 200x268, 97x50 -> 333x172
    assert ours.output_size(120, 161) == (200, 268) and ours.output_size(97, 50) == (333, 172)
    assert pixels.shape == (2, 3, 333, 268) and mask is not None and mask.dtype == torch.int64
    assert torch.equal(mask, expected["pixel_mask"])
    assert pixels[1, :, :, 172:].abs().max() == 0 and pixels[0, :, 200:, :].abs().max() == 0
    single, single_mask = ours(photos[:1], "cpu", torch.float32)
    assert single_mask is None and torch.equal(single[0], pixels[0, :, :200, :268])


def test_detr_default_size_and_override(photos, tmp_path):
    from transformers import DetrImageProcessorPil
    theirs = DetrImageProcessorPil()
    ours = _ours_from_theirs(theirs, tmp_path)
    pixels, _, _ = _compare(ours, theirs, photos[:1])
    assert pixels.shape[2:] == (800, 1073)
    small = DetrImageProcessorPil(size={"shortest_edge": 512, "longest_edge": 1333})
    expected = small(images=photos[2:], return_tensors="pt")["pixel_values"]
    got, _ = ours(photos[2:], "cpu", torch.float32, size_override={"shortest_edge": 512, "longest_edge": 1333})
    assert got.shape == expected.shape and (got - expected).abs().max().item() <= 1e-5


def test_glpn_size_divisor(photos, tmp_path):
    from transformers import GLPNImageProcessorPil
    theirs = GLPNImageProcessorPil()
    ours = _ours_from_theirs(theirs, tmp_path)
    assert not ours.config.do_normalize and ours.config.size is None
    for image in photos:
        pixels, _, _ = _compare(ours, theirs, [image])
        assert pixels.shape[2] % 32 == 0 and pixels.shape[3] % 32 == 0
        assert 0.0 <= pixels.min() and pixels.max() <= 1.0  # rescale only


def test_segformer(photos, tmp_path):
    from transformers import SegformerImageProcessorPil
    theirs = SegformerImageProcessorPil()
    ours = _ours_from_theirs(theirs, tmp_path)
    _compare(ours, theirs, photos[:1])


def test_mask2former_rounds_up_and_pads(photos, tmp_path):
    from transformers import Mask2FormerImageProcessorPil
    theirs = Mask2FormerImageProcessorPil(size={"shortest_edge": 100, "longest_edge": 200})
    ours = _ours_from_theirs(theirs, tmp_path)
    assert ours.config.size_divisor == 32 and ours.config.divisor_rounding == "ceil" and ours.config.do_pad
    pixels, mask, expected = _compare(ours, theirs, photos[:2])
    assert torch.equal(mask, expected["pixel_mask"])


def test_rescale_factor_other_than_1_255(photos, tmp_path):
    from transformers import ViTImageProcessorPil
    theirs = ViTImageProcessorPil(rescale_factor=1 / 127.5, do_normalize=False)
    ours = _ours_from_theirs(theirs, tmp_path)
    _compare(ours, theirs, photos[:1])


def test_values_are_bit_identical(photos):
    """Not just close: the same float32 values (rescale as float32(x / 255), then (x - mean) / std)."""
    from transformers import DetrImageProcessorPil, GLPNImageProcessorPil, ViTImageProcessorPil
    for theirs in (ViTImageProcessorPil(), DetrImageProcessorPil(size={"shortest_edge": 150, "longest_edge": 250}),
                   GLPNImageProcessorPil()):
        ours = ImageProcessor.from_hf(theirs.to_dict())
        expected = theirs(images=photos[:1], return_tensors="pt")["pixel_values"]
        assert torch.equal(ours(photos[:1], "cpu")[0], expected), type(theirs).__name__


@pytest.mark.parametrize("legacy, cls_name", [
    ({"feature_extractor_type": "ViTFeatureExtractor", "size": 224, "resample": 2, "do_normalize": True,
      "do_resize": True, "image_mean": [0.5, 0.5, 0.5], "image_std": [0.5, 0.5, 0.5]}, "ViTImageProcessorPil"),
    ({"feature_extractor_type": "ConvNextFeatureExtractor", "size": 224, "crop_pct": 0.875, "resample": 3,
      "do_normalize": True, "do_resize": True, "image_mean": [0.485, 0.456, 0.406],
      "image_std": [0.229, 0.224, 0.225]}, "ConvNextImageProcessorPil"),
    ({"feature_extractor_type": "DetrFeatureExtractor", "size": 300, "max_size": 500, "do_normalize": True,
      "format": "coco_detection", "image_mean": [0.485, 0.456, 0.406], "image_std": [0.229, 0.224, 0.225]},
     "DetrImageProcessorPil"),
])
def test_legacy_hub_files(photos, legacy, cls_name):
    """Older hub files (ints for size, max_size, feature_extractor_type) mean what transformers reads."""
    import transformers
    theirs = getattr(transformers, cls_name).from_dict(dict(legacy))
    ours = ImageProcessor.from_config(ImageProcessorConfig.from_hf(legacy))
    _compare(ours, theirs, photos[2:])


@pytest.mark.parametrize("cls_name", ["ViTImageProcessorPil", "ConvNextImageProcessorPil", "DetrImageProcessorPil",
                                      "SegformerImageProcessorPil", "GLPNImageProcessorPil",
                                      "Mask2FormerImageProcessorPil"])
def test_type_defaults_are_the_transformers_class_defaults(cls_name):
    """A file naming only its type gets what transformers' class would do (checked against the
    installed classes, not written from memory)."""
    import transformers
    full = getattr(transformers, cls_name)().to_dict()  # every default spelled out
    only_type = {"image_processor_type": full["image_processor_type"]}
    assert ImageProcessorConfig.from_hf(only_type) == ImageProcessorConfig.from_hf(full)
    assert ImageProcessorConfig.from_hf({}, default_type=cls_name) == ImageProcessorConfig.from_hf(full)


def test_from_hf_layouts():
    cfg = ImageProcessorConfig.from_hf({"size": 800, "max_size": 1333, "resample": 2, "unknown_key": [1, 2]},
                                       default_type="DetrImageProcessor")
    assert cfg.size == {"shortest_edge": 800, "longest_edge": 1333} and cfg.resample == "bilinear" and cfg.do_pad
    assert ImageProcessorConfig.from_hf({"size": 600}, default_type="DetrImageProcessor").size == {
        "shortest_edge": 600, "longest_edge": 1333}
    vit = ImageProcessorConfig.from_hf({"size": 224, "crop_size": 200, "do_center_crop": True},
                                       default_type="ViTImageProcessor")
    assert vit.size == {"height": 224, "width": 224} and vit.crop_size == (200, 200)
    assert ImageProcessorConfig.from_hf({"crop_size": {"height": 5, "width": 7}}).crop_size == (5, 7)
    assert ImageProcessorConfig.from_hf({"size": [300, 400]}).size == {"height": 300, "width": 400}
    assert ImageProcessorConfig.from_hf({"size": {"longest_edge": 1024}}).size == {"longest_edge": 1024}
    assert ImageProcessorConfig.from_hf({"image_processor_type": "DetrImageProcessorFast"}).do_pad
    m2f = ImageProcessorConfig.from_hf({"size": 384, "max_size": 1333},
                                       default_type="Mask2FormerImageProcessor")
    assert m2f.size == {"shortest_edge": 384, "longest_edge": 1333}
    assert ImageProcessorConfig.from_hf(None).resample == "bilinear"
    with pytest.raises(CheckpointError):
        ImageProcessorConfig.from_hf({"size": {"width": 3}})
    with pytest.raises(CheckpointError):
        ImageProcessorConfig.from_hf({"resample": 9})
    with pytest.raises(CheckpointError):
        ImageProcessorConfig.from_hf({"image_std": [0.5, 0, 0.5]})


def test_output_size_rules_match_transformers():
    from transformers.image_transforms import get_resize_output_image_size, get_size_with_aspect_ratio
    rng = np.random.default_rng(2)
    for h, w in itertools.chain([(480, 640), (640, 480), (1, 1), (1, 5000), (777, 777), (1080, 1920)],
                                (tuple(int(v) for v in rng.integers(1, 3000, 2)) for _ in range(300))):
        for s, longest in [(800, 1333), (224, None), (512, 512), (33, 100)]:
            if longest is not None:
                assert shortest_longest_size(h, w, s, longest) == tuple(get_size_with_aspect_ratio((h, w), s, longest))
            fake = np.zeros((3, h, w), np.uint8)
            expected = get_resize_output_image_size(fake, s, default_to_square=False,
                                                    input_data_format="channels_first")
            assert shortest_edge_size(h, w, s) == tuple(expected)


def test_center_crop_pads_like_transformers():
    from transformers.image_transforms import center_crop as hf_center_crop
    rng = np.random.default_rng(4)
    for (h, w), (ch, cw) in [((10, 12), (4, 5)), ((5, 6), (9, 3)), ((7, 7), (10, 11)), ((8, 9), (8, 9))]:
        image = noise(rng, h, w, 3)
        expected = hf_center_crop(image, (ch, cw), input_data_format="channels_last")
        assert np.array_equal(center_crop(image, ch, cw), expected)


def test_prepare_channels_last_dtype_and_errors(photos):
    ours = ImageProcessor.from_config(ImageProcessorConfig.from_hf({}, default_type="ConvNextImageProcessor"))
    shown = ours.prepare(photos[0])
    assert shown.dtype == np.uint8 and shown.shape == (384, 384, 3)
    pixels, _ = ours(photos[:1], "cpu", torch.bfloat16, channels_last=True)
    assert pixels.dtype == torch.bfloat16 and pixels.is_contiguous(memory_format=torch.channels_last)
    gray = photos[1].mean(axis=2).astype(np.uint8)  # converted to RGB, as the tasks do
    assert ours([gray], "cpu")[0].shape == (1, 3, 384, 384)
    shortest = ImageProcessor.from_config(ImageProcessorConfig.from_hf({"size": {"shortest_edge": 64}}))
    with pytest.raises(InputError):  # different output sizes and no padding
        shortest(photos[:2], "cpu")
    with pytest.raises(InputError):
        shortest([], "cpu")
