"""Image classification in the real Vision tab (offscreen): live on a generated video, switching
tasks, each task remembering its model, and results reaching only the tab that asked."""
from __future__ import annotations

import numpy as np
import pytest
from PySide6.QtCore import QPointF

from engine.types.vision import ClassificationResult, DetectionResult
from tests.fixtures_gui import detection_settings

LOAD_TIMEOUT_MS = 60_000


def pixels(img) -> np.ndarray:
    from PySide6.QtGui import QImage
    img = img.convertToFormat(QImage.Format.Format_RGB888)
    h, w, bpl = img.height(), img.width(), img.bytesPerLine()
    return np.frombuffer(img.constBits(), np.uint8, count=h * bpl).reshape(h, bpl)[:, : w * 3].reshape(h, w, 3).copy()


@pytest.fixture
def window(open_window, detr_checkpoint, vit_checkpoint, convnext_checkpoint):
    settings = {**detection_settings(detr_checkpoint), "models/image-classification": str(vit_checkpoint)}
    opened = []

    def make():  # the settings are written before the first window only; later ones find what it remembered
        opened.append(open_window(None if opened else settings))
        return opened[-1]
    return make


def wait_results(qtbot, tab, at_least: int) -> None:
    start = tab.results_received
    qtbot.waitUntil(lambda: tab.results_received >= start + at_least, timeout=LOAD_TIMEOUT_MS)


def test_classification_live_on_video_draws_bars_and_attention(qtbot, window, video_file):
    w = window()
    tab = w.vision_tab
    assert "image-classification" in tab.task_names()
    tab.set_task("image-classification")
    presenter = tab.presenter()
    presenter.inside_check.setChecked(True)
    tab.start_camera(str(video_file))
    wait_results(qtbot, tab, 3)
    r = presenter.result
    assert isinstance(r, ClassificationResult) and len(r) == 5
    assert presenter.bars.labels == r.labels  # the side panel's bars
    assert r.internals is not None and presenter.map_combo.count() >= 3  # rollout, mean, heads
    tab.stop()

    view = tab.view
    view.resize(640, 480)
    with_overlay = pixels(view.grab().toImage())
    presenter.inside_check.setChecked(False)  # no heat map; the top-5 card stays
    no_map = pixels(view.grab().toImage())
    target = view.image_rect()
    # the map is drawn over the part of the frame the model saw; its brightest cell (min-max scaled,
    # whichever frame's result this is) is nearly opaque
    area = presenter._model_rect(target)
    y0, y1, x0, x1 = int(area.top()) + 1, int(area.bottom()) - 1, int(area.left()) + 1, int(area.right()) - 1
    assert np.abs(with_overlay.astype(int) - no_map.astype(int)).sum(-1)[y0:y1, x0:x1].max() > 30
    # the top-5 card in the frame's top-left corner is drawn over the frame
    presenter.set_result(None)
    bare = pixels(view.grab().toImage())
    presenter.set_result(r)
    card = pixels(view.grab().toImage())
    x0, y0 = int(target.left()) + 12, int(target.top()) + 12
    assert np.abs(card.astype(int) - bare.astype(int))[y0:y0 + 60, x0:x0 + 120].sum(-1).mean() > 20
    # hovering the map reads a patch's share of the attention
    presenter.inside_check.setChecked(True)
    assert "of the attention" in view.hover_text_at(QPointF(target.center()))


def test_switching_tasks_live_and_each_task_remembers_its_model(qtbot, window, video_file, convnext_checkpoint):
    w = window()
    tab = w.vision_tab
    tab.start_camera(str(video_file))
    wait_results(qtbot, tab, 2)
    assert isinstance(tab.last_outcome().result, DetectionResult)
    tab.set_task("image-classification")
    wait_results(qtbot, tab, 2)
    assert isinstance(tab.last_outcome().result, ClassificationResult)
    assert not isinstance(tab.presenter("object-detection").result, ClassificationResult)  # never reached it
    tab.pickers["image-classification"].set_model(str(convnext_checkpoint))  # ConvNeXT now
    qtbot.waitUntil(lambda: "convnext" in tab.perf_panel.model_label.toolTip().lower(), timeout=LOAD_TIMEOUT_MS)
    wait_results(qtbot, tab, 1)
    assert isinstance(tab.last_outcome().result, ClassificationResult)
    tab.set_task("object-detection")  # back: its model is still loaded, results come at once
    wait_results(qtbot, tab, 2)
    assert isinstance(tab.last_outcome().result, DetectionResult)
    tab.stop()
    assert w.shutdown()
    w2 = window()
    assert w2.vision_tab.task == "object-detection"
    assert w2.vision_tab.pickers["object-detection"].current_model().endswith(tab.pickers[
        "object-detection"].current_model())
    w2.vision_tab.set_task("image-classification")
    assert w2.vision_tab.model_picker.current_model() == str(convnext_checkpoint)


def test_results_reach_only_the_tab_that_asked(qtbot, window, video_file, w2v_base_ctc, speech_wav):
    """Live classification in the Vision tab while the Speech tab transcribes a file."""
    w = window()
    vision, speech = w.vision_tab, w.speech_tab
    speech.asr_picker.set_model(str(w2v_base_ctc))
    vision.set_task("image-classification")
    seen = []
    original = vision.presenter().set_result
    vision.presenter().set_result = lambda r: (seen.append(type(r)), original(r))
    vision.start_camera(str(video_file))
    assert speech.open_file(speech_wav)
    qtbot.waitUntil(lambda: speech.file_result is not None, timeout=LOAD_TIMEOUT_MS)
    wait_results(qtbot, vision, 2)
    vision.stop()
    assert seen and set(seen) <= {ClassificationResult, type(None)}
    assert speech.file_result.duration_s > 0
