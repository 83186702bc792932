"""The live signal of the Speech tab: a level meter beside the waveform and the spectrogram."""
from __future__ import annotations

import numpy as np
from PySide6.QtWidgets import QFrame, QHBoxLayout, QVBoxLayout, QWidget

from gui.speech.widgets.level_meter import LevelMeter
from gui.speech.widgets.spectrogram import SpectrogramView
from gui.speech.widgets.waveform import WaveformView


class LiveSignalView(QFrame):
    """``level`` (fed by a source's levelChanged), ``waveform`` and ``spectrogram`` (the last ``seconds``)."""

    def __init__(self, seconds: float = 5.0, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        row = QHBoxLayout()
        self.level = LevelMeter()
        row.addWidget(self.level)
        views = QVBoxLayout()
        self.waveform = WaveformView(seconds=seconds)
        self.spectrogram = SpectrogramView(seconds=seconds)
        views.addWidget(self.waveform, 2)
        views.addWidget(self.spectrogram, 3)
        row.addLayout(views, 1)
        self.setLayout(row)

    def push(self, block: np.ndarray) -> None:
        """A block of 16 kHz mono float32 samples."""
        self.waveform.push(block)
        self.spectrogram.push(block)

    def reset(self) -> None:
        """A new recording: the spectrogram's running mel state starts afresh."""
        self.spectrogram.mel.reset()
