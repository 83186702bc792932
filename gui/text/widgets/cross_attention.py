"""The decoder's cross-attention of an encoder-decoder (BART, T5): row i is where output token i
looked in the source while it was written (its weights over the source tokens sum to 1; the
heads averaged), brighter = more. One layer at a time, or the mean of the layers. Output tokens
label the rows, source tokens the columns (when the cells are large enough); hover shows the pair
and the weight; a selected output token's row is outlined."""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from PySide6.QtCore import QEvent, QPointF, QRectF, QSize, Qt, Signal
from PySide6.QtGui import QColor, QFont, QFontMetricsF, QImage, QPainter, QPalette, QPen
from PySide6.QtWidgets import QComboBox, QHBoxLayout, QLabel, QSizePolicy, QToolTip, QVBoxLayout, QWidget

from engine.io.colormap import lut

LABEL_MAX_W = 90.0
MEAN_OF_LAYERS = -1


def to_image(m: np.ndarray) -> QImage:
    """A (rows, cols) map as a magma image, scaled by its largest weight."""
    top = float(m.max()) if m.size else 0.0
    scaled = np.clip(m / top, 0, 1) if top > 0 else np.zeros_like(m)
    rgb = np.ascontiguousarray(lut("magma")[(scaled * 255).astype(np.uint8)])  # (rows, cols, 3)
    h, w = m.shape
    return QImage(rgb.data, w, h, rgb.strides[0], QImage.Format.Format_RGB888).copy()


class CrossAttentionMatrix(QWidget):
    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.matrix: np.ndarray | None = None  # (N output tokens, S source tokens)
        self.rows: tuple[str, ...] = ()
        self.cols: tuple[str, ...] = ()
        self.what = ""
        self.selected = -1
        self.placeholder = ""
        self._image: QImage | None = None
        self._font = QFont(self.font())
        self._font.setPointSizeF(max(6.5, self.font().pointSizeF() * 0.8))
        self.setMouseTracking(True)
        self.setMinimumSize(180, 160)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)

    def sizeHint(self) -> QSize:
        return QSize(360, 320)

    def set_matrix(self, matrix: np.ndarray | None, rows: Sequence[str] = (), cols: Sequence[str] = (),
                   what: str = "") -> None:
        self.matrix = None if matrix is None else np.asarray(matrix, np.float32)
        self.rows, self.cols, self.what = tuple(rows), tuple(cols), what
        self._image = None if self.matrix is None or not self.matrix.size else to_image(self.matrix)
        self.update()

    def select(self, row: int) -> None:
        self.selected = row
        self.update()

    def _geometry(self) -> tuple[QRectF, float, float, float, float]:
        """(the matrix's rectangle, cell width, cell height, left margin, top margin)."""
        n, s = self.matrix.shape if self.matrix is not None else (1, 1)
        fm = QFontMetricsF(self._font)
        smallest = fm.height() - 2
        w, h = self.width() - 4.0, self.height() - 4.0
        left = top = 0.0
        if h / n >= smallest:
            left = min(LABEL_MAX_W, max((fm.horizontalAdvance(t) for t in self.rows), default=0) + 6)
        if w / s >= smallest:
            top = min(LABEL_MAX_W, max((fm.horizontalAdvance(t) for t in self.cols), default=0) + 6)
        cw, ch = (w - left) / s, (h - top) / n
        if ch < smallest:
            left = 0.0
            cw = w / s
        if cw < smallest:
            top = 0.0
            ch = h / n
        return QRectF(2 + left, 2 + top, cw * s, ch * n), cw, ch, left, top

    def cell_at(self, pos: QPointF) -> tuple[int, int]:
        if self.matrix is None or not self.matrix.size:
            return -1, -1
        rect, cw, ch, _, _ = self._geometry()
        if not rect.contains(pos):
            return -1, -1
        n, s = self.matrix.shape
        return min(n - 1, int((pos.y() - rect.top()) / ch)), min(s - 1, int((pos.x() - rect.left()) / cw))

    def cell_center(self, row: int, col: int) -> QPointF:
        rect, cw, ch, _, _ = self._geometry()
        return QPointF(rect.left() + (col + 0.5) * cw, rect.top() + (row + 0.5) * ch)

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
        p.drawImage(rect, self._image)
        p.setFont(self._font)
        fm = QFontMetricsF(self._font)
        if left > 0:
            for i, tok in enumerate(self.rows[:self.matrix.shape[0]]):
                p.setPen(pal.color(QPalette.ColorRole.Highlight) if i == self.selected else pal.text().color())
                p.drawText(QRectF(2, rect.top() + i * ch, left - 4, ch),
                           Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter,
                           fm.elidedText(tok, Qt.TextElideMode.ElideRight, left - 6))
        if top > 0:
            p.setPen(pal.text().color())
            for j, tok in enumerate(self.cols[:self.matrix.shape[1]]):
                p.save()
                p.translate(rect.left() + j * cw, rect.top() - 4)
                p.rotate(-90)
                p.drawText(QRectF(0, 0, top - 6, cw), Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter,
                           fm.elidedText(tok, Qt.TextElideMode.ElideRight, top - 6))
                p.restore()
        if 0 <= self.selected < self.matrix.shape[0]:
            p.setPen(QPen(QColor(80, 200, 255), 1.5))
            p.setBrush(Qt.BrushStyle.NoBrush)
            p.drawRect(QRectF(rect.left(), rect.top() + self.selected * ch, rect.width(), ch))
        p.end()

    def hover_text_at(self, pos: QPointF) -> str:
        i, j = self.cell_at(pos)
        if i < 0:
            return ""
        a = self.rows[i] if i < len(self.rows) else "?"
        b = self.cols[j] if j < len(self.cols) else "?"
        what = f" ({self.what})" if self.what else ""
        return f"output {a!r} (token {i}) → source {b!r} (token {j}): {float(self.matrix[i, j]):.3f}{what}"

    def event(self, event) -> bool:
        if event.type() == QEvent.Type.ToolTip:
            text = self.hover_text_at(QPointF(event.pos()))
            if text:
                QToolTip.showText(event.globalPos(), text, self)
            else:
                QToolTip.hideText()
            return True
        return super().event(event)


