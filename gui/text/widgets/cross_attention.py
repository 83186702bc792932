"""The decoder's cross-attention of an encoder-decoder (BART, T5): row i is where output token i
looked in the source while it was written (its weights over the source tokens sum to 1; the
heads averaged), brighter = more. One layer at a time, or the mean of the layers. Output tokens
label the rows, source tokens the columns (when the cells are large enough); hover shows the pair
and the weight; a selected output token's row is outlined."""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from PySide6.QtCore import Signal
from PySide6.QtWidgets import QComboBox, QHBoxLayout, QLabel, QVBoxLayout, QWidget

from gui.text.widgets.token_matrix import TokenMatrix

MEAN_OF_LAYERS = -1


class CrossAttentionMatrix(TokenMatrix):
    """(N output tokens, S source tokens): output tokens label the rows, source tokens the columns."""

    def pair_text(self, a: str, i: int, b: str, j: int, weight: float) -> str:
        what = f" ({self.what})" if self.what else ""
        return f"output {a!r} (token {i}) → source {b!r} (token {j}): {weight:.3f}{what}"


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
