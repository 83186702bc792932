"""The window's message area: the newest problem stays on screen until the user dismisses it or a
newer problem replaces it, and every problem of the session is kept in a history the user can open.
Routine status (model ready, file opened) goes to the status bar and never touches it, so an
error is never overwritten by good news a moment later."""
from __future__ import annotations

from collections import deque
from datetime import datetime

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (QDialog, QDialogButtonBox, QFrame, QHBoxLayout, QLabel, QPlainTextEdit, QPushButton,
                               QVBoxLayout, QWidget)

MAX_HISTORY = 500
STYLES = {"error": ("#9b2c2c", "⚠"), "warning": ("#8a6100", "⚠")}


class MessageArea(QFrame):
    dismissed = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("message-area")
        self.history: deque[tuple[datetime, str, str]] = deque(maxlen=MAX_HISTORY)  # (when, level, text)
        self.level = ""
        self.icon = QLabel()
        self.label = QLabel()
        self.label.setWordWrap(True)
        self.label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.history_button = QPushButton("History…")
        self.history_button.setToolTip("Every message of this session (Ctrl+Shift+M)")
        self.history_button.clicked.connect(self.open_history)
        self.dismiss_button = QPushButton("Dismiss")
        self.dismiss_button.setToolTip("Hide this message (it stays in the history)")
        self.dismiss_button.clicked.connect(self.dismiss)
        row = QHBoxLayout(self)
        row.setContentsMargins(10, 6, 6, 6)
        row.addWidget(self.icon)
        row.addWidget(self.label, 1)
        row.addWidget(self.history_button)
        row.addWidget(self.dismiss_button)
        self.hide()

    def text(self) -> str:
        """The message shown now ("" when none is)."""
        return "" if self.isHidden() else self.label.text()

    def show_problem(self, message: str, level: str = "error") -> None:
        """Show ``message`` (replacing the one shown) and add it to the history."""
        self.history.append((datetime.now(), level, message))
        colour, mark = STYLES.get(level, STYLES["error"])
        self.level = level
        self.setStyleSheet(f"#message-area {{ background: {colour}; }} #message-area QLabel {{ color: white; }}")
        self.icon.setText(mark)
        self.label.setText(message)
        self.show()

    def dismiss(self) -> None:
        self.hide()
        self.label.setText("")
        self.level = ""
        self.dismissed.emit()

    def history_text(self) -> str:
        return "\n".join(f"{when:%H:%M:%S}  {level:<7}  {text}" for when, level, text in self.history)

    def open_history(self) -> QDialog:
        dialog = QDialog(self.window())
        dialog.setWindowTitle("Messages")
        view = QPlainTextEdit(self.history_text() or "No messages in this session.")
        view.setReadOnly(True)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        buttons.rejected.connect(dialog.reject)
        layout = QVBoxLayout(dialog)
        layout.addWidget(view)
        layout.addWidget(buttons)
        dialog.resize(720, 360)
        dialog.setModal(False)
        dialog.show()
        return dialog
