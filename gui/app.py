"""The Taskscope window: Vision / Speech / Text tabs over one engine thread.

``run_app(argv)`` is what ``python main.py`` calls. Settings live in QSettings (an INI file in
``$TASKSCOPE_SETTINGS_DIR`` when that is set, as the tests do).
"""
from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from pathlib import Path

from PySide6.QtCore import QSettings, Qt, QTimer
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import (QApplication, QFileDialog, QLabel, QMainWindow, QMessageBox, QTabWidget, QToolBar,
                               QVBoxLayout, QWidget)

from gui.core import qt_fixes
from gui.core.engine_client import DEFAULT_MEMORY_LIMIT, EngineClient
from gui.core.settings import OPEN_DIR_KEY, as_bool
from gui.common.download_dialog import DownloadDialog
from gui.common.message_area import MessageArea
from gui.common.pickers import DevicePicker

log = logging.getLogger(__name__)

APP_NAME = "Taskscope"
#: an error identical to the last one within this many seconds is not shown or logged again
REPEAT_ERROR_S = 5.0


def make_settings() -> QSettings:
    folder = os.environ.get("TASKSCOPE_SETTINGS_DIR")
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        return QSettings(str(Path(folder) / "taskscope.ini"), QSettings.Format.IniFormat)
    return QSettings(QSettings.Format.IniFormat, QSettings.Scope.UserScope, APP_NAME, APP_NAME)


def _version() -> str:
    try:
        from importlib.metadata import version
        return version("taskscope")
    except Exception:  # noqa: BLE001 - running from a checkout
        return "0.1.0"


