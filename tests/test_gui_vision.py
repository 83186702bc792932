"""The real window's Vision tab, driven by generated media and a random-weight DETR checkpoint."""
from __future__ import annotations

import json
import threading

import numpy as np
import pytest
from PySide6.QtCore import QMimeData, QPoint, QPointF, Qt, QUrl
from PySide6.QtGui import QDropEvent, QImage

from gui.app import MainWindow, make_settings
from gui.sources.switcher import SourceSwitcher
from gui.sources.video import FALLBACK_FPS, CameraSource, FrameSource, ImageSource, VideoFileSource
from gui.vision.presenters.object_detection import box_rect
from tests.fixtures_gui import detection_settings

pytestmark = pytest.mark.gui

LOAD_TIMEOUT_MS = 120_000  # first use imports torch and builds the model on a shared 2-core machine


def pixels(image: QImage) -> np.ndarray:
    """(H, W, 3) uint8 copy of a QImage."""
    img = image.convertToFormat(QImage.Format.Format_RGB888)
    h, w, bpl = img.height(), img.width(), img.bytesPerLine()
    return np.frombuffer(img.constBits(), np.uint8, count=h * bpl).reshape(h, bpl)[:, : w * 3].reshape(h, w, 3).copy()


@pytest.fixture
def window(open_window, detr_checkpoint):
    """``window()``: the real main window; the first one with the random DETR checkpoint chosen,
    threshold 0 (random weights give low scores) and the fastest input size."""
    first = [True]

    def make():
        settings = detection_settings(detr_checkpoint) if first[0] else None
        first[0] = False
        return open_window(settings)
    return make


def det(tab):
    """The Vision tab's object-detection presenter (created on first use)."""
    return tab.presenter("object-detection")


def wait_results(qtbot, tab, at_least: int, timeout: int = LOAD_TIMEOUT_MS) -> None:
    start = tab.results_received
    qtbot.waitUntil(lambda: tab.results_received >= start + at_least, timeout=timeout)


def test_video_as_camera_draws_boxes_and_threshold_redraws(qtbot, window, video_file):
    w = window()
    tab = w.vision_tab
    assert det(tab).threshold() == 0.0
    tab.start_camera(str(video_file))  # a video file stands in for the webcam
    wait_results(qtbot, tab, 3)
    assert tab.view.frame_id >= 0
    outcome = tab.last_outcome()
    assert outcome.stream == "vision" and outcome.item_id <= tab.view.frame_id  # drawn on the newest frame
    shown = det(tab).current_detections()
    assert shown is not None and len(shown) > 0
    assert shown.image_size == (240, 320)
    assert det(tab).classes.list_widget.count() > 0
    tab.stop()
    assert not tab.is_running()

    # pixels along a drawn box differ from the same frame drawn without boxes
    view = tab.view
    view.resize(640, 480)
    rect = box_rect(det(tab).current_detections(), 0, view.image_rect())
    with_boxes = pixels(view.grab().toImage())
    det(tab).set_threshold(1.0)  # nothing scores above 1: no boxes, redrawn at once from the last result
    assert len(det(tab).current_detections()) == 0
    without = pixels(view.grab().toImage())
    x0, y0 = int(np.clip(rect.left(), 0, 639)), int(np.clip(rect.top(), 0, 479))
    x1, y1 = int(np.clip(rect.right(), 0, 639)), int(np.clip(rect.bottom(), 0, 479))
    border = np.zeros(with_boxes.shape[:2], bool)
    border[max(y0 - 1, 0): y0 + 2, x0: x1 + 1] = True
    border[y0: y1 + 1, max(x0 - 1, 0): x0 + 2] = True
    diff = np.abs(with_boxes.astype(int) - without.astype(int)).sum(-1) > 30
    assert diff[border].mean() > 0.3, "the box outline is not where the detection is"

    # the slider changes what is drawn without waiting for the model (random weights give
    # near-equal scores, so go just below and just above them)
    det(tab).threshold_slider.setValue(0)
    scores = det(tab).current_detections().scores
    n_all = len(scores)
    det(tab).threshold_slider.setValue(int(np.floor(scores.min() * 1000)) - 1)
    assert len(det(tab).current_detections()) == n_all
    det(tab).threshold_slider.setValue(int(np.ceil(scores.max() * 1000)) + 1)
    assert len(det(tab).current_detections()) == 0
    assert det(tab).detections.count_label.text().startswith("0 drawn")
    det(tab).threshold_slider.setValue(0)
    assert det(tab).detections.count_label.text().startswith(f"{n_all} drawn")


