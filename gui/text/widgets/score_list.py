"""A ranked list: one row per item with its score as a number and a bar, and its label; rows can be
clicked (``rowClicked(index)``) and hovered (each row's tooltip). Fill-mask candidates, answers,
entities and similar sentences use it."""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from PySide6.QtCore import QRectF, QSize, Qt, Signal
from PySide6.QtGui import QColor, QPainter, QPalette
from PySide6.QtWidgets import QSizePolicy, QWidget

from gui.text.widgets.tooltip import tooltip_event


@dataclass(frozen=True)
class Row:
    label: str
    score: float  # the bar shows max(0, min(1, score))
    value: str = ""  # the number shown ("" : the score as a percentage)
    tooltip: str = ""
    colour: QColor | None = None  # the bar's colour (None: green for the first row, blue for the others)


class ScoreList(QWidget):
    rowClicked = Signal(int)

    ROW_H = 24

    def __init__(self, parent: QWidget | None = None, clickable: bool = False) -> None:
        super().__init__(parent)
        self.rows: tuple[Row, ...] = ()
        self.placeholder = ""
        self.selected = -1
        self.clickable = clickable
        self._hover = -1
        self.setMouseTracking(True)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Minimum)
        if clickable:
            self.setCursor(Qt.CursorShape.PointingHandCursor)

    def set_rows(self, rows: Sequence[Row]) -> None:
        self.rows = tuple(rows)
        self.selected = -1 if self.selected >= len(self.rows) else self.selected
        self.updateGeometry()
        self.setMinimumHeight(self._height())
        self.update()

    def clear(self) -> None:
        self.set_rows(())

    def _height(self) -> int:
        return max(1, len(self.rows)) * self.ROW_H + 6

    def sizeHint(self) -> QSize:
        return QSize(320, self._height())

    def row_rect(self, i: int) -> QRectF:
        return QRectF(0, 3 + i * self.ROW_H, self.width(), self.ROW_H)

    def row_at(self, y: float) -> int:
        i = int((y - 3) // self.ROW_H)
        return i if 0 <= i < len(self.rows) and y >= 3 else -1

    def paintEvent(self, event) -> None:  # noqa: N802 - Qt override
        p = QPainter(self)
        pal = self.palette()
        fm = p.fontMetrics()
        if not self.rows:
            if self.placeholder:
                p.setPen(pal.placeholderText().color())
                p.drawText(self.rect(), Qt.AlignmentFlag.AlignCenter | Qt.TextFlag.TextWordWrap, self.placeholder)
            p.end()
            return
        value_w = max(fm.horizontalAdvance(self._value(r)) for r in self.rows) + 12
        bar_w = max(24, min(140, self.width() // 4))
        for i, row in enumerate(self.rows):
            r = self.row_rect(i)
            if i == self.selected:
                selected = QColor(pal.color(QPalette.ColorRole.Highlight))
                selected.setAlpha(60)
                p.fillRect(r, selected)
            elif i == self._hover and self.clickable:
                p.fillRect(r, QColor(128, 128, 128, 40))
            p.setPen(pal.text().color())
            p.drawText(QRectF(4, r.top(), value_w - 8, r.height()),
                       Qt.AlignmentFlag.AlignVCenter | Qt.AlignmentFlag.AlignRight, self._value(row))
            bar = QRectF(value_w, r.top() + 5, bar_w, r.height() - 10)
            p.fillRect(bar, QColor(128, 128, 128, 45))
            colour = row.colour or (QColor(40, 170, 110) if i == 0 else QColor(70, 140, 230))
            fill = max(0.0, min(1.0, float(row.score)))
            p.fillRect(QRectF(bar.left(), bar.top(), max(1.0, bar_w * fill), bar.height()), colour)
            left = value_w + bar_w + 8
            p.setPen(pal.text().color())
            p.drawText(QRectF(left, r.top(), self.width() - left - 4, r.height()),
                       Qt.AlignmentFlag.AlignVCenter | Qt.AlignmentFlag.AlignLeft,
                       fm.elidedText(row.label.replace("\n", " "), Qt.TextElideMode.ElideRight,
                                     max(10, self.width() - left - 4)))
        p.end()

    @staticmethod
    def _value(row: Row) -> str:
        return row.value or f"{100 * float(row.score):.1f}%"

    def mouseMoveEvent(self, event) -> None:  # noqa: N802 - Qt override
        i = self.row_at(event.position().y())
        if i != self._hover:
            self._hover = i
            self.update()

    def leaveEvent(self, event) -> None:  # noqa: N802 - Qt override
        self._hover = -1
        self.update()

    def mousePressEvent(self, event) -> None:  # noqa: N802 - Qt override
        i = self.row_at(event.position().y())
        if event.button() == Qt.MouseButton.LeftButton and i >= 0:
            self.selected = i
            self.update()
            self.rowClicked.emit(i)

    def event(self, event) -> bool:
        return tooltip_event(event, self._tooltip_at, self) or super().event(event)

    def _tooltip_at(self, pos) -> str:
        i = self.row_at(pos.y())
        return self.rows[i].tooltip if i >= 0 else ""
