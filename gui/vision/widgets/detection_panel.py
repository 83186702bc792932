"""The "Detections" group: the confidence-threshold slider and a count of what is drawn."""
from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QGroupBox, QHBoxLayout, QLabel, QSlider, QVBoxLayout, QWidget

from engine.types.vision import DetectionResult


class DetectionPanel(QGroupBox):
    """The slider runs 0..1000 (thousandths of a score); the owner reacts to its ``valueChanged``."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__("Detections", parent)
        self.threshold_slider = QSlider(Qt.Orientation.Horizontal)
        self.threshold_slider.setRange(0, 1000)
        self.threshold_slider.setSingleStep(5)
        self.threshold_slider.setPageStep(50)
        self.threshold_slider.setToolTip("Draw detections whose score is above this")
        self.threshold_value = QLabel()
        self.threshold_value.setMinimumWidth(40)
        self.threshold_value.setAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        row = QHBoxLayout()
        row.addWidget(self.threshold_slider, 1)
        row.addWidget(self.threshold_value)
        self.count_label = QLabel("No detections yet")
        self.count_label.setWordWrap(True)
        layout = QVBoxLayout(self)
        layout.addWidget(QLabel("Confidence threshold"))
        layout.addLayout(row)
        layout.addWidget(self.count_label)

    def show_threshold(self, value: int) -> None:
        t = value / 1000.0
        self.threshold_value.setText(f"{t:.2f}" if value % 10 == 0 else f"{t:.3f}")

    def show_counts(self, drawn: DetectionResult | None) -> None:
        """"3 drawn: person ×2, car" for the detections drawn (the four commonest classes)."""
        if drawn is None:
            self.count_label.setText("No detections yet")
            return
        kinds: dict[str, int] = {}
        for lab in drawn.labels:
            kinds[lab] = kinds.get(lab, 0) + 1
        top = ", ".join(f"{k} ×{v}" if v > 1 else k for k, v in sorted(kinds.items(), key=lambda kv: -kv[1])[:4])
        self.count_label.setText(f"{len(drawn)} drawn" + (f": {top}" if top else ""))
