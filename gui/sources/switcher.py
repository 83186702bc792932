"""Switching frame sources without a gap: a newly chosen source stays pending, and the current
one keeps running, until the new one delivers its first frame; a newer choice replaces a pending
one. A source that fails before its first frame therefore loses nothing already shown.

Each promotion starts a new generation (``gen``), so results for frames of a replaced source can
be recognised and dropped.
"""
from __future__ import annotations

import numpy as np
from PySide6.QtCore import QObject, Signal

from gui.sources.video import FrameSource


class SourceSwitcher(QObject):
    promoted = Signal(object)  # the pending source delivered its first frame and is now current
    frameReady = Signal(int, object, float)  # (frame_id, rgb, capture time) from the current source
    opened = Signal(object, str, float, int, int)  # (source, description, fps, w, h): pending or current
    failed = Signal(str, bool)  # (message, the current source was lost); a pending one may have failed
    ended = Signal(object)  # the current source reached its end

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.current: FrameSource | None = None
        self.pending: FrameSource | None = None
        self.gen = 0

    def start(self, source: FrameSource) -> None:
        """Start ``source`` as the pending source (stopping one still pending)."""
        if self.pending is not None:  # a newer choice replaces one that has not started yet
            self.pending.stop()
        self.pending = source
        source.frameReady.connect(lambda fid, rgb, t, s=source: self._on_frame(s, fid, rgb, t))
        source.failed.connect(lambda msg, s=source: self._on_failed(s, msg))
        source.opened.connect(lambda desc, fps, w, h, s=source: self._on_opened(s, desc, fps, w, h))
        source.ended.connect(lambda s=source: self._on_ended(s))
        source.start()

    def stop(self) -> None:
        for src in (self.pending, self.current):
            if src is not None:
                src.stop()
        self.pending = self.current = None

    def is_running(self) -> bool:
        return self.current is not None and self.current.isRunning()

    def _promote(self, source: FrameSource) -> None:
        old = self.current
        self.current, self.pending = source, None
        if old is not None:
            old.stop()
        self.gen += 1
        self.promoted.emit(source)

    def _on_opened(self, source: FrameSource, desc: str, fps: float, w: int, h: int) -> None:
        if source is self.pending or source is self.current:
            self.opened.emit(source, desc, fps, w, h)

    def _on_failed(self, source: FrameSource, message: str) -> None:
        if source is self.pending:
            self.pending = None
            self.failed.emit(message, False)
        elif source is self.current:
            self.current = None
            self.failed.emit(message, True)

    def _on_ended(self, source: FrameSource) -> None:
        if source is self.current:
            self.ended.emit(source)

    def _on_frame(self, source: FrameSource, frame_id: int, rgb: np.ndarray, captured: float) -> None:
        if source is self.pending:
            self._promote(source)
        elif source is not self.current:
            return  # a frame from a source already replaced
        self.frameReady.emit(frame_id, rgb, captured)
