"""Vision tab: DETR object detection, live on a camera, a video file or an image.

Every frame from the source is drawn and submitted to the engine on stream "vision" with
``item_id = frame_id``; the engine keeps only the newest (latest wins) and the detections are
drawn on the newest frame. Detections are requested at a low floor threshold so the threshold
slider redraws at once from the last result. With "Show attention" on, the engine also returns
DETR's decoder cross-attention: click a box to see where that object query looked.
"""
from __future__ import annotations

import json
import logging
import time
from datetime import datetime
from pathlib import Path

import numpy as np
from PySide6.QtCore import QSettings, Qt, QTimer, Signal
from PySide6.QtGui import QKeySequence, QShortcut
from PySide6.QtWidgets import (QCheckBox, QComboBox, QFileDialog, QFormLayout, QFrame, QGroupBox, QHBoxLayout,
                               QLabel, QListWidget, QListWidgetItem, QPushButton, QSizePolicy, QSlider,
                               QSplitter, QVBoxLayout, QWidget)

from engine.results import DetectionOptions, DetectionResult
from gui.engine_thread import EngineClient, Outcome
from gui.sources.video import IMAGE_SUFFIXES, VIDEO_SUFFIXES, CameraSource, FrameSource, ImageSource, \
    VideoFileSource
from gui.widgets.pickers import ModelPicker
from gui.widgets.video_view import VideoView

log = logging.getLogger(__name__)

TASK = "object-detection"
STREAM = "vision"
FLOOR_THRESHOLD = 0.3  # detections are requested at min(slider, this) so the slider redraws at once
INPUT_SIZES = ((800, "800 px", "The checkpoints' own size: most accurate, slowest"),
               (512, "512 px", "About 2.4× fewer pixels than 800: faster, a little less accurate"),
               (384, "384 px", "About 4× fewer pixels than 800: fastest, misses small objects"))
VIDEO_FILTER = "Videos (" + " ".join(f"*{s}" for s in sorted(VIDEO_SUFFIXES)) + ")"
IMAGE_FILTER = "Images (" + " ".join(f"*{s}" for s in sorted(IMAGE_SUFFIXES)) + ")"


class _Rate:
    """Events per second, smoothed."""

    def __init__(self) -> None:
        self.last: float | None = None
        self.value = 0.0

    def tick(self, now: float) -> None:
        if self.last is not None and now > self.last:
            inst = 1.0 / (now - self.last)
            self.value = inst if self.value == 0 else 0.8 * self.value + 0.2 * inst
        self.last = now

    def reset(self) -> None:
        self.last, self.value = None, 0.0