class CrossAttentionView(QWidget):
    """A layer picker above the matrix. ``set_attention(maps, output_tokens, source_tokens)`` with
    maps (layers, N, S); the layer chosen is kept across results (``layerChanged``)."""

    layerChanged = Signal(int)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.maps: np.ndarray | None = None
        self._wanted = MEAN_OF_LAYERS
        self.layer_combo = QComboBox()
        self.layer_combo.setToolTip("One decoder layer's cross-attention (heads averaged), or the mean of the layers")
        self.note = QLabel("")
        self.note.setWordWrap(True)
        self.matrix = CrossAttentionMatrix()
        row = QHBoxLayout()
        row.setContentsMargins(0, 0, 0, 0)
        row.addWidget(QLabel("Decoder layer"))
        row.addWidget(self.layer_combo)
        row.addStretch(1)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(row)
        layout.addWidget(self.note)
        layout.addWidget(self.matrix, 1)
        self.layer_combo.activated.connect(self._on_pick)
        self.set_attention(None)

    def layer(self) -> int:
        return self._wanted

    def set_layer(self, layer: int) -> None:
        self._wanted = int(layer) if int(layer) >= 0 else MEAN_OF_LAYERS
        self._draw()

    def set_attention(self, maps: np.ndarray | None, output_tokens: Sequence[str] = (),
                      source_tokens: Sequence[str] = (), note: str = "") -> None:
        self.maps = None if maps is None else np.asarray(maps, np.float32)
        self._rows, self._cols = tuple(output_tokens), tuple(source_tokens)
        has = self.maps is not None and self.maps.ndim == 3 and self.maps.size > 0
        if not has:
            self.maps = None
        layers = self.maps.shape[0] if has else 0
        if self.layer_combo.count() != layers + 1:
            self.layer_combo.clear()
            self.layer_combo.addItem("mean of layers", MEAN_OF_LAYERS)
            for i in range(layers):
                self.layer_combo.addItem(f"layer {i + 1}", i)
        self.layer_combo.setEnabled(has)
        self.note.setText(note)
        self.note.setVisible(bool(note))
        self._draw()

    def _on_pick(self, index: int) -> None:
        self._wanted = self.layer_combo.itemData(index)
        self._draw()
        self.layerChanged.emit(self._wanted)

    def _draw(self) -> None:
        if self.maps is None:
            self.matrix.set_matrix(None)
            return
        layers = self.maps.shape[0]
        layer = self._wanted if 0 <= self._wanted < layers else MEAN_OF_LAYERS
        self.layer_combo.setCurrentIndex(0 if layer == MEAN_OF_LAYERS else layer + 1)
        if layer == MEAN_OF_LAYERS:
            m, what = self.maps.mean(axis=0), f"mean of {layers} decoder layers"
        else:
            m, what = self.maps[layer], f"decoder layer {layer + 1}"
        self.matrix.set_matrix(m, self._rows, self._cols, what)
