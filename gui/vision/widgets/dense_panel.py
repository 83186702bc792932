"""Side-panel pieces of the dense tasks (segmentation, depth): a row of small maps (the encoder's
four scales, fusion attention), a legend of classes with their share of the image, and the
conversions from result arrays to images that can be drawn over a frame."""
from __future__ import annotations

import numpy as np
from PySide6.QtCore import QSize, Qt, Signal
from PySide6.QtGui import QColor, QIcon, QImage, QPixmap
from PySide6.QtWidgets import (QCheckBox, QGridLayout, QGroupBox, QLabel, QListWidget, QListWidgetItem, QSlider,
                               QVBoxLayout, QWidget)

from engine.io import colormap

#: the longest side of an overlay built from a full-size result map: more is not visible on a screen,
#: and a 12000x9000 image's map would be 300 MB as RGBA
MAX_OVERLAY_SIDE = 2048
THUMB = 48  # px, the side of one thumbnail in a MapRow (four fit the narrowest side panel)


def shrink(values: np.ndarray, max_side: int = MAX_OVERLAY_SIDE) -> np.ndarray:
    """Every k-th row and column (nearest neighbour) so that no side exceeds ``max_side``."""
    step = max(1, -(-max(values.shape[:2]) // max_side))
    return values[::step, ::step] if step > 1 else values


def rgba_image(rgb: np.ndarray, alpha: int | np.ndarray = 255) -> QImage:
    """(H, W, 3) uint8 (+ a scalar or (H, W) alpha) -> an RGBA QImage (a copy)."""
    h, w = rgb.shape[:2]
    out = np.empty((h, w, 4), np.uint8)
    out[..., :3] = rgb
    out[..., 3] = alpha
    return QImage(out.data, w, h, out.strides[0], QImage.Format.Format_RGBA8888).copy()


def label_image(label_map: np.ndarray, colors: np.ndarray, highlight: int | None = None) -> QImage:
    """A label map in its classes' colours; with ``highlight``, the other classes are see-through."""
    labels = shrink(label_map)
    rgb = np.asarray(colors, np.uint8)[labels]
    alpha: int | np.ndarray = 255
    if highlight is not None:
        alpha = np.where(labels == highlight, 255, 40).astype(np.uint8)
    return rgba_image(rgb, alpha)


def map_image(values: np.ndarray, name: str = colormap.DEFAULT, low: float | None = None,
              high: float | None = None, reverse: bool = False) -> QImage:
    """A float map through a colormap, opaque."""
    return rgba_image(colormap.apply(shrink(values), name, low, high, reverse))


class MapRow(QWidget):
    """Small maps side by side, each with its title under it (e.g. the four encoder scales)."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.grid = QGridLayout(self)
        self.grid.setContentsMargins(0, 0, 0, 0)
        self.grid.setHorizontalSpacing(4)
        self.titles: list[str] = []

    def set_maps(self, maps: list[tuple[str, np.ndarray]], name: str = "viridis", columns: int = 4) -> None:
        """``maps``: (title, (h, w) float array) pairs; each is drawn min-to-max in ``name``."""
        while self.grid.count():
            w = self.grid.takeAt(0).widget()
            if w is not None:
                w.deleteLater()
        self.titles = [title for title, _ in maps]
        for i, (title, values) in enumerate(maps):
            image = map_image(values, name)
            picture = QLabel()
            pixmap = QPixmap.fromImage(image).scaled(
                QSize(THUMB, THUMB), Qt.AspectRatioMode.KeepAspectRatio, Qt.TransformationMode.FastTransformation)
            picture.setPixmap(pixmap)
            picture.setFixedSize(pixmap.size())  # never squeezed by a crowded panel
            picture.setToolTip(f"{title}: {values.shape[1]}×{values.shape[0]}")
            caption = QLabel(title)
            caption.setAlignment(Qt.AlignmentFlag.AlignHCenter)
            row, col = divmod(i, columns)
            self.grid.addWidget(picture, 2 * row, col, Qt.AlignmentFlag.AlignHCenter)
            self.grid.addWidget(caption, 2 * row + 1, col)


class Legend(QListWidget):
    """The classes present, most pixels first: a colour swatch, the name and the share of the
    image. Clicking a class highlights it over the frame (clicking it again shows all)."""

    highlighted = Signal(object)  # label id, or None for all

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setIconSize(QSize(14, 14))
        self.highlight: int | None = None
        self.itemClicked.connect(self._clicked)
        self.setToolTip("Click a class to highlight it over the frame; click it again to show all classes")

    def set_classes(self, names: list[str], ids: list[int], shares: list[float], colors: np.ndarray) -> None:
        self.clear()
        for name, label_id, share in zip(names, ids, shares):
            swatch = QPixmap(14, 14)
            r, g, b = (int(v) for v in colors[label_id])
            swatch.fill(QColor(r, g, b))
            item = QListWidgetItem(QIcon(swatch), f"{name}  {100 * share:.1f}%")
            item.setData(Qt.ItemDataRole.UserRole, int(label_id))
            self.addItem(item)
            if label_id == self.highlight:
                item.setSelected(True)

    def _clicked(self, item: QListWidgetItem) -> None:
        label_id = int(item.data(Qt.ItemDataRole.UserRole))
        self.highlight = None if self.highlight == label_id else label_id
        if self.highlight is None:
            self.clearSelection()
        self.highlighted.emit(self.highlight)


def explained(text: str) -> QLabel:
    label = QLabel(text)
    label.setWordWrap(True)
    label.setTextFormat(Qt.TextFormat.RichText)
    return label


def column(*widgets: QWidget) -> QWidget:
    box = QWidget()
    lay = QVBoxLayout(box)
    lay.setContentsMargins(0, 0, 0, 0)
    for w in widgets:
        lay.addWidget(w)
    return box


def opacity_slider(tip: str, width: int = 110) -> QSlider:
    """A 0-100 % opacity slider for a toolbar."""
    slider = QSlider(Qt.Orientation.Horizontal)
    slider.setRange(0, 100)
    slider.setFixedWidth(width)
    slider.setToolTip(tip)
    return slider


def inside_group(check_text: str, tip: str, *widgets: QWidget) -> tuple[QGroupBox, QCheckBox, QLabel]:
    """The "Inside the model" box: a checkbox asking for the internals, ``widgets``, an explanation."""
    group = QGroupBox("Inside the model")
    check = QCheckBox(check_text)
    check.setToolTip(tip)
    label = explained("")
    lay = QVBoxLayout(group)
    for w in (check, *widgets, label):
        lay.addWidget(w)
    return group, check, label
