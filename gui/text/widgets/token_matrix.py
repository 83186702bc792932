"""A matrix of weights between two token sequences (attention: row i's weights over the columns),
painted as a magma image, brighter = more. Row tokens label the left edge and column tokens the
top when the cells are large enough for the labels' font; hover shows the pair and the weight; a
selected row is outlined. The self-attention matrix (attention_matrix.py) and the decoder's
cross-attention (cross_attention.py) are two kinds of it."""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from PySide6.QtCore import QPointF, QRectF, QSize, Qt
from PySide6.QtGui import QColor, QFont, QFontMetricsF, QImage, QPainter, QPalette, QPen
from PySide6.QtWidgets import QSizePolicy, QWidget

from engine.io.colormap import lut
from gui.text.widgets.tooltip import tooltip_event

#: the widest token label (pixels); cells lower than the labels' font get none
LABEL_MAX_W = 90.0
#: the outline of the selected row (and column)
SELECTED = QColor(80, 200, 255)


def to_image(m: np.ndarray) -> QImage:
    """A (rows, cols) map as a magma image, scaled by its largest weight."""
    top = float(m.max()) if m.size else 0.0
    scaled = np.clip(m / top, 0, 1) if top > 0 else np.zeros_like(m)
    rgb = np.ascontiguousarray(lut("magma")[(scaled * 255).astype(np.uint8)])  # (rows, cols, 3)
    h, w = m.shape
    return QImage(rgb.data, w, h, rgb.strides[0], QImage.Format.Format_RGB888).copy()