class MainWindow(QMainWindow):
    def __init__(self, settings: QSettings | None = None, *, device: str | None = None,
                 precision: str | None = None, offline: bool | None = None) -> None:
        super().__init__()
        self.settings = settings if settings is not None else make_settings()
        self.setWindowTitle(APP_NAME)
        self.setAcceptDrops(True)
        self.last_error = ""
        self._last_error_at = float("-inf")
        self.repeated_errors = 0  # identical errors skipped (REPEAT_ERROR_S)
        self._closed = False
        self._stopped_cleanly = False
        self.engine = EngineClient(self, memory_limit=memory_limit(self.settings))

        # shared controls ------------------------------------------------------------
        qt_fixes.guard_none_refcount()  # before anything paints (see there: a PySide6 6.12 bug)
        self.device_picker = DevicePicker()
        self.device_picker.set_choice(device or self.settings.value("engine/device", None),
                                      precision or self.settings.value("engine/precision", "exact"))
        self.device_picker.changed.connect(self._on_device_changed)
        # the device list arrives from a worker thread (it imports torch): when it shows that the
        # remembered / --device choice is not available here, the engine gets the one shown instead
        # (not remembered: the user did not choose it)
        self.device_picker.adjusted.connect(
            lambda device, precision: self.engine.configure(device, precision, self.offline_action.isChecked()))
        if offline is None:
            offline = as_bool(self.settings.value("engine/offline", engine_offline_default()))
        self.offline_action = QAction("Offline", self)
        self.offline_action.setCheckable(True)
        self.offline_action.setChecked(bool(offline))
        self.offline_action.setToolTip("Offline: use only downloaded models and local folders; never download")
        self.offline_action.toggled.connect(self._on_offline_toggled)
        toolbar = QToolBar("Engine")
        toolbar.setObjectName("engine-toolbar")
        toolbar.setMovable(False)
        toolbar.addWidget(self.device_picker)
        toolbar.addSeparator()
        toolbar.addAction(self.offline_action)
        self.addToolBar(Qt.ToolBarArea.TopToolBarArea, toolbar)
        self._apply_offline(bool(offline))
        self.engine.configure(self.device_picker.device(), self.device_picker.precision(), bool(offline))

        # tabs -----------------------------------------------------------------------
        from gui.speech.tab import SpeechTab
        from gui.text.tab import TextTab
        from gui.vision.tab import VisionTab
        self.tabs = QTabWidget()
        self.tabs.setDocumentMode(True)
        self.vision_tab = VisionTab(self.engine, self.settings)
        self.speech_tab = SpeechTab(self.engine, self.settings)
        self.text_tab = TextTab(self.engine, self.settings)
        for tab, name in ((self.vision_tab, "Vision"), (self.speech_tab, "Speech"), (self.text_tab, "Text")):
            self.tabs.addTab(tab, name)
            for sig, handler in (("statusMessage", self.show_status), ("errorMessage", self.show_error),
                                 ("warningMessage", self.show_warning), ("message", self.show_status)):
                signal = getattr(tab, sig, None)
                if signal is not None and hasattr(signal, "connect"):
                    signal.connect(handler)
        self.message_area = MessageArea()
        central = QWidget()
        column = QVBoxLayout(central)
        column.setContentsMargins(0, 0, 0, 0)
        column.setSpacing(0)
        column.addWidget(self.message_area)
        column.addWidget(self.tabs, 1)
        self.setCentralWidget(central)

        # status bar, errors, model loading -------------------------------------------
        self.model_status = QLabel()
        self.statusBar().addPermanentWidget(self.model_status)
        # each tab hears its own requests' results and errors (and sends errors on errorMessage)
        self.engine.modelLoading.connect(self._on_model_loading)
        self.engine.modelLoaded.connect(self._on_model_loaded)
        self.engine.modelFailed.connect(self._on_model_failed)
        self.download_dialog = DownloadDialog(self)
        self.download_dialog.cancelRequested.connect(self.engine.cancel_loading)
        self._dialog_timer = QTimer(self)
        self._dialog_timer.setSingleShot(True)
        self._dialog_timer.timeout.connect(self._show_download_dialog)
        self._loading: tuple[str, str] | None = None
        self.failure_box: QMessageBox | None = None

        self._build_menus()
        self._restore()

    # ------------------------------------------------------------------ menus

    def _build_menus(self) -> None:
        file_menu = self.menuBar().addMenu("&File")
        self.open_action = QAction("&Open…", self, shortcut=QKeySequence.StandardKey.Open,
                                   triggered=self.open_dialog)
        file_menu.addAction(self.open_action)
        file_menu.addSeparator()
        quit_action = QAction("&Quit", self, shortcut=QKeySequence("Ctrl+Q"), triggered=self.close)
        quit_action.setMenuRole(QAction.MenuRole.QuitRole)
        file_menu.addAction(quit_action)
        view_menu = self.menuBar().addMenu("&View")
        for i in range(self.tabs.count()):
            action = QAction(self.tabs.tabText(i), self, shortcut=QKeySequence(f"Ctrl+{i + 1}"))
            action.triggered.connect(lambda _=False, i=i: self.tabs.setCurrentIndex(i))
            view_menu.addAction(action)
            self.addAction(action)  # shortcut works with the menu bar hidden too
        engine_menu = self.menuBar().addMenu("&Engine")
        engine_menu.addAction(QAction("Memory for loaded &models…", self, triggered=self.ask_memory_limit))
        view_menu.addSeparator()
        messages = QAction("&Messages…", self, shortcut=QKeySequence("Ctrl+Shift+M"),
                           triggered=lambda: self.message_area.open_history())
        view_menu.addAction(messages)
        self.addAction(messages)
        help_menu = self.menuBar().addMenu("&Help")
        help_menu.addAction(QAction("&About Taskscope", self, triggered=self.about))

    def ask_memory_limit(self) -> None:
        from PySide6.QtWidgets import QInputDialog
        current = self.engine.memory_limit() // 2 ** 20
        used = self.engine.memory_used() / 2 ** 20
        mb, ok = QInputDialog.getInt(self, "Memory for loaded models",
                                     f"Keep loaded models up to this many MB (now {used:.0f} MB in use); "
                                     "the least recently used one is unloaded beyond it:", current, 256, 1 << 20, 256)
        if ok:
            self.set_memory_limit_mb(mb)

    def set_memory_limit_mb(self, mb: int) -> None:
        """Remembered, and applied at once (models over the limit are unloaded, least recently used first)."""
        self.settings.setValue(MEMORY_LIMIT_KEY, int(mb))
        self.engine.set_memory_limit(int(mb) * 2 ** 20)
        self.show_status(f"Loaded models may use up to {mb} MB.")

    def about(self) -> None:
        QMessageBox.about(self, f"About {APP_NAME}", about_html())

    # ------------------------------------------------------------------ settings

    def _restore(self) -> None:
        geometry = self.settings.value("window/geometry")
        if geometry is None or not self.restoreGeometry(geometry):
            self.resize(1280, 800)
        state = self.settings.value("window/state")
        if state is not None:
            self.restoreState(state)
        index = int(self.settings.value("window/tab", 0) or 0)
        self.tabs.setCurrentIndex(index if 0 <= index < self.tabs.count() else 0)

    def save_settings(self) -> None:
        s = self.settings
        s.setValue("window/geometry", self.saveGeometry())
        s.setValue("window/state", self.saveState())
        s.setValue("window/tab", self.tabs.currentIndex())
        # device, precision and offline are saved when the user changes them (_on_device_changed,
        # _on_offline_toggled), so a one-off `--offline` or `--device` on the command line stays one-off
        for i in range(self.tabs.count()):
            self.tabs.widget(i).save_settings()
        s.sync()

    # ------------------------------------------------------------------ engine controls

    def _on_device_changed(self, device: str, precision: str) -> None:
        self.settings.setValue("engine/device", device)
        self.settings.setValue("engine/precision", precision)
        self.engine.configure(device, precision, self.offline_action.isChecked())
        self.show_status(f"Device: {device}, precision: {precision}. Loaded models are reloaded.")

    def _apply_offline(self, on: bool) -> None:
        # passed to the engine explicitly (EngineClient.set_offline); HF_HUB_OFFLINE is only set by --offline
        self.offline_action.setText("Offline" if on else "Online")
        self.offline_action.setToolTip("Offline: only downloaded models and local folders are used. Click to allow "
                                       "downloads." if on else
                                       "Online: models are downloaded on first use. Click to work offline.")

    def _on_offline_toggled(self, on: bool) -> None:
        self._apply_offline(on)
        self.engine.set_offline(on)
        self.settings.setValue("engine/offline", on)
        self.show_status("Offline: no downloads." if on else "Online: models download on first use.")

    def _on_model_loading(self, task: str, model: str, done, total) -> None:
        if self._loading != (task, model):
            self._loading = (task, model)
            self.download_dialog.start(task, model)
            self.model_status.setText(f"Loading {Path(model).name if os.sep in model else model}…")
            self._dialog_timer.start(700)  # quick local loads do not flash a dialog
        if done is not None:
            self.download_dialog.update_progress(done, total)
            if total and not self.download_dialog.isVisible():
                self._show_download_dialog()

    def _show_download_dialog(self) -> None:
        if self._loading is not None and not self._closed:
            self.download_dialog.show()

    def _end_loading(self) -> None:
        self._loading = None
        self._dialog_timer.stop()
        self.download_dialog.hide()

    def _on_model_loaded(self, task: str, description: str) -> None:
        self._end_loading()
        self.model_status.setText(description)
        self.show_status(f"Model ready: {description}")

    def _on_model_failed(self, task: str, message: str) -> None:
        self._end_loading()
        self.model_status.setText("")
        if not message:
            self.show_status("Model loading cancelled.")
            return
        self.show_error(message)
        if self._closed:
            return
        if self.failure_box is None:
            self.failure_box = QMessageBox(QMessageBox.Icon.Warning, "Model could not be loaded", "",
                                           QMessageBox.StandardButton.Ok, self)
            self.failure_box.setModal(False)
        self.failure_box.setText(f"The model for {task.replace('-', ' ')} could not be loaded.")
        self.failure_box.setInformativeText(message)
        self.failure_box.show()

    # ------------------------------------------------------------------ messages

    def show_status(self, message: str, timeout_ms: int = 6000) -> None:
        """Routine news, in the status bar; it never hides a problem (those are in the message area)."""
        if message:
            self.statusBar().showMessage(message, timeout_ms)

    def show_error(self, message: str, level: str = "error") -> None:
        """The one place problems are shown: the message area above the tabs, kept until the user
        dismisses it or a newer problem replaces it (model load failures also get a dialog)."""
        if not message:
            return
        now = time.monotonic()
        if message == self.last_error and now - self._last_error_at < REPEAT_ERROR_S:
            self.repeated_errors += 1  # e.g. the same error for every frame: shown once
            return
        self.last_error, self._last_error_at = message, now
        log.warning("%s", message)
        self.message_area.show_problem(message, level)

    def show_warning(self, message: str) -> None:
        """A notice kept in the message area like a problem (e.g. 'fast' is not offered for a model)."""
        self.show_error(message, "warning")

    # ------------------------------------------------------------------ files

    def open_dialog(self) -> None:
        """File > Open: a file dialog for what the current tab handles, opened in that tab."""
        tab = self.tabs.currentWidget()
        suffixes = sorted(tab.handled_suffixes()) if hasattr(tab, "handled_suffixes") else []
        if not suffixes:
            self.show_status(f"The {self.tabs.tabText(self.tabs.currentIndex())} tab opens no files yet.")
            return
        key = OPEN_DIR_KEY  # one folder for every Open dialog
        start = str(self.settings.value(key, str(Path.home())))
        flt = f"{self.tabs.tabText(self.tabs.currentIndex())} files (" + " ".join(f"*{s}" for s in suffixes) + ")"
        path, _ = QFileDialog.getOpenFileName(self, "Open", start, f"{flt};;All files (*)")
        if path:
            self.settings.setValue(key, str(Path(path).parent))
            self.open_path(path, prefer=tab)

    def open_path(self, path: str | Path, prefer: QWidget | None = None) -> bool:
        """Open ``path`` in the tab that handles its type (``prefer`` first); False if none does."""
        path = Path(path)
        suffix = path.suffix.lower()
        candidates = ([prefer] if prefer is not None else []) + [self.tabs.widget(i) for i in range(self.tabs.count())]
        for tab in candidates:
            if tab is not None and hasattr(tab, "handled_suffixes") and suffix in tab.handled_suffixes():
                self.tabs.setCurrentWidget(tab)
                return bool(tab.open_file(str(path)) is not False)
        known = sorted(set().union(*(self.tabs.widget(i).handled_suffixes() for i in range(self.tabs.count())
                                     if hasattr(self.tabs.widget(i), "handled_suffixes"))))
        self.show_error(f"Cannot open {path.name}: Taskscope opens images, videos, audio and text files "
                        f"({', '.join(known)}).")
        return False

    def _handles(self, path: str) -> bool:
        suffix = Path(path).suffix.lower()
        return any(suffix in tab.handled_suffixes() for tab in (self.tabs.widget(i) for i in range(self.tabs.count()))
                   if hasattr(tab, "handled_suffixes"))

    def handle_drop(self, mime) -> bool:
        """Open the first supported local file of a drop (one file at a time; the others are
        ignored, and the status bar says how many); returns True if something was opened."""
        files = [u.toLocalFile() for u in mime.urls() if u.isLocalFile()] if mime.hasUrls() else []
        if not files:
            self.show_error("Drop image, video, audio or text files from your computer.")
            return False
        first = next((f for f in files if self._handles(f)), files[0])
        opened = self.open_path(first)
        others = len(files) - 1
        if others and opened:
            self.show_status(f"Opening {Path(first).name}; {others} other file{'s' if others > 1 else ''} "
                             "ignored (one file at a time).")  # after (in place of) the tab's own message
        return opened

    def dragEnterEvent(self, event) -> None:  # noqa: N802 - Qt override
        if event.mimeData().hasUrls() and any(u.isLocalFile() for u in event.mimeData().urls()):
            event.acceptProposedAction()
        else:
            event.ignore()

    def dragMoveEvent(self, event) -> None:  # noqa: N802 - Qt override
        self.dragEnterEvent(event)

    def dropEvent(self, event) -> None:  # noqa: N802 - Qt override
        event.acceptProposedAction()
        self.handle_drop(event.mimeData())

    # ------------------------------------------------------------------ shutdown

    def closeEvent(self, event) -> None:  # noqa: N802 - Qt override
        if not self._closed:
            self.shutdown()
        event.accept()

    #: how long shutdown() waits for the engine threads (a forward pass in progress is not interrupted)
    shutdown_timeout_ms = 5000

    def shutdown(self) -> bool:
        """Save settings, stop every source, stop the engine thread (with a timeout). True when the
        engine threads finished in time (again on later calls: the first call's answer)."""
        if self._closed:
            return self._stopped_cleanly
        self._closed = True
        self.save_settings()
        self._end_loading()
        for i in range(self.tabs.count()):
            tab = self.tabs.widget(i)
            try:
                tab.shutdown()
            except Exception:  # noqa: BLE001 - keep closing the others
                log.exception("shutting down %s failed", type(tab).__name__)
        self.settings.sync()
        self._stopped_cleanly = self.engine.shutdown(self.shutdown_timeout_ms)
        return self._stopped_cleanly

    def stopped_cleanly(self) -> bool:
        """After shutdown(): did every thread of the window (engine, loader, sources) finish? A
        thread still running (a forward pass that outlived the wait) must never be destroyed: the
        app then ends the process without running destructors (see run_app)."""
        from PySide6.QtCore import QThread
        if not self._closed:
            return False
        return self._stopped_cleanly and not any(t.isRunning() for t in self.findChildren(QThread))


