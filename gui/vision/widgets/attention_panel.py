"""The "Inside the model" group: the Show attention switch and what the selected object query is."""
from __future__ import annotations

import numpy as np
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QCheckBox, QGroupBox, QLabel, QVBoxLayout, QWidget

from engine.types.vision import DetectionResult


class AttentionPanel(QGroupBox):
    """The owner reacts to ``attention_check.toggled`` and calls ``describe`` when the selection changes."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__("Inside the model", parent)
        self.attention_check = QCheckBox("Show attention")
        self.attention_check.setToolTip("Also compute DETR's decoder cross-attention; click a box to see where "
                                        "its object query looked")
        self.inside_label = QLabel()
        self.inside_label.setWordWrap(True)
        self.inside_label.setTextFormat(Qt.TextFormat.RichText)
        layout = QVBoxLayout(self)
        layout.addWidget(self.attention_check)
        layout.addWidget(self.inside_label)

    def describe(self, query: int, drawn: DetectionResult | None) -> None:
        """Explain the heat map for object query ``query`` (-1: none selected) among the detections drawn."""
        if not self.attention_check.isChecked():
            text = ("Turn on <b>Show attention</b>, then click a box to see where DETR's object query "
                    "looked to find it.")
        elif query < 0:
            text = ("Click a box: the heat map shows where its <b>object query</b> looked in the image "
                    "(decoder cross-attention, last layer, mean over heads).")
        else:
            what = ""
            if drawn is not None and len(drawn.query_ids):
                hits = np.nonzero(drawn.query_ids == query)[0]
                if len(hits):
                    i = int(hits[0])
                    what = f": {drawn.labels[i]} {float(drawn.scores[i]):.2f}"
            text = (f"<b>Object query #{query}</b>{what}. Bright areas are where this query attended over the "
                    "encoder's feature map. Click elsewhere to clear.")
        self.inside_label.setText(text)
