"""Horizontal top-k bars: a label, a bar proportional to the score, the score as a percentage."""
from __future__ import annotations

from collections.abc import Sequence

from PySide6.QtCore import QRectF, QSize, Qt
from PySide6.QtGui import QColor, QPainter
from PySide6.QtWidgets import QSizePolicy, QWidget


class BarsView(QWidget):
    def __init__(self, parent: QWidget | None = None, rows: int = 5, title: str = "") -> None:
        super().__init__(parent)
        self.rows = rows
        self.title = title
        self.labels: tuple[str, ...] = ()
        self.scores: tuple[float, ...] = ()
        self.placeholder = "No result yet."
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Preferred)
        self.setMinimumHeight(26 * rows + 10)

    def sizeHint(self) -> QSize:
        return QSize(320, 28 * self.rows + 20)

    def set_results(self, labels: Sequence[str], scores: Sequence[float]) -> None:
        n = min(self.rows, len(labels), len(scores))
        self.labels = tuple(str(l) for l in labels[:n])
        self.scores = tuple(float(s) for s in scores[:n])
        self.update()

    def clear(self) -> None:
        self.labels, self.scores = (), ()
        self.update()

    def paintEvent(self, event) -> None:  # noqa: N802 - Qt API
        p = QPainter(self)
        p.setRenderHint(QPainter.RenderHint.Antialiasing)
        pal = self.palette()
        fm = p.fontMetrics()
        if not self.labels:
            p.setPen(pal.placeholderText().color())
            p.drawText(self.rect(), Qt.AlignmentFlag.AlignCenter, self.placeholder)
            p.end()
            return
        label_w = min(self.width() // 3, max(fm.horizontalAdvance(l) for l in self.labels) + 12)
        score_w = fm.horizontalAdvance("100.0%") + 10
        row_h = max(fm.height() + 8, min(34, (self.height() - 4) // self.rows))
        bar_w = max(10, self.width() - label_w - score_w - 8)
        for i, (label, score) in enumerate(zip(self.labels, self.scores)):
            y = 4 + i * row_h
            p.setPen(pal.text().color())
            p.drawText(QRectF(4, y, label_w - 8, row_h), Qt.AlignmentFlag.AlignVCenter | Qt.AlignmentFlag.AlignRight,
                       fm.elidedText(label, Qt.TextElideMode.ElideRight, label_w - 8))
            r = QRectF(label_w, y + 4, bar_w, row_h - 8)
            p.fillRect(r, QColor(128, 128, 128, 40))
            color = QColor(70, 140, 230) if i else QColor(40, 170, 110)
            p.fillRect(QRectF(r.left(), r.top(), max(1.0, bar_w * max(0.0, min(1.0, score))), r.height()), color)
            p.drawText(QRectF(label_w + bar_w + 6, y, score_w, row_h),
                       Qt.AlignmentFlag.AlignVCenter | Qt.AlignmentFlag.AlignLeft, f"{100 * score:.1f}%")
        p.end()
