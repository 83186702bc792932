"""What every vision task's presenter provides to the Vision tab.

The tab owns the source, the engine requests, the model picker and the video view; a presenter
owns everything that is particular to its task: the options it asks for, the toolbar controls and
side panel that set them, what it paints over the frame, what a click on the frame does, the
"inside the model" view, and what a snapshot records. Presenters receive the task's result
dataclasses (torch-free) and never talk to the engine themselves.
"""
from __future__ import annotations

from typing import Any

from PySide6.QtCore import QObject, QPointF, QRectF, QSettings, Signal
from PySide6.QtGui import QPainter
from PySide6.QtWidgets import QVBoxLayout, QWidget


class VisionPresenter(QObject):
    optionsChanged = Signal()  # the options for the NEXT request changed: a still image is run again
    repaint = Signal()  # what is drawn changed (result, selection, display setting): the view repaints
    problem = Signal(str)  # something the user asked for failed (e.g. saving a file): the window shows it

    task = ""  # the engine task name, e.g. "object-detection"

    def __init__(self, settings: QSettings, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.settings = settings
        self.result: Any = None
        self.panel = QWidget()  # the side panel's task part: the tab stacks these
        self.panel_layout = QVBoxLayout(self.panel)
        self.panel_layout.setContentsMargins(0, 0, 0, 0)
        self.toolbar = QWidget()  # task controls shown in the tab's toolbar
        self.toolbar.hide()

    def key(self, name: str) -> str:
        """This task's settings key for ``name``."""
        return f"vision/{self.task}/{name}"

    # ------------------------------------------------------------------ requests

    def options(self) -> Any:
        """The options for the next request, from the presenter's widgets."""
        raise NotImplementedError

    def wants_rerun(self, result: Any) -> bool:
        """True when ``result`` (the newest) no longer covers what the widgets show now, e.g. the
        threshold went below the one it was requested at; the tab then runs a still image again."""
        return False

    # ------------------------------------------------------------------ results

    def set_result(self, result: Any) -> None:
        self.result = result
        self.repaint.emit()

    def clear(self) -> None:
        self.result = None
        self.repaint.emit()

    def paint(self, p: QPainter, target: QRectF, scale: float = 1.0) -> None:
        """Draw over the frame, which fills ``target``; ``scale`` enlarges text and lines (snapshots)."""

    def click(self, pos: QPointF, target: QRectF) -> bool:
        """A left click on the frame at ``pos`` (widget coordinates); True when it was used."""
        return False

    def hover_text(self, pos: QPointF, target: QRectF) -> str:
        """What the pointer is over (shown as a tooltip), or ""."""
        return ""

    def snapshot(self) -> dict:
        """What a snapshot's JSON records of the drawn result."""
        return {}

    def save_settings(self) -> None:
        """Write the widgets' state to the settings (called when the tab shuts down)."""


class DensePresenter(VisionPresenter):
    """What the dense tasks' presenters (segmentation, depth) share: the "Inside the model" checkbox
    (``inside_check``, remembered under "internals": toggling it asks for a new result) and the
    opacity slider (``opacity_slider``, remembered under "opacity"). Subclasses write ``_describe``."""

    inside_check: Any
    opacity_slider: Any

    def opacity(self) -> float:
        return self.opacity_slider.value() / 100.0

    def _on_opacity(self, value: int) -> None:
        self.settings.setValue(self.key("opacity"), value)
        self.repaint.emit()

    def _on_inside(self, on: bool) -> None:
        self.settings.setValue(self.key("internals"), on)
        self._describe()
        self.optionsChanged.emit()

    def _describe(self) -> None:
        """Explain the internals shown (or how to see them)."""
