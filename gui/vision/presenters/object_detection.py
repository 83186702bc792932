"""Object detection (DETR) in the Vision tab: boxes and labels over the frame, the threshold
slider, the class filter, the input size, and — inside the model — where a clicked box's object
query looked (decoder cross-attention).

Detections are requested at a low floor threshold, so moving the slider redraws at once from the
last result; the view draws ``result.above(threshold)`` minus the hidden classes.
"""
from __future__ import annotations

import numpy as np
from PySide6.QtCore import QObject, QPointF, QRectF, QSettings, Qt
from PySide6.QtGui import QColor, QFont, QFontMetricsF, QPainter, QPen
from PySide6.QtWidgets import QComboBox, QHBoxLayout, QLabel

from engine.types.vision import DetectionOptions, DetectionResult
from gui.common.painting import class_colour, heatmap_image
from gui.core.settings import as_bool
from gui.vision.presenters.base import VisionPresenter
from gui.vision.widgets.attention_panel import AttentionPanel
from gui.vision.widgets.class_filter import ClassFilter
from gui.vision.widgets.detection_panel import DetectionPanel

FLOOR_THRESHOLD = 0.3  # detections are requested at min(slider, this) so the slider redraws at once
INPUT_SIZES = ((800, "800 px", "The checkpoints' own size: most accurate, slowest"),
               (512, "512 px", "About 2.4× fewer pixels than 800: faster, a little less accurate"),
               (384, "384 px", "About 4× fewer pixels than 800: fastest, misses small objects"))


