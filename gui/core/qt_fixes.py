"""Work-arounds for bugs of the Qt binding that would crash the app."""
from __future__ import annotations

import logging
import sys

from PySide6.QtCore import QObject, Signal


log = logging.getLogger(__name__)


class _Probe(QObject):
    ping = Signal()


_GUARDED = False


def guard_emit_refcount() -> None:
    """Work around PySide6 6.12.0, whose ``SignalInstance.emit`` returns ``True`` without a new
    reference: every emit from Python takes one reference away from ``True``, and after as many
    emits as ``True`` has references (a few thousand in a small process; a live session emits
    that every few minutes) CPython aborts with "bool_dealloc: deallocating True". Where the probe
    shows the leak, ``True`` gets 2**48 extra references: immortal, as Python 3.12+ makes it
    anyway. Idempotent; the first EngineClient calls it (the app creates one at start)."""
    global _GUARDED
    if _GUARDED or sys.version_info >= (3, 12):
        return
    _GUARDED = True
    probe = _Probe()
    before = sys.getrefcount(True)
    for _ in range(100):
        probe.ping.emit()
    if before - sys.getrefcount(True) >= 90:
        import ctypes
        log.info("PySide6 emit() leaks references to True: making True immortal")
        ctypes.c_ssize_t.from_address(id(True)).value += 1 << 48  # ob_refcnt, the first field


_NONE_GUARDED = False


def guard_none_refcount() -> None:
    """Work around PySide6 6.12.0 on Python 3.11, whose void methods with overloads
    (``QPainter.setPen``, ``fillRect``, ``drawLine``, ...) return ``None`` without a new reference:
    each call takes one reference away from ``None``, and a live session's paints take all of them
    within minutes (`bench soak` aborted after ~2 min: "none_dealloc: deallocating None"). Where the
    probe shows the leak, ``None`` gets 2**48 extra references: immortal, as Python 3.12+ makes it
    anyway (the same cure as guard_emit_refcount's for ``True``). Idempotent."""
    global _NONE_GUARDED
    if _NONE_GUARDED or sys.version_info >= (3, 12):
        return
    _NONE_GUARDED = True
    from PySide6.QtGui import QColor, QImage, QPainter
    image = QImage(4, 4, QImage.Format.Format_RGB32)
    painter = QPainter(image)
    colour = QColor(0, 0, 0)
    before = sys.getrefcount(None)
    for _ in range(100):
        painter.setPen(colour)
    lost = before - sys.getrefcount(None)
    painter.end()
    if lost >= 90:
        import ctypes
        log.info("PySide6 void methods leak references to None: making None immortal")
        ctypes.c_ssize_t.from_address(id(None)).value += 1 << 48  # ob_refcnt, the first field
