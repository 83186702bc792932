"""Panoptic, instance and semantic segmentation (Mask2Former) in the Vision tab: each segment in
a colour of its own with an outline and its class at its centre (opacity slider), things and stuff
told apart in panoptic mode, the segment under the pointer with its score; inside the model, the
object queries ranked by their best class score (each predicts one mask) and, for the chosen
query, its mask over the frame and the region its masked attention could see at each decoder layer.
"""
from __future__ import annotations

import numpy as np
from PySide6.QtCore import QObject, QPointF, QRectF, QSettings, Qt
from PySide6.QtGui import QColor, QFont, QFontMetricsF, QPainter
from PySide6.QtWidgets import QComboBox, QGroupBox, QHBoxLayout, QLabel, QVBoxLayout

from engine.types.vision import UniversalSegmentationOptions, UniversalSegmentationResult
from gui.common.painting import heatmap_image
from gui.core.settings import as_bool
from gui.vision.presenters.base import DensePresenter
from gui.vision.presenters.semantic_segmentation import image_point
from gui.vision.widgets.dense_panel import Legend, MapRow, inside_group, opacity_slider, rgba_image, shrink

MODES = ("panoptic", "instance", "semantic")
TOP_QUERIES = 8  # queries listed (best class score first)


def segment_picture(result: UniversalSegmentationResult) -> tuple[np.ndarray, np.ndarray]:
    """(h, w, 4) RGBA of the segments (shrunk for display; unassigned pixels clear) with a white
    outline where neighbouring pixels belong to different segments, and the shrunk id map."""
    ids = shrink(result.segment_map)
    rgba = np.zeros((*ids.shape, 4), np.uint8)
    colors = result.segment_colors()
    for i, s in enumerate(result.segments):
        inside = ids == s.id
        rgba[inside, :3] = colors[i]
        rgba[inside, 3] = 255
    edge = np.zeros(ids.shape, bool)
    edge[:, 1:] |= ids[:, 1:] != ids[:, :-1]
    edge[1:, :] |= ids[1:, :] != ids[:-1, :]
    rgba[edge] = (255, 255, 255, 255)
    return rgba, ids