class TokenMatrix(QWidget):
    """``set_matrix(matrix (N, S), row_tokens, column_tokens, what)``; ``select(row)``. Subclasses
    choose the cells' shape (:meth:`_geometry`), the hover text (:meth:`pair_text`) and whether the
    selected token's column is outlined too (``outline_column``: rows and columns are the same tokens)."""

    outline_column = False

    def __init__(self, parent: QWidget | None = None, minimum: QSize = QSize(180, 160),
                 hint: QSize = QSize(360, 320)) -> None:
        super().__init__(parent)
        self.matrix: np.ndarray | None = None  # (N row tokens, S column tokens) float
        self.rows: tuple[str, ...] = ()
        self.cols: tuple[str, ...] = ()
        self.what = ""  # "layer 2, head 3" (for the tooltip)
        self.selected = -1
        self.placeholder = ""
        self._hint = hint
        self._image: QImage | None = None
        self._font = QFont(self.font())
        self._font.setPointSizeF(max(6.5, self.font().pointSizeF() * 0.8))
        self.setMouseTracking(True)
        self.setMinimumSize(minimum)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)

    def sizeHint(self) -> QSize:  # noqa: N802 - Qt override
        return self._hint

    def set_matrix(self, matrix: np.ndarray | None, rows: Sequence[str] = (), cols: Sequence[str] = (),
                   what: str = "") -> None:
        self.matrix = None if matrix is None else np.asarray(matrix, np.float32)
        self.rows, self.cols, self.what = tuple(rows), tuple(cols), what
        self._image = None if self.matrix is None or not self.matrix.size else to_image(self.matrix)
        self.update()

    def clear(self) -> None:
        self.set_matrix(None)

    def select(self, row: int) -> None:
        self.selected = row
        self.update()

    # ------------------------------------------------------------------ geometry

    def _label_room(self, tokens: Sequence[str]) -> float:
        """The margin the widest of ``tokens`` needs (at most LABEL_MAX_W)."""
        fm = QFontMetricsF(self._font)
        return min(LABEL_MAX_W, max((fm.horizontalAdvance(t) for t in tokens), default=0) + 6)

    def _smallest_cell(self) -> float:
        """The cell height a label fits."""
        return QFontMetricsF(self._font).height() - 2

    def _geometry(self) -> tuple[QRectF, float, float, float, float]:
        """(the matrix's rectangle, cell width, cell height, left margin, top margin): cells as large
        as the widget allows, each margin dropped where its labels would not fit the cells."""
        n, s = self.matrix.shape if self.matrix is not None else (1, 1)
        smallest = self._smallest_cell()
        w, h = self.width() - 4.0, self.height() - 4.0
        left = self._label_room(self.rows) if h / n >= smallest else 0.0
        top = self._label_room(self.cols) if w / s >= smallest else 0.0
        cw, ch = (w - left) / s, (h - top) / n
        if ch < smallest:
            left = 0.0
            cw = w / s
        if cw < smallest:
            top = 0.0
            ch = h / n
        return QRectF(2 + left, 2 + top, cw * s, ch * n), cw, ch, left, top

    def cell_at(self, pos: QPointF) -> tuple[int, int]:
        """(row, column) under ``pos``; (-1, -1) outside the matrix."""
        if self.matrix is None or not self.matrix.size:
            return -1, -1
        rect, cw, ch, _, _ = self._geometry()
        if not rect.contains(pos) or cw <= 0 or ch <= 0:
            return -1, -1
        n, s = self.matrix.shape
        return min(n - 1, int((pos.y() - rect.top()) / ch)), min(s - 1, int((pos.x() - rect.left()) / cw))

    def cell_center(self, row: int, col: int) -> QPointF:
        rect, cw, ch, _, _ = self._geometry()
        return QPointF(rect.left() + (col + 0.5) * cw, rect.top() + (row + 0.5) * ch)

    # ------------------------------------------------------------------ painting

    def paintEvent(self, event) -> None:  # noqa: N802 - Qt override
        p = QPainter(self)
        pal = self.palette()
        if self._image is None:
            p.setPen(pal.placeholderText().color())
            p.drawText(self.rect().adjusted(8, 8, -8, -8), Qt.AlignmentFlag.AlignCenter | Qt.TextFlag.TextWordWrap,
                       self.placeholder)
            p.end()
            return
        rect, cw, ch, left, top = self._geometry()
        p.drawImage(rect, self._image)  # nearest neighbour: one block per pair of tokens
        p.setFont(self._font)
        fm = QFontMetricsF(self._font)
        n, s = self.matrix.shape

        def pen(selected: bool) -> QColor:
            return pal.color(QPalette.ColorRole.Highlight) if selected else pal.text().color()

        if left > 0:
            for i, tok in enumerate(self.rows[:n]):
                p.setPen(pen(i == self.selected))
                p.drawText(QRectF(2, rect.top() + i * ch, left - 4, ch),
                           Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter,
                           fm.elidedText(tok, Qt.TextElideMode.ElideRight, left - 6))
        if top > 0:
            for j, tok in enumerate(self.cols[:s]):
                p.setPen(pen(self.outline_column and j == self.selected))
                p.save()
                p.translate(rect.left() + j * cw, rect.top() - 4)
                p.rotate(-90)
                p.drawText(QRectF(0, 0, top - 6, cw), Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter,
                           fm.elidedText(tok, Qt.TextElideMode.ElideRight, top - 6))
                p.restore()
        if 0 <= self.selected < n:
            p.setPen(QPen(SELECTED, 1.5))
            p.setBrush(Qt.BrushStyle.NoBrush)
            p.drawRect(QRectF(rect.left(), rect.top() + self.selected * ch, rect.width(), ch))
            if self.outline_column and self.selected < s:
                p.drawRect(QRectF(rect.left() + self.selected * cw, rect.top(), cw, rect.height()))
        p.end()

    # ------------------------------------------------------------------ pointer

    def pair_text(self, a: str, i: int, b: str, j: int, weight: float) -> str:
        """The hover text for row token ``a`` (index i) and column token ``b`` (index j)."""
        what = f" ({self.what})" if self.what else ""
        return f"{a!r} (token {i}) → {b!r} (token {j}): {weight:.3f}{what}"

    def hover_text_at(self, pos: QPointF) -> str:
        i, j = self.cell_at(pos)
        if i < 0:
            return ""
        a = self.rows[i] if i < len(self.rows) else "?"
        b = self.cols[j] if j < len(self.cols) else "?"
        return self.pair_text(a, i, b, j, float(self.matrix[i, j]))

    def event(self, event) -> bool:
        return tooltip_event(event, lambda pos: self.hover_text_at(QPointF(pos)), self) or super().event(event)
