"""Scrolling log-mel spectrogram (pyqtgraph ImageItem), computed with numpy block by block.

25 ms Hann windows every 10 ms, 64 mel bands up to 8 kHz, dB. Columns go into a ring image;
the display is refreshed at ~30 fps into a preallocated array (no per-block big allocations).
"""
from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QWidget


def mel_filterbank(n_mels: int, n_fft: int, sample_rate: int, fmin: float = 20.0, fmax: float | None = None) -> np.ndarray:
    """(n_mels, n_fft // 2 + 1) triangular filters on the HTK mel scale."""
    fmax = fmax or sample_rate / 2

    def hz_to_mel(f):
        return 2595.0 * np.log10(1.0 + np.asarray(f) / 700.0)

    def mel_to_hz(m):
        return 700.0 * (10.0 ** (np.asarray(m) / 2595.0) - 1.0)

    edges = mel_to_hz(np.linspace(hz_to_mel(fmin), hz_to_mel(fmax), n_mels + 2))
    freqs = np.linspace(0, sample_rate / 2, n_fft // 2 + 1)
    lo, mid, hi = edges[:-2, None], edges[1:-1, None], edges[2:, None]
    up = (freqs[None] - lo) / np.maximum(mid - lo, 1e-9)
    down = (hi - freqs[None]) / np.maximum(hi - mid, 1e-9)
    return np.maximum(0.0, np.minimum(up, down)).astype(np.float32)


class LogMel:
    """Streaming log-mel frames: feed blocks, get (frames, n_mels) dB columns."""

    def __init__(self, sample_rate: int = 16_000, n_fft: int = 400, hop: int = 160, n_mels: int = 64) -> None:
        self.n_fft, self.hop, self.n_mels = n_fft, hop, n_mels
        self.window = np.hanning(n_fft).astype(np.float32)
        self.fb = mel_filterbank(n_mels, n_fft, sample_rate)
        self._buf = np.zeros(n_fft + 16_000, np.float32)  # carry (< n_fft) + one block up to 1 s
        self._n = 0

    def reset(self) -> None:
        self._n = 0

    def process(self, block: np.ndarray) -> np.ndarray:
        x = np.asarray(block, np.float32).reshape(-1)
        out = []
        while len(x):
            k = min(len(x), len(self._buf) - self._n)
            self._buf[self._n:self._n + k] = x[:k]
            self._n += k
            x = x[k:]
            if self._n < self.n_fft:
                continue
            n_frames = 1 + (self._n - self.n_fft) // self.hop
            frames = np.lib.stride_tricks.sliding_window_view(self._buf[:self._n], self.n_fft)[::self.hop][:n_frames]
            spec = np.fft.rfft(frames * self.window, axis=1)  # (frames, n_fft/2+1)
            power = spec.real ** 2 + spec.imag ** 2
            out.append(10.0 * np.log10(power @ self.fb.T + 1e-10))  # (frames, n_mels)
            used = n_frames * self.hop
            rest = self._n - used
            self._buf[:rest] = self._buf[used:self._n]
            self._n = rest
        return np.concatenate(out) if out else np.zeros((0, self.n_mels), np.float32)


class SpectrogramView(pg.PlotWidget):
    def __init__(self, parent: QWidget | None = None, seconds: float = 5.0, sample_rate: int = 16_000,
                 n_mels: int = 64, levels: tuple[float, float] = (-60.0, 25.0)) -> None:
        super().__init__(parent)
        self.mel = LogMel(sample_rate, n_mels=n_mels)
        self.columns = int(seconds * sample_rate / self.mel.hop)
        self.levels = levels
        self._ring = np.full((self.columns, n_mels), levels[0], np.float32)  # (time, mel) column-major image
        self._display = np.empty_like(self._ring)
        self._pos = 0
        self._dirty = False
        self.columns_pushed = 0
        self.setBackground((24, 24, 28))
        self.setMouseEnabled(False, False)
        self.hideButtons()
        self.setMenuEnabled(False)
        self.image = pg.ImageItem(axisOrder="col-major")
        try:
            self.image.setColorMap(pg.colormap.get("inferno"))
        except Exception:  # noqa: BLE001 - colour map data missing in a frozen build: stay grey
            pass
        self.image.setImage(self._ring, levels=levels)
        self.addItem(self.image)
        self.image.setRect(-seconds, 0, seconds, n_mels)
        self.setXRange(-seconds, 0, padding=0)
        self.setYRange(0, n_mels, padding=0)
        self.getPlotItem().setLabel("left", "mel band")
        self.getPlotItem().hideAxis("bottom")
        self._timer = QTimer(self)
        self._timer.setInterval(33)
        self._timer.timeout.connect(self._redraw)
        self._timer.start()
        self.setMinimumHeight(90)

    def push(self, block: np.ndarray) -> None:
        cols = self.mel.process(block)
        for c in cols[-self.columns:]:
            self._ring[self._pos] = c
            self._pos = (self._pos + 1) % self.columns
        self.columns_pushed += len(cols)
        self._dirty = self._dirty or len(cols) > 0

    def clear_audio(self) -> None:
        self._ring[:] = self.levels[0]
        self.mel.reset()
        self._dirty = True

    def _redraw(self) -> None:
        if not self._dirty or not self.isVisible():
            return
        self._dirty = False
        np.concatenate((self._ring[self._pos:], self._ring[:self._pos]), out=self._display)
        self.image.setImage(self._display, autoLevels=False, levels=self.levels)
