"""Depth estimation (GLPN) in the Vision tab: depth in metres for every pixel, colour-mapped over
the frame (colormap, opacity, near/far range automatic or fixed) and beside it in the side panel,
the depth under the pointer, saving the depth map (16-bit PNG, metres x 256, or .npy float32
metres), and — inside the model — the encoder's four scales and the Selective Feature Fusion
attention maps (where the decoder trusts the fine, local features over the coarse, global ones).
"""
from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QObject, QPointF, QRectF, QSettings, QSize, Qt
from PySide6.QtGui import QPainter, QPixmap
from PySide6.QtWidgets import (QComboBox, QDoubleSpinBox, QFileDialog, QGroupBox, QHBoxLayout, QLabel, QPushButton,
                               QVBoxLayout)

from engine.errors import EngineError
from engine.io import colormap
from engine.types.vision import DepthOptions, DepthResult
from gui.core.settings import as_bool
from gui.vision.presenters.base import DensePresenter
from gui.vision.presenters.semantic_segmentation import image_point
from gui.vision.widgets.dense_panel import MapRow, inside_group, map_image, opacity_slider

RANGES = ("Auto", "Fixed")
PREVIEW_W = 190


class Presenter(DensePresenter):
    task = "depth-estimation"

    def __init__(self, settings: QSettings, parent: QObject | None = None) -> None:
        super().__init__(settings, parent)
        self._image = None
        self._image_key = None
        self.last_saved: Path | None = None

        self.cmap_combo = QComboBox()
        self.cmap_combo.addItems(colormap.COLORMAPS)
        self.cmap_combo.setToolTip("Colormap: near is bright, far is dark")
        self.opacity_slider = opacity_slider("Opacity of the depth map over the frame (100%: the depth map only)", 100)
        self.range_combo = QComboBox()
        self.range_combo.addItems(RANGES)
        self.range_combo.setToolTip("Auto: each frame's nearest and farthest point; Fixed: the metres you set")
        self.near_spin, self.far_spin = QDoubleSpinBox(), QDoubleSpinBox()
        for spin, tip in ((self.near_spin, "Near end of the colormap, metres"),
                          (self.far_spin, "Far end of the colormap, metres")):
            spin.setRange(0.0, 1000.0)
            spin.setDecimals(1)
            spin.setSingleStep(0.5)
            spin.setSuffix(" m")
            spin.setToolTip(tip)
        row = QHBoxLayout(self.toolbar)
        row.setContentsMargins(0, 0, 0, 0)
        for w in (QLabel("Colormap"), self.cmap_combo, QLabel("Opacity"), self.opacity_slider, QLabel("Range"),
                  self.range_combo, self.near_spin, self.far_spin):
            row.addWidget(w)

        group = QGroupBox("Depth")
        self.preview = QLabel("No result yet.")
        self.preview.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.preview.setMinimumHeight(120)
        self.stats = QLabel("")
        self.stats.setWordWrap(True)
        self.save_button = QPushButton("Save depth map…")
        self.save_button.setToolTip("16-bit PNG (metres × 256, the KITTI convention) or .npy (float32 metres), "
                                    "at the image's size")
        self.save_button.setEnabled(False)
        lay = QVBoxLayout(group)
        lay.addWidget(self.preview)
        lay.addWidget(self.stats)
        lay.addWidget(self.save_button)
        self.panel_layout.addWidget(group)

        self.scales = MapRow()
        self.fusion = MapRow()
        inside, self.inside_check, self.inside_label = inside_group(
            "Show scales and fusion maps", "Also return the encoder's four feature maps and the decoder's Selective "
            "Feature Fusion attention", self.scales, self.fusion)
        self.panel_layout.addWidget(inside)
        self.panel_layout.addStretch(1)

        i = self.cmap_combo.findText(str(settings.value(self.key("colormap"), colormap.DEFAULT)))
        self.cmap_combo.setCurrentIndex(max(i, 0))
        self.opacity_slider.setValue(int(settings.value(self.key("opacity"), 70)))
        i = self.range_combo.findText(str(settings.value(self.key("range"), RANGES[0])))
        self.range_combo.setCurrentIndex(max(i, 0))
        self.near_spin.setValue(float(settings.value(self.key("near"), 0.0)))
        self.far_spin.setValue(float(settings.value(self.key("far"), 10.0)))
        self.inside_check.setChecked(as_bool(settings.value(self.key("internals"), True)))
        self._sync_range_widgets()

        self.cmap_combo.currentIndexChanged.connect(self._on_display_changed)
        self.opacity_slider.valueChanged.connect(self._on_display_changed)
        self.range_combo.currentIndexChanged.connect(self._on_display_changed)
        self.near_spin.valueChanged.connect(self._on_display_changed)
        self.far_spin.valueChanged.connect(self._on_display_changed)
        self.inside_check.toggled.connect(self._on_inside)
        self.save_button.clicked.connect(self._save_dialog)
        self._describe()

    # ------------------------------------------------------------------ options

    def options(self) -> DepthOptions:
        return DepthOptions(internals=self.inside_check.isChecked())

    def colormap_name(self) -> str:
        return self.cmap_combo.currentText()

    def depth_range(self) -> tuple[float | None, float | None]:
        """(near, far) in metres for the colormap's ends; (None, None) is each frame's own range."""
        if self.range_combo.currentText() == "Fixed":
            near, far = self.near_spin.value(), self.far_spin.value()
            return (near, far) if far > near else (near, near + 0.1)
        return None, None

    def _sync_range_widgets(self) -> None:
        fixed = self.range_combo.currentText() == "Fixed"
        self.near_spin.setEnabled(fixed)
        self.far_spin.setEnabled(fixed)

    def _on_display_changed(self, *_args) -> None:
        self._sync_range_widgets()
        self.save_settings()
        self._image_key = None
        self._update_panel()
        self.repaint.emit()

    def save_settings(self) -> None:
        self.settings.setValue(self.key("colormap"), self.colormap_name())
        self.settings.setValue(self.key("opacity"), self.opacity_slider.value())
        self.settings.setValue(self.key("range"), self.range_combo.currentText())
        self.settings.setValue(self.key("near"), self.near_spin.value())
        self.settings.setValue(self.key("far"), self.far_spin.value())
        self.settings.setValue(self.key("internals"), self.inside_check.isChecked())

    # ------------------------------------------------------------------ results

    def set_result(self, result: DepthResult | None) -> None:
        self.result = result
        self._image_key = None
        self.save_button.setEnabled(result is not None)
        if result is not None and result.internals is not None:
            fractions = ("1/4", "1/8", "1/16", "1/32")
            self.scales.set_maps([(fractions[i] if i < 4 else f"stage {i + 1}", m)
                                  for i, m in enumerate(result.internals.scales)])
            maps = result.internals.maps  # "fusion 1/16 local", "fusion 1/16 global", ...: locals in a row, globals under
            ordered = sorted(maps.items(), key=lambda kv: ("global" in kv[0], list(maps).index(kv[0])))
            self.fusion.set_maps([(name.removeprefix("fusion "), m) for name, m in ordered], name="magma",
                                 columns=max(1, len(ordered) // 2))
        self.scales.setVisible(result is not None and result.internals is not None)
        self.fusion.setVisible(result is not None and result.internals is not None)
        self._update_panel()
        self._describe()
        self.repaint.emit()

    def clear(self) -> None:
        self.set_result(None)

    def depth_image(self):
        """The depth map in the chosen colormap and range (cached per result and display setting)."""
        near, far = self.depth_range()
        key = (id(self.result), self.colormap_name(), near, far)
        if self._image_key != key:
            self._image = map_image(self.result.depth, self.colormap_name(), near, far, reverse=True)
            self._image_key = key
        return self._image

    def _update_panel(self) -> None:
        r = self.result
        if r is None:
            self.preview.setPixmap(QPixmap())
            self.preview.setText("No result yet.")
            self.stats.setText("")
            return
        pixmap = QPixmap.fromImage(self.depth_image()).scaled(
            QSize(PREVIEW_W, PREVIEW_W), Qt.AspectRatioMode.KeepAspectRatio, Qt.TransformationMode.SmoothTransformation)
        self.preview.setPixmap(pixmap)
        d = r.depth
        near, far = self.depth_range()
        span = "each frame's own range" if near is None else f"fixed {near:.1f}–{far:.1f} m"
        self.stats.setText(f"nearest {float(d.min()):.2f} m · farthest {float(d.max()):.2f} m · mean "
                           f"{float(d.mean()):.2f} m (the model's range: up to {r.max_depth:g} m). Colours: {span}, "
                           "bright is near.")

    def _describe(self) -> None:
        r = self.result
        if not self.inside_check.isChecked():
            text = "Turn this on to see the encoder's feature maps and how the decoder fuses them."
        elif r is None or r.internals is None:
            text = "Waiting for a result with the model's internals…"
        else:
            ih, iw = r.internals.input_size
            text = (f"GLPN saw the frame at <b>{iw}×{ih}</b>. Its SegFormer encoder gives features at <b>1/4 … "
                    "1/32</b> (first row). The decoder climbs back from 1/32; at each step a Selective Feature "
                    "Fusion map (second row) decides, per pixel, how much to take from the <b>local</b> (fine, "
                    "encoder) and the <b>global</b> (coarse, decoder) features.")
        self.inside_label.setText(text)

    # ------------------------------------------------------------------ saving

    def save_depth(self, path: str | Path) -> Path:
        """Write the shown result's depth map: .png (16-bit, metres x 256) or .npy (float32 metres)."""
        from engine.io.dense import write_depth
        if self.result is None:
            raise ValueError("there is no depth map yet")
        written = write_depth(Path(path), self.result.depth)
        self.last_saved = Path(written) if written else Path(path)
        return self.last_saved

    def _save_dialog(self) -> None:
        if self.result is None:
            return
        start = str(self.settings.value(self.key("save_dir"), str(Path.home())))
        path, chosen = QFileDialog.getSaveFileName(
            self.preview.window(), "Save the depth map", str(Path(start) / "depth.png"),
            "16-bit PNG, metres × 256 (*.png);;NumPy float32 metres (*.npy)")
        if not path:
            return
        p = Path(path)
        if p.suffix.lower() not in (".png", ".npy"):
            p = p.with_suffix(".npy" if "npy" in chosen else ".png")
        self.settings.setValue(self.key("save_dir"), str(p.parent))
        try:
            saved = self.save_depth(p)
        except (OSError, ValueError, EngineError) as exc:
            self.problem.emit(f"Could not save the depth map to {p}: {exc}")
            return
        self.stats.setText(f"Saved the depth map to {saved}.")

    # ------------------------------------------------------------------ painting

    def paint(self, p: QPainter, target: QRectF, scale: float = 1.0) -> None:
        if self.result is None or self.opacity() <= 0:
            return
        p.save()
        p.setClipRect(target)
        p.setOpacity(self.opacity())
        p.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform, True)
        p.drawImage(target, self.depth_image())
        p.restore()

    def hover_text(self, pos: QPointF, target: QRectF) -> str:
        r = self.result
        if r is None:
            return ""
        at = image_point(pos, target, r.image_size)
        if at is None:
            return ""
        return f"{r.depth_at(*at):.2f} m at ({at[0]}, {at[1]})"

    def snapshot(self) -> dict:
        r = self.result
        out = r.to_json() if r is not None else {}
        near, far = self.depth_range()
        out.update(colormap=self.colormap_name(), opacity=self.opacity(), range=[near, far])
        return out
