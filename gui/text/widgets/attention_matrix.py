"""Self-attention of one layer and head as a token × token matrix: row i is where token i looks
(its probabilities over all tokens sum to 1), brighter = more. Square cells; token labels run down
the left and along the top when the cells are large enough; hover shows the pair and the weight;
a selected token's row and column are outlined."""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from PySide6.QtCore import QRectF, QSize
from PySide6.QtWidgets import QWidget

from gui.text.widgets.token_matrix import TokenMatrix


class AttentionMatrix(TokenMatrix):
    outline_column = True  # rows and columns are the same tokens

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent, minimum=QSize(180, 180), hint=QSize(360, 360))

    @property
    def tokens(self) -> tuple[str, ...]:
        return self.rows

    def set_matrix(self, matrix: np.ndarray | None, tokens: Sequence[str] = (), what: str = "") -> None:
        super().set_matrix(matrix, tokens, tokens, what)

    def _geometry(self) -> tuple[QRectF, float, float, float, float]:
        """Square cells in the largest square that fits, one margin for both labels."""
        n = len(self.matrix) if self.matrix is not None else 1
        side = min(self.width(), self.height()) - 4
        cell = side / n
        margin = 0.0
        smallest = self._smallest_cell()
        if cell >= smallest:
            margin = self._label_room(self.rows)
            cell = (side - margin) / n
            if cell < smallest:
                margin, cell = 0.0, side / n
        return QRectF(2 + margin, 2 + margin, cell * n, cell * n), cell, cell, margin, margin