def test_detection_presenter_threshold_and_class_filter(qtbot):
    """The presenter draws result.above(threshold) minus hidden classes, immediately."""
    from engine.types.vision import DetectionResult
    from gui.vision.presenters.object_detection import Presenter
    from gui.vision.widgets.video_view import VideoView
    view = VideoView()
    qtbot.addWidget(view)
    presenter = Presenter(make_settings())
    view.set_overlay(presenter)
    view.resize(400, 300)
    view.set_frame(0, np.zeros((240, 320, 3), np.uint8))
    r = DetectionResult(np.array([[10, 10, 100, 100], [50, 60, 200, 220], [5, 5, 40, 40]], np.float32),
                        np.array([0.9, 0.5, 0.2], np.float32), np.array([1, 4, 1]), ("person", "car", "person"),
                        (240, 320), 0.1, np.array([3, 5, 7]))
    presenter.set_result(r)
    presenter.set_threshold(0.1)
    assert len(presenter.current_detections()) == 3
    presenter.set_threshold(0.4)
    assert presenter.current_detections().labels == ("person", "car")
    presenter.classes.list_widget.findItems("person", Qt.MatchFlag.MatchExactly)[0].setCheckState(
        Qt.CheckState.Unchecked)
    assert presenter.current_detections().labels == ("car",)
    assert list(presenter.current_detections().query_ids) == [5]
    presenter.classes.check_all(True)
    presenter.set_threshold(0.95)
    assert len(presenter.current_detections()) == 0
    img = view.render_annotated()
    assert (img.width(), img.height()) == (320, 240)


def test_click_box_selects_query_and_shows_attention(qtbot, window, image_file):
    w = window()
    tab = w.vision_tab
    det(tab).attention_check.setChecked(True)
    assert tab.open_file(image_file)
    qtbot.waitUntil(lambda: tab.last_outcome() is not None and det(tab).result.internals is not None,
                    timeout=LOAD_TIMEOUT_MS)
    view = tab.view
    view.resize(640, 480)
    r = det(tab).current_detections()
    # the smallest box is the one a click inside it selects
    areas = (r.boxes[:, 2] - r.boxes[:, 0]) * (r.boxes[:, 3] - r.boxes[:, 1])
    i = int(np.argmin(areas))
    before = pixels(view.grab().toImage())
    centre = box_rect(r, i, view.image_rect()).center()
    view.click_at(QPointF(centre))
    q = det(tab).selected_query
    assert q in set(int(x) for x in r.query_ids)
    assert f"Object query #{q}" in det(tab).attention.inside_label.text()
    after = pixels(view.grab().toImage())
    assert (np.abs(after.astype(int) - before.astype(int)).sum(-1) > 30).mean() > 0.05  # heat map drawn
    view.click_at(QPointF(1, 1))  # outside the image: clears
    assert det(tab).selected_query == -1