class VisionTab(QWidget):
    statusMessage = Signal(str)  # for the window's status bar
    errorMessage = Signal(str)  # for the window's one error handler

    def __init__(self, engine: EngineClient, settings: QSettings, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.engine = engine
        self.settings = settings
        self._source: FrameSource | None = None
        self._pending: FrameSource | None = None
        self._gen = 0
        self._last_frame: np.ndarray | None = None
        self._last_frame_id = -1
        self._last_outcome: Outcome | None = None
        self._requested_model: str | None = None
        self._model_description = ""
        self._model_error = ""
        self._camera_rate, self._model_rate = _Rate(), _Rate()
        self._latency_ms = 0.0
        self._dropped = 0
        self.results_received = 0
        self._build()
        self._restore()
        engine.resultReady.connect(self._on_result)
        engine.errorOccurred.connect(self._on_engine_error)
        engine.modelLoaded.connect(self._on_model_loaded)
        engine.modelFailed.connect(self._on_model_failed)
        engine.modelLoading.connect(self._on_model_loading)
        engine.droppedChanged.connect(self._on_dropped)
        self._readout_timer = QTimer(self)
        self._readout_timer.timeout.connect(self._update_readouts)
        self._readout_timer.start(250)

    # ------------------------------------------------------------------ layout

    def _build(self) -> None:
        self.source_combo = QComboBox()
        for i in range(3):
            self.source_combo.addItem(f"Camera {i}", ("camera", i))
        self.source_combo.insertSeparator(self.source_combo.count())
        self.source_combo.addItem("Open video…", ("open", "video"))
        self.source_combo.addItem("Open image…", ("open", "image"))
        self.source_combo.setToolTip("Where frames come from (you can also drop a file on the window)")
        self.source_combo.activated.connect(self._on_source_activated)
        self.start_button = QPushButton("Start")
        self.start_button.setCheckable(True)
        self.start_button.setMinimumWidth(72)
        self.start_button.setToolTip("Start or stop the selected source")
        self.start_button.clicked.connect(self._on_start_clicked)
        self.model_picker = ModelPicker(TASK)
        self.model_picker.setToolTip("DETR checkpoint (downloaded on first use) or a local folder")
        self.model_picker.modelChosen.connect(self._on_model_chosen)
        self.size_combo = QComboBox()
        for size, label, tip in INPUT_SIZES:
            self.size_combo.addItem(label, size)
            self.size_combo.setItemData(self.size_combo.count() - 1, tip, Qt.ItemDataRole.ToolTipRole)
        self.size_combo.setToolTip("Shortest image edge fed to the model: smaller is faster, less accurate")
        self.size_combo.currentIndexChanged.connect(self._on_options_changed)
        self.attention_check = QCheckBox("Show attention")
        self.attention_check.setToolTip("Also compute DETR's decoder cross-attention; click a box to see where "
                                        "its object query looked")
        self.attention_check.toggled.connect(self._on_attention_toggled)
        self.snapshot_button = QPushButton("Snapshot")
        self.snapshot_button.setToolTip("Save the annotated frame as PNG and the detections as JSON (Ctrl+S)")
        self.snapshot_button.clicked.connect(lambda: self.snapshot())
        QShortcut(QKeySequence("Ctrl+S"), self, activated=lambda: self.snapshot())

        bar = QHBoxLayout()
        bar.setSpacing(8)
        bar.addWidget(_caption("Source"))
        bar.addWidget(self.source_combo)
        bar.addWidget(self.start_button)
        bar.addWidget(_vline())
        bar.addWidget(_caption("Model"))
        bar.addWidget(self.model_picker)
        bar.addWidget(_caption("Input size"))
        bar.addWidget(self.size_combo)
        bar.addStretch(1)
        bar.addWidget(self.snapshot_button)

        self.view = VideoView()
        self.view.set_placeholder("Choose a source above — a camera, a video or an image —\n"
                                  "or drop an image or video file on the window.")
        self.view.querySelected.connect(self._on_query_selected)

        # side panel -------------------------------------------------------------
        self.threshold_slider = QSlider(Qt.Orientation.Horizontal)
        self.threshold_slider.setRange(0, 1000)
        self.threshold_slider.setSingleStep(5)
        self.threshold_slider.setPageStep(50)
        self.threshold_slider.setToolTip("Draw detections whose score is above this")
        self.threshold_value = QLabel()
        self.threshold_value.setMinimumWidth(40)
        self.threshold_value.setAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        self.threshold_slider.valueChanged.connect(self._on_threshold_changed)
        thr_row = QHBoxLayout()
        thr_row.addWidget(self.threshold_slider, 1)
        thr_row.addWidget(self.threshold_value)
        self.count_label = QLabel("No detections yet")
        self.count_label.setWordWrap(True)
        det_box = QGroupBox("Detections")
        det_layout = QVBoxLayout(det_box)
        det_layout.addWidget(QLabel("Confidence threshold"))
        det_layout.addLayout(thr_row)
        det_layout.addWidget(self.count_label)

        self.class_list = QListWidget()
        self.class_list.setToolTip("Classes seen so far; untick to hide")
        self.class_list.setMinimumHeight(120)
        self.class_list.itemChanged.connect(self._on_class_filter_changed)
        all_button, none_button = QPushButton("All"), QPushButton("None")
        all_button.clicked.connect(lambda: self._check_all_classes(True))
        none_button.clicked.connect(lambda: self._check_all_classes(False))
        cls_buttons = QHBoxLayout()
        cls_buttons.addWidget(all_button)
        cls_buttons.addWidget(none_button)
        cls_box = QGroupBox("Classes")
        cls_layout = QVBoxLayout(cls_box)
        cls_layout.addWidget(self.class_list, 1)
        cls_layout.addLayout(cls_buttons)

        self.camera_fps_label, self.model_fps_label = QLabel("–"), QLabel("–")
        self.latency_label, self.dropped_label = QLabel("–"), QLabel("0")
        self.model_label = QLabel("not loaded")
        self.model_label.setWordWrap(True)
        for lab in (self.camera_fps_label, self.model_fps_label, self.latency_label, self.dropped_label):
            lab.setAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        perf_box = QGroupBox("Performance")
        perf = QFormLayout(perf_box)
        perf.setLabelAlignment(Qt.AlignmentFlag.AlignLeft)
        perf.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.AllNonFixedFieldsGrow)
        perf.addRow("Source FPS", self.camera_fps_label)
        perf.addRow("Model FPS", self.model_fps_label)
        perf.addRow("Latency", self.latency_label)
        perf.addRow("Frames skipped", self.dropped_label)
        perf.addRow(self.model_label)

        self.inside_label = QLabel()
        self.inside_label.setWordWrap(True)
        self.inside_label.setTextFormat(Qt.TextFormat.RichText)
        inside_box = QGroupBox("Inside the model")
        inside_layout = QVBoxLayout(inside_box)
        inside_layout.addWidget(self.attention_check)
        inside_layout.addWidget(self.inside_label)

        side = QWidget()
        side_layout = QVBoxLayout(side)
        side_layout.setContentsMargins(0, 0, 0, 0)
        side_layout.addWidget(det_box)
        side_layout.addWidget(cls_box, 1)
        side_layout.addWidget(inside_box)
        side_layout.addWidget(perf_box)
        side.setMinimumWidth(240)
        side.setMaximumWidth(380)
        side.setSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Expanding)

        self.splitter = QSplitter(Qt.Orientation.Horizontal)
        self.splitter.addWidget(self.view)
        self.splitter.addWidget(side)
        self.splitter.setStretchFactor(0, 1)
        self.splitter.setStretchFactor(1, 0)
        self.splitter.setCollapsible(0, False)

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
        self.attention_check.setChecked(_as_bool(s.value("vision/attention", True)))
        self.view.set_show_attention(self.attention_check.isChecked())
        model = s.value(f"models/{TASK}", None)
        if model:
            self.model_picker.set_model(str(model), emit=False)
        camera = s.value("vision/camera", 0)
        i = self.source_combo.findData(("camera", int(camera) if str(camera).isdigit() else 0))
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
        suffix = path.suffix.lower()
        if suffix in IMAGE_SUFFIXES:
            source: FrameSource = ImageSource(path)
        elif suffix in VIDEO_SUFFIXES:
            source = VideoFileSource(path, loop=True)
        else:
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
        for src in (self._pending, self._source):
            if src is not None:
                src.stop()
        self._pending = self._source = None
        self.engine.cancel(STREAM)
        self.start_button.setChecked(False)
        self.start_button.setText("Start")
        self._camera_rate.reset()

    def shutdown(self) -> None:
        self.save_settings()
        self._readout_timer.stop()
        self.stop()

    def is_running(self) -> bool:
        return self._source is not None and self._source.isRunning()

    @property
    def source(self) -> FrameSource | None:
        return self._source

    def last_outcome(self) -> Outcome | None:
        return self._last_outcome

    # ------------------------------------------------------------------ sources

    def _start_source(self, source: FrameSource) -> None:
        if self._pending is not None:  # a newer choice replaces one that has not started yet
            self._pending.stop()
        self._pending = source
        source.frameReady.connect(lambda fid, rgb, t, s=source: self._on_frame(s, fid, rgb, t))
        source.failed.connect(lambda msg, s=source: self._on_source_failed(s, msg))
        source.opened.connect(lambda desc, fps, w, h, s=source: self._on_source_opened(s, desc, fps, w, h))
        source.ended.connect(lambda s=source: self._on_source_ended(s))
        self._ensure_model()
        source.start()
        self.start_button.setChecked(True)
        self.start_button.setText("Stop")

    def _promote(self, source: FrameSource) -> None:
        old = self._source
        self._source, self._pending = source, None
        if old is not None:
            old.stop()
        self._gen += 1
        self.engine.cancel(STREAM)
        self.engine.reset_dropped(STREAM)
        self._camera_rate.reset()
        self._model_rate.reset()
        self._latency_ms = 0.0
        self._last_outcome = None
        self.view.set_result(None)
        self.view.set_message(self._model_error)  # a model that failed to load is still unusable
        self.view.select_query(-1)
        self._update_counts()

    def _on_source_opened(self, source: FrameSource, desc: str, fps: float, w: int, h: int) -> None:
        if source is self._pending or source is self._source:
            rate = f", {fps:.0f} fps" if fps else ""
            self.statusMessage.emit(f"{desc}: {w}×{h}{rate}")
            if isinstance(source, (ImageSource, VideoFileSource)):
                self._show_file_in_combo(source.description, getattr(source, "path", ""))

    def _on_source_failed(self, source: FrameSource, message: str) -> None:
        if source is self._pending:
            self._pending = None
        elif source is self._source:
            self._source = None
            self.view.set_message(message)
        else:
            return
        if self._source is None:
            self.start_button.setChecked(False)
            self.start_button.setText("Start")
        self.errorMessage.emit(message)

    def _on_source_ended(self, source: FrameSource) -> None:
        if source is self._source and not isinstance(source, ImageSource):
            self.start_button.setChecked(False)
            self.start_button.setText("Start")

    def _on_frame(self, source: FrameSource, frame_id: int, rgb: np.ndarray, captured: float) -> None:
        if source is self._pending:
            self._promote(source)
        elif source is not self._source:
            return  # a frame from a source already replaced
        self._camera_rate.tick(captured)
        self._last_frame, self._last_frame_id = rgb, frame_id
        self.view.set_frame(frame_id, rgb)
        self._submit(frame_id, rgb, captured)

    def _submit(self, frame_id: int, rgb: np.ndarray, captured: float) -> None:
        self.engine.submit(STREAM, TASK, rgb, self.detection_options(), item_id=frame_id,
                           meta={"gen": self._gen, "captured": captured})

    def _resubmit_still(self) -> None:
        """A still image does not send new frames: run it again after an option change."""
        if isinstance(self._source, ImageSource) and self._last_frame is not None:
            self._submit(self._last_frame_id, self._last_frame, time.monotonic())

    def _show_file_in_combo(self, name: str, path) -> None:
        data = ("file", str(path))
        i = self.source_combo.findData(data)
        if i < 0:
            if self.source_combo.itemData(0) and self.source_combo.itemData(0)[0] == "file":
                self.source_combo.removeItem(0)
            self.source_combo.insertItem(0, name, data)
            self.source_combo.setItemData(0, str(path), Qt.ItemDataRole.ToolTipRole)
            i = 0
        self.source_combo.setCurrentIndex(i)

    def _on_source_activated(self, index: int) -> None:
        kind, value = self.source_combo.itemData(index)
        if kind == "open":
            self._open_dialog(value)
        elif kind == "camera":
            self.settings.setValue("vision/camera", value)
            if self.is_running() or self._pending is not None:
                self.start_camera(value)
        elif kind == "file":
            self.open_file(value)

    def _open_dialog(self, kind: str) -> None:
        key = "vision/open_dir"
        start = str(self.settings.value(key, str(Path.home())))
        title, flt = ("Open video", VIDEO_FILTER) if kind == "video" else ("Open image", IMAGE_FILTER)
        path, _ = QFileDialog.getOpenFileName(self, title, start, f"{flt};;All files (*)")
        if path:
            self.settings.setValue(key, str(Path(path).parent))
            self.open_file(path)
        else:  # dialog cancelled: show the active source again
            i = 0 if self.source_combo.itemData(0)[0] == "file" and isinstance(self._source, (ImageSource,
                                                                                               VideoFileSource)) else \
                self.source_combo.findData(("camera", int(self.settings.value("vision/camera", 0))))
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
            self._model_description = description
            self._model_error = ""
            self.model_label.setText(_short_description(description))
            self.model_label.setToolTip(description)
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

    # ------------------------------------------------------------------ results

    def _on_result(self, outcome: Outcome) -> None:
        if outcome.stream != STREAM or not isinstance(outcome.result, DetectionResult):
            return
        meta = outcome.meta if isinstance(outcome.meta, dict) else {}
        if meta.get("gen") != self._gen:
            return  # belongs to a source that was replaced
        now = time.monotonic()
        self.results_received += 1
        self._last_outcome = outcome
        self._model_rate.tick(now)
        latency = (now - outcome.submitted_at) * 1000.0
        self._latency_ms = latency if self._latency_ms == 0 else 0.7 * self._latency_ms + 0.3 * latency
        result = outcome.result
        if self.view.message:
            self.view.set_message("")
        self._add_classes(result.labels)
        self.view.set_result(result)
        if self.threshold() < result.threshold:  # the slider went below what this result holds
            self._resubmit_still()
        self._update_counts()
        self._update_inside_label()

    def _on_engine_error(self, stream: str, message: str) -> None:
        if stream in (STREAM, TASK):
            self.view.set_message(message)

    def _on_dropped(self, stream: str, total: int) -> None:
        if stream == STREAM:
            self._dropped = total

    def _update_readouts(self) -> None:
        running = self.is_running()
        self.camera_fps_label.setText(f"{self._camera_rate.value:.1f}" if running and self._camera_rate.value else "–")
        self.model_fps_label.setText(f"{self._model_rate.value:.1f}" if self._model_rate.value else "–")
        self.latency_label.setText(f"{self._latency_ms:.0f} ms" if self._latency_ms else "–")
        self.dropped_label.setText(str(self._dropped))

    # ------------------------------------------------------------------ threshold / classes

    def _on_threshold_changed(self, value: int) -> None:
        t = value / 1000.0
        self.threshold_value.setText(f"{t:.2f}" if value % 10 == 0 else f"{t:.3f}")
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

    def _add_classes(self, labels) -> None:
        known = {self.class_list.item(i).text() for i in range(self.class_list.count())}
        new = sorted(set(labels) - known)
        if not new:
            return
        self.class_list.blockSignals(True)
        for label in new:
            item = QListWidgetItem(label)
            item.setFlags(item.flags() | Qt.ItemFlag.ItemIsUserCheckable)
            item.setCheckState(Qt.CheckState.Checked)
            from gui.widgets.video_view import class_colour
            item.setData(Qt.ItemDataRole.DecorationRole, class_colour(label))
            self.class_list.addItem(item)
        self.class_list.sortItems()
        self.class_list.blockSignals(False)

    def hidden_classes(self) -> set[str]:
        return {self.class_list.item(i).text() for i in range(self.class_list.count())
                if self.class_list.item(i).checkState() != Qt.CheckState.Checked}

    def _on_class_filter_changed(self, *_args) -> None:
        self.view.set_hidden_classes(self.hidden_classes())
        self._update_counts()

    def _check_all_classes(self, on: bool) -> None:
        self.class_list.blockSignals(True)
        for i in range(self.class_list.count()):
            self.class_list.item(i).setCheckState(Qt.CheckState.Checked if on else Qt.CheckState.Unchecked)
        self.class_list.blockSignals(False)
        self._on_class_filter_changed()

    def _update_counts(self) -> None:
        r = self.view.current_detections()
        if r is None:
            self.count_label.setText("No detections yet")
            return
        n = len(r)
        kinds: dict[str, int] = {}
        for lab in r.labels:
            kinds[lab] = kinds.get(lab, 0) + 1
        top = ", ".join(f"{k} ×{v}" if v > 1 else k for k, v in sorted(kinds.items(), key=lambda kv: -kv[1])[:4])
        self.count_label.setText(f"{n} drawn" + (f": {top}" if top else ""))

    # ------------------------------------------------------------------ inside the model

    def _on_query_selected(self, query_id: int) -> None:
        self._update_inside_label()

    def _update_inside_label(self) -> None:
        q = self.view.selected_query
        r = self.view.current_detections()
        if not self.attention_check.isChecked():
            text = ("Turn on <b>Show attention</b>, then click a box to see where DETR's object query "
                    "looked to find it.")
        elif q < 0:
            text = ("Click a box: the heat map shows where its <b>object query</b> looked in the image "
                    "(decoder cross-attention, last layer, mean over heads).")
        else:
            what = ""
            if r is not None and len(r.query_ids):
                hits = np.nonzero(r.query_ids == q)[0]
                if len(hits):
                    i = int(hits[0])
                    what = f": {r.labels[i]} {float(r.scores[i]):.2f}"
            text = (f"<b>Object query #{q}</b>{what}. Bright areas are where this query attended over the "
                    "encoder's feature map. Click elsewhere to clear.")
        self.inside_label.setText(text)

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
        path = Path(path)
        if path.suffix.lower() != ".png":
            path = path.with_suffix(".png")
        self.settings.setValue("vision/snapshot_dir", str(path.parent))
        if not image.save(str(path), "PNG"):
            self.errorMessage.emit(f"Could not write {path}.")
            return None
        r = self.view.current_detections()
        data = {
            "image": path.name,
            "source": self._source.description if self._source is not None else "",
            "frame_id": self.view.frame_id,
            "model": self._model_description or (self.model_picker.current_model() or ""),
            "threshold": round(self.threshold(), 4),
            "hidden_classes": sorted(self.hidden_classes()),
            "image_size": {"width": image.width(), "height": image.height()},
            "saved_at": datetime.now().isoformat(timespec="seconds"),
            "detections": r.to_json() if r is not None else [],
        }
        json_path = path.with_suffix(".json")
        try:
            json_path.write_text(json.dumps(data, indent=2), encoding="utf-8")
        except OSError as exc:
            self.errorMessage.emit(f"Could not write {json_path}: {exc.strerror or exc}")
            return None
        self.statusMessage.emit(f"Saved {path.name} and {json_path.name} in {path.parent}")
        return path


def _short_description(description: str) -> str:
    """"object-detection · /long/path/detr-resnet-50 · cpu · exact (float32)" -> "detr-resnet-50 · cpu · exact (float32)"."""
    parts = description.split(" · ")
    if len(parts) >= 2 and parts[0] == TASK:
        parts = parts[1:]
    if parts and ("/" in parts[0] or "\\" in parts[0]) and Path(parts[0]).is_dir():
        parts[0] = Path(parts[0]).name
    return " · ".join(parts)


def _caption(text: str) -> QLabel:
    label = QLabel(text)
    label.setAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
    return label


def _vline() -> QFrame:
    line = QFrame()
    line.setFrameShape(QFrame.Shape.VLine)
    line.setFrameShadow(QFrame.Shadow.Sunken)
    return line


def _as_bool(value) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in ("1", "true", "yes", "on")
    return bool(value)