MEMORY_LIMIT_KEY = "engine/memory_limit_mb"


def memory_limit(settings: QSettings) -> int:
    """Bytes of loaded models the engine keeps (QSettings ``engine/memory_limit_mb``, default 4 GiB)."""
    try:
        mb = float(settings.value(MEMORY_LIMIT_KEY, DEFAULT_MEMORY_LIMIT / 2 ** 20))
    except (TypeError, ValueError):
        log.warning("ignoring %s=%r (not a number of MB)", MEMORY_LIMIT_KEY, settings.value(MEMORY_LIMIT_KEY))
        return DEFAULT_MEMORY_LIMIT
    return int(mb * 2 ** 20) if mb > 0 else DEFAULT_MEMORY_LIMIT


def about_html() -> str:
    """The About box: what the app does, one line per task as the task declares itself."""
    import engine
    rows = "".join(f"<li><b>{cls.title}</b> — {cls.summary}</li>" for cls in engine.all_tasks().values())
    return (f"<h3>{APP_NAME} {_version()}</h3>"
            "<p>See how Transformer models solve tasks, live on your camera, microphone and files, and what "
            f"happens inside the models.</p><ul>{rows}</ul>"
            "<p>The models are Taskscope's own PyTorch code, loading the real Hugging Face checkpoints.</p>"
            "<p>Licence: Apache-2.0</p>")


