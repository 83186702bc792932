"""Space toggles a button (the Speech tab's Start/Stop) — except where Space has its own job."""
from __future__ import annotations

from PySide6.QtCore import QObject, Qt
from PySide6.QtGui import QKeySequence, QShortcut
from PySide6.QtWidgets import (QAbstractButton, QAbstractSpinBox, QApplication, QComboBox, QLineEdit,
                               QPlainTextEdit, QTextEdit, QWidget)


class SpaceToggle(QObject):
    """A Space shortcut on ``scope`` that toggles ``button``. It stays out of the way while focus is
    on another button, a combo box, a spin box or an editable text field, and does not auto-repeat."""

    def __init__(self, scope: QWidget, button: QAbstractButton) -> None:
        super().__init__(scope)
        self.button = button
        self.shortcut = QShortcut(QKeySequence(Qt.Key.Key_Space), scope)
        self.shortcut.setContext(Qt.ShortcutContext.WidgetWithChildrenShortcut)
        self.shortcut.setAutoRepeat(False)  # holding Space must not toggle on and off
        self.shortcut.activated.connect(self._on_space)
        QApplication.instance().focusChanged.connect(self._on_focus_changed)

    def detach(self) -> None:
        try:
            QApplication.instance().focusChanged.disconnect(self._on_focus_changed)
        except (RuntimeError, TypeError):
            pass

    def is_theirs(self, w: QWidget | None) -> bool:
        """Space does its own job in ``w`` (press a button, open a combo, type a space)."""
        if w is None:
            return False
        if isinstance(w, QAbstractButton):
            return w is not self.button
        if isinstance(w, (QComboBox, QAbstractSpinBox)):
            return True
        if isinstance(w, (QLineEdit, QTextEdit, QPlainTextEdit)):
            return not w.isReadOnly()
        return False

    def _on_focus_changed(self, _old, new) -> None:
        self.shortcut.setEnabled(not self.is_theirs(new))

    def _on_space(self) -> None:
        if not self.is_theirs(QApplication.focusWidget()):
            self.button.toggle()
