"""Vision tab: one vision task at a time (object detection, image classification, …), live on a
camera, a video file or an image.

Every frame from the source is drawn and submitted to the engine on stream "vision" with
``item_id = frame_id``; the engine keeps only the newest (latest wins) and the result is drawn on
the newest frame. What is asked for, drawn and explained belongs to the active task's presenter
(gui/vision/presenters/<task>.py), found by the task's name: this tab knows no task. Switching
task is instant when its model is loaded (the engine keeps models cached); each task remembers
its own model.

A camera that stops delivering (unplugged, or a file standing in for one that ends) keeps its last
frame and result on screen with a banner, and is opened again every couple of seconds until it is
back (gui/sources/switcher.py); choosing another source or Stop ends the attempts.
"""
from __future__ import annotations

import time
from datetime import datetime
from pathlib import Path

import numpy as np
from PySide6.QtCore import QSettings, Qt, QTimer
from PySide6.QtGui import QKeySequence, QShortcut
from PySide6.QtWidgets import (QComboBox, QFileDialog, QFrame, QHBoxLayout, QLabel, QPushButton, QScrollArea,
                               QSizePolicy, QSplitter, QStackedWidget, QVBoxLayout, QWidget)

import engine
from gui.common.perf_panel import PerfPanel
from gui.common.pickers import ModelPicker
from gui.core.engine_client import EngineClient, Outcome, is_load_cancelled_message
from gui.core.settings import OPEN_DIR_KEY, remember_splitter
from gui.core.task_tab import TaskTab
from gui.sources.switcher import SourceSwitcher
from gui.sources.video import IMAGE_SUFFIXES, VIDEO_SUFFIXES, CameraSource, FrameSource, ImageSource, \
    VideoFileSource, source_for_file
from gui.vision.presenters import presenter_class
from gui.vision.presenters.base import VisionPresenter
from gui.vision.snapshot import SnapshotError, png_path, write_snapshot
from gui.vision.widgets.source_combo import SourceCombo, ask_for_file
from gui.vision.widgets.video_view import VideoView

STREAM = "vision"


