"""What every text task's presenter provides to the Text tab.

The tab owns the editor, the engine requests (debounced, newest wins), the task and model pickers,
the "Inside the model" panel and the status line. A presenter owns what is particular to its task:
the extra inputs it needs (a question, sentences to compare with), its toolbar controls, the
options of the next request, how the result is shown, what "Inside the model" shows of it, and the
result as text and JSON for the clipboard. Presenters receive the task's result dataclasses
(torch-free) and never talk to the engine themselves.
"""
from __future__ import annotations

from typing import Any

from PySide6.QtCore import QObject, QSettings, Signal
from PySide6.QtWidgets import QHBoxLayout, QVBoxLayout, QWidget

from gui.text.widgets.inside_panel import InsidePart

#: attention maps (layers x heads x T x T floats) are asked for texts up to this long only
ATTENTION_MAX_CHARS = 1000
NO_ATTENTION = (f"Attention maps are asked for texts up to {ATTENTION_MAX_CHARS:,} characters: they grow with "
                "the square of the length.")


def setting_int(settings: QSettings, key: str, default: int) -> int:
    """An integer setting (the INI backend stores strings); ``default`` when absent or not a number."""
    try:
        return int(settings.value(key, default))
    except (TypeError, ValueError):
        return default


class TextPresenter(QObject):
    inputsChanged = Signal()  # the next request differs (an input or option changed): run again
    insertText = Signal(str)  # insert this at the editor's cursor
    replaceText = Signal(int, int, str)  # replace [start, end) of the analysed text in the editor
    problem = Signal(str)  # something the user asked for failed: the window shows it

    task = ""  # the engine task name, e.g. "fill-mask"
    text_label = "Text"  # what the editor holds, for this task
    placeholder = "Type or paste a text, or drop a .txt file."
    inputs_above = False  # the extra inputs go above the editor (True) or below it

    def __init__(self, settings: QSettings, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.settings = settings
        self.result: Any = None
        self.text = ""  # the text the result belongs to
        self.view = QWidget()  # how the result is shown: the tab stacks these
        self.view_layout = QVBoxLayout(self.view)
        self.view_layout.setContentsMargins(0, 0, 0, 0)
        self.inputs = QWidget()  # the task's extra inputs (hidden when it has none)
        self.inputs_layout = QVBoxLayout(self.inputs)
        self.inputs_layout.setContentsMargins(0, 0, 0, 0)
        self.inputs.hide()
        self.toolbar = QWidget()  # task controls in the tab's toolbar (hidden when it has none)
        self.toolbar_layout = QHBoxLayout(self.toolbar)
        self.toolbar_layout.setContentsMargins(0, 0, 0, 0)
        self.toolbar.hide()

    def key(self, name: str) -> str:
        """This task's settings key for ``name``."""
        return f"text/{self.task}/{name}"

    # ------------------------------------------------------------------ requests

    def missing(self, text: str) -> str:
        """Why ``text`` (not empty) cannot be sent yet, as a hint for the user ("" when it can): no
        question, no [MASK], no sentences to compare with..."""
        return ""

    def options(self, internals: bool, attention: bool) -> Any:
        """The options of the next request, from the widgets."""
        raise NotImplementedError

    # ------------------------------------------------------------------ results

    def set_result(self, result: Any, text: str) -> None:
        """Show ``result``, computed for ``text``."""
        self.result, self.text = result, text
        self.show_result()

    def show_result(self) -> None:
        """Draw ``self.result`` (of ``self.text``) in the view."""

    def clear(self) -> None:
        self.result, self.text = None, ""

    def summary(self) -> str:
        """The result in a few words, for the status line ("2 entities")."""
        return ""

    def inside(self) -> tuple[list[InsidePart], int, str]:
        """What "Inside the model" shows of the result: its parts, the one to show first, and a
        description (rich text) of what the task's head does with them."""
        return [], 0, ""

    def result_text(self) -> str:
        """The result as plain text (Copy)."""
        return ""

    def result_json(self) -> Any:
        """The result as JSON values (Copy as JSON): what transformers' pipeline returns."""
        return self.result.to_json() if self.result is not None else None

    def save_settings(self) -> None:
        """Write the widgets' state to the settings (called when the tab shuts down)."""