def test_corrupt_drop_shows_error_and_window_keeps_working(qtbot, window, corrupt_image_file, image_file, tmp_path):
    w = window()
    tab = w.vision_tab
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(corrupt_image_file))])
    event = QDropEvent(QPointF(50, 50), Qt.DropAction.CopyAction, mime, Qt.MouseButton.LeftButton,
                       Qt.KeyboardModifier.NoModifier)
    w.dropEvent(event)
    qtbot.waitUntil(lambda: "corrupt.png" in w.last_error, timeout=10_000)
    assert "corrupt.png" in w.message_area.text()
    assert w.tabs.currentWidget() is tab

    unknown = tmp_path / "notes.xyz"
    unknown.write_text("hello")
    mime2 = QMimeData()
    mime2.setUrls([QUrl.fromLocalFile(str(unknown))])
    assert w.handle_drop(mime2) is False
    assert "Cannot open notes.xyz" in w.message_area.text()

    mime3 = QMimeData()
    mime3.setUrls([QUrl.fromLocalFile(str(image_file))])
    assert w.handle_drop(mime3) is True
    qtbot.waitUntil(lambda: tab.last_outcome() is not None, timeout=LOAD_TIMEOUT_MS)
    assert isinstance(tab.source, ImageSource)
    assert tab.view.frame_size.width() == 320 and len(det(tab).current_detections()) > 0
    # the model became ready meanwhile ("Model ready" in the status bar): the problem is still shown
    assert "Cannot open notes.xyz" in w.message_area.text()
    assert any("corrupt.png" in m for _, _, m in w.message_area.history)
    w.message_area.dismiss()
    assert w.message_area.text() == "" and len(w.message_area.history) >= 2


def test_failed_image_keeps_what_is_shown(qtbot, window, image_file, empty_file):
    w = window()
    tab = w.vision_tab
    tab.open_file(image_file)
    qtbot.waitUntil(lambda: tab.last_outcome() is not None, timeout=LOAD_TIMEOUT_MS)
    shown = det(tab).current_detections()
    tab.open_file(empty_file)
    qtbot.waitUntil(lambda: "empty" in w.last_error, timeout=10_000)
    assert tab.view.frame_id == 0 and det(tab).current_detections() is not None
    assert len(det(tab).current_detections()) == len(shown)


def test_snapshot_writes_png_and_json(qtbot, window, image_file, tmp_path):
    w = window()
    tab = w.vision_tab
    assert tab.snapshot(tmp_path / "nothing.png") is None  # nothing shown yet: a message, no file
    tab.open_file(image_file)
    qtbot.waitUntil(lambda: tab.last_outcome() is not None, timeout=LOAD_TIMEOUT_MS)
    det(tab).set_threshold(0.0)
    out = tab.snapshot(tmp_path / "shots" / "snap")
    assert out == tmp_path / "shots" / "snap.png" if (tmp_path / "shots").exists() else out is None
    if out is None:  # the folder did not exist: error shown, retry in an existing folder
        assert "Could not write" in w.last_error
        out = tab.snapshot(tmp_path / "snap.png")
    assert out.is_file()
    img = QImage(str(out))
    assert (img.width(), img.height()) == (320, 240)
    data = json.loads(out.with_suffix(".json").read_text())
    assert data["image"] == out.name
    assert len(data["detections"]) == len(det(tab).current_detections()) > 0
    first = data["detections"][0]
    assert set(first) == {"label", "label_id", "score", "box"} and len(first["box"]) == 4
    assert make_settings().value("vision/snapshot_dir") == str(out.parent)


def test_settings_remembered_across_windows(qtbot, window, detr_checkpoint):
    w = window()
    width = max(790, w.minimumSizeHint().width())  # the offscreen screen is 800 px wide
    w.resize(width, 707)
    w.tabs.setCurrentIndex(2)
    det(w.vision_tab).set_threshold(0.42)
    det(w.vision_tab).size_combo.setCurrentIndex(det(w.vision_tab).size_combo.findData(512))
    det(w.vision_tab).attention_check.setChecked(False)
    assert w.shutdown()
    w2 = window()
    assert w2.tabs.currentIndex() == 2
    assert (w2.width(), w2.height()) == (width, 707)
    assert abs(det(w2.vision_tab).threshold() - 0.42) < 1e-6
    assert det(w2.vision_tab).input_size() == 512
    assert not det(w2.vision_tab).attention_check.isChecked()
    assert w2.vision_tab.model_picker.current_model() == str(detr_checkpoint)
    assert w2.device_picker.device() == w.device_picker.device()
    assert w2.device_picker.precision() == "exact"
    assert w2.offline_action.isChecked()