class VisionTab(TaskTab):
    domain = "vision"

    def __init__(self, engine_client: EngineClient, settings: QSettings, parent: QWidget | None = None) -> None:
        super().__init__(engine_client, settings, parent)
        self.sources = SourceSwitcher(self)  # the current source, and a newly chosen one until its first frame
        self.sources.promoted.connect(self._on_source_promoted)
        self.sources.frameReady.connect(self._on_frame)
        self.sources.opened.connect(self._on_source_opened)
        self.sources.failed.connect(self._on_source_failed)
        self.sources.ended.connect(self._on_source_ended)
        self.sources.reconnected.connect(self._on_source_reconnected)
        self.camera_factory = CameraSource  # index -> a camera source (tests inject a fake device)
        self._source_error = ""  # the banner of a source that was lost: results arriving later keep it
        self._last_frame: np.ndarray | None = None
        self._last_frame_id = -1
        self._last_outcome: Outcome | None = None
        self.results_received = 0
        self.presenters: dict[str, VisionPresenter] = {}
        self.pickers: dict[str, ModelPicker] = {}
        self._build()
        self._restore()
        engine_client.droppedChanged.connect(self._on_dropped)
        self._readout_timer = QTimer(self)
        self._readout_timer.timeout.connect(self._update_readouts)
        self._readout_timer.start(250)

    # ------------------------------------------------------------------ layout

    def _build(self) -> None:
        self.source_combo = SourceCombo()
        self.start_button = QPushButton("Start")
        self.start_button.setCheckable(True)
        self.start_button.setMinimumWidth(72)
        self.start_button.setToolTip("Start or stop the selected source")
        self.task_combo = QComboBox()
        self.task_combo.setToolTip("What the model does with each frame (Ctrl+T: next task)")
        self.model_stack = QStackedWidget()  # one model picker per task
        self.model_stack.setSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Fixed)
        self.task_toolbar = QStackedWidget()  # the presenters' own controls (e.g. input size)
        self.task_toolbar.setSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Fixed)
        self.panel_stack = QStackedWidget()  # the presenters' side panels
        for cls in engine.tasks_for_domain("vision"):
            if presenter_class(cls.name) is None:
                continue
            self.task_combo.addItem(cls.title, cls.name)
            self.task_combo.setItemData(self.task_combo.count() - 1, cls.summary, Qt.ItemDataRole.ToolTipRole)
        self.snapshot_button = QPushButton("Snapshot")
        self.snapshot_button.setToolTip("Save the annotated frame as PNG and what is drawn as JSON (Ctrl+S)")

        bar = QHBoxLayout()
        bar.setSpacing(8)
        bar.addWidget(_caption("Source"))
        bar.addWidget(self.source_combo)
        bar.addWidget(self.start_button)
        bar.addWidget(_vline())
        bar.addWidget(_caption("Task"))
        bar.addWidget(self.task_combo)
        bar.addWidget(_caption("Model"))
        bar.addWidget(self.model_stack)
        bar.addWidget(self.task_toolbar)
        bar.addStretch(1)
        bar.addWidget(self.snapshot_button)

        self.source_combo.activated.connect(self._on_source_activated)
        self.start_button.clicked.connect(self._on_start_clicked)
        self.task_combo.activated.connect(lambda i: self.set_task(self.task_combo.itemData(i)))
        self.snapshot_button.clicked.connect(lambda: self.snapshot())
        QShortcut(QKeySequence("Ctrl+S"), self, activated=lambda: self.snapshot())
        QShortcut(QKeySequence("Ctrl+T"), self, activated=self._next_task)

        self.view = VideoView()
        self.view.set_placeholder("Choose a source above — a camera, a video or an image —\n"
                                  "or drop an image or video file on the window.")
        self.perf_panel = PerfPanel()
        side = QWidget()
        side_layout = QVBoxLayout(side)
        side_layout.setContentsMargins(0, 0, 0, 0)
        panel_scroll = QScrollArea()  # a task's panel taller than the window scrolls, never overlaps itself
        panel_scroll.setWidget(self.panel_stack)
        panel_scroll.setWidgetResizable(True)
        panel_scroll.setFrameShape(QFrame.Shape.NoFrame)
        panel_scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        side_layout.addWidget(panel_scroll, 1)
        side_layout.addWidget(self.perf_panel)
        side.setMinimumWidth(240)
        side.setMaximumWidth(380)
        self.model_label = self.perf_panel.model_label

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

    def _restore(self) -> None:
        names = [self.task_combo.itemData(i) for i in range(self.task_combo.count())]
        task = str(self.settings.value("vision/task", names[0] if names else ""))
        self.set_task(task if task in names else names[0])
        camera = self.settings.value("vision/camera", 0)
        i = self.source_combo.camera_index(int(camera) if str(camera).isdigit() else 0)
        if i >= 0:
            self.source_combo.setCurrentIndex(i)

    def save_settings(self) -> None:
        self.settings.setValue("vision/task", self.task)
        for presenter in self.presenters.values():
            presenter.save_settings()
        for task, picker in self.pickers.items():
            if picker.current_model():
                self.settings.setValue(f"models/{task}", picker.current_model())

    # ------------------------------------------------------------------ tasks

    def presenter(self, task: str | None = None) -> VisionPresenter:
        """The presenter of ``task`` (the active one by default), created on first use."""
        task = task or self.task
        if task not in self.presenters:
            presenter = presenter_class(task)(self.settings, self)
            presenter.repaint.connect(self.view.refresh)
            presenter.optionsChanged.connect(self._resubmit_still)
            presenter.problem.connect(self.errorMessage)
            self.presenters[task] = presenter
            self.panel_stack.addWidget(presenter.panel)
            self.task_toolbar.addWidget(presenter.toolbar)
            picker = self.pickers[task] = ModelPicker(task)
            picker.setToolTip("The checkpoint for this task (downloaded on first use) or a local folder")
            model = self.settings.value(f"models/{task}", None)
            if model:
                picker.set_model(str(model), emit=False)
            picker.modelChosen.connect(lambda ref, task=task: self._on_model_chosen(task, ref))
            self.model_stack.addWidget(picker)
        return self.presenters[task]

    @property
    def model_picker(self) -> ModelPicker:
        return self.pickers[self.task]

    def set_task(self, task: str) -> None:
        """Make ``task`` the active one: its presenter draws and its model runs the next frames."""
        if task == getattr(self, "task", None):
            return
        previous = getattr(self, "task", None)
        self.task = task
        presenter = self.presenter(task)
        self.engine.cancel(STREAM)  # a result of the previous task must not reach this presenter
        self.settings.setValue("vision/task", task)
        i = self.task_combo.findData(task)
        if i >= 0 and self.task_combo.currentIndex() != i:
            self.task_combo.setCurrentIndex(i)
        self.panel_stack.setCurrentWidget(presenter.panel)
        self.task_toolbar.setCurrentWidget(presenter.toolbar)
        self.model_stack.setCurrentWidget(self.pickers[task])
        self.view.set_overlay(presenter)
        presenter.clear()
        self._last_outcome = None
        self._model_error = ""
        self.view.set_message("")
        self.perf_panel.reset()
        self.perf_panel.show_model(self._descriptions.get(task, ""), task)
        if previous is not None and self.is_running():
            self.ensure_model(task, self.model_picker.current_model())
            self._resubmit_still()

    def _next_task(self) -> None:
        if self.task_combo.count() > 1:
            i = (self.task_combo.currentIndex() + 1) % self.task_combo.count()
            self.set_task(self.task_combo.itemData(i))

    def task_names(self) -> list[str]:
        return [self.task_combo.itemData(i) for i in range(self.task_combo.count())]

    # ------------------------------------------------------------------ public

    def handled_suffixes(self) -> set[str]:
        return set(IMAGE_SUFFIXES | VIDEO_SUFFIXES)

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
        """Open camera ``index``; a video file path stands in for a camera (tests, demos). If it
        stops delivering later, it is opened again every couple of seconds until it is back."""
        factory = self.camera_factory
        self._start_source(factory(index), reconnect=lambda: factory(index))

    def stop(self) -> None:
        self.sources.stop()  # ends reconnecting to a lost camera too
        if self._source_error:  # "trying to open it again" no longer holds
            self._source_error = ""
            self.view.set_message(self._model_error)
        self.engine.cancel(STREAM)
        self._set_running(False)
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

    def _set_running(self, running: bool) -> None:
        self.start_button.setChecked(running)
        self.start_button.setText("Stop" if running else "Start")

    def _start_source(self, source: FrameSource, reconnect=None) -> None:
        self.ensure_model(self.task, self.model_picker.current_model())
        self.sources.start(source, reconnect)
        self._set_running(True)

    def _on_source_promoted(self, source: FrameSource) -> None:
        self.engine.cancel(STREAM)
        self.engine.reset_dropped(STREAM)
        self.perf_panel.reset()
        self._last_outcome = None
        self.presenter().clear()
        self._source_error = ""
        self.view.set_message(self._model_error)  # a model that failed to load is still unusable

    def _on_source_opened(self, source: FrameSource, desc: str, fps: float, w: int, h: int) -> None:
        rate = f", {fps:.0f} fps" if fps else ""
        self.statusMessage.emit(f"{desc}: {w}×{h}{rate}")
        if isinstance(source, (ImageSource, VideoFileSource)):
            self.source_combo.show_file(source.description, getattr(source, "path", ""))

    def _on_source_failed(self, message: str, lost_current: bool) -> None:
        """A source could not open (what is shown stays), or the current one was lost: its last frame
        and result stay under a banner; a camera is opened again until it is back (Stop ends that)."""
        if lost_current:
            banner = message
            if self.sources.reconnecting:
                seconds = self.sources.reconnect_interval_ms / 1000.0
                banner = f"{message}\nTrying to open it again every {seconds:g} s…"
            self._source_error = banner
            self.view.set_message(banner)
        if self.sources.current is None and not self.sources.reconnecting:
            self._set_running(False)
        self.errorMessage.emit(message)

    def _on_source_reconnected(self, source: FrameSource) -> None:
        self.statusMessage.emit(f"{source.description} is back.")

    def _on_source_ended(self, source: FrameSource) -> None:
        if not isinstance(source, ImageSource):
            self._set_running(False)

    def _on_frame(self, frame_id: int, rgb: np.ndarray, captured: float) -> None:
        self.perf_panel.frame_arrived(captured)
        self._last_frame, self._last_frame_id = rgb, frame_id
        self.view.set_frame(frame_id, rgb)
        self._submit(frame_id, rgb, captured)

    def _submit(self, frame_id: int, rgb: np.ndarray, captured: float) -> None:
        request = self.engine.submit(STREAM, self.task, rgb, self.presenter().options(), item_id=frame_id,
                                     meta={"gen": self.sources.gen, "captured": captured})
        request.result.connect(self._on_result)  # this request's own signals; it is freed when finished
        request.error.connect(self._on_request_error)

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
        start = str(self.settings.value(OPEN_DIR_KEY, str(Path.home())))  # one folder for every Open dialog
        path = ask_for_file(self, kind, start)
        if path:
            self.settings.setValue(OPEN_DIR_KEY, str(Path(path).parent))
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

    def _on_model_chosen(self, task: str, ref: str) -> None:
        self.settings.setValue(f"models/{task}", ref)
        if task == self.task:
            self._model_error = ""
            self.view.set_message("")
            self.model_label.setText(f"Loading {Path(ref).name if Path(ref).is_dir() else ref}…")
        self.load_model(task, ref)
        if task == self.task:
            self._resubmit_still()

    def on_model_loaded(self, task: str, description: str) -> None:
        if task == self.task:
            self._model_error = ""
            self.perf_panel.show_model(description, task)
            self.view.set_message("")
            self._resubmit_still()

    def on_model_failed(self, task: str, message: str) -> None:
        if task != self.task:
            return
        if message:  # retried when the model is picked again (or the device/offline setting changes)
            self.model_label.setText("not loaded")
            self._model_error = message
            self.view.set_message(message)
        elif self._descriptions.get(task):  # cancelled, but the previous model still runs
            self.perf_panel.show_model(self._descriptions[task], task)
        else:
            self.model_label.setText("not loaded")

    def on_model_loading(self, task: str, model: str, done, total) -> None:
        if task == self.task and done is None:
            self.model_label.setText(f"Loading {Path(model).name if '/' in model and Path(model).is_dir() else model}…")

    # ------------------------------------------------------------------ results

    def _on_result(self, outcome: Outcome) -> None:
        meta = outcome.meta if isinstance(outcome.meta, dict) else {}
        if meta.get("gen") != self.sources.gen or outcome.task != self.task:
            return  # belongs to a source that was replaced, or to the task shown before
        self.results_received += 1
        self._last_outcome = outcome
        self.perf_panel.result_arrived(time.monotonic(), outcome.submitted_at)
        if self.view.message and self.view.message != self._source_error:  # a lost source's banner stays
            self.view.set_message("")
        presenter = self.presenter()
        presenter.set_result(outcome.result)
        if presenter.wants_rerun(outcome.result):  # e.g. the slider went below what this result holds
            self._resubmit_still()

    def _on_request_error(self, message: str) -> None:
        if not is_load_cancelled_message(message):  # a cancelled load is no error
            self.view.set_message(message)
            self.errorMessage.emit(message)  # the window's one error handler

    def _on_dropped(self, stream: str, total: int) -> None:
        if stream == STREAM:
            self.perf_panel.dropped = total

    def _update_readouts(self) -> None:
        self.perf_panel.refresh(self.is_running())

    # ------------------------------------------------------------------ snapshot

    def snapshot(self, path: str | Path | None = None) -> Path | None:
        """Save the annotated frame as PNG and what the presenter drew as JSON next to it."""
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
            "task": self.task,
            "model": self._descriptions.get(self.task) or (self.model_picker.current_model() or ""),
        }
        try:
            json_path = write_snapshot(image, path, meta, self.presenter().snapshot())
        except SnapshotError as exc:
            self.errorMessage.emit(str(exc))
            return None
        self.statusMessage.emit(f"Saved {path.name} and {json_path.name} in {path.parent}")
        return path


def _caption(text: str) -> QLabel:
    label = QLabel(text)
    label.setAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
    return label


def _vline() -> QFrame:
    line = QFrame()
    line.setFrameShape(QFrame.Shape.VLine)
    line.setFrameShadow(QFrame.Shadow.Sunken)
    return line
