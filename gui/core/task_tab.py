"""The base of every tab: its place in the window (status and error signals, files it opens,
settings, shutdown) and the model bookkeeping each task needs (load the chosen model once, know
what is loaded). A tab shows the tasks of one domain (engine.tasks_for_domain)."""
from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QSettings, Signal
from PySide6.QtWidgets import QWidget

from gui.core.engine_client import EngineClient


class TaskTab(QWidget):
    statusMessage = Signal(str)  # routine news, for the window's status bar
    errorMessage = Signal(str)  # a problem, for the window's one error handler (kept until seen)
    warningMessage = Signal(str)  # a notice the user should see (kept until seen, like errors): it works, differently

    domain = ""  # "vision", "audio" or "text"

    def __init__(self, engine: EngineClient, settings: QSettings, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.engine = engine
        self.settings = settings
        self._requested: dict[str, str] = {}  # task -> model asked for last
        self._descriptions: dict[str, str] = {}  # task -> description of the model that serves it now
        engine.modelLoaded.connect(self._model_loaded)
        engine.modelFailed.connect(self._model_failed)
        engine.modelLoading.connect(self.on_model_loading)
        engine.deviceFallback.connect(self._device_fallback)

    # ------------------------------------------------------------------ models

    def ensure_model(self, task: str, model: str | None) -> None:
        """Load ``model`` for ``task`` unless it is loaded or already asked for."""
        if model and model != self._requested.get(task) and self.engine.loaded_model(task) != model:
            self.load_model(task, model)

    def load_model(self, task: str, model: str | None) -> None:
        if model:
            self._requested[task] = model
        self.engine.load(task, model)

    def _model_loaded(self, task: str, description: str) -> None:
        self._descriptions[task] = description
        self.on_model_loaded(task, description)

    def _model_failed(self, task: str, message: str) -> None:
        if not message:  # cancelled: ask again on the next start
            self._requested.pop(task, None)
        self.on_model_failed(task, message)

    def _device_fallback(self, task: str, notice: str) -> None:
        """``task`` failed on the GPU and runs on the CPU now, or runs ``exact`` where ``fast`` was
        asked for (Task.precision_notice): the tab of that task says so."""
        import engine  # the public API (no torch at import)
        if task in {cls.name for cls in engine.tasks_for_domain(self.domain)}:
            self.warningMessage.emit(notice)

    def on_model_loaded(self, task: str, description: str) -> None:
        """``task``'s model is ready (any task: filter for your own)."""

    def on_model_failed(self, task: str, message: str) -> None:
        """``task``'s model failed to load ("" when the load was cancelled)."""

    def on_model_loading(self, task: str, model: str, done, total) -> None:
        """Download progress (``done`` None when the load starts)."""

    # ------------------------------------------------------------------ the window's calls

    def handled_suffixes(self) -> set[str]:
        """File suffixes this tab opens (dropped files, File > Open)."""
        return set()

    def open_file(self, path: str | Path) -> bool:
        return False

    def save_settings(self) -> None:
        """Write what should be remembered to the settings."""

    def shutdown(self, timeout_ms: int = 3000) -> bool:
        self.save_settings()
        return True
