"""The Text tab widgets' hover text: one handler for Qt's ToolTip event."""
from __future__ import annotations

from collections.abc import Callable

from PySide6.QtCore import QEvent, QPoint
from PySide6.QtWidgets import QToolTip, QWidget


def tooltip_event(event: QEvent, text_at: Callable[[QPoint], str], widget: QWidget) -> bool:
    """For a ToolTip event: show ``text_at(its position)`` over ``widget``, or hide the tooltip where
    that is empty; True when the event was one (the caller returns it), False for any other event."""
    if event.type() != QEvent.Type.ToolTip:
        return False
    text = text_at(event.pos())
    if text:
        QToolTip.showText(event.globalPos(), text, widget)
    else:
        QToolTip.hideText()
    return True