def test_missing_model_offline_is_reported(qtbot, window, image_file):
    w = window()
    tab = w.vision_tab
    with qtbot.waitSignal(w.engine.modelFailed, timeout=30_000):
        tab.model_picker.set_model("nobody/no-such-detr")
    assert "offline" in w.last_error.lower()
    assert w.failure_box is not None and w.failure_box.isVisible()
    assert "nobody/no-such-detr" in w.failure_box.informativeText()
    tab.open_file(image_file)  # the frame is shown; the model error stays on the view
    qtbot.waitUntil(lambda: tab.view.frame_id == 0, timeout=10_000)
    assert tab.last_outcome() is None
    assert "offline" in tab.view.message.lower()


def test_no_camera_message(qtbot):
    src = CameraSource(9)
    with qtbot.waitSignal(src.failed, timeout=20_000) as blocker:
        src.start()
    assert blocker.args[0] == ("No camera found at index 9. Connect a camera or open a video or image file.")
    assert src.stop()


def test_video_file_source_plays_and_ends(qtbot, video_file):
    src = VideoFileSource(video_file, loop=False)
    frames: list[tuple[int, tuple]] = []
    src.frameReady.connect(lambda fid, rgb, t: frames.append((fid, rgb.shape)))
    with qtbot.waitSignal(src.ended, timeout=20_000):
        src.start()
    assert src.stop()
    assert [f[0] for f in frames] == list(range(len(frames))) and len(frames) >= 40
    assert frames[0][1] == (240, 320, 3)


def test_image_source_reports_corrupt_file(qtbot, corrupt_image_file):
    src = ImageSource(corrupt_image_file)
    with qtbot.waitSignal(src.failed, timeout=10_000) as blocker:
        src.start()
    assert "corrupt.png" in blocker.args[0]
    assert src.stop()


def test_tab_shortcuts_and_open_routing(qtbot, window, tmp_path):
    w = window()
    tab_keys = [a for a in w.actions() if a.shortcut().toString() in ("Ctrl+1", "Ctrl+2", "Ctrl+3")]
    assert len(tab_keys) == 3
    for i, action in enumerate(tab_keys):
        action.trigger()
        assert w.tabs.currentIndex() == i
    assert w.open_path(tmp_path / "x.docx") is False
    assert "Cannot open x.docx" in w.last_error
    assert QPoint(0, 0) == QPoint()  # keep QPoint import meaningful for drop positions
    history = [a for a in w.actions() if a.shortcut().toString() == "Ctrl+Shift+M"]
    assert len(history) == 1


def test_download_dialog_shows_bytes_and_cancels(qtbot, window, monkeypatch):
    w = window()
    cancelled: list[bool] = []
    monkeypatch.setattr(w.engine, "cancel_loading", lambda: cancelled.append(True))
    w.download_dialog.cancelRequested.disconnect()
    w.download_dialog.cancelRequested.connect(w.engine.cancel_loading)
    w.engine.modelLoading.emit("object-detection", "facebook/detr-resnet-50", None, None)
    w.engine.modelLoading.emit("object-detection", "facebook/detr-resnet-50", 16_000_000, 167_000_000)
    qtbot.waitUntil(w.download_dialog.isVisible, timeout=5_000)
    assert "16.0 MB of 167.0 MB" in w.download_dialog._detail.text()
    w.download_dialog.reject()  # Cancel / Esc
    assert cancelled == [True]
    w.engine.modelFailed.emit("object-detection", "")  # what a cancelled load reports
    qtbot.waitUntil(lambda: not w.download_dialog.isVisible(), timeout=5_000)
    assert "cancelled" in w.statusBar().currentMessage()
    assert w.failure_box is None  # a cancel is not a failure