class Presenter(DensePresenter):
    task = "universal-segmentation"

    def __init__(self, settings: QSettings, parent: QObject | None = None) -> None:
        super().__init__(settings, parent)
        self._picture = None
        self._picture_key = None
        self._centres: list[tuple[str, float, float]] = []  # (label, x, y) in image fractions

        self.mode_combo = QComboBox()
        self.mode_combo.addItems(MODES)
        self.mode_combo.setToolTip("Panoptic: every pixel a thing or stuff segment; instance: countable objects; "
                                   "semantic: a class per pixel")
        self.opacity_slider = opacity_slider("Opacity of the segments over the frame")
        row = QHBoxLayout(self.toolbar)
        row.setContentsMargins(0, 0, 0, 0)
        for w in (QLabel("Mode"), self.mode_combo, QLabel("Segments"), self.opacity_slider):
            row.addWidget(w)

        group = QGroupBox("Segments")
        self.summary = QLabel("No result yet.")
        self.summary.setWordWrap(True)
        self.segment_list = Legend()
        self.segment_list.setToolTip("Click a segment's class to highlight its segments")
        lay = QVBoxLayout(group)
        lay.addWidget(self.summary)
        lay.addWidget(self.segment_list, 1)
        self.panel_layout.addWidget(group, 1)

        self.query_combo = QComboBox()
        self.query_combo.setToolTip("The segments, or an object query (best class score first) whose mask is then "
                                    "drawn over the frame and whose masked attention is shown below")
        self.layers = MapRow()
        inside, self.inside_check, self.inside_label = inside_group(
            "Show the object queries", "Also return every query's mask, its class scores and where its masked "
            "attention looked at each decoder layer", self.query_combo, self.layers)
        self.panel_layout.addWidget(inside)

        i = self.mode_combo.findText(str(settings.value(self.key("mode"), "panoptic")))
        self.mode_combo.setCurrentIndex(max(i, 0))
        self.opacity_slider.setValue(int(settings.value(self.key("opacity"), 60)))
        self.inside_check.setChecked(as_bool(settings.value(self.key("internals"), True)))
        self.mode_combo.currentIndexChanged.connect(self._on_mode)
        self.opacity_slider.valueChanged.connect(self._on_opacity)
        self.inside_check.toggled.connect(self._on_inside)
        self._wanted_query: int | None = None
        self.query_combo.activated.connect(self._on_query_chosen)
        self.segment_list.highlighted.connect(lambda _id: self._repaint_all())
        self._describe()

    # ------------------------------------------------------------------ options

    def mode(self) -> str:
        return self.mode_combo.currentText()

    def options(self) -> UniversalSegmentationOptions:
        return UniversalSegmentationOptions(mode=self.mode(), internals=self.inside_check.isChecked())

    def _on_mode(self, *_args) -> None:
        self.settings.setValue(self.key("mode"), self.mode())
        self.optionsChanged.emit()

    def save_settings(self) -> None:
        self.settings.setValue(self.key("mode"), self.mode())
        self.settings.setValue(self.key("opacity"), self.opacity_slider.value())
        self.settings.setValue(self.key("internals"), self.inside_check.isChecked())

    # ------------------------------------------------------------------ results

    def set_result(self, result: UniversalSegmentationResult | None) -> None:
        self.result = result
        self._picture_key = None
        self.segment_list.clear()
        self._centres = []
        if result is None:
            self.summary.setText("No result yet.")
        else:
            h, w = result.image_size
            total = max(h * w, 1)
            by_label: dict[int, int] = {}
            for s in result.segments:
                by_label[s.label_id] = by_label.get(s.label_id, 0) + int(s.area)
            names = [f"{result.class_names[i] if 0 <= i < len(result.class_names) else i}" for i in by_label]
            self.segment_list.set_classes(names, list(by_label), [a / total for a in by_label.values()], result.colors)
            things = sum(1 for s in result.segments if s.is_thing)
            stuff = sum(1 for s in result.segments if s.is_thing is False)
            kinds = f" ({things} things, {stuff} stuff)" if result.mode == "panoptic" and things + stuff else ""
            self.summary.setText(f"{len(result.segments)} segments{kinds}, {result.mode} mode.")
            ids = shrink(result.segment_map)
            for s in result.segments:
                ys, xs = np.nonzero(ids == s.id)
                if len(xs):
                    self._centres.append((s.label, (xs.mean() + 0.5) / ids.shape[1], (ys.mean() + 0.5) / ids.shape[0]))
        self._sync_queries()
        self._describe()
        self.repaint.emit()

    def clear(self) -> None:
        self.set_result(None)

    def _repaint_all(self) -> None:
        self._picture_key = None
        self.repaint.emit()

    def ranked_queries(self) -> list[tuple[int, int, float]]:
        """(query, label id, score) of the best-scoring queries (their top class other than "no object")."""
        r = self.result
        if r is None or r.internals is None:
            return []
        scores = r.internals.class_scores[:, :-1]
        best = scores.argmax(1)
        top = scores.max(1)
        order = np.argsort(-top)[:TOP_QUERIES]
        return [(int(q), int(best[q]), float(top[q])) for q in order]

    def _sync_queries(self) -> None:
        self.query_combo.clear()
        r = self.result
        if r is not None and r.internals is not None:
            self.query_combo.addItem("the segments (pick a query to see its mask)", None)
        for q, label_id, score in self.ranked_queries():
            name = r.class_names[label_id] if 0 <= label_id < len(r.class_names) else str(label_id)
            self.query_combo.addItem(f"query {q}: {name} {score:.2f}", q)
        i = self.query_combo.findData(self._wanted_query) if self._wanted_query is not None else -1
        if i >= 0:  # the query the user chose stays chosen across frames while it ranks among the top
            self.query_combo.setCurrentIndex(i)
        self.query_combo.setEnabled(self.query_combo.count() > 1)
        self._show_query()

    def _on_query_chosen(self, _index: int) -> None:
        self._wanted_query = self.chosen_query()
        self._show_query()

    def chosen_query(self) -> int | None:
        q = self.query_combo.currentData()
        return int(q) if q is not None else None

    def _show_query(self) -> None:
        r, q = self.result, self.chosen_query()
        if r is None or r.internals is None or q is None:
            self.layers.set_maps([])
            self.layers.setVisible(False)
        else:
            maps = [(f"layer {i + 1}", m[q].astype(np.float32)) for i, m in enumerate(r.internals.attention_masks)]
            self.layers.set_maps(maps, name="gray", columns=min(4, max(1, len(maps))))
            self.layers.setVisible(True)
        self.repaint.emit()

    def _describe(self) -> None:
        r = self.result
        if not self.inside_check.isChecked():
            text = "Turn this on to see the object queries: each predicts one mask and one class."
        elif r is None or r.internals is None:
            text = "Waiting for a result with the model's internals…"
        else:
            q = len(r.internals.class_scores)
            text = (f"Mask2Former's <b>{q} object queries</b> each predict a class and a mask; pick one to draw its "
                    "mask over the frame. Its decoder's <b>masked attention</b> lets each query look only inside the "
                    "mask the previous layer predicted: white above, layer by layer.")
        self.inside_label.setText(text)

    def picture(self):
        key = (id(self.result), self.segment_list.highlight)
        if self._picture_key != key:
            rgba, ids = segment_picture(self.result)
            hl = self.segment_list.highlight
            if hl is not None:
                keep = np.isin(ids, [s.id for s in self.result.segments if s.label_id == hl])
                rgba[~keep, 3] = rgba[~keep, 3] // 6
            self._picture = rgba_image(rgba[..., :3], rgba[..., 3])
            self._picture_key = key
        return self._picture

    # ------------------------------------------------------------------ painting

    def paint(self, p: QPainter, target: QRectF, scale: float = 1.0) -> None:
        r = self.result
        if r is None:
            return
        p.save()
        p.setClipRect(target)
        q = self.chosen_query() if self.inside_check.isChecked() else None
        if q is not None and r.internals is not None:
            ih, iw = r.internals.input_size
            vh, vw = r.internals.valid_size
            logits = r.internals.mask_logits[q]
            mh, mw = logits.shape
            seen = logits[: max(1, round(mh * vh / ih)), : max(1, round(mw * vw / iw))]  # the image, not the padding
            p.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform, True)
            p.drawImage(target, heatmap_image(1.0 / (1.0 + np.exp(-seen)), max_alpha=220))
        elif self.opacity() > 0:
            p.setOpacity(self.opacity())
            p.drawImage(target, self.picture())
            p.setOpacity(1.0)
            font = QFont(p.font())
            font.setPointSizeF(max(7.0, font.pointSizeF() * scale))
            p.setFont(font)
            fm = QFontMetricsF(font)
            for label, fx, fy in self._centres:
                x, y = target.left() + fx * target.width(), target.top() + fy * target.height()
                box = fm.boundingRect(label).adjusted(-3 * scale, -1 * scale, 3 * scale, 1 * scale)
                box.moveCenter(QPointF(x, y))
                p.fillRect(box, QColor(0, 0, 0, 150))
                p.setPen(QColor(255, 255, 255))
                p.drawText(box, Qt.AlignmentFlag.AlignCenter, label)
        p.restore()

    def hover_text(self, pos: QPointF, target: QRectF) -> str:
        r = self.result
        if r is None:
            return ""
        at = image_point(pos, target, r.image_size)
        if at is None:
            return ""
        s = r.segment_at(*at)
        if s is None:
            return f"no segment at ({at[0]}, {at[1]})"
        kind = {True: " · thing", False: " · stuff"}.get(s.is_thing, "")
        return f"{s.label} {s.score:.2f}{kind} (segment {s.id}, {s.area} px)"

    def snapshot(self) -> dict:
        r = self.result
        out = r.to_json() if r is not None else {"segments": []}
        out.update(mode=self.mode(), opacity=self.opacity())
        return out
