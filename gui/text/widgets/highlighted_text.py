"""A read-only view of the analysed text with character spans highlighted (entities, answers, filled
masks), a tooltip per span, and the mapping between the engine's character offsets and Qt's.

The engine's offsets index Python strings (code points); a QTextDocument counts UTF-16 code units,
so every character outside the Basic Multilingual Plane (most emoji) takes two positions there.
:class:`Positions` converts both ways; the tab uses it for the editor too.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from PySide6.QtCore import QPoint, Signal
from PySide6.QtGui import QColor, QFont, QTextCharFormat, QTextCursor
from PySide6.QtWidgets import QTextEdit, QWidget

from gui.text.widgets.tooltip import tooltip_event


class Positions:
    """Python string indices <-> QTextDocument positions (UTF-16 code units) for one text."""

    def __init__(self, text: str) -> None:
        self.length = len(text)
        self._qt: np.ndarray | None = None  # (len + 1,) the Qt position of every index; None: the same
        if len(text.encode("utf-16-le")) // 2 != len(text):
            wide = np.fromiter((ord(c) > 0xFFFF for c in text), bool, len(text))
            self._qt = np.arange(len(text) + 1) + np.concatenate([[0], np.cumsum(wide)])

    def to_qt(self, index: int) -> int:
        index = max(0, min(int(index), self.length))
        return index if self._qt is None else int(self._qt[index])

    def to_py(self, position: int) -> int:
        """The index of the character at Qt ``position`` (the second half of a pair: that character)."""
        if self._qt is None:
            return max(0, min(int(position), self.length))
        return int(np.clip(np.searchsorted(self._qt, int(position), side="right") - 1, 0, self.length))


@dataclass(frozen=True)
class Span:
    """[start, end) characters of the text, drawn with ``colour`` behind them."""

    start: int
    end: int
    colour: QColor
    tooltip: str = ""
    bold: bool = False
    underline: bool = False
    key: object = None  # what the span stands for (an entity's index, an answer's rank...)


class HighlightedText(QTextEdit):
    """``set_content(text, spans)``: the text, read-only, with the spans highlighted; later spans are
    drawn over earlier ones where they overlap. Hover shows a span's tooltip; a click on a span
    emits ``spanClicked(key)``."""

    spanClicked = Signal(object)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setReadOnly(True)
        self.setUndoRedoEnabled(False)
        self.setAcceptRichText(False)
        self.setLineWrapMode(QTextEdit.LineWrapMode.WidgetWidth)
        self.text = ""
        self.spans: tuple[Span, ...] = ()
        self._positions = Positions("")
        self._press: QPoint | None = None

    def set_content(self, text: str, spans: Sequence[Span] = ()) -> None:
        self.text = text
        self.spans = tuple(s for s in spans if 0 <= s.start < s.end <= len(text))
        self._positions = Positions(text)
        bar = self.verticalScrollBar().value()
        self.setPlainText(text)
        cursor = QTextCursor(self.document())
        for span in self.spans:
            cursor.setPosition(self._positions.to_qt(span.start))
            cursor.setPosition(self._positions.to_qt(span.end), QTextCursor.MoveMode.KeepAnchor)
            fmt = QTextCharFormat()
            colour = QColor(span.colour)
            fmt.setBackground(colour)
            if span.bold:
                fmt.setFontWeight(QFont.Weight.Bold)
            if span.underline:
                fmt.setFontUnderline(True)
            cursor.mergeCharFormat(fmt)
        self.verticalScrollBar().setValue(bar)  # a new result for the same text keeps its place

    def clear_content(self) -> None:
        self.set_content("", ())

    def spans_at(self, index: int) -> list[Span]:
        """The spans covering character ``index``, the one drawn on top first."""
        return [s for s in reversed(self.spans) if s.start <= index < s.end]

    def index_at(self, pos: QPoint) -> int:
        """The character under viewport point ``pos`` (-1 past the end of the text)."""
        cursor = self.cursorForPosition(pos)
        index = self._positions.to_py(cursor.position())
        # cursorForPosition gives the nearest gap between characters: take the character whose box holds pos
        rect = self.cursorRect(cursor)
        if pos.x() < rect.x() and index > 0:
            index -= 1
        return index if index < len(self.text) else -1

    def hover_text_at(self, pos: QPoint) -> str:
        index = self.index_at(pos)
        spans = self.spans_at(index) if index >= 0 else []
        return "\n".join(s.tooltip for s in spans if s.tooltip)

    def viewportEvent(self, event) -> bool:  # noqa: N802 - Qt override
        return tooltip_event(event, self.hover_text_at, self.viewport()) or super().viewportEvent(event)

    def mousePressEvent(self, event) -> None:  # noqa: N802 - Qt override
        self._press = event.position().toPoint()
        super().mousePressEvent(event)

    def mouseReleaseEvent(self, event) -> None:  # noqa: N802 - Qt override
        super().mouseReleaseEvent(event)
        pos = event.position().toPoint()
        clicked = self._press is not None and (pos - self._press).manhattanLength() < 4
        if clicked and not self.textCursor().hasSelection():
            index = self.index_at(pos)
            spans = self.spans_at(index) if index >= 0 else []
            if spans and spans[0].key is not None:
                self.spanClicked.emit(spans[0].key)
        self._press = None

    def reveal(self, start: int, end: int) -> None:
        """Scroll so that characters [start, end) are visible."""
        cursor = QTextCursor(self.document())
        cursor.setPosition(self._positions.to_qt(end))
        self.setTextCursor(cursor)
        self.ensureCursorVisible()
        cursor.setPosition(self._positions.to_qt(start))
        self.setTextCursor(cursor)
        self.ensureCursorVisible()

