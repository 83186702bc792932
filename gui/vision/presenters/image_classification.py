"""Image classification (ViT, ConvNeXT) in the Vision tab: the top-5 labels as bars over the frame
and in the side panel, and — inside the model — where the classifier looked, drawn over the part
of the frame the model saw:

* ViT: the [CLS] token's attention to the image patches (the last layer per head or averaged over
  heads, or attention rollout through every layer), one cell per patch;
* ConvNeXT: the classification head applied at every position of the last feature map, for the
  top class (a class map: where the evidence for that label is).
"""
from __future__ import annotations

from PySide6.QtCore import QObject, QPointF, QRectF, QSettings, Qt
from PySide6.QtGui import QColor, QFont, QFontMetricsF, QPainter, QPainterPath, QPen
from PySide6.QtWidgets import QCheckBox, QComboBox, QGroupBox, QLabel, QVBoxLayout

from engine.types.vision import ClassificationOptions, ClassificationResult
from gui.common.painting import heatmap_image
from gui.core.settings import as_bool
from gui.vision.presenters.base import VisionPresenter
from gui.common.bars import BarsView

TOP_K = 5


class Presenter(VisionPresenter):
    task = "image-classification"

    def __init__(self, settings: QSettings, parent: QObject | None = None) -> None:
        super().__init__(settings, parent)
        group = QGroupBox("Top 5")
        self.bars = BarsView(rows=TOP_K)
        self.bars.placeholder = "No result yet."
        lay = QVBoxLayout(group)
        lay.addWidget(self.bars)
        self.panel_layout.addWidget(group)

        inside = QGroupBox("Inside the model")
        self.inside_check = QCheckBox("Show where it looked")
        self.inside_check.setToolTip("Also return the model's attention (ViT) or class map (ConvNeXT) "
                                     "and draw it over the frame")
        self.map_combo = QComboBox()
        self.map_combo.setToolTip("ViT: attention rollout through all layers, or the last layer's [CLS] "
                                  "attention (mean over heads, or one head). ConvNeXT: the class map.")
        self.inside_label = QLabel()
        self.inside_label.setWordWrap(True)
        self.inside_label.setTextFormat(Qt.TextFormat.RichText)
        lay = QVBoxLayout(inside)
        lay.addWidget(self.inside_check)
        lay.addWidget(self.map_combo)
        lay.addWidget(self.inside_label)
        self.panel_layout.addWidget(inside)
        self.panel_layout.addStretch(1)

        self.inside_check.setChecked(as_bool(settings.value(self.key("internals"), True)))
        self._wanted_map = str(settings.value(self.key("map"), "rollout"))
        self.inside_check.toggled.connect(self._on_inside_toggled)
        self.map_combo.activated.connect(self._on_map_chosen)
        self._describe()

    # ------------------------------------------------------------------ options

    def show_inside(self) -> bool:
        return self.inside_check.isChecked()

    def options(self) -> ClassificationOptions:
        return ClassificationOptions(top_k=TOP_K, internals=self.show_inside())

    def _on_inside_toggled(self, on: bool) -> None:
        self.settings.setValue(self.key("internals"), on)
        self._describe()
        self.repaint.emit()
        self.optionsChanged.emit()

    def _on_map_chosen(self, index: int) -> None:
        self._wanted_map = self.map_combo.itemText(index)
        self.settings.setValue(self.key("map"), self._wanted_map)
        self._describe()
        self.repaint.emit()

    def save_settings(self) -> None:
        self.settings.setValue(self.key("internals"), self.show_inside())
        self.settings.setValue(self.key("map"), self._wanted_map)

    # ------------------------------------------------------------------ results

    def set_result(self, result: ClassificationResult | None) -> None:
        self.result = result
        if result is None:
            self.bars.clear()
        else:
            self.bars.set_results(result.labels, [float(s) for s in result.scores])
        self._sync_maps()
        self._describe()
        self.repaint.emit()

    def clear(self) -> None:
        self.set_result(None)

    def _sync_maps(self) -> None:
        """Offer the maps the newest result carries, keeping the user's choice when it is there."""
        internals = self.result.internals if self.result is not None else None
        names = list(internals.maps) if internals is not None else []
        current = [self.map_combo.itemText(i) for i in range(self.map_combo.count())]
        if names != current and names:
            self.map_combo.blockSignals(True)
            self.map_combo.clear()
            self.map_combo.addItems(names)
            self.map_combo.blockSignals(False)
        if names:
            i = self.map_combo.findText(self._wanted_map)
            self.map_combo.setCurrentIndex(i if i >= 0 else 0)
        self.map_combo.setEnabled(bool(names))

    def current_map(self):
        """(name, (rows, cols) array) of the map drawn now, or None."""
        r = self.result
        if r is None or r.internals is None or not self.show_inside():
            return None
        name = self.map_combo.currentText()
        if name not in r.internals.maps:
            name = next(iter(r.internals.maps))
        return name, r.internals.maps[name]

    def _describe(self) -> None:
        r = self.result
        if not self.show_inside():
            text = "Turn on <b>Show where it looked</b> to see what the classifier based its answer on."
        elif r is None or r.internals is None:
            text = "Waiting for a result with the model's internals…"
        elif r.internals.kind == "attention":
            rows, cols = r.internals.grid
            text = (f"ViT cut the image into <b>{rows}×{cols} patches</b>; the [CLS] token gathers what the "
                    "classifier sees. <b>rollout</b> follows its attention through every layer; <b>mean</b> and "
                    "<b>head N</b> show the last layer only. The box marks the part of the frame the model saw.")
        else:
            rows, cols = r.internals.grid
            text = (f"ConvNeXT's last feature map is <b>{rows}×{cols}</b>; the head applied at each position "
                    f"gives the evidence for <b>{r.labels[0] if len(r) else '—'}</b> there (bright = more).")
        self.inside_label.setText(text)

    # ------------------------------------------------------------------ painting

    def _model_rect(self, target: QRectF) -> QRectF:
        """Where the model's input (after resize and crop) lies in the frame drawn at ``target``."""
        r = self.result
        ih, iw = r.image_size
        x0, y0, x1, y1 = r.internals.crop_box
        sx, sy = target.width() / max(iw, 1), target.height() / max(ih, 1)
        return QRectF(target.x() + x0 * sx, target.y() + y0 * sy, (x1 - x0) * sx, (y1 - y0) * sy)

    def paint(self, p: QPainter, target: QRectF, scale: float = 1.0) -> None:
        r = self.result
        if r is None:
            return
        p.save()
        p.setClipRect(target)
        shown = self.current_map()
        if shown is not None:
            area = self._model_rect(target)
            p.drawImage(area, heatmap_image(shown[1]))
            p.setPen(QPen(QColor(255, 255, 255, 160), 1.5 * scale, Qt.PenStyle.DashLine))
            p.setBrush(Qt.BrushStyle.NoBrush)
            p.drawRect(area)
        self._paint_labels(p, target, scale)
        p.restore()

    def _paint_labels(self, p: QPainter, target: QRectF, scale: float) -> None:
        """The top-5 as a translucent card in the frame's top-left corner."""
        r = self.result
        font = QFont(p.font())
        font.setPointSizeF(max(7.0, font.pointSizeF() * scale))
        p.setFont(font)
        fm = QFontMetricsF(font)
        row_h = fm.height() + 6 * scale
        bar_w = 60 * scale
        texts = [f"{100 * float(score):5.1f}%  {label}" for label, score in zip(r.labels, r.scores)]
        if not texts:
            return
        width = min(target.width() - 16 * scale, max(fm.horizontalAdvance(t) for t in texts) + bar_w + 22 * scale)
        if width <= 40:
            return
        card = QRectF(target.x() + 8 * scale, target.y() + 8 * scale, width, row_h * len(r) + 8 * scale)
        path = QPainterPath()
        path.addRoundedRect(card, 6 * scale, 6 * scale)
        p.fillPath(path, QColor(0, 0, 0, 150))
        for i, (text, score) in enumerate(zip(texts, r.scores)):
            y = card.top() + 4 * scale + i * row_h
            bar = QRectF(card.left() + 6 * scale, y + 3 * scale, bar_w, row_h - 6 * scale)
            p.fillRect(bar, QColor(255, 255, 255, 40))
            p.fillRect(QRectF(bar.left(), bar.top(), max(1.0, bar_w * float(score)), bar.height()),
                       QColor(40, 170, 110) if i == 0 else QColor(70, 140, 230))
            p.setPen(QColor(255, 255, 255))
            p.drawText(QRectF(bar.right() + 6 * scale, y, card.right() - bar.right() - 10 * scale, row_h),
                       Qt.AlignmentFlag.AlignVCenter | Qt.AlignmentFlag.AlignLeft,
                       fm.elidedText(text, Qt.TextElideMode.ElideRight, card.right() - bar.right() - 10 * scale))

    def hover_text(self, pos: QPointF, target: QRectF) -> str:
        shown = self.current_map()
        if shown is None:
            return ""
        name, values = shown
        area = self._model_rect(target)
        if not area.contains(pos):
            return ""
        rows, cols = values.shape
        row = min(rows - 1, int((pos.y() - area.top()) / area.height() * rows))
        col = min(cols - 1, int((pos.x() - area.left()) / area.width() * cols))
        v = float(values[row, col])
        what = f"{100 * v:.2f}% of the attention" if self.result.internals.kind == "attention" else f"logit {v:.2f}"
        return f"{name}: cell ({row + 1}, {col + 1}) of {rows}×{cols}: {what}"

    def snapshot(self) -> dict:
        r = self.result
        out = {"labels": r.to_json() if r is not None else []}
        shown = self.current_map()
        if shown is not None:
            out["inside"] = {"map": shown[0], "grid": list(r.internals.grid)}
        return out
