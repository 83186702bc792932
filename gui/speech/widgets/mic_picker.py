"""The microphone picker: the input devices in a combo box, a ⟳ button, and the picked source.

With $TASKSCOPE_FAKE_MIC set to a WAV path, that file is offered as one more "microphone"
(demos; it plays in real time).
"""
from __future__ import annotations

import os
from pathlib import Path

from PySide6.QtCore import QObject, Qt
from PySide6.QtWidgets import QComboBox, QHBoxLayout, QToolButton, QWidget

from gui.sources.audio_file import AudioFileSource
from gui.sources.microphone import AudioSource, MicrophoneSource, list_input_devices, rescan_devices

FAKE_MIC_ENV = "TASKSCOPE_FAKE_MIC"  # a WAV path offered as an extra "microphone" (demos)
_FILE_PREFIX = "file:"


class MicPicker(QWidget):
    """``combo`` holds device names as item data (None: no microphone); ``refresh_btn`` is ⟳."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.combo = QComboBox()
        self.combo.setMinimumContentsLength(24)
        self.combo.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        self.refresh_btn = QToolButton()
        self.refresh_btn.setText("⟳")
        self.refresh_btn.setToolTip("Look for microphones again")
        row = QHBoxLayout(self)
        row.setContentsMargins(0, 0, 0, 0)
        row.addWidget(self.combo, 1)
        row.addWidget(self.refresh_btn)

    def refresh(self, remembered: str | None = None, rescan: bool = True) -> bool:
        """List the microphones again (PortAudio re-scans only when ``rescan``), keeping the
        current pick, else ``remembered``, else the default device. False if there is none."""
        if rescan:
            rescan_devices()
        mic = self.combo
        wanted = mic.currentData() or remembered
        mic.blockSignals(True)
        mic.clear()
        devices = list_input_devices()
        for d in devices:
            mic.addItem(d.label, d.name)
            mic.setItemData(mic.count() - 1, f"{d.name} · {d.hostapi} · device {d.index}",
                            Qt.ItemDataRole.ToolTipRole)
        fake = os.environ.get(FAKE_MIC_ENV)
        if fake:
            mic.addItem(f"WAV as microphone: {Path(fake).name}", _FILE_PREFIX + fake)
        if mic.count() == 0:
            mic.addItem("No microphone found", None)
        index = mic.findData(wanted) if wanted else -1
        if index < 0:
            index = next((i for i, d in enumerate(devices) if d.is_default), 0)
        mic.setCurrentIndex(index)
        mic.blockSignals(False)
        return bool(devices or fake)

    def make_source(self, parent: QObject | None = None) -> AudioSource | None:
        """A source for the picked device (not started); None if there is no microphone."""
        data = self.combo.currentData()
        if isinstance(data, str) and data.startswith(_FILE_PREFIX):
            return AudioFileSource(data[len(_FILE_PREFIX):], tail_s=1.0, parent=parent)
        if data is None:
            return None
        return MicrophoneSource(device=data, parent=parent)
