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

Device loss: a source started with ``reconnect`` (a camera: how to open it again) that fails or
ends while current is *lost*, not finished: ``failed(message, True)`` says so once, what was shown
stays, and every ``reconnect_interval_ms`` (a single-shot QTimer, restarted after each failed
try) a new source from ``reconnect()`` is started as pending. Its failures are quiet; its first
frame promotes it as usual, then ``reconnected`` is emitted. A new choice (``start``) or ``stop``
ends the attempts. Nothing waits or sleeps on the UI thread.
"""
from __future__ import annotations

import logging
import time
from collections.abc import Callable

import numpy as np
from PySide6.QtCore import QObject, QTimer, Signal

log = logging.getLogger(__name__)

from gui.sources.video import FrameSource

#: how often a lost source (a camera that stopped delivering) is opened again
RECONNECT_INTERVAL_MS = 2000

Reconnect = Callable[[], FrameSource]


class SourceSwitcher(QObject):
    promoted = Signal(object)  # the pending source delivered its first frame and is now current
    frameReady = Signal(int, object, float)  # (frame_id, rgb, capture time) from the current source
    opened = Signal(object, str, float, int, int)  # (source, description, fps, w, h): pending or current
    failed = Signal(str, bool)  # (message, the current source was lost); a pending one may have failed
    ended = Signal(object)  # the current source reached its end
    reconnected = Signal(object)  # a lost source is back: this new one delivered its first frame (promoted)

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.current: FrameSource | None = None
        self.pending: FrameSource | None = None
        self.retired: set[FrameSource] = set()  # asked to stop, their threads not finished yet
        self.gen = 0
        self.reconnect_interval_ms = RECONNECT_INTERVAL_MS
        self.reconnect_attempts = 0  # sources started to replace a lost one (for tests and diagnostics)
        self._current_reconnect: Reconnect | None = None  # how to open the current source again
        self._pending_reconnect: Reconnect | None = None
        self._lost: Reconnect | None = None  # set while a lost source is being opened again
        self._retry: FrameSource | None = None  # the pending source of the attempt under way
        self._retry_timer = QTimer(self)
        self._retry_timer.setSingleShot(True)
        self._retry_timer.timeout.connect(self._try_reconnect)

    @property
    def reconnecting(self) -> bool:
        """The current source was lost and is being opened again every ``reconnect_interval_ms``."""
        return self._lost is not None

    def start(self, source: FrameSource, reconnect: Reconnect | None = None) -> None:
        """Start ``source`` as the pending source (stopping one still pending). ``reconnect``: how to
        open it again if it is lost later (a camera); None: a failure or end is final (files)."""
        self._stop_reconnecting()
        self._start(source, reconnect)

    def _start(self, source: FrameSource, reconnect: Reconnect | None) -> None:
        if self.pending is not None:  # a newer choice replaces one that has not started yet
            self._retire(self.pending)
        self.pending = source
        self._pending_reconnect = reconnect
        source.require_ack()
        source.finished.connect(lambda s=source: self._on_finished(s))
        source.frameReady.connect(lambda fid, rgb, t, s=source: self._on_frame(s, fid, rgb, t))
        source.failed.connect(lambda msg, s=source: self._on_failed(s, msg))
        source.opened.connect(lambda desc, fps, w, h, s=source: self._on_opened(s, desc, fps, w, h))
        source.ended.connect(lambda s=source: self._on_ended(s))
        source.start()

    def stop(self) -> None:
        """Ask the pending and current sources to stop (and end reconnecting); never waits."""
        self._stop_reconnecting()
        for src in (self.pending, self.current):
            if src is not None:
                self._retire(src)
        self.pending = self.current = None
        self._pending_reconnect = self._current_reconnect = None

    # ------------------------------------------------------------------ device loss

    def _lose(self, source: FrameSource, message: str) -> None:
        """The current source failed or ended: retire it; reconnect if it can be opened again
        (and nothing newer is on its way), then say so with ``failed(message, True)``."""
        reconnect = self._current_reconnect
        self.current, self._current_reconnect = None, None
        self._retire(source)
        if reconnect is not None and self.pending is None:
            self._lost = reconnect
            self._retry_timer.start(max(0, int(self.reconnect_interval_ms)))
            log.info("%s lost (%s): opening it again every %d ms", source.description, message,
                     self.reconnect_interval_ms)
        self.failed.emit(message, True)

    def _try_reconnect(self) -> None:
        if self._lost is None or self.pending is not None:
            return
        try:
            source = self._lost()
        except Exception:  # noqa: BLE001 - a factory that fails is one more failed try
            log.exception("opening the lost source again")
            self._retry_timer.start(max(0, int(self.reconnect_interval_ms)))
            return
        self.reconnect_attempts += 1
        self._retry = source
        self._start(source, self._lost)

    def _stop_reconnecting(self) -> None:
        self._retry_timer.stop()
        self._lost = None
        self._retry = None  # a try still pending is replaced (start) or retired (stop) by the caller

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
        self._current_reconnect, self._pending_reconnect = self._pending_reconnect, None
        back = source is self._retry
        if back:
            self._stop_reconnecting()
        if old is not None:
            self._retire(old)
        self.gen += 1
        self.promoted.emit(source)
        if back:
            self.reconnected.emit(source)

    def _on_opened(self, source: FrameSource, desc: str, fps: float, w: int, h: int) -> None:
        if source is self.pending or source is self.current:
            self.opened.emit(source, desc, fps, w, h)

    def _on_failed(self, source: FrameSource, message: str) -> None:
        if source is self.pending:
            self.pending, self._pending_reconnect = None, None
            self._retire(source)
            if source is self._retry:  # the lost source is not back yet: try again later, quietly
                self._retry = None
                log.debug("reconnect attempt failed: %s", message)
                if self._lost is not None:
                    self._retry_timer.start(max(0, int(self.reconnect_interval_ms)))
                return
            self.failed.emit(message, False)
        elif source is self.current:
            self._lose(source, message)

    def _on_ended(self, source: FrameSource) -> None:
        if source is self.pending and source is self._retry:  # opened, ended before a frame: not back
            self._on_failed(source, f"{source.description} delivered no frame.")
        elif source is self.current:
            if self._current_reconnect is not None:  # a live source does not end: it was lost
                self._lose(source, f"{source.description} stopped delivering frames.")
            else:
                self.ended.emit(source)

    def _on_frame(self, source: FrameSource, frame_id: int, rgb: np.ndarray, captured: float) -> None:
        if source is self.pending:
            self._promote(source)
        elif source is not self.current:
            return  # a frame from a source already replaced
        self.frameReady.emit(frame_id, rgb, captured)  # handled (drawn, submitted) before returning
        source.frame_taken()