class Presenter(VisionPresenter):
    task = "object-detection"

    def __init__(self, settings: QSettings, parent: QObject | None = None) -> None:
        super().__init__(settings, parent)
        self.selected_query = -1
        self.detections = DetectionPanel()
        self.classes = ClassFilter()
        self.attention = AttentionPanel()
        self.threshold_slider = self.detections.threshold_slider
        self.attention_check = self.attention.attention_check
        self.panel_layout.addWidget(self.detections)
        self.panel_layout.addWidget(self.classes, 1)
        self.panel_layout.addWidget(self.attention)

        self.size_combo = QComboBox()
        for size, label, tip in INPUT_SIZES:
            self.size_combo.addItem(label, size)
            self.size_combo.setItemData(self.size_combo.count() - 1, tip, Qt.ItemDataRole.ToolTipRole)
        self.size_combo.setToolTip("Shortest image edge fed to the model: smaller is faster, less accurate")
        row = QHBoxLayout(self.toolbar)
        row.setContentsMargins(0, 0, 0, 0)
        row.addWidget(QLabel("Input size"))
        row.addWidget(self.size_combo)

        def remembered(name: str, default):  # this task's key; before tasks had their own, "vision/<name>"
            return settings.value(self.key(name), settings.value(f"vision/{name}", default))
        self.threshold_slider.setValue(int(round(float(remembered("threshold", 0.7)) * 1000)))
        self.detections.show_threshold(self.threshold_slider.value())
        i = self.size_combo.findData(int(remembered("input_size", 512)))
        self.size_combo.setCurrentIndex(i if i >= 0 else 1)
        self.attention_check.setChecked(as_bool(remembered("attention", True)))

        self.threshold_slider.valueChanged.connect(self._on_threshold_changed)
        self.size_combo.currentIndexChanged.connect(self._on_size_changed)
        self.attention_check.toggled.connect(self._on_attention_toggled)
        self.classes.changed.connect(self._on_classes_changed)
        self._describe()

    # ------------------------------------------------------------------ options

    def threshold(self) -> float:
        return self.threshold_slider.value() / 1000.0

    def set_threshold(self, value: float) -> None:
        self.threshold_slider.setValue(int(round(value * 1000)))

    def input_size(self) -> int:
        return int(self.size_combo.currentData())

    def show_attention(self) -> bool:
        return self.attention_check.isChecked()

    def options(self) -> DetectionOptions:
        return DetectionOptions(threshold=min(self.threshold(), FLOOR_THRESHOLD), shortest_edge=self.input_size(),
                                longest_edge=max(self.input_size(), 1333), internals=self.show_attention())

    def wants_rerun(self, result) -> bool:
        return isinstance(result, DetectionResult) and self.threshold() < result.threshold

    def _on_threshold_changed(self, value: int) -> None:
        self.detections.show_threshold(value)
        self.settings.setValue(self.key("threshold"), value / 1000.0)
        self._refresh()
        if self.result is not None and self.wants_rerun(self.result):
            self.optionsChanged.emit()

    def _on_size_changed(self, *_args) -> None:
        self.settings.setValue(self.key("input_size"), self.input_size())
        self.optionsChanged.emit()

    def _on_attention_toggled(self, on: bool) -> None:
        self.settings.setValue(self.key("attention"), on)
        self._refresh()
        self.optionsChanged.emit()

    def _on_classes_changed(self) -> None:
        self._refresh()

    def hidden_classes(self) -> set[str]:
        return self.classes.hidden_classes()

    def save_settings(self) -> None:
        self.settings.setValue(self.key("threshold"), self.threshold())
        self.settings.setValue(self.key("input_size"), self.input_size())
        self.settings.setValue(self.key("attention"), self.show_attention())

    # ------------------------------------------------------------------ results

    def set_result(self, result: DetectionResult | None) -> None:
        if result is not None:
            self.classes.add_labels(result.labels)
        self.result = result
        self._refresh()

    def clear(self) -> None:
        self.result = None
        self.selected_query = -1
        self._refresh()

    def _refresh(self) -> None:
        self.detections.show_counts(self.current_detections())
        self._describe()
        self.repaint.emit()

    def current_detections(self) -> DetectionResult | None:
        """What is drawn now: the last result above the threshold, hidden classes removed."""
        r = self.result
        if r is None:
            return None
        if self.threshold() > r.threshold:
            r = r.above(self.threshold())
        hidden = self.hidden_classes()
        if hidden:
            keep = np.array([lab not in hidden for lab in r.labels], bool)
            if not keep.all():
                from dataclasses import replace
                r = replace(r, boxes=r.boxes[keep], scores=r.scores[keep], label_ids=r.label_ids[keep],
                            labels=tuple(lab for lab, k in zip(r.labels, keep) if k),
                            query_ids=r.query_ids[keep] if len(r.query_ids) else r.query_ids)
        return r

    # ------------------------------------------------------------------ selection: one object query

    def select_query(self, query_id: int) -> None:
        self.selected_query = int(query_id)
        self._describe()
        self.repaint.emit()

    def click(self, pos: QPointF, target: QRectF) -> bool:
        """Select the smallest drawn box under ``pos`` (or clear the selection)."""
        r = self.current_detections()
        best, best_area = -1, float("inf")
        if r is not None and len(r.query_ids):
            for i in range(len(r)):
                rect = box_rect(r, i, target)
                area = rect.width() * rect.height()
                if rect.contains(pos) and area < best_area:
                    best, best_area = int(r.query_ids[i]), area
        self.select_query(best)
        return True

    def hover_text(self, pos: QPointF, target: QRectF) -> str:
        r = self.current_detections()
        if r is None:
            return ""
        hits = [(box_rect(r, i, target), i) for i in range(len(r))]
        hits = [(rect.width() * rect.height(), i) for rect, i in hits if rect.contains(pos)]
        if not hits:
            return ""
        i = min(hits)[1]
        return f"{r.labels[i]} {float(r.scores[i]):.3f}" + (f" · object query #{int(r.query_ids[i])}"
                                                             if len(r.query_ids) else "")

    def _describe(self) -> None:
        self.attention.describe(self.selected_query, self.current_detections())

    # ------------------------------------------------------------------ painting

    def paint(self, p: QPainter, target: QRectF, scale: float = 1.0) -> None:
        """The selected query's attention map and the boxes of ``current_detections()``."""
        r = self.current_detections()
        if r is None:
            return
        p.save()
        p.setClipRect(target)
        if self.show_attention() and self.selected_query >= 0 and r.internals is not None:
            att = r.internals.cross_attention
            if 0 <= self.selected_query < att.shape[0]:
                p.drawImage(target, heatmap_image(att[self.selected_query]))
        font = QFont(p.font())
        font.setPointSizeF(max(7.0, font.pointSizeF() * scale))
        font.setWeight(QFont.Weight.DemiBold)
        p.setFont(font)
        fm = QFontMetricsF(font)
        selected_idx = -1
        if len(r.query_ids):
            hits = np.nonzero(r.query_ids == self.selected_query)[0]
            selected_idx = int(hits[0]) if len(hits) else -1
        order = [i for i in range(len(r) - 1, -1, -1) if i != selected_idx]  # best drawn last (on top)
        if selected_idx >= 0:
            order.append(selected_idx)
        for i in order:
            rect = box_rect(r, i, target)
            colour = class_colour(r.labels[i])
            selected = i == selected_idx
            pen = QPen(colour, (3.0 if selected else 2.0) * scale)
            pen.setJoinStyle(Qt.PenJoinStyle.MiterJoin)
            p.setBrush(Qt.BrushStyle.NoBrush)
            if selected:
                p.setPen(QPen(QColor(255, 255, 255, 200), 5.0 * scale))
                p.drawRect(rect)
            p.setPen(pen)
            p.drawRect(rect)
            text = f"{r.labels[i]} {float(r.scores[i]):.2f}"
            tw, th = fm.horizontalAdvance(text) + 8 * scale, fm.height() + 2 * scale
            ty = rect.top() - th if rect.top() - th >= target.top() else rect.top()
            tx = min(max(rect.left(), target.left()), target.right() - tw)
            label = QRectF(tx, ty, tw, th)
            p.fillRect(label, colour)
            p.setPen(QColor(0, 0, 0) if colour.lightnessF() > 0.55 else QColor(255, 255, 255))
            p.drawText(label, Qt.AlignmentFlag.AlignCenter, text)
        p.restore()

    def snapshot(self) -> dict:
        drawn = self.current_detections()
        return {"threshold": round(self.threshold(), 4), "hidden_classes": sorted(self.hidden_classes()),
                "detections": drawn.to_json() if drawn is not None else []}


def box_rect(r: DetectionResult, index: int, target: QRectF) -> QRectF:
    """Where detection ``index`` of ``r`` lies when the frame fills ``target``."""
    ih, iw = r.image_size
    sx, sy = target.width() / max(iw, 1), target.height() / max(ih, 1)
    x0, y0, x1, y1 = (float(v) for v in r.boxes[index])
    return QRectF(target.x() + x0 * sx, target.y() + y0 * sy, (x1 - x0) * sx, (y1 - y0) * sy)
