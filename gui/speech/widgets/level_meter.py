"""A level meter bar (dBFS) with peak hold. ``set_level`` may be called per block; the widget
repaints at most ~30 times a second."""
from __future__ import annotations

import math

from PySide6.QtCore import QElapsedTimer, QRectF, QSize, Qt, QTimer
from PySide6.QtGui import QColor, QPainter
from PySide6.QtWidgets import QSizePolicy, QWidget

FLOOR_DB = -60.0


def to_db(x: float) -> float:
    return 20.0 * math.log10(max(x, 1e-6))


class LevelMeter(QWidget):
    """Vertical (default) or horizontal bar: RMS fill, peak-hold line that falls after ``hold_s``."""

    def __init__(self, parent: QWidget | None = None, orientation=Qt.Orientation.Vertical,
                 hold_s: float = 1.0, fall_db_per_s: float = 20.0) -> None:
        super().__init__(parent)
        self.orientation = orientation
        self.hold_s = hold_s
        self.fall_db_per_s = fall_db_per_s
        self.rms_db = FLOOR_DB
        self.peak_db = FLOOR_DB  # the held peak
        self.updates = 0  # set_level calls (tests read it)
        self._peak_age = QElapsedTimer()
        self._peak_age.start()
        self._dirty = False
        self._timer = QTimer(self)
        self._timer.setInterval(33)
        self._timer.timeout.connect(self._tick)
        self._timer.start()
        if orientation == Qt.Orientation.Vertical:
            self.setSizePolicy(QSizePolicy.Policy.Fixed, QSizePolicy.Policy.Expanding)
        else:
            self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
        self.setToolTip("Input level (dBFS) with peak hold")

    def sizeHint(self) -> QSize:
        return QSize(18, 120) if self.orientation == Qt.Orientation.Vertical else QSize(160, 14)

    def set_level(self, rms: float, peak: float | None = None) -> None:
        self.updates += 1
        self.rms_db = max(FLOOR_DB, to_db(rms))
        p = max(FLOOR_DB, to_db(rms if peak is None else peak))
        if p >= self.peak_db:
            self.peak_db = p
            self._peak_age.restart()
        self._dirty = True

    def reset(self) -> None:
        self.rms_db = self.peak_db = FLOOR_DB
        self._dirty = True

    @property
    def level(self) -> float:
        """RMS level as a fraction 0..1 of the meter's scale."""
        return (self.rms_db - FLOOR_DB) / -FLOOR_DB

    def _tick(self) -> None:
        age = self._peak_age.elapsed() / 1000.0
        if age > self.hold_s and self.peak_db > self.rms_db:
            self.peak_db = max(self.rms_db, self.peak_db - self.fall_db_per_s * self._timer.interval() / 1000.0)
            self._dirty = True
        if self._dirty:
            self._dirty = False
            self.update()

    def paintEvent(self, event) -> None:  # noqa: N802 - Qt API
        p = QPainter(self)
        r = QRectF(self.rect()).adjusted(1, 1, -1, -1)
        p.fillRect(r, QColor(30, 30, 34))
        frac = max(0.0, min(1.0, self.level))
        pk = max(0.0, min(1.0, (self.peak_db - FLOOR_DB) / -FLOOR_DB))
        color = QColor(60, 200, 90) if self.rms_db < -12 else QColor(240, 190, 40) if self.rms_db < -3 else QColor(230, 60, 50)
        if self.orientation == Qt.Orientation.Vertical:
            h = r.height()
            p.fillRect(QRectF(r.left(), r.bottom() - frac * h, r.width(), frac * h), color)
            y = r.bottom() - pk * h
            p.fillRect(QRectF(r.left(), y - 1, r.width(), 2), QColor(240, 240, 240))
        else:
            w = r.width()
            p.fillRect(QRectF(r.left(), r.top(), frac * w, r.height()), color)
            x = r.left() + pk * w
            p.fillRect(QRectF(x - 1, r.top(), 2, r.height()), QColor(240, 240, 240))
        p.end()