def test_source_combo_finds_items_by_value(qtbot):
    """The camera chosen last time is found again, and re-showing the same file keeps one entry."""
    from gui.vision.widgets.source_combo import SourceCombo
    combo = SourceCombo(cameras=[0, 1, 2])
    qtbot.addWidget(combo)
    assert combo.camera_index(2) == 2
    assert combo.camera_index(7) == -1
    combo.show_file("a.mp4", "/tmp/a.mp4")
    n = combo.count()
    combo.show_file("a.mp4", "/tmp/a.mp4")
    assert combo.count() == n and combo.currentIndex() == 0
    assert combo.camera_index(1) == 2  # cameras moved down by the file entry
    combo.show_file("b.png", "/tmp/b.png")  # a new file replaces the old one
    assert combo.count() == n and combo.itemText(0) == "b.png"


def test_backpressure_emits_only_after_the_previous_frame_was_taken(qtbot, video_file):
    src = VideoFileSource(video_file, loop=True)
    src.require_ack()
    frames: list[int] = []
    src.frameReady.connect(lambda fid, rgb, t: frames.append(fid))
    src.start()
    try:
        qtbot.waitUntil(lambda: src.dropped >= 3, timeout=20_000)  # nobody took frame 0
        assert frames == [0]
        src.frame_taken()
        qtbot.waitUntil(lambda: len(frames) == 2, timeout=20_000)
        qtbot.waitUntil(lambda: src.dropped >= 6, timeout=20_000)
        assert frames == [0, 1]  # still one frame per take: no pile-up of queued frames
    finally:
        assert src.stop()


class _FakeCapture:
    """A cv2.VideoCapture stand-in that reports no frame rate (webm, variable rate) and never ends."""

    def __init__(self, target) -> None:
        self.reads = 0

    def isOpened(self) -> bool:  # noqa: N802 - cv2 API
        return True

    def get(self, prop) -> float:
        return 0.0

    def read(self):
        self.reads += 1
        return True, np.zeros((8, 8, 3), np.uint8)

    def set(self, prop, value) -> bool:
        return True

    def release(self) -> None:
        pass


def test_video_without_frame_rate_is_paced_not_raced(qtbot, monkeypatch, tmp_path):
    import time

    import cv2
    monkeypatch.setattr(cv2, "VideoCapture", _FakeCapture)
    src = VideoFileSource(tmp_path / "clip.webm", loop=True)
    times: list[float] = []
    src.frameReady.connect(lambda fid, rgb, t: times.append(t))
    with qtbot.waitSignal(src.opened, timeout=10_000) as opened:
        src.start()
    try:
        assert opened.args[1] == 0.0  # the rate is reported as unknown
        qtbot.waitUntil(lambda: len(times) >= 7, timeout=10_000)
    finally:
        assert src.stop()
    assert times[6] - times[0] >= 6 / FALLBACK_FPS * 0.9  # paced at the fallback rate (only a lower bound)


class _StuckSource(FrameSource):
    """Emits one frame, then blocks like a camera stuck in read, ignoring stop requests."""

    def __init__(self) -> None:
        super().__init__()
        self.release = threading.Event()

    def _produce(self) -> None:
        self._emit(np.zeros((4, 4, 3), np.uint8), 0.0)
        self.release.wait(30)


def test_switcher_stop_never_blocks_and_keeps_running_sources_until_finished(qtbot):
    switcher = SourceSwitcher()
    src = _StuckSource()
    with qtbot.waitSignal(switcher.promoted, timeout=10_000):
        switcher.start(src)
    switcher.stop()  # returns at once although the thread is stuck
    assert src.isRunning() and src in switcher.retired and switcher.current is None
    assert switcher.wait_retired(20) is False  # bounded
    src.release.set()  # the thread ends: `finished` takes it out of `retired` and deletes it
    qtbot.waitUntil(lambda: not switcher.retired, timeout=10_000)
    assert switcher.wait_retired(0) is True