def engine_offline_default() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="taskscope", description="Open the Taskscope window.")
    p.add_argument("--offline", action="store_true", help="never download; use cached models and local folders")
    p.add_argument("--device", help="auto, cpu, cuda, cuda:N or mps (default: remembered, else the best)")
    p.add_argument("--precision", choices=("exact", "fast"), help="exact (fp32) or fast (bf16/fp16 where native)")
    p.add_argument("--model-dir", help="folder for downloaded models (sets HF_HOME)")
    p.add_argument("files", nargs="*", help="image, video, audio or text files to open")
    return p.parse_args(argv)


def display_problem() -> str | None:
    """Why no window can open here (Linux without X11/Wayland and no headless Qt platform), or None."""
    if not sys.platform.startswith("linux"):
        return None
    if os.environ.get("QT_QPA_PLATFORM") or os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"):
        return None
    return ("Taskscope needs a display to open its window, and none was found (DISPLAY and WAYLAND_DISPLAY "
            "are not set). Run a command instead — python main.py --help lists them — or start the app "
            "from a desktop session.")


def run_app(argv: list[str] | None = None) -> int:
    args = parse_args(list(sys.argv[1:] if argv is None else argv))
    problem = display_problem()
    if problem:
        print(f"taskscope: {problem}", file=sys.stderr)
        return 2
    qt_fixes.guard_emit_refcount()  # before any signal is emitted (see there: a PySide6 6.12 bug)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if args.model_dir:
        os.environ["HF_HOME"] = str(Path(args.model_dir).expanduser())
    if args.offline:
        os.environ["HF_HUB_OFFLINE"] = "1"
    app = QApplication.instance() or QApplication([sys.argv[0] if sys.argv else APP_NAME])
    app.setApplicationName(APP_NAME)
    app.setOrganizationName(APP_NAME)
    app.setApplicationDisplayName(APP_NAME)
    app.setStyle("Fusion")
    window = MainWindow(device=args.device, precision=args.precision, offline=True if args.offline else None)
    if os.environ.get(EXIT_AFTER_FIRST_PAINT_ENV, "").strip() not in ("", "0"):
        _FirstPaintExit(app, window)
    window.show()
    for f in args.files[:1]:
        QTimer.singleShot(0, lambda f=f: window.open_path(f))
    code = app.exec()
    window.shutdown()  # (done already when the window was closed; not when the app was told to quit)
    from gui.common.pickers import DeviceLister
    DeviceLister.instance().wait(30.0)  # a device listing still importing torch ends first (see there)
    if not window.stopped_cleanly():
        # A thread is still running (a forward pass outlived the shutdown wait). Destroying its
        # QThread would abort the process ("QThread: Destroyed while thread is still running"), and
        # the thread is never terminated: end the process here, without destructors, once the logs
        # are flushed. The window (and through it every thread object) stays referenced until then.
        log.warning("ending the process with a thread still running (exit code %d)", code)
        _exit_now(code)
    return code


