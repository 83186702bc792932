"""The Vision tab's dense tasks: semantic segmentation (SegFormer) and depth estimation (GLPN).

Presenters on hand-made results (what they draw, say under the pointer, remember, save), then the
real window running the random-weight fixtures live on a generated video and on a dropped image."""
from __future__ import annotations

import numpy as np
import pytest
from PySide6.QtCore import QPointF, QRectF, Qt

from engine.io import colormap
from engine.types.vision import DenseInternals, DepthResult, SegmentationResult
from gui.app import make_settings
from tests.test_gui_vision import pixels

pytestmark = pytest.mark.gui

LOAD_TIMEOUT_MS = 120_000


def segmentation_result(internals: bool = True) -> SegmentationResult:
    """A 240x320 image: left half class 2 ("sky"), right half class 0 ("wall"), a 40x40 class-1
    square; logits cells 60x80 with the top probability 0.9 except one uncertain cell."""
    labels = np.zeros((240, 320), np.uint8)
    labels[:, :160] = 2
    labels[100:140, 200:240] = 1
    ids, counts = np.unique(labels, return_counts=True)
    order = np.argsort(-counts)
    confidence = np.full((60, 80), 0.9, np.float32)
    confidence[0, 0] = 0.4
    inside = None
    if internals:
        scales = tuple(np.random.default_rng(i).random((60 // 2 ** i, 80 // 2 ** i)).astype(np.float32)
                       for i in range(4))
        entropy = np.zeros((60, 80), np.float32)
        entropy[:, 39:41] = 1.0
        inside = DenseInternals(scales, {"uncertainty": entropy}, (512, 512))
    return SegmentationResult(labels, ("wall", "person", "sky"), colormap.label_colors(3), ids[order].astype(np.int64),
                              counts[order].astype(np.int64), confidence, (240, 320), internals=inside)


def depth_result(internals: bool = True) -> DepthResult:
    depth = np.tile(np.linspace(1.0, 9.0, 320, dtype=np.float32), (240, 1))  # near on the left, far on the right
    inside = None
    if internals:
        scales = tuple(np.ones((60 // 2 ** i, 80 // 2 ** i), np.float32) for i in range(4))
        fusion = {f"fusion {s} {k}": np.full((30, 40), 0.5, np.float32) for s in ("1/8", "1/4") for k in ("local", "global")}
        inside = DenseInternals(scales, fusion, (224, 320))
    return DepthResult(depth, 10.0, (240, 320), internals=inside)


def view_with(qtbot, presenter):
    from gui.vision.widgets.video_view import VideoView
    view = VideoView()
    qtbot.addWidget(view)
    view.set_overlay(presenter)
    view.resize(400, 300)
    view.set_frame(0, np.zeros((240, 320, 3), np.uint8))
    return view


def test_segmentation_presenter_draws_the_classes_and_tells_them(qtbot):
    from gui.vision.presenters.semantic_segmentation import Presenter
    settings = make_settings()
    p = Presenter(settings)
    view = view_with(qtbot, p)
    r = segmentation_result()
    p.set_result(r)
    # the legend: the classes present, most pixels first, with their share
    items = [p.legend.item(i).text() for i in range(p.legend.count())]
    assert [t.split()[0] for t in items] == ["sky", "wall", "person"]
    assert items[0].endswith("50.0%") and items[2].endswith(f"{100 * 1600 / 76800:.1f}%")
    assert p.scales.titles == ["1/4", "1/8", "1/16", "1/32"]
    # a fully opaque mask: every pixel of the snapshot is its class's colour
    p.opacity_slider.setValue(100)
    img = pixels(view.render_annotated())
    assert img.shape == (240, 320, 3)
    colors = r.colors
    assert np.array_equal(img[10, 10], colors[2]) and np.array_equal(img[10, 300], colors[0])
    assert np.array_equal(img[120, 220], colors[1])
    # no mask: the frame (black) shows
    p.opacity_slider.setValue(0)
    assert pixels(view.render_annotated()).max() == 0
    # under the pointer: the class and its probability
    target = QRectF(0, 0, 320, 240)
    assert p.hover_text(QPointF(220, 120), target).startswith("person (90%)")
    assert p.hover_text(QPointF(1, 1), target).startswith("sky (40%)")
    assert "uncertainty" in p.hover_text(QPointF(1, 1), target)
    assert p.hover_text(QPointF(-5, 1), target) == ""
    # highlighting a class in the legend leaves only it opaque
    p.opacity_slider.setValue(100)
    p.legend._clicked(p.legend.item(2))
    assert p.legend.highlight == 1
    img = pixels(view.render_annotated())
    assert np.array_equal(img[120, 220], colors[1]) and not np.array_equal(img[10, 10], colors[2])
    # the uncertainty map instead of the classes
    p.show_combo.setCurrentText("Uncertainty")
    img = pixels(view.render_annotated())
    assert img[:, 150:170].mean() > img[:, :100].mean() + 20  # bright along the boundary cells
    assert p.snapshot()["labels"][0] == {"label_id": 2, "label": "sky", "pixels": 38400}
    # remembered
    p.save_settings()
    again = Presenter(settings)
    assert again.opacity_slider.value() == 100 and again.showing() == "Uncertainty"


def test_segmentation_presenter_bounds_the_overlay_of_a_huge_image(qtbot):
    from gui.vision.presenters.semantic_segmentation import Presenter
    from gui.vision.widgets.dense_panel import MAX_OVERLAY_SIDE
    p = Presenter(make_settings())
    labels = np.zeros((9000, 12000), np.uint8)
    labels[:, 6000:] = 1
    r = SegmentationResult(labels, ("a", "b"), colormap.label_colors(2), np.array([0, 1]), np.array([54e6, 54e6]).astype(np.int64),
                           np.ones((128, 128), np.float32), (9000, 12000))
    p.set_result(r)
    image = p.mask_image()
    assert max(image.width(), image.height()) <= MAX_OVERLAY_SIDE
    assert p.hover_text(QPointF(399, 10), QRectF(0, 0, 400, 300)).startswith("b ")


def test_depth_presenter_colours_saves_and_reads_metres(qtbot, tmp_path, monkeypatch):
    from gui.vision.presenters.depth_estimation import Presenter
    settings = make_settings()
    p = Presenter(settings)
    view = view_with(qtbot, p)
    assert not p.save_button.isEnabled()
    r = depth_result()
    p.set_result(r)
    assert p.save_button.isEnabled() and "nearest 1.00 m" in p.stats.text()
    assert p.scales.titles == ["1/4", "1/8", "1/16", "1/32"]
    assert p.fusion.titles == ["1/8 local", "1/4 local", "1/8 global", "1/4 global"]  # locals in a row, globals under
    p.opacity_slider.setValue(100)
    p.cmap_combo.setCurrentText("gray")
    img = pixels(view.render_annotated()).astype(int)
    assert img[120, 2].mean() > 240 and img[120, 317].mean() < 15  # near is bright, far is dark (auto range)
    # a fixed range: 1-9 m inside 0-20 m uses only part of the map
    p.range_combo.setCurrentText("Fixed")
    p.near_spin.setValue(0.0)
    p.far_spin.setValue(20.0)
    img = pixels(view.render_annotated()).astype(int)
    assert 200 < img[120, 2].mean() < 250 and 100 < img[120, 317].mean() < 160
    target = QRectF(0, 0, 320, 240)
    assert p.hover_text(QPointF(0, 0), target) == "1.00 m at (0, 0)"
    assert p.hover_text(QPointF(319.5, 100), target).startswith("9.00 m")
    # saving: .npy float32 metres; .png 16-bit metres x 256
    npy = p.save_depth(tmp_path / "d.npy")
    assert np.array_equal(np.load(npy), r.depth)
    from PIL import Image
    png = p.save_depth(tmp_path / "d.png")
    with Image.open(png) as im:
        back = np.asarray(im)
    assert back.shape == (240, 320) and back.dtype in (np.uint16, np.int32)
    assert np.abs(back.astype(np.float64) / 256 - r.depth).max() <= 0.5 / 256 + 1e-6
    # a save that fails is a message, not a crash
    from PySide6.QtWidgets import QFileDialog
    problems = []
    p.problem.connect(problems.append)
    missing = tmp_path / "missing-folder" / "d.npy"
    monkeypatch.setattr(QFileDialog, "getSaveFileName", staticmethod(lambda *a, **k: (str(missing), "")))
    p._save_dialog()
    assert len(problems) == 1 and "Could not save the depth map" in problems[0] and not missing.exists()
    saved = tmp_path / "chosen"  # no suffix: the chosen filter's
    monkeypatch.setattr(QFileDialog, "getSaveFileName", staticmethod(lambda *a, **k: (str(saved), "NumPy (*.npy)")))
    p._save_dialog()
    assert np.array_equal(np.load(tmp_path / "chosen.npy"), r.depth) and "Saved" in p.stats.text()
    p.save_settings()
    again = Presenter(settings)
    assert again.colormap_name() == "gray" and again.depth_range() == (0.0, 20.0)


# ----------------------------------------------------------------------------- the real window

def wait_results(qtbot, tab, at_least: int) -> None:
    start = tab.results_received
    qtbot.waitUntil(lambda: tab.results_received >= start + at_least, timeout=LOAD_TIMEOUT_MS)


def drop(w, path) -> None:
    from PySide6.QtCore import QMimeData, QUrl
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(path))])
    assert w.handle_drop(mime)


def test_segmentation_live_on_video_then_a_dropped_image(qtbot, open_window, segformer_ade_checkpoint, video_file,
                                                         image_file, corrupt_image_file):
    w = open_window({"models/semantic-segmentation": str(segformer_ade_checkpoint)})
    tab = w.vision_tab
    assert "semantic-segmentation" in tab.task_names()
    tab.set_task("semantic-segmentation")
    presenter = tab.presenter()
    presenter.inside_check.setChecked(True)
    tab.start_camera(str(video_file))
    wait_results(qtbot, tab, 3)
    tab.stop()
    r = presenter.result
    assert isinstance(r, SegmentationResult) and r.label_map.shape == (240, 320)
    assert r.internals is not None and len(r.internals.scales) == 4 and "uncertainty" in r.internals.maps
    assert presenter.legend.count() == len(r.label_ids) >= 1 and presenter.scales.titles[0] == "1/4"
    assert tab.perf_panel.latency_ms > 0  # latency (and FPS) shown as for every live task
    # the mask is drawn over the frame: a fully opaque mask shows the class colours
    presenter.opacity_slider.setValue(100)
    view = tab.view
    img = pixels(view.render_annotated())
    assert np.array_equal(img[5, 5], r.colors[int(r.label_map[5, 5])])
    # a dropped image runs once; a corrupt one is a message, and what is shown stays
    drop(w, image_file)
    wait_results(qtbot, tab, 1)
    shown = presenter.result
    assert shown is not None and shown.image_size == (240, 320)
    drop(w, corrupt_image_file)
    qtbot.waitUntil(lambda: "corrupt" in w.message_area.text(), timeout=10_000)
    assert presenter.result is shown


def test_depth_live_on_video(qtbot, open_window, glpn_nyu_checkpoint, video_file):
    w = open_window({"models/depth-estimation": str(glpn_nyu_checkpoint)})
    tab = w.vision_tab
    assert "depth-estimation" in tab.task_names()
    tab.set_task("depth-estimation")
    presenter = tab.presenter()
    presenter.inside_check.setChecked(True)
    tab.start_camera(str(video_file))
    wait_results(qtbot, tab, 3)
    tab.stop()
    r = presenter.result
    assert isinstance(r, DepthResult) and r.depth.shape == (240, 320) and r.depth.dtype == np.float32
    assert 0 <= float(r.depth.min()) <= float(r.depth.max()) <= r.max_depth
    assert r.internals is not None and len(r.internals.scales) == 4 and r.internals.maps
    assert presenter.save_button.isEnabled() and not presenter.preview.pixmap().isNull()
    assert presenter.hover_text(QPointF(10, 10), QRectF(0, 0, 320, 240)).endswith("at (10, 10)")


# ----------------------------------------------------------------------------- Mask2Former

def universal_result(internals: bool = True):
    from engine.types.vision import Segment, UniversalInternals, UniversalSegmentationResult
    seg = np.zeros((240, 320), np.int32)  # panoptic: 0 unassigned
    seg[:, :160] = 1  # stuff: sky
    seg[100:180, 200:280] = 2  # a thing: person
    segments = (Segment(1, 2, "sky", 0.95, int((seg == 1).sum()), False),
                Segment(2, 1, "person", 0.88, int((seg == 2).sum()), True))
    inside = None
    if internals:
        scores = np.full((5, 4), 0.01, np.float32)
        scores[3, 1] = 0.9  # query 3: person, the best
        scores[0, 2] = 0.7  # query 0: sky
        masks = np.full((5, 60, 80), -5.0, np.float32)
        masks[3, 25:45, 50:70] = 5.0
        attention = tuple(np.random.default_rng(i).random((5, 8 * 2 ** (i % 3), 10 * 2 ** (i % 3))) > 0.5 for i in range(3))
        inside = UniversalInternals(masks, scores, attention, (240, 320), (240, 320))
    return UniversalSegmentationResult("panoptic", seg, segments, ("wall", "person", "sky"), colormap.label_colors(3),
                                       (240, 320), internals=inside)


def test_universal_presenter_draws_segments_outlines_and_queries(qtbot):
    from gui.vision.presenters.universal_segmentation import Presenter
    settings = make_settings()
    p = Presenter(settings)
    view = view_with(qtbot, p)
    r = universal_result()
    p.inside_check.setChecked(False)
    p.set_result(r)
    assert p.summary.text().startswith("2 segments (1 things, 1 stuff)")
    p.opacity_slider.setValue(100)
    img = pixels(view.render_annotated())
    colors = r.segment_colors()
    assert np.array_equal(img[20, 20], colors[0]) and np.array_equal(img[110, 210], colors[1])
    assert img[20, 300].max() == 0  # unassigned pixels: the frame shows
    assert np.array_equal(img[140, 200], [255, 255, 255])  # the person's outline
    target = QRectF(0, 0, 320, 240)
    assert p.hover_text(QPointF(220, 120), target) == "person 0.88 · thing (segment 2, 6400 px)"
    assert p.hover_text(QPointF(300, 10), target).startswith("no segment")
    # the object queries, best first; the chosen one's mask replaces the segments
    p.inside_check.setChecked(True)
    p.set_result(r)
    assert p.chosen_query() is None and p.layers.isHidden()  # the segments first
    assert np.array_equal(pixels(view.render_annotated())[20, 20], colors[0])
    assert p.query_combo.itemText(1) == "query 3: person 0.90" and p.query_combo.count() == 6
    p.query_combo.setCurrentIndex(1)
    p._on_query_chosen(1)
    assert p.chosen_query() == 3 and p.layers.titles == ["layer 1", "layer 2", "layer 3"]
    img = pixels(view.render_annotated()).astype(int)
    assert img[140, 240].sum() > img[20, 20].sum() + 100  # bright inside query 3's mask
    p.query_combo.setCurrentIndex(2)
    p._on_query_chosen(2)
    p.set_result(r)  # the next frame keeps the user's query
    assert p.chosen_query() == 0
    p.mode_combo.setCurrentText("instance")
    assert p.options().mode == "instance" and p.options().internals
    p.save_settings()
    assert Presenter(settings).mode() == "instance"


def test_universal_segmentation_live_on_video(qtbot, open_window, mask2former_panoptic_checkpoint, video_file,
                                              image_file):
    from engine.types.vision import UniversalSegmentationResult
    w = open_window({"models/universal-segmentation": str(mask2former_panoptic_checkpoint)})
    tab = w.vision_tab
    assert "universal-segmentation" in tab.task_names()
    tab.set_task("universal-segmentation")
    presenter = tab.presenter()
    presenter.inside_check.setChecked(True)
    tab.start_camera(str(video_file))
    wait_results(qtbot, tab, 2)
    tab.stop()
    r = presenter.result
    assert isinstance(r, UniversalSegmentationResult) and r.segment_map.shape == (240, 320)
    assert r.internals is not None and presenter.query_combo.count() >= 1
    # another mode: the next image runs in it
    presenter.mode_combo.setCurrentText("semantic")
    assert tab.open_file(image_file)
    qtbot.waitUntil(lambda: presenter.result is not None and presenter.result.mode == "semantic",
                    timeout=LOAD_TIMEOUT_MS)
    assert presenter.result.label_map is not None
