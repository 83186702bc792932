"""A file-backed microphone: plays an audio file in real time through the same signal interface
as :class:`gui.sources.microphone.MicrophoneSource` (demos, screenshots, tests).

Pacing: a QTimer in the owner's thread wakes every block and emits as many whole blocks as the
wall clock says are due, so the stream keeps real time even when the event loop is late.
``speed`` > 1 plays faster than real time; ``tail_s`` of silence is appended (a real
microphone keeps hearing the room after the last word); ``loop`` starts over at the end.
"""
from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
from PySide6.QtCore import QElapsedTimer, QObject, QTimer, Signal

from engine.processors.audio import Resampler as StreamResampler
from gui.sources.microphone import BLOCK_S, SAMPLE_RATE, AudioSource

log = logging.getLogger(__name__)


def read_audio_16k(path: str | Path) -> np.ndarray:
    """Mono float32 at 16 kHz. Raises ValueError with a readable message for bad files."""
    import soundfile as sf
    try:
        data, rate = sf.read(str(path), dtype="float32", always_2d=True)
    except Exception as e:  # noqa: BLE001 - soundfile raises LibsndfileError / RuntimeError
        raise ValueError(f"Cannot read audio file {Path(path).name}: {e}") from e
    mono = data.mean(axis=1)
    if rate != SAMPLE_RATE:
        mono = StreamResampler(rate, SAMPLE_RATE).process(mono)
    return mono.astype(np.float32)


class AudioFileSource(AudioSource):
    finished = Signal()  # the file (and tail) played to the end (not looping)

    def __init__(self, path: str | Path | None = None, *, audio: np.ndarray | None = None,
                 block_s: float = BLOCK_S, speed: float = 1.0, tail_s: float = 1.0, loop: bool = False,
                 parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.path = Path(path) if path is not None else None
        self._audio = None if audio is None else np.asarray(audio, np.float32).reshape(-1)
        self.block = max(1, int(round(block_s * SAMPLE_RATE)))
        self.speed = float(speed)
        self.tail_s = float(tail_s)
        self.loop = loop
        self._pos = 0
        self._clock = QElapsedTimer()
        self._timer = QTimer(self)
        self._timer.setInterval(max(5, int(block_s * 1000 / max(self.speed, 1e-3) / 2)))
        self._timer.timeout.connect(self._tick)

    @property
    def description(self) -> str:
        return f"file {self.path.name if self.path else '(array)'}"

    def is_running(self) -> bool:
        return self._timer.isActive()

    def start(self) -> bool:
        if self.is_running():
            return True
        if self._audio is None:
            try:
                self._audio = read_audio_16k(self.path)
            except ValueError as e:
                self.errorOccurred.emit(str(e))
                return False
            if self.tail_s > 0:
                self._audio = np.concatenate((self._audio, np.zeros(int(self.tail_s * SAMPLE_RATE), np.float32)))
        self._pos = 0
        self._emitted = 0
        self._clock.start()
        self._timer.start()
        self.started.emit()
        return True

    def stop(self) -> None:
        if not self._timer.isActive():
            return
        self._timer.stop()
        self.stopped.emit()

    def _tick(self) -> None:
        due = int(self._clock.elapsed() / 1000.0 * self.speed * SAMPLE_RATE)
        audio = self._audio
        while self._emitted + self.block <= due:
            if self._pos >= len(audio):
                if not self.loop:
                    self.stop()
                    self.finished.emit()
                    return
                self._pos = 0
            block = audio[self._pos:self._pos + self.block]
            self._pos += len(block)
            self._emit_block(block.copy())
