"""Scrolling waveform (pyqtgraph): the last ``seconds`` of audio in a ring buffer, drawn as a
min/max envelope at ~30 fps. ``push`` is cheap (a copy into the ring); no big allocations."""
from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QWidget


class WaveformView(pg.PlotWidget):
    def __init__(self, parent: QWidget | None = None, seconds: float = 5.0, sample_rate: int = 16_000,
                 columns: int = 800) -> None:
        super().__init__(parent)
        self.sample_rate = sample_rate
        self.capacity = int(seconds * sample_rate)
        self.columns = columns
        self.bucket = max(1, self.capacity // columns)
        self.capacity = self.bucket * columns
        self._ring = np.zeros(self.capacity, np.float32)
        self._ordered = np.zeros(self.capacity, np.float32)
        self._env = np.zeros(2 * columns, np.float32)  # interleaved max/min per column
        self._x = np.repeat(np.linspace(-seconds, 0.0, columns, dtype=np.float32), 2)
        self._pos = 0
        self._dirty = False
        self.pushed = 0  # samples pushed (tests read it)
        self.setBackground((24, 24, 28))
        self.setMouseEnabled(False, False)
        self.hideButtons()
        self.setMenuEnabled(False)
        self.setYRange(-1.0, 1.0, padding=0)
        self.setXRange(-seconds, 0, padding=0)
        self.getPlotItem().hideAxis("left")
        self.getPlotItem().setLabel("bottom", "seconds")
        self._curve = self.plot(self._x, self._env, pen=pg.mkPen((90, 180, 255), width=1))
        self._timer = QTimer(self)
        self._timer.setInterval(33)
        self._timer.timeout.connect(self._redraw)
        self._timer.start()
        self.setMinimumHeight(70)

    def push(self, block: np.ndarray) -> None:
        x = np.asarray(block, np.float32).reshape(-1)
        n = len(x)
        self.pushed += n
        if n >= self.capacity:
            self._ring[:] = x[-self.capacity:]
            self._pos = 0
        else:
            k = min(n, self.capacity - self._pos)
            self._ring[self._pos:self._pos + k] = x[:k]
            self._ring[:n - k] = x[k:]
            self._pos = (self._pos + n) % self.capacity
        self._dirty = True

    def clear_audio(self) -> None:
        self._ring[:] = 0
        self._dirty = True

    def _redraw(self) -> None:
        if not self._dirty or not self.isVisible():
            return
        self._dirty = False
        np.concatenate((self._ring[self._pos:], self._ring[:self._pos]), out=self._ordered)
        cols = self._ordered.reshape(self.columns, self.bucket)
        np.max(cols, axis=1, out=self._env[0::2])
        np.min(cols, axis=1, out=self._env[1::2])
        self._curve.setData(self._x, self._env)
