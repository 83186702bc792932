"""A view of the newest video frame with the active task's overlay drawn over it.

Frames arrive at the camera's rate; the widget repaints at most at the display's refresh rate. What
is drawn over the frame belongs to the active task's presenter (gui/vision/presenters): the view
calls its ``paint`` with the rectangle the frame fills, forwards left clicks to its ``click`` and
shows its ``hover_text`` as a tooltip. The view knows no task.
"""
from __future__ import annotations

import logging

import numpy as np
from PySide6.QtCore import QPointF, QRect, QRectF, QSize, Qt, QTimer
from PySide6.QtGui import QColor, QFont, QFontMetricsF, QImage, QPainter, QPainterPath, QPixmap
from PySide6.QtWidgets import QSizePolicy, QToolTip, QWidget

log = logging.getLogger(__name__)


BACKGROUND = QColor(30, 31, 34)  # a neutral dark surround for video, in light and dark themes


class VideoView(QWidget):
    """Paints the newest frame, scaled to fit with its aspect ratio, and the overlay over it."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self.setMinimumSize(320, 240)
        self.setAttribute(Qt.WidgetAttribute.WA_OpaquePaintEvent)
        self._frame: np.ndarray | None = None  # the newest frame, converted only when painted
        self._image: QImage | None = None  # self._frame as a QImage (lazily; shares its memory)
        self._pixmap: QPixmap | None = None  # self._image scaled to _pixmap_size (cached until frame/resize)
        self._pixmap_size = QSize()
        self.conversions = 0  # frames converted to a QImage (painted), for tests and diagnostics
        self._frame_id = -1
        self._overlay = None  # the active presenter: paint(p, target, scale), click(pos, target), hover_text
        self.setMouseTracking(True)
        self._placeholder = "No source"
        self._message = ""
        self._dirty = False
        self.paint_count = 0
        self._repaint = QTimer(self)  # single shot, started only while a repaint is pending
        self._repaint.setSingleShot(True)
        self._repaint.setTimerType(Qt.TimerType.PreciseTimer)
        self._repaint.setInterval(self._display_interval_ms())
        self._repaint.timeout.connect(self._flush)

    # ------------------------------------------------------------------ inputs

    def _display_interval_ms(self) -> int:
        screen = self.screen()
        rate = screen.refreshRate() if screen is not None else 60.0
        return max(8, int(1000.0 / (rate if 20.0 <= rate <= 240.0 else 60.0)))

    def set_frame(self, frame_id: int, rgb: np.ndarray) -> None:
        """Show ``rgb`` (H, W, 3) uint8; painted at the next display tick. The array is kept, not
        copied (sources allocate a new one per frame): it is converted only if it gets painted."""
        self._frame = rgb
        self._image = None
        self._pixmap = None
        self._frame_id = frame_id
        self._schedule()

    def set_overlay(self, overlay) -> None:
        """What draws over the frame from now on (a presenter, or None)."""
        self._overlay = overlay
        self._schedule()

    @property
    def overlay(self):
        return self._overlay

    def refresh(self) -> None:
        """Repaint at the next display tick (the overlay changed)."""
        self._schedule()

    def set_placeholder(self, text: str) -> None:
        """Text shown while there is no frame."""
        self._placeholder = text
        self._schedule()

    @property
    def message(self) -> str:
        return self._message

    def set_message(self, text: str) -> None:
        """A banner over the frame (e.g. an error) until ``set_message("")``."""
        self._message = text
        self._schedule()

    def clear(self) -> None:
        self._frame = None
        self._image = None
        self._pixmap = None
        self._frame_id = -1
        self._schedule()

    # ------------------------------------------------------------------ state

    @property
    def frame_id(self) -> int:
        return self._frame_id

    @property
    def frame_size(self) -> QSize:
        if self._frame is None:
            return QSize()
        h, w = self._frame.shape[:2]
        return QSize(int(w), int(h))

    def _qimage(self) -> QImage | None:
        """The current frame as a QImage, converted on first use (no copy: it shares the array)."""
        if self._image is None and self._frame is not None:
            rgb = np.ascontiguousarray(self._frame)
            self._frame = rgb  # keeps the memory the QImage points into alive
            h, w = rgb.shape[:2]
            self._image = QImage(rgb.data, w, h, rgb.strides[0], QImage.Format.Format_RGB888)
            self.conversions += 1
        return self._image

    def _scaled_pixmap(self, size: QSize) -> QPixmap | None:
        """The frame scaled to ``size``, cached until a new frame or another size."""
        if self._pixmap is None or self._pixmap_size != size:
            image = self._qimage()
            if image is None or size.isEmpty():
                return None
            self._pixmap = QPixmap.fromImage(image.scaled(size, Qt.AspectRatioMode.IgnoreAspectRatio,
                                                          Qt.TransformationMode.SmoothTransformation))
            self._pixmap_size = QSize(size)
        return self._pixmap

    def image_rect(self) -> QRectF:
        """Where the frame is drawn in widget coordinates (aspect ratio kept, centred)."""
        if self._frame is None:
            return QRectF()
        return self._fit(self.frame_size, QRectF(self.rect()))

    @staticmethod
    def _fit(size: QSize, area: QRectF) -> QRectF:
        if size.isEmpty() or area.isEmpty():
            return QRectF()
        scale = min(area.width() / size.width(), area.height() / size.height())
        w, h = size.width() * scale, size.height() * scale
        return QRectF(area.x() + (area.width() - w) / 2, area.y() + (area.height() - h) / 2, w, h)

    # ------------------------------------------------------------------ painting

    def _schedule(self) -> None:
        self._dirty = True
        if not self._repaint.isActive():
            self._repaint.start()

    def _flush(self) -> None:
        if self._dirty:
            self._dirty = False
            self.update()

    def sizeHint(self) -> QSize:
        return QSize(800, 600)

    def paintEvent(self, event) -> None:  # noqa: N802 - Qt override
        self.paint_count += 1
        p = QPainter(self)
        p.setRenderHint(QPainter.RenderHint.Antialiasing)
        p.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform)
        p.fillRect(self.rect(), BACKGROUND)
        if self._frame is None:
            p.setPen(QColor(200, 200, 205))
            f = p.font()
            f.setPointSizeF(f.pointSizeF() * 1.2)
            p.setFont(f)
            p.drawText(self.rect().adjusted(24, 24, -24, -24),
                       Qt.AlignmentFlag.AlignCenter | Qt.TextFlag.TextWordWrap, self._placeholder)
        else:
            target = self.image_rect()
            pixmap = self._scaled_pixmap(target.toAlignedRect().size())
            if pixmap is not None:
                p.drawPixmap(target, pixmap, QRectF(pixmap.rect()))
            self.paint_overlay(p, target, scale_text=1.0)
        if self._message:
            self._paint_banner(p, self._message)
        p.end()

    def paint_overlay(self, p: QPainter, target: QRectF, scale_text: float = 1.0) -> None:
        """Let the overlay draw into ``target``, where the frame is."""
        if self._overlay is not None:
            p.save()
            p.setFont(QFont(self.font()))
            self._overlay.paint(p, target, scale_text)
            p.restore()

    def _paint_banner(self, p: QPainter, text: str) -> None:
        f = QFont(self.font())
        p.setFont(f)
        fm = QFontMetricsF(f)
        margin = 12.0
        width = min(self.width() - 2 * margin, fm.horizontalAdvance(text) + 28)
        lines = max(1, int(np.ceil((fm.horizontalAdvance(text) + 28) / max(width, 1))))
        height = fm.height() * (lines + 0.2) + 16
        box = QRectF((self.width() - width) / 2, self.height() - height - margin, width, height)
        path = QPainterPath()
        path.addRoundedRect(box, 6, 6)
        p.fillPath(path, QColor(150, 30, 30, 225))
        p.setPen(QColor(255, 255, 255))
        p.drawText(box.adjusted(12, 6, -12, -6), Qt.AlignmentFlag.AlignCenter | Qt.TextFlag.TextWordWrap, text)

    def render_annotated(self) -> QImage | None:
        """The current frame at its full resolution with the overlay drawn on it (snapshots)."""
        image = self._qimage()
        if image is None:
            return None
        out = image.convertToFormat(QImage.Format.Format_RGB32)
        p = QPainter(out)
        p.setRenderHint(QPainter.RenderHint.Antialiasing)
        scale = max(1.0, out.width() / 800.0)
        self.paint_overlay(p, QRectF(0, 0, out.width(), out.height()), scale_text=scale)
        p.end()
        return out

    # ------------------------------------------------------------------ interaction

    def mousePressEvent(self, event) -> None:  # noqa: N802 - Qt override
        if event.button() != Qt.MouseButton.LeftButton:
            return super().mousePressEvent(event)
        self.click_at(event.position())

    def click_at(self, pos: QPointF) -> bool:
        """A left click at ``pos`` (widget coordinates), given to the overlay."""
        if self._overlay is None or self._frame is None:
            return False
        used = bool(self._overlay.click(pos, self.image_rect()))
        self._schedule()
        return used

    def hover_text_at(self, pos: QPointF) -> str:
        if self._overlay is None or self._frame is None:
            return ""
        return self._overlay.hover_text(pos, self.image_rect())

    def mouseMoveEvent(self, event) -> None:  # noqa: N802 - Qt override
        text = self.hover_text_at(event.position())
        if text:
            QToolTip.showText(event.globalPosition().toPoint(), text, self)
        else:
            QToolTip.hideText()
        super().mouseMoveEvent(event)

    def visible_rect(self) -> QRect:
        return self.image_rect().toAlignedRect()
