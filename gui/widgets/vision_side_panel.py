"""The column beside the Vision tab's view: Detections, Classes, Inside the model, Performance.

It only builds and stacks the groups; the tab connects them.
"""
from __future__ import annotations

from PySide6.QtWidgets import QSizePolicy, QVBoxLayout, QWidget

from gui.widgets.attention_panel import AttentionPanel
from gui.widgets.class_filter import ClassFilter
from gui.widgets.detection_panel import DetectionPanel
from gui.widgets.perf_panel import PerfPanel


class VisionSidePanel(QWidget):
    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.detections = DetectionPanel()
        self.classes = ClassFilter()
        self.attention = AttentionPanel()
        self.perf = PerfPanel()
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.detections)
        layout.addWidget(self.classes, 1)
        layout.addWidget(self.attention)
        layout.addWidget(self.perf)
        self.setMinimumWidth(240)
        self.setMaximumWidth(380)
        self.setSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Expanding)
