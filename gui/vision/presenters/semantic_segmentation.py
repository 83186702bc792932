"""Semantic segmentation (SegFormer) in the Vision tab: every pixel's class as a coloured mask
blended over the frame (opacity slider), a legend of the classes present with their share of the
image (click one to highlight it), the class and its probability under the pointer, and — inside
the model — the Mix Transformer's four encoder scales side by side and an uncertainty map (the
entropy of the class probabilities: high along boundaries and on things the model does not know).
"""
from __future__ import annotations

import numpy as np
from PySide6.QtCore import QObject, QPointF, QRectF, QSettings
from PySide6.QtGui import QPainter
from PySide6.QtWidgets import QComboBox, QGroupBox, QHBoxLayout, QLabel, QVBoxLayout

from engine.types.vision import SegmentationOptions, SegmentationResult
from gui.common.painting import heatmap_image
from gui.core.settings import as_bool
from gui.vision.presenters.base import DensePresenter
from gui.vision.widgets.dense_panel import Legend, MapRow, inside_group, label_image, opacity_slider

SHOW = ("Classes", "Uncertainty")


def image_point(pos: QPointF, target: QRectF, image_size: tuple[int, int]) -> tuple[int, int] | None:
    """The image pixel (x, y) under ``pos`` when the frame fills ``target``, or None outside it."""
    if not target.contains(pos) or target.width() <= 0 or target.height() <= 0:
        return None
    h, w = image_size
    x = int((pos.x() - target.left()) / target.width() * w)
    y = int((pos.y() - target.top()) / target.height() * h)
    return min(max(x, 0), w - 1), min(max(y, 0), h - 1)


