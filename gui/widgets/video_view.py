"""A view of the newest video frame with DETR's detections drawn over it.

Frames arrive at the camera's rate; the widget repaints at most at the display's refresh rate.
Detections come as a :class:`engine.results.DetectionResult` requested at a low floor threshold;
the view draws ``result.above(threshold)`` filtered by class, so moving the threshold slider
redraws at once from the last result. Clicking a box selects its object query: with internals
requested, the view then shows that query's decoder cross-attention as a heat map — where the
query looked to find the object.
"""
from __future__ import annotations

import logging
import zlib

import numpy as np
from PySide6.QtCore import QPointF, QRect, QRectF, QSize, Qt, QTimer, Signal
from PySide6.QtGui import QColor, QFont, QFontMetricsF, QImage, QPainter, QPainterPath, QPen, QPixmap
from PySide6.QtWidgets import QSizePolicy, QWidget

from engine.results import DetectionResult

log = logging.getLogger(__name__)


def class_colour(label: str) -> QColor:
    """A stable, saturated colour per class name (same class, same colour, every run)."""
    h = zlib.crc32(label.encode("utf-8"))
    hue = (h * 0.618033988749895 % 1.0) * 359
    return QColor.fromHsv(int(hue), 200 + (h >> 8) % 56, 235)


def rgb_to_qimage(rgb: np.ndarray) -> QImage:
    """Wrap an (H, W, 3) uint8 array as a QImage (copied, so the array may be reused)."""
    rgb = np.ascontiguousarray(rgb)
    h, w = rgb.shape[:2]
    return QImage(rgb.data, w, h, rgb.strides[0], QImage.Format.Format_RGB888).copy()


# a perceptual dark-to-bright ramp (black-red-orange-yellow-white) for attention maps
_RAMP = np.array([[0, 0, 4], [87, 16, 110], [188, 55, 84], [249, 142, 9], [252, 255, 164]], np.float32)


def heatmap_image(attention: np.ndarray, max_alpha: int = 200) -> QImage:
    """(h, w) non-negative map -> a small ARGB image, colour and opacity growing with the value."""
    a = np.asarray(attention, np.float32)
    a = a - a.min()
    top = float(a.max())
    a = a / top if top > 0 else a
    x = a.ravel() * (len(_RAMP) - 1)
    lo = np.clip(np.floor(x).astype(np.int64), 0, len(_RAMP) - 2)
    t = (x - lo)[:, None]
    rgb = (_RAMP[lo] * (1 - t) + _RAMP[lo + 1] * t).reshape(*a.shape, 3)
    alpha = (a ** 1.5 * max_alpha)[..., None]  # the low background stays see-through
    argb = np.concatenate([rgb, alpha], axis=-1).astype(np.uint8)  # (h, w, 4) RGBA
    argb = np.ascontiguousarray(argb)
    h, w = a.shape
    return QImage(argb.data, w, h, argb.strides[0], QImage.Format.Format_RGBA8888).copy()


BACKGROUND = QColor(30, 31, 34)  # a neutral dark surround for video, in light and dark themes


