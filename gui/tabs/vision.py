"""Vision tab: DETR object detection, live on a camera, a video file or an image.

Every frame from the source is drawn and submitted to the engine on stream "vision" with
``item_id = frame_id``; the engine keeps only the newest (latest wins) and the detections are
drawn on the newest frame. Detections are requested at a low floor threshold so the threshold
slider redraws at once from the last result. With "Show attention" on, the engine also returns
DETR's decoder cross-attention: click a box to see where that object query looked.
"""
from __future__ import annotations

import time
from datetime import datetime
from pathlib import Path

import numpy as np
from PySide6.QtCore import QSettings, Qt, QTimer, Signal
from PySide6.QtGui import QKeySequence, QShortcut
from PySide6.QtWidgets import QFileDialog, QSplitter, QVBoxLayout, QWidget

from engine.results import DetectionOptions, DetectionResult
from gui.engine_thread import EngineClient, Outcome, is_load_cancelled_message
from gui.settings_util import OPEN_DIR_KEY, as_bool, remember_splitter
from gui.snapshot import SnapshotError, png_path, write_snapshot
from gui.sources.switcher import SourceSwitcher
from gui.sources.video import IMAGE_SUFFIXES, VIDEO_SUFFIXES, CameraSource, FrameSource, ImageSource, \
    VideoFileSource, source_for_file
from gui.widgets.source_combo import ask_for_file
from gui.widgets.video_view import VideoView
from gui.widgets.vision_side_panel import VisionSidePanel
from gui.widgets.vision_toolbar import VisionToolbar

TASK = "object-detection"
STREAM = "vision"
FLOOR_THRESHOLD = 0.3  # detections are requested at min(slider, this) so the slider redraws at once


