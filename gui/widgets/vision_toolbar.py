"""The row above the Vision tab's view: source, Start/Stop, model, input size and Snapshot.

It only builds and lays out the controls; the tab connects them.
"""
from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QComboBox, QFrame, QHBoxLayout, QLabel, QPushButton

from gui.widgets.pickers import ModelPicker
from gui.widgets.source_combo import SourceCombo

INPUT_SIZES = ((800, "800 px", "The checkpoints' own size: most accurate, slowest"),
               (512, "512 px", "About 2.4× fewer pixels than 800: faster, a little less accurate"),
               (384, "384 px", "About 4× fewer pixels than 800: fastest, misses small objects"))


class VisionToolbar(QHBoxLayout):
    def __init__(self, task: str) -> None:
        super().__init__()
        self.source_combo = SourceCombo()
        self.start_button = QPushButton("Start")
        self.start_button.setCheckable(True)
        self.start_button.setMinimumWidth(72)
        self.start_button.setToolTip("Start or stop the selected source")
        self.model_picker = ModelPicker(task)
        self.model_picker.setToolTip("DETR checkpoint (downloaded on first use) or a local folder")
        self.size_combo = QComboBox()
        for size, label, tip in INPUT_SIZES:
            self.size_combo.addItem(label, size)
            self.size_combo.setItemData(self.size_combo.count() - 1, tip, Qt.ItemDataRole.ToolTipRole)
        self.size_combo.setToolTip("Shortest image edge fed to the model: smaller is faster, less accurate")
        self.snapshot_button = QPushButton("Snapshot")
        self.snapshot_button.setToolTip("Save the annotated frame as PNG and the detections as JSON (Ctrl+S)")

        self.setSpacing(8)
        self.addWidget(_caption("Source"))
        self.addWidget(self.source_combo)
        self.addWidget(self.start_button)
        self.addWidget(_vline())
        self.addWidget(_caption("Model"))
        self.addWidget(self.model_picker)
        self.addWidget(_caption("Input size"))
        self.addWidget(self.size_combo)
        self.addStretch(1)
        self.addWidget(self.snapshot_button)

    def set_running(self, running: bool) -> None:
        """Show the Start button as Stop while a source runs."""
        self.start_button.setChecked(running)
        self.start_button.setText("Stop" if running else "Start")


def _caption(text: str) -> QLabel:
    label = QLabel(text)
    label.setAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
    return label


def _vline() -> QFrame:
    line = QFrame()
    line.setFrameShape(QFrame.Shape.VLine)
    line.setFrameShadow(QFrame.Shadow.Sunken)
    return line
