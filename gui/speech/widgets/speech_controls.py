"""The Speech tab's control rows: mode, microphone, Start/Stop, Open file, the two models and
the model status line. The widgets only; the tab connects them and decides what they do.
"""
from __future__ import annotations

from pathlib import Path

from PySide6.QtWidgets import QComboBox, QGridLayout, QLabel, QPushButton, QWidget

from gui.speech.widgets.mic_picker import MicPicker
from gui.common.pickers import ModelPicker


class SpeechControls(QWidget):
    """``mode``, ``mic_picker`` (``mic``, ``refresh_btn``), ``record_btn``, ``open_btn``,
    ``asr_picker`` / ``cls_picker`` (for the tasks ``asr_task`` / ``cls_task``), ``model_status``."""

    def __init__(self, asr_task: str, cls_task: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.mode = QComboBox()
        self.mode.addItem("Transcribe", "transcribe")
        self.mode.addItem("Classify", "classify")
        self.mode.setToolTip("Live: speech recognition (wav2vec2 + CTC) or audio classification (1 s windows)")
        self.mic_picker = MicPicker()
        self.mic, self.refresh_btn = self.mic_picker.combo, self.mic_picker.refresh_btn
        self.record_btn = QPushButton("● Start")
        self.record_btn.setCheckable(True)
        self.record_btn.setToolTip("Start / stop listening (Space)")
        self.open_btn = QPushButton("Open audio file…")
        self.asr_picker = ModelPicker(asr_task)
        self.cls_picker = ModelPicker(cls_task)
        self.model_status = QLabel("")
        self.model_status.setStyleSheet("color: gray")
        grid = QGridLayout(self)
        grid.setContentsMargins(0, 0, 0, 0)
        grid.addWidget(QLabel("Mode"), 0, 0)
        grid.addWidget(self.mode, 0, 1)
        grid.addWidget(QLabel("Microphone"), 0, 2)
        grid.addWidget(self.mic_picker, 0, 3)
        grid.addWidget(self.record_btn, 0, 4)
        grid.addWidget(self.open_btn, 0, 5)
        grid.addWidget(QLabel("Speech model"), 1, 0)
        grid.addWidget(self.asr_picker, 1, 1)
        grid.addWidget(QLabel("Classifier"), 1, 2)
        grid.addWidget(self.cls_picker, 1, 3)
        grid.addWidget(self.model_status, 1, 4, 1, 2)
        grid.setColumnStretch(3, 1)

    def set_mode(self, mode: str) -> None:
        """"transcribe" or "classify" (the first one if unknown)."""
        self.mode.setCurrentIndex(max(0, self.mode.findData(mode)))

    def set_recording(self, on: bool) -> None:
        """Show Start or Stop (without emitting ``toggled``); no device or mode change while on."""
        self.record_btn.blockSignals(True)
        self.record_btn.setChecked(on)
        self.record_btn.blockSignals(False)
        self.record_btn.setText("■ Stop" if on else "● Start")
        self.mic.setEnabled(not on)
        self.mode.setEnabled(not on)
        self.refresh_btn.setEnabled(not on)

    def show_model_loading(self, ref: str, done, total) -> None:
        name = Path(ref).name or ref
        if done is not None and total:
            self.model_status.setText(f"Downloading {name}: {100 * done / total:.0f}%")
        else:
            self.model_status.setText(f"Loading {name}…")

    def show_model_loaded(self, description: str) -> None:
        self.model_status.setText(description)
        self.model_status.setToolTip(description)

    def show_model_failed(self) -> None:
        self.model_status.setText("Model not loaded")