class VideoView(QWidget):
    """Paints the newest frame, scaled to fit with its aspect ratio, and the detection overlay."""

    querySelected = Signal(int)  # object query id, -1 when the selection is cleared

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
        self._result: DetectionResult | None = None
        self._threshold = 0.7
        self._hidden_classes: set[str] = set()
        self._selected_query = -1
        self._show_attention = True
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

    def set_result(self, result: DetectionResult | None) -> None:
        self._result = result
        self._schedule()

    def set_threshold(self, threshold: float) -> None:
        self._threshold = float(threshold)
        self._schedule()

    def set_hidden_classes(self, hidden: set[str]) -> None:
        self._hidden_classes = set(hidden)
        self._schedule()

    def set_show_attention(self, on: bool) -> None:
        self._show_attention = bool(on)
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
        self._result = None
        self._frame_id = -1
        self._selected_query = -1
        self._schedule()

    def select_query(self, query_id: int) -> None:
        self._selected_query = int(query_id)
        self.querySelected.emit(self._selected_query)
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

    @property
    def threshold(self) -> float:
        return self._threshold

    @property
    def selected_query(self) -> int:
        return self._selected_query

    @property
    def result(self) -> DetectionResult | None:
        return self._result

    def current_detections(self) -> DetectionResult | None:
        """What is drawn now: the last result above the threshold, hidden classes removed."""
        r = self._result
        if r is None:
            return None
        if self._threshold > r.threshold:
            r = r.above(self._threshold)
        if self._hidden_classes:
            keep = np.array([lab not in self._hidden_classes for lab in r.labels], bool)
            if not keep.all():
                r = DetectionResult(r.boxes[keep], r.scores[keep], r.label_ids[keep],
                                    tuple(lab for lab, k in zip(r.labels, keep) if k), r.image_size,
                                    r.threshold, r.query_ids[keep] if len(r.query_ids) else r.query_ids,
                                    r.timings, r.internals)
        return r

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

    def box_rect(self, index: int, target: QRectF | None = None) -> QRectF:
        """Widget-space rectangle of detection ``index`` of ``current_detections()``."""
        r = self.current_detections()
        target = self.image_rect() if target is None else target
        return self._map_box(r, index, target)

    @staticmethod
    def _map_box(r: DetectionResult, index: int, target: QRectF) -> QRectF:
        ih, iw = r.image_size
        sx, sy = target.width() / max(iw, 1), target.height() / max(ih, 1)
        x0, y0, x1, y1 = (float(v) for v in r.boxes[index])
        return QRectF(target.x() + x0 * sx, target.y() + y0 * sy, (x1 - x0) * sx, (y1 - y0) * sy)

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
        """Draw the attention map and the boxes of ``current_detections()`` into ``target``."""
        r = self.current_detections()
        if r is None:
            return
        p.save()
        p.setClipRect(target)
        if self._show_attention and self._selected_query >= 0 and r.internals is not None:
            att = r.internals.cross_attention
            if 0 <= self._selected_query < att.shape[0]:
                p.drawImage(target, heatmap_image(att[self._selected_query]))
        font = QFont(self.font())
        font.setPointSizeF(max(7.0, font.pointSizeF() * scale_text))
        font.setWeight(QFont.Weight.DemiBold)
        p.setFont(font)
        fm = QFontMetricsF(font)
        selected_idx = -1
        if len(r.query_ids):
            hits = np.nonzero(r.query_ids == self._selected_query)[0]
            selected_idx = int(hits[0]) if len(hits) else -1
        order = [i for i in range(len(r) - 1, -1, -1) if i != selected_idx]  # best drawn last (on top)
        if selected_idx >= 0:
            order.append(selected_idx)
        for i in order:
            rect = self._map_box(r, i, target)
            colour = class_colour(r.labels[i])
            selected = i == selected_idx
            pen = QPen(colour, (3.0 if selected else 2.0) * scale_text)
            pen.setJoinStyle(Qt.PenJoinStyle.MiterJoin)
            p.setPen(pen)
            p.setBrush(Qt.BrushStyle.NoBrush)
            if selected:
                p.setPen(QPen(QColor(255, 255, 255, 200), 5.0 * scale_text))
                p.drawRect(rect)
                p.setPen(pen)
            p.drawRect(rect)
            text = f"{r.labels[i]} {float(r.scores[i]):.2f}"
            tw, th = fm.horizontalAdvance(text) + 8 * scale_text, fm.height() + 2 * scale_text
            ty = rect.top() - th if rect.top() - th >= target.top() else rect.top()
            tx = min(max(rect.left(), target.left()), target.right() - tw)
            label = QRectF(tx, ty, tw, th)
            p.fillRect(label, colour)
            p.setPen(QColor(0, 0, 0) if colour.lightnessF() > 0.55 else QColor(255, 255, 255))
            p.drawText(label, Qt.AlignmentFlag.AlignCenter, text)
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
        self.select_at(event.position())

    def select_at(self, pos: QPointF) -> int:
        """Select the smallest drawn box under ``pos``; returns its query id (or -1)."""
        r = self.current_detections()
        best, best_area = -1, float("inf")
        if r is not None and len(r.query_ids):
            target = self.image_rect()
            for i in range(len(r)):
                rect = self._map_box(r, i, target)
                area = rect.width() * rect.height()
                if rect.contains(pos) and area < best_area:
                    best, best_area = int(r.query_ids[i]), area
        self.select_query(best)
        return best

    def visible_rect(self) -> QRect:
        return self.image_rect().toAlignedRect()