def test_replaced_source_is_retired_not_waited_for(qtbot, video_file):
    switcher = SourceSwitcher()
    stuck = _StuckSource()
    with qtbot.waitSignal(switcher.promoted, timeout=10_000):
        switcher.start(stuck)
    with qtbot.waitSignal(switcher.promoted, timeout=20_000):
        switcher.start(VideoFileSource(video_file, loop=True))
    assert stuck in switcher.retired and stuck.isRunning()
    stuck.release.set()
    switcher.stop()
    assert switcher.wait_retired(10_000) is True


def test_view_converts_lazily_caches_the_scaled_frame_and_idles(qtbot):
    from gui.vision.widgets.video_view import VideoView
    view = VideoView()
    qtbot.addWidget(view)
    view.resize(400, 300)
    view.show()
    qtbot.waitExposed(view)
    qtbot.waitUntil(lambda: not view._repaint.isActive(), timeout=5000)  # no timer while idle
    for i in range(5):  # frames faster than painting: only what is painted is converted
        view.set_frame(i, np.full((60, 80, 3), i * 40, np.uint8))
    assert view.conversions == 0 and view._repaint.isActive()
    painted = view.paint_count
    qtbot.waitUntil(lambda: view.paint_count > painted, timeout=5000)
    assert view.conversions == 1 and view.frame_size.width() == 80
    qtbot.waitUntil(lambda: not view._repaint.isActive(), timeout=5000)
    painted = view.paint_count
    view.refresh()  # an overlay change repaints without converting the frame again
    qtbot.waitUntil(lambda: view.paint_count > painted, timeout=5000)
    assert view.conversions == 1
    assert pixels(view.grab().toImage())[150, 200].tolist() == [160, 160, 160]  # the newest frame
    assert view.conversions == 1
    view.resize(500, 400)  # a new size rescales the same converted frame
    qtbot.waitUntil(lambda: view._pixmap_size.width() >= 490, timeout=5000)
    assert view.conversions == 1


def test_drop_opens_the_first_supported_file_and_counts_the_rest(qtbot, window, image_file, tmp_path):
    w = window()
    bad = tmp_path / "notes.xyz"
    bad.write_text("x")
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(bad)), QUrl.fromLocalFile(str(image_file)),
                  QUrl.fromLocalFile(str(image_file))])
    shown: list[str] = []
    w.statusBar().messageChanged.connect(shown.append)
    assert w.handle_drop(mime) is True
    notes = [m for m in shown if "2 other files ignored" in m]
    assert notes and image_file.name in notes[0]
    assert w.last_error == ""  # the unsupported first file is no error
    qtbot.waitUntil(lambda: w.vision_tab.view.frame_id == 0, timeout=10_000)


def test_identical_errors_are_not_repeated(qtbot, window):
    w = window()
    for _ in range(5):
        w.show_error("Same error for every frame.")
    assert w.repeated_errors == 4 and w.last_error == "Same error for every frame."
    w.show_error("Another error.")
    assert w.last_error == "Another error." and w.repeated_errors == 4
    assert "Another error." in w.message_area.text()


def test_an_error_stays_shown_when_routine_status_follows(qtbot, window):
    """Issue: 'Model ready' replaced the error about a corrupt file a moment later."""
    w = window()
    w.show_error("corrupt.png could not be read.")
    w.show_status("Model ready: detr")
    w._on_model_loaded("object-detection", "detr · cpu")
    assert w.message_area.text() == "corrupt.png could not be read."
    from PySide6.QtWidgets import QPlainTextEdit
    dialog = w.message_area.open_history()
    assert "corrupt.png could not be read." in dialog.findChild(QPlainTextEdit).toPlainText()
    dialog.close()


