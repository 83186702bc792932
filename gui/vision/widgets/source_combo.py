"""The Vision tab's source chooser: the cameras found (``available_cameras``), "Open video…",
"Open image…" and the open file.

Item data: ``("camera", index)``, ``("open", "video" | "image")`` or ``("file", path)``; the
file, when there is one, is the first item. ``ask_for_file`` is what "Open video…" and
"Open image…" show.
"""
from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QComboBox, QFileDialog, QWidget

from gui.sources.video import IMAGE_SUFFIXES, VIDEO_SUFFIXES, available_cameras

VIDEO_FILTER = "Videos (" + " ".join(f"*{s}" for s in sorted(VIDEO_SUFFIXES)) + ")"
IMAGE_FILTER = "Images (" + " ".join(f"*{s}" for s in sorted(IMAGE_SUFFIXES)) + ")"


class SourceCombo(QComboBox):
    def __init__(self, parent: QWidget | None = None, cameras: list[int] | None = None) -> None:
        super().__init__(parent)
        for i in (available_cameras() if cameras is None else cameras):
            self.addItem(f"Camera {i}", ("camera", i))
        self.insertSeparator(self.count())
        self.addItem("Open video…", ("open", "video"))
        self.addItem("Open image…", ("open", "image"))
        self.setToolTip("Where frames come from (you can also drop a file on the window)")

    def find(self, data: tuple) -> int:
        """The index of the item whose data equals ``data`` (by value: QComboBox.findData compares
        Python tuples by identity), -1 if none."""
        for i in range(self.count()):
            item = self.itemData(i)
            if item is not None and tuple(item) == tuple(data):
                return i
        return -1

    def has_file(self) -> bool:
        return bool(self.itemData(0)) and self.itemData(0)[0] == "file"

    def show_file(self, name: str, path) -> None:
        """Select the file at ``path`` (shown as ``name``), replacing the file listed before."""
        data = ("file", str(path))
        i = self.find(data)
        if i < 0:
            if self.has_file():
                self.removeItem(0)
            self.insertItem(0, name, data)
            self.setItemData(0, str(path), Qt.ItemDataRole.ToolTipRole)
            i = 0
        self.setCurrentIndex(i)

    def camera_index(self, camera: int) -> int:
        """The item index of camera ``camera``, -1 if not listed."""
        return self.find(("camera", camera))


def ask_for_file(parent: QWidget, kind: str, start_dir: str) -> str:
    """Ask for a video (``kind`` "video") or an image to open, starting in ``start_dir``; "" if cancelled."""
    title, flt = ("Open video", VIDEO_FILTER) if kind == "video" else ("Open image", IMAGE_FILTER)
    path, _ = QFileDialog.getOpenFileName(parent, title, start_dir, f"{flt};;All files (*)")
    return path
