"""Entity colours and their legend: one colour per entity type (B-PER, I-PER and PER share it)."""
from __future__ import annotations

import html
from collections.abc import Sequence

from PySide6.QtCore import Qt
from PySide6.QtGui import QColor
from PySide6.QtWidgets import QLabel, QWidget

from gui.common.painting import class_colour


def entity_type(label: str) -> str:
    """"B-PER" / "I-PER" / "PER" -> "PER"."""
    return label[2:] if len(label) > 2 and label[1] == "-" and label[0] in "BIES" else label


def entity_colour(label: str, alpha: int = 110) -> QColor:
    """The type's colour, translucent so the text stays readable on light and dark backgrounds."""
    colour = QColor(class_colour(entity_type(label)))
    colour.setAlpha(alpha)
    return colour


class Legend(QLabel):
    """Coloured chips: ``set_items([(label, count), ...])``."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setTextFormat(Qt.TextFormat.RichText)
        self.setWordWrap(True)
        self.items: tuple[tuple[str, int], ...] = ()

    def set_items(self, items: Sequence[tuple[str, int]], empty: str = "") -> None:
        self.items = tuple(items)
        if not self.items:
            self.setText(f"<i>{html.escape(empty)}</i>" if empty else "")
            return
        chips = []
        for label, count in self.items:
            c = class_colour(entity_type(label))
            chips.append(f"<span style='background-color:{c.name()}; color:{c.name()}'>&nbsp;&#9632;&nbsp;</span>"
                         f"&nbsp;<b>{html.escape(label)}</b>&nbsp;×{count}")
        self.setText("&nbsp;&nbsp;&nbsp; ".join(chips))