def test_command_line_overrides_are_not_remembered(qtbot, tmp_path):
    """`--offline` for one run does not make every later run offline; a click on the toggle does."""
    from gui.app import MainWindow
    from PySide6.QtCore import QSettings
    settings = QSettings(str(tmp_path / "t.ini"), QSettings.Format.IniFormat)
    settings.setValue("engine/offline", False)
    w = MainWindow(settings, offline=True)
    qtbot.addWidget(w)
    assert w.offline_action.isChecked()
    w.close()
    w2 = MainWindow(settings)
    qtbot.addWidget(w2)
    assert not w2.offline_action.isChecked()
    w2.offline_action.trigger()  # the user's own choice is remembered
    w2.close()
    w3 = MainWindow(settings)
    qtbot.addWidget(w3)
    assert w3.offline_action.isChecked()
    w3.close()


def test_splitter_layout_is_remembered(qtbot, tmp_path):
    from PySide6.QtCore import QSettings
    from PySide6.QtWidgets import QLabel, QSplitter
    from gui.core.settings import remember_splitter
    settings = QSettings(str(tmp_path / "s.ini"), QSettings.Format.IniFormat)
    a = QSplitter()
    qtbot.addWidget(a)
    a.addWidget(QLabel("left")), a.addWidget(QLabel("right"))
    a.resize(600, 100)
    a.show()
    remember_splitter(a, settings, "t/split")
    a.moveSplitter(150, 1)  # what a drag does (emits splitterMoved)
    moved = a.sizes()
    assert abs(moved[0] - 150) <= 5
    b = QSplitter()
    qtbot.addWidget(b)
    b.addWidget(QLabel("left")), b.addWidget(QLabel("right"))
    b.resize(600, 100)
    b.show()
    remember_splitter(b, settings, "t/split")
    assert b.sizes() == moved


def test_cameras_offered_are_the_video_devices_found(monkeypatch):
    import glob
    import sys

    from gui.sources.video import available_cameras
    monkeypatch.setattr(sys, "platform", "linux")
    monkeypatch.setattr(glob, "glob", lambda pattern: ["/dev/video2", "/dev/video0", "/dev/video-meta"])
    assert available_cameras() == [0, 2]
    monkeypatch.setattr(glob, "glob", lambda pattern: [])
    assert available_cameras() == [0]  # camera 0 is still offered: starting it says no camera was found


def test_memory_limit_is_a_remembered_setting(qtbot, window):
    w = window()
    w.set_memory_limit_mb(1024)
    assert w.engine.memory_limit() == 1024 * 2 ** 20
    assert w.shutdown()
    assert window().engine.memory_limit() == 1024 * 2 ** 20


def test_frames_are_read_only_and_the_tasks_still_take_them(qtbot, video_file, image_file, detr_checkpoint,
                                                            vit_checkpoint, convnext_checkpoint):
    """A source's frame goes uncopied to the view and to the engine: it cannot be written, and every
    vision task takes it as it is (and leaves it as it was)."""
    import engine

    frames = []
    for source in (VideoFileSource(video_file, loop=False), ImageSource(image_file), CameraSource(str(video_file))):
        got: list = []
        source.frameReady.connect(lambda *args, got=got: got.append(args[1]))  # a plain slot: the source
        source.start()  # emits from its own thread, into the UI thread's queue
        qtbot.waitUntil(lambda: bool(got), timeout=10_000)
        assert source.stop()
        frames.append(got[0])
    for frame in frames:
        assert frame.dtype == np.uint8 and frame.shape == (240, 320, 3)
        assert not frame.flags.writeable
        with pytest.raises(ValueError):
            frame[0, 0, 0] = 1
        with pytest.raises(ValueError):
            frame.fill(0)
    frame = frames[0]
    before = frame.copy()
    small = np.ascontiguousarray(frame[:32, :32])  # already the ViT checkpoint's input size: not resized
    small.setflags(write=False)
    detections = engine.load_task("object-detection", str(detr_checkpoint))(frame, engine.DetectionOptions(threshold=0.0))
    assert len(detections) > 0
    for ckpt in (vit_checkpoint, convnext_checkpoint):
        task = engine.load_task("image-classification", str(ckpt))
        for image in (frame, small):
            assert len(task(image).labels) > 0
    assert np.array_equal(frame, before) and not frame.flags.writeable
