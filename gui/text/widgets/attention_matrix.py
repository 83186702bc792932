"""Self-attention of one layer and head as a token × token matrix: row i is where token i looks
(its probabilities over all tokens sum to 1), brighter = more. Token labels run down the left and
along the top when the cells are large enough; hover shows the pair and the weight; a selected
token's row and column are outlined."""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from PySide6.QtCore import QEvent, QPointF, QRectF, QSize, Qt
from PySide6.QtGui import QColor, QFont, QFontMetricsF, QImage, QPainter, QPalette, QPen
from PySide6.QtWidgets import QSizePolicy, QToolTip, QWidget

from engine.io.colormap import lut

#: the widest token label (pixels); cells lower than the labels' font get none
LABEL_MAX_W = 90.0


class AttentionMatrix(QWidget):
    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.matrix: np.ndarray | None = None  # (T, T) float
        self.tokens: tuple[str, ...] = ()
        self.what = ""  # "layer 2, head 3" (for the tooltip)
        self.selected = -1
        self.placeholder = ""
        self._image: QImage | None = None
        self._font = QFont(self.font())
        self._font.setPointSizeF(max(6.5, self.font().pointSizeF() * 0.8))
        self.setMouseTracking(True)
        self.setMinimumSize(180, 180)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)

    def sizeHint(self) -> QSize:
        return QSize(360, 360)

    def set_matrix(self, matrix: np.ndarray | None, tokens: Sequence[str] = (), what: str = "") -> None:
        self.matrix = None if matrix is None else np.asarray(matrix, np.float32)
        self.tokens = tuple(tokens)
        self.what = what
        self._image = None if self.matrix is None else self._to_image(self.matrix)
        self.update()

    def clear(self) -> None:
        self.set_matrix(None)

    def select(self, index: int) -> None:
        self.selected = index
        self.update()

    @staticmethod
    def _to_image(m: np.ndarray) -> QImage:
        top = float(m.max()) if m.size else 0.0
        scaled = np.clip(m / top, 0, 1) if top > 0 else np.zeros_like(m)
        rgb = np.ascontiguousarray(lut("magma")[(scaled * 255).astype(np.uint8)])  # (T, T, 3)
        h, w = m.shape
        return QImage(rgb.data, w, h, rgb.strides[0], QImage.Format.Format_RGB888).copy()

    # ------------------------------------------------------------------ geometry

    def _geometry(self) -> tuple[QRectF, float, float]:
        """(the matrix's rectangle, the cell size, the label margin)."""
        n = len(self.matrix) if self.matrix is not None else 1
        side = min(self.width(), self.height()) - 4
        cell = side / n
        margin = 0.0
        fm = QFontMetricsF(self._font)
        smallest = fm.height() - 2  # a label fits a cell this high
        if cell >= smallest:
            margin = min(LABEL_MAX_W, max((fm.horizontalAdvance(t) for t in self.tokens), default=0) + 6)
            cell = (side - margin) / n
            if cell < smallest:
                margin, cell = 0.0, side / n
        return QRectF(2 + margin, 2 + margin, cell * n, cell * n), cell, margin

    def cell_at(self, pos: QPointF) -> tuple[int, int]:
        """(row, column) under ``pos``; (-1, -1) outside the matrix."""
        if self.matrix is None:
            return -1, -1
        rect, cell, _ = self._geometry()
        if not rect.contains(pos) or cell <= 0:
            return -1, -1
        n = len(self.matrix)
        return (min(n - 1, int((pos.y() - rect.top()) / cell)), min(n - 1, int((pos.x() - rect.left()) / cell)))

    def cell_center(self, row: int, col: int) -> QPointF:
        rect, cell, _ = self._geometry()
        return QPointF(rect.left() + (col + 0.5) * cell, rect.top() + (row + 0.5) * cell)

    # ------------------------------------------------------------------ painting

    def paintEvent(self, event) -> None:  # noqa: N802 - Qt override
        p = QPainter(self)
        pal = self.palette()
        if self.matrix is None or self._image is None:
            p.setPen(pal.placeholderText().color())
            p.drawText(self.rect().adjusted(8, 8, -8, -8), Qt.AlignmentFlag.AlignCenter | Qt.TextFlag.TextWordWrap,
                       self.placeholder)
            p.end()
            return
        rect, cell, margin = self._geometry()
        p.drawImage(rect, self._image)  # nearest neighbour: one block per pair of tokens
        n = len(self.matrix)
        if margin > 0:
            p.setFont(self._font)
            fm = QFontMetricsF(self._font)
            for i, tok in enumerate(self.tokens[:n]):
                label = fm.elidedText(tok, Qt.TextElideMode.ElideRight, margin - 6)
                p.setPen(pal.color(QPalette.ColorRole.Highlight) if i == self.selected else pal.text().color())
                p.drawText(QRectF(2, rect.top() + i * cell, margin - 4, cell),
                           Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter, label)
                p.save()
                p.translate(rect.left() + i * cell, rect.top() - 4)
                p.rotate(-90)
                p.drawText(QRectF(0, 0, margin - 6, cell), Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter,
                           label)
                p.restore()
        if 0 <= self.selected < n:
            p.setPen(QPen(QColor(80, 200, 255), 1.5))
            p.setBrush(Qt.BrushStyle.NoBrush)
            p.drawRect(QRectF(rect.left(), rect.top() + self.selected * cell, rect.width(), cell))
            p.drawRect(QRectF(rect.left() + self.selected * cell, rect.top(), cell, rect.height()))
        p.end()

    # ------------------------------------------------------------------ pointer

    def hover_text_at(self, pos: QPointF) -> str:
        i, j = self.cell_at(pos)
        if i < 0:
            return ""
        a = self.tokens[i] if i < len(self.tokens) else "?"
        b = self.tokens[j] if j < len(self.tokens) else "?"
        head = f" ({self.what})" if self.what else ""
        return f"{a!r} (token {i}) → {b!r} (token {j}): {float(self.matrix[i, j]):.3f}{head}"

    def event(self, event) -> bool:
        if event.type() == QEvent.Type.ToolTip:
            text = self.hover_text_at(QPointF(event.pos()))
            if text:
                QToolTip.showText(event.globalPos(), text, self)
            else:
                QToolTip.hideText()
            return True
        return super().event(event)