class Presenter(DensePresenter):
    task = "semantic-segmentation"

    def __init__(self, settings: QSettings, parent: QObject | None = None) -> None:
        super().__init__(settings, parent)
        self._mask = None  # (result, highlight) -> QImage cache
        self._mask_key = None

        self.opacity_slider = opacity_slider("Opacity of the class mask over the frame")
        self.show_combo = QComboBox()
        self.show_combo.addItems(SHOW)
        self.show_combo.setToolTip("Draw the classes, or the model's uncertainty (needs 'Inside the model')")
        row = QHBoxLayout(self.toolbar)
        row.setContentsMargins(0, 0, 0, 0)
        row.addWidget(QLabel("Show"))
        row.addWidget(self.show_combo)
        row.addWidget(QLabel("Mask"))
        row.addWidget(self.opacity_slider)

        group = QGroupBox("Classes in view")
        self.legend = Legend()
        self.summary = QLabel("No result yet.")
        self.summary.setWordWrap(True)
        lay = QVBoxLayout(group)
        lay.addWidget(self.summary)
        lay.addWidget(self.legend, 1)
        self.panel_layout.addWidget(group, 1)

        self.scales = MapRow()
        inside, self.inside_check, self.inside_label = inside_group(
            "Show scales and uncertainty", "Also return the Mix Transformer's four feature maps and the per-pixel "
            "entropy of the class probabilities", self.scales)
        self.panel_layout.addWidget(inside)

        self.opacity_slider.setValue(int(settings.value(self.key("opacity"), 55)))
        i = self.show_combo.findText(str(settings.value(self.key("show"), SHOW[0])))
        self.show_combo.setCurrentIndex(max(i, 0))
        self.inside_check.setChecked(as_bool(settings.value(self.key("internals"), True)))
        self.opacity_slider.valueChanged.connect(self._on_opacity)
        self.show_combo.currentIndexChanged.connect(self._on_show)
        self.inside_check.toggled.connect(self._on_inside)
        self.legend.highlighted.connect(lambda _id: self.repaint.emit())
        self._describe()

    # ------------------------------------------------------------------ options

    def showing(self) -> str:
        return self.show_combo.currentText()

    def options(self) -> SegmentationOptions:
        return SegmentationOptions(internals=self.inside_check.isChecked())

    def _on_show(self, *_args) -> None:
        self.settings.setValue(self.key("show"), self.showing())
        self._describe()
        self.repaint.emit()

    def save_settings(self) -> None:
        self.settings.setValue(self.key("opacity"), self.opacity_slider.value())
        self.settings.setValue(self.key("show"), self.showing())
        self.settings.setValue(self.key("internals"), self.inside_check.isChecked())

    # ------------------------------------------------------------------ results

    def set_result(self, result: SegmentationResult | None) -> None:
        self.result = result
        if result is None:
            self.legend.clear()
            self.summary.setText("No result yet.")
        else:
            h, w = result.image_size
            total = max(h * w, 1)
            self.legend.set_classes(list(result.labels), [int(i) for i in result.label_ids],
                                    [int(n) / total for n in result.pixel_counts], result.colors)
            self.summary.setText(f"{len(result.label_ids)} of {len(result.class_names)} classes in this "
                                 f"{w}×{h} image.")
            if result.internals is not None:
                s = result.internals.scales
                fractions = ("1/4", "1/8", "1/16", "1/32")
                self.scales.set_maps([(fractions[i] if i < 4 else f"stage {i + 1}", m) for i, m in enumerate(s)])
        self.scales.setVisible(result is not None and result.internals is not None)
        self._describe()
        self.repaint.emit()

    def clear(self) -> None:
        self.set_result(None)

    def _describe(self) -> None:
        r = self.result
        if not self.inside_check.isChecked():
            text = "Turn this on to see the encoder's feature maps and where the model is unsure."
        elif r is None or r.internals is None:
            text = "Waiting for a result with the model's internals…"
        else:
            ih, iw = r.internals.input_size
            text = (f"The model saw the frame at <b>{iw}×{ih}</b>. Its Mix Transformer encoder builds features "
                    "at <b>1/4, 1/8, 1/16 and 1/32</b> of that (above: each map's strength); the all-MLP decoder "
                    "merges them at 1/4 into one score per class and cell. <b>Uncertainty</b> (Show) is the "
                    "entropy of those scores: bright where classes compete.")
        self.inside_label.setText(text)

    def uncertainty(self) -> np.ndarray | None:
        r = self.result
        if r is None or r.internals is None:
            return None
        return r.internals.maps.get("uncertainty")

    def mask_image(self):
        """The class mask as an image (cached per result and highlighted class)."""
        key = (id(self.result), self.legend.highlight)
        if self._mask_key != key:
            r = self.result
            self._mask = label_image(r.label_map, r.colors, self.legend.highlight)
            self._mask_key = key
        return self._mask

    # ------------------------------------------------------------------ painting

    def paint(self, p: QPainter, target: QRectF, scale: float = 1.0) -> None:
        r = self.result
        if r is None:
            return
        p.save()
        p.setClipRect(target)
        entropy = self.uncertainty() if self.showing() == "Uncertainty" else None
        if entropy is not None:
            p.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform, True)
            p.drawImage(target, heatmap_image(entropy, max_alpha=230))
        elif self.opacity() > 0:
            p.setOpacity(self.opacity())
            p.drawImage(target, self.mask_image())
        p.restore()

    def hover_text(self, pos: QPointF, target: QRectF) -> str:
        r = self.result
        if r is None:
            return ""
        at = image_point(pos, target, r.image_size)
        if at is None:
            return ""
        label_id, probability = r.label_at(*at)
        name = r.class_names[label_id] if 0 <= label_id < len(r.class_names) else str(label_id)
        text = f"{name} ({100 * probability:.0f}%) at ({at[0]}, {at[1]})"
        entropy = self.uncertainty()
        if entropy is not None:
            h, w = r.image_size
            eh, ew = entropy.shape
            text += f" · uncertainty {float(entropy[min(at[1] * eh // h, eh - 1), min(at[0] * ew // w, ew - 1)]):.2f}"
        return text

    def snapshot(self) -> dict:
        r = self.result
        out = r.to_json() if r is not None else {"labels": []}
        out["mask_opacity"] = self.opacity()
        out["showing"] = self.showing()
        return out
