"""Switching frame sources without a gap: a newly chosen source stays pending, and the current
one keeps running, until the new one delivers its first frame; a newer choice replaces a pending
one. A source that fails before its first frame therefore loses nothing already shown.

Each promotion starts a new generation (``gen``), so results for frames of a replaced source can
be recognised and dropped.

Sources are never waited for on the UI thread: a replaced or stopped source is asked to stop and
kept in ``retired`` until its thread has finished, then deleted (``deleteLater``); a source that
is stuck (a camera blocked in read) therefore never blocks the UI nor is destroyed while running.
``wait_retired`` (application shutdown) waits for them, bounded. The switcher acknowledges each
frame after handing it on, so a source emits no faster than the UI takes frames (back-pressure).
"""
from __future__ import annotations

import logging
import time

import numpy as np
from PySide6.QtCore import QObject, Signal

log = logging.getLogger(__name__)

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
        self.retired: set[FrameSource] = set()  # asked to stop, their threads not finished yet
        self.gen = 0

    def start(self, source: FrameSource) -> None:
        """Start ``source`` as the pending source (stopping one still pending)."""
        if self.pending is not None:  # a newer choice replaces one that has not started yet
            self._retire(self.pending)
        self.pending = source
        source.require_ack()
        source.finished.connect(lambda s=source: self._on_finished(s))
        source.frameReady.connect(lambda fid, rgb, t, s=source: self._on_frame(s, fid, rgb, t))
        source.failed.connect(lambda msg, s=source: self._on_failed(s, msg))
        source.opened.connect(lambda desc, fps, w, h, s=source: self._on_opened(s, desc, fps, w, h))
        source.ended.connect(lambda s=source: self._on_ended(s))
        source.start()

    def stop(self) -> None:
        """Ask the pending and current sources to stop; never waits."""
        for src in (self.pending, self.current):
            if src is not None:
                self._retire(src)
        self.pending = self.current = None

    def wait_retired(self, timeout_ms: int = 3000) -> bool:
        """Wait (at most ``timeout_ms`` in all) for retired sources to finish; True when all have."""
        deadline = time.monotonic() + max(0, timeout_ms) / 1000.0
        for src in list(self.retired):
            left_ms = max(0, int((deadline - time.monotonic()) * 1000))
            if src.wait(left_ms):
                self._on_finished(src)
        if self.retired:
            log.warning("%d video source(s) still running after %d ms", len(self.retired), timeout_ms)
        return not self.retired

    def _retire(self, source: FrameSource) -> None:
        source.request_stop()
        if source.isRunning():
            self.retired.add(source)  # deleted once its thread has finished
        else:
            self.retired.discard(source)
            source.deleteLater()

    def _on_finished(self, source: FrameSource) -> None:
        if source in self.retired:
            self.retired.discard(source)
            source.deleteLater()

    def is_running(self) -> bool:
        return self.current is not None and self.current.isRunning()

    def _promote(self, source: FrameSource) -> None:
        old = self.current
        self.current, self.pending = source, None
        if old is not None:
            self._retire(old)
        self.gen += 1
        self.promoted.emit(source)

    def _on_opened(self, source: FrameSource, desc: str, fps: float, w: int, h: int) -> None:
        if source is self.pending or source is self.current:
            self.opened.emit(source, desc, fps, w, h)

    def _on_failed(self, source: FrameSource, message: str) -> None:
        if source is self.pending:
            self.pending = None
            self._retire(source)
            self.failed.emit(message, False)
        elif source is self.current:
            self.current = None
            self._retire(source)
            self.failed.emit(message, True)

    def _on_ended(self, source: FrameSource) -> None:
        if source is self.current:
            self.ended.emit(source)

    def _on_frame(self, source: FrameSource, frame_id: int, rgb: np.ndarray, captured: float) -> None:
        if source is self.pending:
            self._promote(source)
        elif source is not self.current:
            return  # a frame from a source already replaced
        self.frameReady.emit(frame_id, rgb, captured)  # handled (drawn, submitted) before returning
        source.frame_taken()