#: set (to 1) to make the window quit right after its first paint and print the time since the
#: process started (``first-paint-s=...`` on stdout); `python main.py bench startup` uses it
EXIT_AFTER_FIRST_PAINT_ENV = "TASKSCOPE_EXIT_AFTER_FIRST_PAINT"


def process_age_s() -> float | None:
    """Seconds since this process started (Linux: from /proc, 10 ms resolution), else None."""
    try:
        with open("/proc/self/stat", encoding="ascii") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        start_s = int(fields[19]) / os.sysconf("SC_CLK_TCK")  # field 22, starttime, ticks after boot
        return time.clock_gettime(time.CLOCK_BOOTTIME) - start_s
    except (OSError, ValueError, IndexError, AttributeError):
        return None


class _FirstPaintExit:
    """On the first paint of the window (or any widget in it), print the time since the process
    started and quit once that paint is done."""

    def __init__(self, app: QApplication, window: QWidget) -> None:
        from PySide6.QtCore import QEvent, QObject

        self._app, self._window, self._done = app, window, False
        outer = self

        class Filter(QObject):
            def eventFilter(self, obj, event):  # noqa: N802 - Qt override
                if (not outer._done and event.type() == QEvent.Type.Paint and isinstance(obj, QWidget)
                        and obj.window() is outer._window):
                    outer._done = True
                    QTimer.singleShot(0, outer._report)  # after this paint (and its flush) is done
                return False

        self._filter = Filter()
        app.installEventFilter(self._filter)

    def _report(self) -> None:
        age = process_age_s()
        print(f"first-paint-s={age:.3f}" if age is not None else "first-paint-s=nan", flush=True)
        self._app.removeEventFilter(self._filter)
        self._window.close()
        self._app.quit()


def _exit_now(code: int) -> None:
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError, AttributeError):
            pass
    os._exit(code)


__all__ = ["MainWindow", "make_settings", "run_app"]