class VisionTab(QWidget):
    statusMessage = Signal(str)  # for the window's status bar
    errorMessage = Signal(str)  # for the window's one error handler

    def __init__(self, engine: EngineClient, settings: QSettings, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.engine = engine
        self.settings = settings
        self.sources = SourceSwitcher(self)  # the current source, and a newly chosen one until its first frame
        self.sources.promoted.connect(self._on_source_promoted)
        self.sources.frameReady.connect(self._on_frame)
        self.sources.opened.connect(self._on_source_opened)
        self.sources.failed.connect(self._on_source_failed)
        self.sources.ended.connect(self._on_source_ended)
        self._last_frame: np.ndarray | None = None
        self._last_frame_id = -1
        self._last_outcome: Outcome | None = None
        self._requested_model: str | None = None
        self._model_description = ""
        self._serving_description = ""  # the model the engine runs now (kept while a new one loads)
        self._model_error = ""
        self.results_received = 0
        self._build()
        self._restore()
        engine.modelLoaded.connect(self._on_model_loaded)
        engine.modelFailed.connect(self._on_model_failed)
        engine.modelLoading.connect(self._on_model_loading)
        engine.droppedChanged.connect(self._on_dropped)
        self._readout_timer = QTimer(self)
        self._readout_timer.timeout.connect(self._update_readouts)
        self._readout_timer.start(250)

    # ------------------------------------------------------------------ layout

    def _build(self) -> None:
        bar = self.toolbar = VisionToolbar(TASK)
        self.source_combo, self.start_button, self.model_picker = bar.source_combo, bar.start_button, bar.model_picker
        self.size_combo, self.snapshot_button = bar.size_combo, bar.snapshot_button
        self.source_combo.activated.connect(self._on_source_activated)
        self.start_button.clicked.connect(self._on_start_clicked)
        self.model_picker.modelChosen.connect(self._on_model_chosen)
        self.size_combo.currentIndexChanged.connect(self._on_options_changed)
        self.snapshot_button.clicked.connect(lambda: self.snapshot())
        QShortcut(QKeySequence("Ctrl+S"), self, activated=lambda: self.snapshot())

        self.view = VideoView()
        self.view.set_placeholder("Choose a source above — a camera, a video or an image —\n"
                                  "or drop an image or video file on the window.")
        self.view.querySelected.connect(self._on_query_selected)

        side = VisionSidePanel()
        self.detection_panel, self.class_filter = side.detections, side.classes
        self.attention_panel, self.perf_panel = side.attention, side.perf
        # the panels' widgets, under the names they had before the panels were split out
        self.threshold_slider, self.threshold_value = side.detections.threshold_slider, side.detections.threshold_value
        self.count_label, self.class_list = side.detections.count_label, side.classes.list_widget
        self.attention_check, self.inside_label = side.attention.attention_check, side.attention.inside_label
        self.camera_fps_label, self.model_fps_label = side.perf.camera_fps_label, side.perf.model_fps_label
        self.latency_label, self.dropped_label = side.perf.latency_label, side.perf.dropped_label
        self.model_label = side.perf.model_label
        self.threshold_slider.valueChanged.connect(self._on_threshold_changed)
        self.class_filter.changed.connect(self._on_class_filter_changed)
        self.attention_check.toggled.connect(self._on_attention_toggled)

        self.splitter = QSplitter(Qt.Orientation.Horizontal)
        self.splitter.addWidget(self.view)
        self.splitter.addWidget(side)
        self.splitter.setStretchFactor(0, 1)
        self.splitter.setStretchFactor(1, 0)
        self.splitter.setCollapsible(0, False)
        remember_splitter(self.splitter, self.settings, "vision/splitter")

        layout = QVBoxLayout(self)
        layout.setContentsMargins(8, 8, 8, 8)
        layout.addLayout(bar)
        layout.addWidget(self.splitter, 1)
        self._update_inside_label()

    def _restore(self) -> None:
        s = self.settings
        self.threshold_slider.setValue(int(round(float(s.value("vision/threshold", 0.7)) * 1000)))
        self._on_threshold_changed(self.threshold_slider.value())
        size = int(s.value("vision/input_size", 512))
        i = self.size_combo.findData(size)
        self.size_combo.setCurrentIndex(i if i >= 0 else 1)
        self.attention_check.setChecked(as_bool(s.value("vision/attention", True)))
        self.view.set_show_attention(self.attention_check.isChecked())
        model = s.value(f"models/{TASK}", None)
        if model:
            self.model_picker.set_model(str(model), emit=False)
        camera = s.value("vision/camera", 0)
        i = self.source_combo.camera_index(int(camera) if str(camera).isdigit() else 0)
        if i >= 0:
            self.source_combo.setCurrentIndex(i)

    def save_settings(self) -> None:
        s = self.settings
        s.setValue("vision/threshold", self.threshold())
        s.setValue("vision/input_size", self.input_size())
        s.setValue("vision/attention", self.attention_check.isChecked())
        if self.model_picker.current_model():
            s.setValue(f"models/{TASK}", self.model_picker.current_model())

    # ------------------------------------------------------------------ public

    def handled_suffixes(self) -> set[str]:
        return set(IMAGE_SUFFIXES | VIDEO_SUFFIXES)

    def threshold(self) -> float:
        return self.threshold_slider.value() / 1000.0

    def set_threshold(self, value: float) -> None:
        self.threshold_slider.setValue(int(round(value * 1000)))

    def input_size(self) -> int:
        return int(self.size_combo.currentData())

    def detection_options(self) -> DetectionOptions:
        return DetectionOptions(threshold=min(self.threshold(), FLOOR_THRESHOLD), shortest_edge=self.input_size(),
                                internals=self.attention_check.isChecked())

    def open_file(self, path: str | Path) -> bool:
        """Play a video or show an image. The current source keeps running until the new one
        delivers its first frame, so a file that fails to open loses nothing already shown."""
        path = Path(path)
        source = source_for_file(path, loop=True)
        if source is None:
            self.errorMessage.emit(f"{path.name}: the Vision tab opens images and videos "
                                   f"({', '.join(sorted(IMAGE_SUFFIXES | VIDEO_SUFFIXES))}).")
            return False
        self.statusMessage.emit(f"Opening {path.name}…")
        self._start_source(source)
        return True

    def start_camera(self, index: int | str = 0) -> None:
        """Open camera ``index``; a video file path stands in for a camera (tests, demos)."""
        self._start_source(CameraSource(index))

    def stop(self) -> None:
        self.sources.stop()
        self.engine.cancel(STREAM)
        self.toolbar.set_running(False)
        self.perf_panel.source_stopped()

    def shutdown(self, timeout_ms: int = 3000) -> bool:
        """Stop the sources and wait (bounded) for their threads; True when all have finished."""
        self.save_settings()
        self._readout_timer.stop()
        self.stop()
        return self.sources.wait_retired(timeout_ms)

    def is_running(self) -> bool:
        return self.sources.is_running()

    @property
    def source(self) -> FrameSource | None:
        return self.sources.current

    def last_outcome(self) -> Outcome | None:
        return self._last_outcome

    # ------------------------------------------------------------------ sources

    def _start_source(self, source: FrameSource) -> None:
        self._ensure_model()
        self.sources.start(source)
        self.toolbar.set_running(True)

    def _on_source_promoted(self, source: FrameSource) -> None:
        self.engine.cancel(STREAM)
        self.engine.reset_dropped(STREAM)
        self.perf_panel.reset()
        self._last_outcome = None
        self.view.set_result(None)
        self.view.set_message(self._model_error)  # a model that failed to load is still unusable
        self.view.select_query(-1)
        self._update_counts()

    def _on_source_opened(self, source: FrameSource, desc: str, fps: float, w: int, h: int) -> None:
        rate = f", {fps:.0f} fps" if fps else ""
        self.statusMessage.emit(f"{desc}: {w}×{h}{rate}")
        if isinstance(source, (ImageSource, VideoFileSource)):
            self.source_combo.show_file(source.description, getattr(source, "path", ""))

    def _on_source_failed(self, message: str, lost_current: bool) -> None:
        if lost_current:
            self.view.set_message(message)
        if self.sources.current is None:
            self.toolbar.set_running(False)
        self.errorMessage.emit(message)

    def _on_source_ended(self, source: FrameSource) -> None:
        if not isinstance(source, ImageSource):
            self.toolbar.set_running(False)

    def _on_frame(self, frame_id: int, rgb: np.ndarray, captured: float) -> None:
        self.perf_panel.frame_arrived(captured)
        self._last_frame, self._last_frame_id = rgb, frame_id
        self.view.set_frame(frame_id, rgb)
        self._submit(frame_id, rgb, captured)

    def _submit(self, frame_id: int, rgb: np.ndarray, captured: float) -> None:
        request = self.engine.submit(STREAM, TASK, rgb, self.detection_options(), item_id=frame_id,
                                     meta={"gen": self.sources.gen, "captured": captured})
        request.result.connect(self._on_result)  # this request's own signals; it is freed when finished
        request.error.connect(self._on_engine_error)

    def _resubmit_still(self) -> None:
        """A still image does not send new frames: run it again after an option change."""
        if isinstance(self.sources.current, ImageSource) and self._last_frame is not None:
            self._submit(self._last_frame_id, self._last_frame, time.monotonic())

    def _on_source_activated(self, index: int) -> None:
        kind, value = self.source_combo.itemData(index)
        if kind == "open":
            self._open_dialog(value)
        elif kind == "camera":
            self.settings.setValue("vision/camera", value)
            if self.start_button.isChecked():  # something is shown (a still image too): switch to the camera
                self.start_camera(value)
        elif kind == "file":
            self.open_file(value)

    def _open_dialog(self, kind: str) -> None:
        key = OPEN_DIR_KEY  # one folder for every Open dialog
        start = str(self.settings.value(key, str(Path.home())))
        path = ask_for_file(self, kind, start)
        if path:
            self.settings.setValue(key, str(Path(path).parent))
            self.open_file(path)
        else:  # dialog cancelled: show the active source again
            file_shown = isinstance(self.sources.current, (ImageSource, VideoFileSource))
            i = 0 if self.source_combo.has_file() and file_shown else \
                self.source_combo.camera_index(int(self.settings.value("vision/camera", 0)))
            self.source_combo.setCurrentIndex(max(i, 0))

    def _on_start_clicked(self, checked: bool) -> None:
        if not checked:
            self.stop()
            return
        kind, value = self.source_combo.currentData()
        if kind == "camera":
            self.start_camera(value)
        elif kind == "file":
            self.open_file(value)
        else:
            self.start_button.setChecked(False)
            self._open_dialog(value)

    # ------------------------------------------------------------------ model

    def _ensure_model(self) -> None:
        model = self.model_picker.current_model()
        if model and model != self._requested_model and self.engine.loaded_model(TASK) != model:
            self._requested_model = model
            self.engine.load(TASK, model)

    def _on_model_chosen(self, ref: str) -> None:
        self.settings.setValue(f"models/{TASK}", ref)
        self._requested_model = ref
        self._model_description = ""
        self._model_error = ""
        self.view.set_message("")
        self.model_label.setText(f"Loading {Path(ref).name if Path(ref).is_dir() else ref}…")
        self.engine.load(TASK, ref)
        self._resubmit_still()

    def _on_model_loading(self, task: str, model: str, done, total) -> None:
        if task == TASK and done is None:
            self.model_label.setText(f"Loading {Path(model).name if '/' in model and Path(model).is_dir() else model}…")

    def _on_model_loaded(self, task: str, description: str) -> None:
        if task == TASK:
            self._model_description = self._serving_description = description
            self._model_error = ""
            self.perf_panel.show_model(description, TASK)
            self.view.set_message("")
            self._resubmit_still()

    def _on_model_failed(self, task: str, message: str) -> None:
        if task != TASK:
            return
        self.model_label.setText("not loaded")
        if message:  # retried when the model is picked again (or the device/offline setting changes)
            self._model_error = message
            self.view.set_message(message)
        else:  # cancelled: load again on the next start
            self._requested_model = None
            if self.engine.loaded_model(TASK) is not None and self._serving_description:
                self.perf_panel.show_model(self._serving_description, TASK)  # the previous model still runs

    # ------------------------------------------------------------------ results

    def _on_result(self, outcome: Outcome) -> None:
        if outcome.stream != STREAM or not isinstance(outcome.result, DetectionResult):
            return
        meta = outcome.meta if isinstance(outcome.meta, dict) else {}
        if meta.get("gen") != self.sources.gen:
            return  # belongs to a source that was replaced
        now = time.monotonic()
        self.results_received += 1
        self._last_outcome = outcome
        self.perf_panel.result_arrived(now, outcome.submitted_at)
        result = outcome.result
        if self.view.message:
            self.view.set_message("")
        self.class_filter.add_labels(result.labels)
        self.view.set_result(result)
        if self.threshold() < result.threshold:  # the slider went below what this result holds
            self._resubmit_still()
        self._update_counts()
        self._update_inside_label()

    def _on_engine_error(self, message: str) -> None:
        if not is_load_cancelled_message(message):  # a cancelled load is no error
            self.view.set_message(message)
            self.errorMessage.emit(message)  # the window's one error handler

    def _on_dropped(self, stream: str, total: int) -> None:
        if stream == STREAM:
            self.perf_panel.dropped = total

    def _update_readouts(self) -> None:
        self.perf_panel.refresh(self.is_running())

    # ------------------------------------------------------------------ threshold / classes

    def _on_threshold_changed(self, value: int) -> None:
        t = value / 1000.0
        self.detection_panel.show_threshold(value)
        self.view.set_threshold(t)
        self.settings.setValue("vision/threshold", t)
        r = self.view.result
        if r is not None and t < r.threshold:
            self._resubmit_still()
        self._update_counts()

    def _on_options_changed(self, *_args) -> None:
        self.settings.setValue("vision/input_size", self.input_size())
        self._resubmit_still()

    def _on_attention_toggled(self, on: bool) -> None:
        self.settings.setValue("vision/attention", on)
        self.view.set_show_attention(on)
        self._resubmit_still()
        self._update_inside_label()

    def hidden_classes(self) -> set[str]:
        return self.class_filter.hidden_classes()

    def _on_class_filter_changed(self, *_args) -> None:
        self.view.set_hidden_classes(self.hidden_classes())
        self._update_counts()

    def _update_counts(self) -> None:
        self.detection_panel.show_counts(self.view.current_detections())

    # ------------------------------------------------------------------ inside the model

    def _on_query_selected(self, query_id: int) -> None:
        self._update_inside_label()

    def _update_inside_label(self) -> None:
        self.attention_panel.describe(self.view.selected_query, self.view.current_detections())

    # ------------------------------------------------------------------ snapshot

    def snapshot(self, path: str | Path | None = None) -> Path | None:
        """Save the annotated frame as PNG and the drawn detections as JSON next to it."""
        image = self.view.render_annotated()
        if image is None:
            self.errorMessage.emit("Nothing to save yet: start a camera or open a file first.")
            return None
        if path is None:
            start_dir = str(self.settings.value("vision/snapshot_dir", str(Path.home())))
            name = f"taskscope-{datetime.now():%Y%m%d-%H%M%S}.png"
            chosen, _ = QFileDialog.getSaveFileName(self, "Save snapshot", str(Path(start_dir) / name),
                                                    "PNG image (*.png)")
            if not chosen:
                return None
            path = chosen
        path = png_path(path)
        self.settings.setValue("vision/snapshot_dir", str(path.parent))
        meta = {
            "source": self.source.description if self.source is not None else "",
            "frame_id": self.view.frame_id,
            "model": self._model_description or (self.model_picker.current_model() or ""),
            "threshold": round(self.threshold(), 4),
            "hidden_classes": sorted(self.hidden_classes()),
        }
        try:
            json_path = write_snapshot(image, path, self.view.current_detections(), meta)
        except SnapshotError as exc:
            self.errorMessage.emit(str(exc))
            return None
        self.statusMessage.emit(f"Saved {path.name} and {json_path.name} in {path.parent}")
        return path

