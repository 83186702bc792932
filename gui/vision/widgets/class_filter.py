"""The "Classes" group: every class seen so far, with its box colour and a tick to show or hide it."""
from __future__ import annotations

from collections.abc import Iterable

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QGroupBox, QHBoxLayout, QListWidget, QListWidgetItem, QPushButton, QVBoxLayout, \
    QWidget

from gui.common.painting import class_colour


class ClassFilter(QGroupBox):
    changed = Signal()  # a tick changed (by the user or by All / None)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__("Classes", parent)
        self.list_widget = QListWidget()
        self.list_widget.setToolTip("Classes seen so far; untick to hide")
        self.list_widget.setMinimumHeight(120)
        self.list_widget.itemChanged.connect(lambda *_args: self.changed.emit())
        all_button, none_button = QPushButton("All"), QPushButton("None")
        all_button.clicked.connect(lambda: self.check_all(True))
        none_button.clicked.connect(lambda: self.check_all(False))
        buttons = QHBoxLayout()
        buttons.addWidget(all_button)
        buttons.addWidget(none_button)
        layout = QVBoxLayout(self)
        layout.addWidget(self.list_widget, 1)
        layout.addLayout(buttons)

    def add_labels(self, labels: Iterable[str]) -> None:
        """Add the classes not listed yet, ticked, in sorted order (no ``changed`` signal)."""
        lst = self.list_widget
        known = {lst.item(i).text() for i in range(lst.count())}
        new = sorted(set(labels) - known)
        if not new:
            return
        lst.blockSignals(True)
        for label in new:
            item = QListWidgetItem(label)
            item.setFlags(item.flags() | Qt.ItemFlag.ItemIsUserCheckable)
            item.setCheckState(Qt.CheckState.Checked)
            item.setData(Qt.ItemDataRole.DecorationRole, class_colour(label))
            lst.addItem(item)
        lst.sortItems()
        lst.blockSignals(False)

    def hidden_classes(self) -> set[str]:
        lst = self.list_widget
        return {lst.item(i).text() for i in range(lst.count())
                if lst.item(i).checkState() != Qt.CheckState.Checked}

    def check_all(self, on: bool) -> None:
        lst = self.list_widget
        lst.blockSignals(True)
        for i in range(lst.count()):
            lst.item(i).setCheckState(Qt.CheckState.Checked if on else Qt.CheckState.Unchecked)
        lst.blockSignals(False)
        self.changed.emit()
